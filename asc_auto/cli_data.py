"""`asc-auto data ...`: make a synthetic TAU-layout dataset, or check a real one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from asc_auto.console import console, user_errors
from asc_auto.data.synth import synthesize
from asc_auto.data.tau import DatasetSummary, check_dataset

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
    console.print(summary_table(check_dataset(data)))


def summary_table(s: DatasetSummary) -> Table:
    """Per-class counts per split, then the audio format, as one printable rich table (the
    rendering lives with the command; data/tau.py only finds the facts)."""
    counts = Table(title=f"Dataset {s.root}", title_justify="left")
    for name in ("label", "train", "evaluate", "total"):
        counts.add_column(name, justify="left" if name == "label" else "right")
    train, evaluate = s.class_counts["train"], s.class_counts["evaluate"]
    for label in s.labels:
        a, b = train.get(label, 0), evaluate.get(label, 0)
        counts.add_row(label, str(a), str(b), str(a + b))
    n_train, n_eval = s.clips_per_split["train"], s.clips_per_split["evaluate"]
    counts.add_section()
    counts.add_row("all", str(n_train), str(n_eval), str(n_train + n_eval), style="bold")

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    mixed = " (mixed: each clip is resampled to the frontend's rate)" if len(
        s.sample_rates) > 1 else ""
    facts.add_row("sample rate", _join(s.sample_rates, " Hz") + mixed)
    facts.add_row("channels", _join(s.channels))
    facts.add_row(
        "clip length",
        f"{s.duration_min_s:.2f} / {s.duration_mean_s:.2f} / "
        f"{s.duration_max_s:.2f} s (min / mean / max)",
    )
    facts.add_row("identifiers", str(s.n_identifiers))
    facts.add_row("test clips", str(s.clips_per_split.get("test", 0)))

    both = Table.grid()
    both.add_row(counts)
    both.add_row(facts)
    return both


def _join(values: Sequence[int], unit: str = "") -> str:
    return ", ".join(f"{v}{unit}" for v in values) if values else "-"
