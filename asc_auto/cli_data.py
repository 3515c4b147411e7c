"""`asc-auto data ...`: make a synthetic TAU-layout dataset, or check a real one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from asc_auto.console import console, user_errors
from asc_auto.data.synth import synthesize
from asc_auto.data.tau import check_dataset

data_app = typer.Typer(
    help="Create and check datasets in the TAU Urban Acoustic Scenes 2020 layout.",
    no_args_is_help=True,
)


@data_app.command()
@user_errors
def synth(
    out: Annotated[Path, typer.Option(
        "--out", metavar="DIR", help="Folder to create (must not exist yet).")],
    clips: Annotated[int, typer.Option(
        "--clips", min=10, metavar="N", help="Number of clips.")] = 600,
    seconds: Annotated[float, typer.Option(
        "--seconds", min=0.1, metavar="SECONDS", help="Length of each clip in seconds.")
    ] = 10.0,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Same seed, same bytes.")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing dataset folder.")
    ] = False,
) -> None:
    """Synthesize a learnable 3-class scene dataset (48 kHz, 24-bit stereo) in the TAU layout."""
    root = synthesize(out, n_clips=clips, clip_seconds=seconds, seed=seed, overwrite=overwrite)
    console.print(f"wrote {clips} clips of {seconds:g} s to {root}")
    console.print(f"check it with: asc-auto data check --data {root}", style="dim")


@data_app.command()
@user_errors
def check(
    data: Annotated[Path, typer.Option(
        "--data", metavar="DIR", help="Dataset root (holds meta.csv).")],
) -> None:
    """Validate the CSV files and every audio file (as search reads them), print the counts."""
    console.print(check_dataset(data).to_table())
