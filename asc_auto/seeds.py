"""The initial-weight seed of a trial: one formula for the search, its confirmation runs and
the gcc ablation, so a configuration retrained for a comparison starts as the trial did."""

from __future__ import annotations

import numpy as np


def trial_seed(base: int, number: int, fold: int = 0, seed_index: int = 0) -> int:
    """Initial-weight seed of trial `number`: (base, number) as every trial has used, extended
    by fold and confirmation seed index when they are not 0."""
    parts = [base, number] + ([fold, seed_index] if fold or seed_index else [])
    return int(np.random.SeedSequence(parts).generate_state(1)[0])
