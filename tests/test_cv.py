"""Cross-validation on small data: grouped folds, when CV switches on, how scores combine."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from asc_auto.cv import DEFAULT_FOLDS, CvScore, folds_for
from asc_auto.data.splits import grouped_folds
from asc_auto.data.tau import Clip
from asc_auto.errors import AscError

pytestmark = pytest.mark.selection  # the shipped threshold, not the suite's (conftest)


def _clips(ids_per_label: int, labels: tuple[str, ...] = ("a", "b", "c"), seed: int = 0
           ) -> list[Clip]:
    rng = np.random.default_rng(seed)
    out = []
    for label in labels:
        for k in range(ids_per_label):
            ident = f"{label}-{k}"
            out += [Clip(f"audio/{ident}-{s}.wav", label, ident)
                    for s in range(int(rng.integers(1, 5)))]
    return out


def test_folds_validate_every_clip_once_and_keep_identifiers_together() -> None:
    clips = _clips(10)
    folds = grouped_folds(clips, 5, seed=3)
    assert len(folds) == 5
    validated = Counter(c.filename for _, val in folds for c in val)
    assert set(validated) == {c.filename for c in clips}
    assert set(validated.values()) == {1}
    for train, val in folds:
        assert not {c.identifier for c in train} & {c.identifier for c in val}
        assert len(train) + len(val) == len(clips)
        assert {c.label for c in train} == {"a", "b", "c"}  # every class trained in every fold
        # stratified: each class about a fifth of its clips in validation
        for label in "abc":
            share = sum(c.label == label for c in val) / sum(c.label == label for c in clips)
            assert 0.05 < share < 0.4, (label, share)


def test_folds_are_deterministic_per_seed() -> None:
    clips = _clips(8)
    first = [tuple(c.filename for c in val) for _, val in grouped_folds(clips, 4, seed=1)]
    again = [tuple(c.filename for c in val) for _, val in grouped_folds(clips, 4, seed=1)]
    other = [tuple(c.filename for c in val) for _, val in grouped_folds(clips, 4, seed=2)]
    assert first == again
    assert first != other


def test_too_few_identifiers_is_a_clear_error() -> None:
    clips = [Clip(f"audio/{i}.wav", "ab"[i % 2], f"id{i % 3}") for i in range(12)]
    with pytest.raises(AscError, match=r"3 identifier\(s\).*--cv 3 or fewer"):
        grouped_folds(clips, 4)
    with pytest.raises(AscError, match="at least 2 folds"):
        grouped_folds(clips, 1)


def test_cv_switches_on_for_small_validation_on_user_data_only() -> None:
    assert folds_for(None, n_val=33, n_groups=154, demo=False) == DEFAULT_FOLDS
    assert folds_for(None, n_val=33, n_groups=3, demo=False) == 3  # as many as groups allow
    assert folds_for(None, n_val=500, n_groups=40, demo=False) == 0  # big enough: one split
    assert folds_for(None, n_val=500, n_groups=40, demo=False, n_val_groups=8) == 0
    # fsdd: 500 clips, but of one speaker out of 4: one fold per speaker
    assert folds_for(None, n_val=500, n_groups=4, demo=False, n_val_groups=1) == 4
    assert folds_for(None, n_val=500, n_groups=40, demo=False, n_val_groups=4) == DEFAULT_FOLDS
    assert folds_for(None, n_val=500, n_groups=4, demo=True, n_val_groups=1) == 0
    assert folds_for(None, n_val=60, n_groups=60, demo=True) == 0  # the demo stays quick
    assert folds_for(4, n_val=500, n_groups=4, demo=False) == 4  # asked for
    assert folds_for(0, n_val=10, n_groups=50, demo=False) == 0  # switched off
    assert folds_for(1, n_val=10, n_groups=50, demo=False) == 0


def test_cv_score_is_the_clip_weighted_mean_with_its_uncertainty() -> None:
    score = CvScore(accuracies=(0.9, 0.6), n_val=(30, 10))
    assert score.mean == pytest.approx((27 + 6) / 40)
    binomial = math.sqrt(score.mean * (1 - score.mean) / 40)
    spread = np.std([0.9, 0.6], ddof=1) / math.sqrt(2)
    assert score.standard_error == pytest.approx(max(binomial, spread))
    one = CvScore(accuracies=(0.75,), n_val=(100,))
    assert one.standard_error == pytest.approx(math.sqrt(0.75 * 0.25 / 100))
