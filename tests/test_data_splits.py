"""asc_auto.data.splits: grouped by identifier, stratified, deterministic."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from asc_auto.data.splits import train_val_split
from asc_auto.data.tau import Clip, load_dataset
from asc_auto.errors import AscError


def _clips(n_ids: dict[str, int], seed: int = 0) -> list[Clip]:
    """Clips of several identifiers per label, 1-8 clips per identifier."""
    rng = np.random.default_rng(seed)
    clips = []
    for label, count in n_ids.items():
        for k in range(count):
            ident = f"{label[:3]}-{k}"
            clips += [Clip(f"audio/{ident}-{s}.wav", label, ident)
                      for s in range(int(rng.integers(1, 9)))]  # fmt: skip
    return clips


def _ids(clips: tuple[Clip, ...]) -> set[str]:
    return {c.identifier for c in clips}


def test_grouped_stratified_and_complete() -> None:
    clips = _clips({"indoor": 30, "outdoor": 40, "transportation": 25})
    train, val = train_val_split(clips, val_fraction=0.2, seed=0)
    assert not _ids(train) & _ids(val)
    assert sorted(train + val, key=clips.index) == clips
    assert [c for c in clips if c in train] == list(train)  # input order kept
    totals, in_val = Counter(c.label for c in clips), Counter(c.label for c in val)
    for label, total in totals.items():
        assert abs(in_val[label] / total - 0.2) < 0.05, (label, in_val[label], total)


def test_deterministic_for_a_seed_and_independent_of_input_order() -> None:
    clips = _clips({"a": 10, "b": 10, "c": 10})
    first = train_val_split(clips, 0.3, seed=1)
    assert train_val_split(clips, 0.3, seed=1) == first
    shuffled = [clips[i] for i in np.random.default_rng(5).permutation(len(clips))]
    assert set(train_val_split(shuffled, 0.3, seed=1)[1]) == set(first[1])
    assert _ids(train_val_split(clips, 0.3, seed=2)[1]) != _ids(first[1])


def test_every_class_reaches_validation_even_when_rare() -> None:
    clips = _clips({"common": 40, "rare": 2})
    _, val = train_val_split(clips, val_fraction=0.1, seed=3)
    assert {c.label for c in val} == {"common", "rare"}


def test_a_class_with_one_identifier_stays_in_training() -> None:
    clips = _clips({"a": 6, "b": 6, "solo": 1})
    train, val = train_val_split(clips, 0.3, seed=0)
    assert "solo" in {c.label for c in train}
    assert "solo" not in {c.label for c in val}


def test_tiny_dataset_splits_with_every_class(tiny_dataset) -> None:
    ds = load_dataset(tiny_dataset)
    train, val = train_val_split(ds.train, 0.2, seed=0)
    assert {c.label for c in val} == set(ds.labels) == {c.label for c in train}
    assert not _ids(train) & _ids(val)


def test_impossible_splits_raise_clear_errors() -> None:
    one = [Clip(f"audio/x-{i}.wav", "indoor", "lisbon-1") for i in range(5)]
    with pytest.raises(AscError, match="1 identifier"):
        train_val_split(one)
    singletons = [Clip("audio/a.wav", "indoor", "l-1"), Clip("audio/b.wav", "outdoor", "l-2")]
    with pytest.raises(AscError, match="only one of its class"):
        train_val_split(singletons)
    with pytest.raises(AscError, match="val_fraction"):
        train_val_split(_clips({"a": 5}), val_fraction=1.0)
