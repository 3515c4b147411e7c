"""Write a synthetic dataset in the exact TAU Urban Acoustic Scenes 2020 3Class layout.

So that everything (search, tests, the demo) runs without the 30 GB real dataset. The sound
itself comes from `asc_auto.data.scenes`; this module lays out locations, file names, the
~70/30 train/evaluate split grouped by location, which clips sound like another class
(SWAP_PROBABILITY: label noise keeps accuracy clearly below 100 %), and writes the folder
atomically. Every clip has its own seeded Generator, so the same seed gives the same bytes,
even when rendered in parallel.

Measured learnability (seed 0, 600 clips of 2 s, accuracy on the held-out locations of
fold1_evaluate, majority class 0.39): logistic regression on log-mel band means 0.55, on
GCC-PHAT lag/peak statistics alone 0.63, on band means + spreads + GCC statistics 0.67; a
3-layer CNN on mono log-mels after 30 epochs 0.71.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from asc_auto.data.scenes import SCENE_CLASSES, SPACES, render_scene
from asc_auto.errors import AscError, DataError
from asc_auto.io import atomic_dir

CITIES = ("barcelona", "helsinki", "lisbon", "london", "lyon", "milan", "paris", "prague",
          "stockholm", "vienna")  # fmt: skip
SYNTH_MANIFEST = "synth.json"  # written into the dataset root: how it was made
SWAP_PROBABILITY = 0.12  # clips that sound like a scene of another class (label noise)
EVALUATE_FRACTION = 0.3
PARALLEL_MIN_SECONDS = 120.0  # below this much audio, starting worker processes costs more


@dataclass(frozen=True)
class _ClipSpec:
    """Everything a worker needs to render one clip (picklable, no shared state)."""

    filename: str
    scene: str  # what the clip sounds like (differs from the file's scene for swapped clips)
    location_seed: tuple[int, ...]
    clip_seed: tuple[int, ...]
    sample_rate: int
    frames: int


def synthesize(
    out: Path,
    n_clips: int = 600,
    clip_seconds: float = 10.0,
    seed: int = 0,
    sample_rate: int = 48000,
    n_cities: int = 6,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic TAU Urban Acoustic Scenes 2020 3Class-style dataset to `out`.

    24-bit stereo WAV, meta.csv and fold-1 CSVs, ~70/30 train/evaluate grouped by location;
    the folder appears only once complete. Returns `out`.
    """
    out = Path(out)
    if n_clips < len(SCENE_CLASSES):
        raise AscError(
            f"synth needs at least {len(SCENE_CLASSES)} clips (one per scene), got {n_clips}"
        )
    if not clip_seconds >= 0.05 or sample_rate < 8000 or n_cities < 1:
        raise AscError("synth needs clip_seconds >= 0.05, sample_rate >= 8000 and n_cities >= 1")
    _check_target(out, overwrite)

    specs, evaluate = _plan(n_clips, clip_seconds, seed, sample_rate, n_cities)
    with atomic_dir(out) as tmp:
        (tmp / "audio").mkdir()
        _render_all(tmp, specs, progress)
        _write_csvs(tmp, specs, evaluate)
        manifest = {
            "generator": "asc_auto.data.synth",
            "version": 1,
            "n_clips": n_clips,
            "clip_seconds": clip_seconds,
            "seed": seed,
            "sample_rate": sample_rate,
            "n_cities": n_cities,
        }
        (tmp / SYNTH_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return out


# --- layout ----------------------------------------------------------------------------------


def _check_target(out: Path, overwrite: bool) -> None:
    """Refuse to clobber anything that is not a dataset we may replace."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(out, "exists and is a file", "choose a folder path for --out")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise DataError(
            out,
            "already exists and is not empty",
            "choose another --out or pass --overwrite to replace it",
        )
    if not ((out / "meta.csv").is_file() or (out / SYNTH_MANIFEST).is_file()):
        raise DataError(
            out,
            "does not look like a dataset (no meta.csv); refusing to delete it",
            "choose another --out",
        )


def _plan(
    n_clips: int, clip_seconds: float, seed: int, sample_rate: int, n_cities: int
) -> tuple[list[_ClipSpec], set[str]]:
    """Clip names (scene-city-location-segment-a), their seeds, and the evaluate filenames."""
    rng = np.random.default_rng([seed, 0])
    cities = [CITIES[i] if i < len(CITIES) else f"city{i}" for i in range(n_cities)]
    next_location = dict.fromkeys(cities, 0)
    frames = max(1, round(clip_seconds * sample_rate))
    scenes = list(SCENE_CLASSES)
    per_scene = [n_clips // len(scenes) + (i < n_clips % len(scenes)) for i in range(len(scenes))]

    specs: list[_ClipSpec] = []
    # class -> per scene -> (identifier, files)
    locations: dict[str, list[list[tuple[str, list[str]]]]] = {c: [] for c in SPACES}
    loc_index = 0
    for scene, n_scene in zip(scenes, per_scene, strict=True):
        base = int(np.clip(round(n_scene / 4), 2, 8))
        scene_locs: list[tuple[str, list[str]]] = []
        remaining = n_scene
        while remaining > 0:
            size = min(remaining, max(1, base + int(rng.integers(-1, 2))))
            remaining -= size
            city = cities[int(rng.integers(len(cities)))]
            ident = f"{city}-{1000 + next_location[city]}"
            next_location[city] += 1
            files = []
            for segment in range(size):
                name = f"audio/{scene}-{ident}-{segment * 10000}-a.wav"
                sounds_like = scene
                if rng.random() < SWAP_PROBABILITY:
                    others = [s for s, c in SCENE_CLASSES.items() if c != SCENE_CLASSES[scene]]
                    sounds_like = others[int(rng.integers(len(others)))]
                specs.append(
                    _ClipSpec(
                        name,
                        sounds_like,
                        (seed, 1, loc_index),
                        (seed, 2, len(specs)),
                        sample_rate,
                        frames,
                    )
                )
                files.append(name)
            scene_locs.append((ident, files))
            loc_index += 1
        locations[SCENE_CLASSES[scene]].append(scene_locs)
    evaluate = _evaluate_locations(locations, rng)
    return specs, evaluate


def _evaluate_locations(
    locations: dict[str, list[list[tuple[str, list[str]]]]], rng: np.random.Generator
) -> set[str]:
    """~30 % of each class's clips, whole locations, spread over the class's scenes."""
    evaluate: set[str] = set()
    for per_scene in locations.values():
        queues = [[locs[i] for i in rng.permutation(len(locs))] for locs in per_scene]
        order = [q[k] for k in range(max(map(len, queues))) for q in queues if k < len(q)]
        total = sum(len(files) for _, files in order)
        target, taken, n_taken = EVALUATE_FRACTION * total, 0, 0
        for _, files in order:
            if n_taken == len(order) - 1:
                break  # keep at least one location for training
            if n_taken == 0 or abs(target - taken - len(files)) < abs(target - taken):
                evaluate.update(files)
                taken += len(files)
                n_taken += 1
    return evaluate


def _write_csvs(root: Path, specs: list[_ClipSpec], evaluate: set[str]) -> None:
    setup = root / "evaluation_setup"
    setup.mkdir()
    names = sorted(spec.filename for spec in specs)
    label = {n: SCENE_CLASSES[Path(n).name.split("-")[0]] for n in names}
    meta = ["filename\tscene_label\tidentifier\tsource_label"]
    for n in names:
        parts = Path(n).stem.split("-")
        meta.append(f"{n}\t{label[n]}\t{parts[1]}-{parts[2]}\ta")
    (root / "meta.csv").write_text("\n".join(meta) + "\n")
    train = [f"{n}\t{label[n]}" for n in names if n not in evaluate]
    held = [f"{n}\t{label[n]}" for n in names if n in evaluate]
    (setup / "fold1_train.csv").write_text("\n".join(["filename\tscene_label", *train]) + "\n")
    (setup / "fold1_evaluate.csv").write_text("\n".join(["filename\tscene_label", *held]) + "\n")
    test = [n for n in names if n in evaluate]
    (setup / "fold1_test.csv").write_text("\n".join(["filename", *test]) + "\n")


def _render_all(root: Path, specs: list[_ClipSpec], progress: bool) -> None:
    """Render every clip, in parallel when the job is big enough to pay for processes."""
    seconds = sum(s.frames / s.sample_rate for s in specs)
    workers = min(os.cpu_count() or 1, 8) if seconds >= PARALLEL_MIN_SECONDS else 1
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=not progress,
    )
    jobs = [(root, spec) for spec in specs]
    if workers == 1:
        with bar:
            task = bar.add_task("synthesizing clips", total=len(specs))
            for job in jobs:
                _render_to_file(job)
                bar.advance(task)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool, bar:
        task = bar.add_task("synthesizing clips", total=len(specs))
        for _ in pool.map(_render_to_file, jobs, chunksize=4):
            bar.advance(task)


def _render_to_file(job: tuple[Path, _ClipSpec]) -> None:
    root, spec = job
    audio = render_scene(
        spec.scene, spec.frames, spec.sample_rate, spec.location_seed, spec.clip_seed
    )
    sf.write(str(root / spec.filename), audio.T, spec.sample_rate, subtype="PCM_24")
