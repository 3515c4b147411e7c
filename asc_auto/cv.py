"""Cross-validated scoring for small datasets: a trial's value is its mean over K folds.

Why: on a dataset of 150 clips the held-out validation fifth is ~30 clips, where one clip moves
accuracy by 3 points and the standard error of a score is ~8 points; a search that ranks
configurations on that ranks noise. Grouped K-fold over the whole of fold1_train validates every
clip once (no recording identifier on both sides of a fold), so the mean's standard error
shrinks with the clips validated, not with the size of one split. The same holds for a large
split drawn from a few recording sources (speakers): every source is validated once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from asc_auto.context import TrialContext
from asc_auto.data.splits import grouped_folds
from asc_auto.data.tau import Clip
from asc_auto.stats import accuracy_text, binomial_se, mean_se

# Under this many validation clips a single split cannot rank configurations (SE of a score near
# 75 % accuracy is 2.5 points at 300 clips, 7.5 points at 33): cross-validation is switched on.
SMALL_VALIDATION = 300
# Nor when the split's clips come from under this many recording sources (identifiers: speakers,
# locations): its accuracy is then a sample of a few sources, however many clips they hold. fsdd
# (4 training speakers, so the split validates on one, 500 clips): the search's pick scored 0.734
# on that speaker and 38.0 +- 8.4 % on the evaluate fold's two (3 seeds); one of those models
# classified 36.0 % of theo's clips and 63.6 % of yweweler's (issue 10, session 14).
FEW_VALIDATION_GROUPS = 5
DEFAULT_FOLDS = 5


def few_sources(n_val_groups: int) -> bool:
    """Whether a validation split of clips from `n_val_groups` identifiers measures only those."""
    return 0 < n_val_groups < FEW_VALIDATION_GROUPS


def folds_for(requested: int | None, n_val: int, n_groups: int, demo: bool,
              n_val_groups: int | None = None) -> int:
    """How many folds a search scores on: `requested` (0/1 = a single split), or, when None,
    DEFAULT_FOLDS (at most one per group) when the single validation split holds under
    SMALL_VALIDATION clips or under FEW_VALIDATION_GROUPS of the `n_groups` identifiers, on the
    user's data. `n_val_groups` None: not known, judged by clips alone.

    The built-in demo keeps its single split: it is a few-minute tour, not a measurement.
    """
    if requested is not None:
        return requested if requested >= 2 else 0
    few_groups = n_val_groups is not None and few_sources(n_val_groups)
    if demo or n_groups < 2 or (n_val >= SMALL_VALIDATION and not few_groups):
        return 0
    return min(DEFAULT_FOLDS, n_groups)


def fold_contexts(ctx: TrialContext, clips: Sequence[Clip], k: int, seed: int
                  ) -> tuple[TrialContext, ...]:
    """One context per fold: the same data, features, space and settings, another split."""
    return tuple(
        dataclasses.replace(ctx, train_files=tuple(c.filename for c in train),
                            val_files=tuple(c.filename for c in val))
        for train, val in grouped_folds(clips, k, seed)
    )


@dataclasses.dataclass(frozen=True)
class CvScore:
    """Fold accuracies of one configuration and what they say together."""

    accuracies: tuple[float, ...]
    n_val: tuple[int, ...]  # validation clips per fold

    @property
    def mean(self) -> float:
        """Clip-weighted mean: the accuracy over every clip of fold1_train, each validated once."""
        pairs = zip(self.accuracies, self.n_val, strict=True)
        return sum(a * n for a, n in pairs) / sum(self.n_val)

    @property
    def standard_error(self) -> float:
        """Binomial SE over all validated clips, or the folds' spread when that is larger."""
        binomial = binomial_se(self.mean, sum(self.n_val))
        if len(self.accuracies) < 2:
            return binomial
        return max(binomial, mean_se(self.accuracies))

    @property
    def text(self) -> str:
        """`0.7532 ± 0.040`: the mean with its standard error, as every line shows a score."""
        return accuracy_text(self.mean, None, self.standard_error)
