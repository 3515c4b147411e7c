"""Shared fixtures: one tiny synthetic TAU-layout dataset for the whole session."""

from __future__ import annotations

from pathlib import Path

import pytest

from asc_auto.data.synth import synthesize

TINY_CLIPS = 48
TINY_SECONDS = 1.0


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 stereo 48 kHz 24-bit clips of 1 s (35 train / 13 evaluate, 3 classes), seed 0.

    Session-scoped and shared: treat it as read-only (copy it before breaking it).
    """
    root = tmp_path_factory.mktemp("tiny") / "tau3"
    return synthesize(root, n_clips=TINY_CLIPS, clip_seconds=TINY_SECONDS, seed=0, progress=False)
