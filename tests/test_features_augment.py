"""SpecAugment masks and mixup targets."""

from __future__ import annotations

import pytest
import torch

from asc_auto.features.augment import SpecAugment, mixup


def _features() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(8, 2, 64, 100) * 2 - 9  # log-mel-like: far from zero


def _masked_rows(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B, planes, F) bool: frequency rows that differ from the input anywhere."""
    return (out != x).any(dim=-1)


def test_frequency_masks_set_whole_bands_to_the_plane_mean() -> None:
    x = _features()
    aug = SpecAugment(freq_masks=1, freq_width=20, time_masks=0, time_width=0).train()
    out = aug(x)
    rows = _masked_rows(out, x)
    assert rows.any(), "with 16 example-planes at least one mask is expected"
    plane_mean = x.mean(dim=(-2, -1), keepdim=True).expand_as(x)
    torch.testing.assert_close(out[rows], plane_mean[rows])  # whole rows, every frame
    # unmasked rows are untouched, and masks differ between examples (iid)
    torch.testing.assert_close(out[~rows], x[~rows])
    assert not all(torch.equal(rows[0, 0], rows[b, p]) for b in range(8) for p in range(2))
    assert rows.sum(dim=-1).max() < 20  # one mask of width < 20 per example-plane


def test_time_masks_with_zero_fill_zero_whole_frames() -> None:
    x = _features()
    out = SpecAugment(freq_masks=0, freq_width=0, time_masks=2, time_width=30, fill="zero")(x)
    frames = (out != x).any(dim=-2)  # (B, planes, T)
    assert frames.any()
    b, p, t = frames.nonzero()[0].tolist()
    assert torch.count_nonzero(out[b, p, :, t]) == 0
    assert frames.sum(dim=-1).max() <= 2 * 29


def test_identity_in_eval_mode_and_with_zero_widths() -> None:
    x = _features()
    aug = SpecAugment(freq_masks=2, freq_width=10, time_masks=2, time_width=10).eval()
    assert torch.equal(aug(x), x)
    off = SpecAugment(freq_masks=2, freq_width=0, time_masks=2, time_width=0).train()
    assert torch.equal(off(x), x)


def test_mixup_mixes_inputs_and_targets_with_the_same_weights() -> None:
    n_classes = 5
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    # inputs that encode their own label: mixed inputs must equal the mixed targets
    x = torch.nn.functional.one_hot(y, n_classes).float().view(8, 1, n_classes, 1)
    gen = torch.Generator().manual_seed(1)
    mixed, targets = mixup(x, y, n_classes, alpha=0.4, generator=gen)
    assert targets.shape == (8, n_classes)
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(8))
    assert (targets >= 0).all()
    torch.testing.assert_close(mixed.view(8, n_classes), targets)
    assert not torch.equal(targets, torch.nn.functional.one_hot(y, n_classes).float())
    # same seed, same result
    again = mixup(x, y, n_classes, alpha=0.4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again[1], targets)


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_mixup_with_alpha_zero_is_identity_with_one_hot_targets(alpha: float) -> None:
    x = _features()
    y = torch.tensor([2, 0, 1, 1, 0, 2, 2, 0])
    mixed, targets = mixup(x, y, 3, alpha=alpha)
    assert torch.equal(mixed, x)
    assert torch.equal(targets, torch.nn.functional.one_hot(y, 3).float())


def test_mixup_mixes_extras_with_the_same_weights_and_partners() -> None:
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    x = torch.nn.functional.one_hot(y, 3).float().view(6, 1, 3, 1)
    teacher_logits = torch.nn.functional.one_hot(y, 3).float() * 4.0  # (B, 3)
    gen = torch.Generator().manual_seed(3)
    mixed, targets, (logits,) = mixup(x, y, 3, alpha=1.0, generator=gen, extras=[teacher_logits])
    torch.testing.assert_close(logits, targets * 4.0)
    torch.testing.assert_close(mixed.view(6, 3), targets)
    same_x, hard, kept = mixup(x, y, 3, alpha=0.0, extras=[teacher_logits])
    assert same_x is x and kept[0] is teacher_logits
    assert torch.equal(hard, torch.nn.functional.one_hot(y, 3).float())
