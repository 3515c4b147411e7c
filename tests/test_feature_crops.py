"""Training crops of log-mel frames from the recorded part of zero-padded clips (kd `crops`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch

from asc_auto.errors import ConfigError
from asc_auto.features.crops import LOGMEL_SILENCE, FrameCrop, crop_frames, recorded_frames
from asc_auto.models.cnn import CnnStudent
from asc_auto.search import SearchOptions, prepare_search
from asc_auto.techniques.kd import train_crop

SILENCE16 = torch.tensor(LOGMEL_SILENCE, dtype=torch.float16).item()  # as the cache holds it


def _clips(recorded: list[int], frames: int = 50, bands: int = 4) -> torch.Tensor:
    """float16 log-mels whose frame t of a clip holds t + 1 in every band while recorded, then
    silence: a crop's values say which frames it took."""
    x = torch.full((len(recorded), 1, bands, frames), SILENCE16, dtype=torch.float16)
    for i, n in enumerate(recorded):
        x[i, :, :, :n] = torch.arange(1, n + 1, dtype=torch.float16)
    return x


def test_recorded_frames_end_at_the_last_frame_above_silence() -> None:
    x = _clips([20, 50, 0])
    x[0, 0, :, 5] = SILENCE16  # a quiet frame inside a clip is still the clip's
    x[1, 0, 2, 49] = -13.5  # one band above silence is enough
    x[1, 0, :2, 49] = SILENCE16
    assert recorded_frames(x).tolist() == [20, 50, 0]
    assert recorded_frames(x.float()).tolist() == [20, 50, 0]  # float32 silence too


def test_a_crop_of_a_long_recording_stays_inside_it() -> None:
    x = _clips([40] * 64)
    out = FrameCrop(20)(x, torch.Generator().manual_seed(0))
    assert out.shape == (64, 1, 4, 20)
    first = out[:, 0, 0, 0].float()
    assert (out[:, 0, 0, :].float() - first[:, None] == torch.arange(20.0)).all()  # contiguous
    assert first.min() >= 1 and (first + 19).max() <= 40  # never a silent padding frame
    assert len(set(first.tolist())) > 10  # starts vary over [1, 21]


def test_a_short_recording_sits_whole_at_a_random_offset_in_its_crop() -> None:
    x = _clips([8] * 64)
    out = FrameCrop(20)(x, torch.Generator().manual_seed(1))[:, 0, 0, :].float()
    offsets = set()
    for row in out:
        heard = (row > SILENCE16 + 0.01).nonzero().flatten()
        assert row[heard].tolist() == list(range(1, 9))  # all 8 frames, in order
        assert (row[row <= SILENCE16 + 0.01] == SILENCE16).all()  # silence around them
        offsets.add(int(heard[0]))
    assert min(offsets) == 0 and max(offsets) == 12 and len(offsets) > 6  # a time shift


def test_unpadded_clips_get_uniform_crops_and_a_seed_repeats_them() -> None:
    x = _clips([50] * 32)
    a = FrameCrop(30)(x, torch.Generator().manual_seed(2))
    b = FrameCrop(30)(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    starts = a[:, 0, 0, 0].float() - 1
    assert starts.min() >= 0 and starts.max() <= 20 and len(set(starts.tolist())) > 8
    assert FrameCrop(50)(x, torch.Generator()) is x  # no shorter than the clips: untouched
    with pytest.raises(ValueError):
        FrameCrop(0)


def test_crop_frames_count_one_per_hop_plus_one_at_most_the_clip() -> None:
    assert crop_frames(1.0, 10.0, 231) == 101
    assert crop_frames(1.0, 20.0, 231) == 51
    assert crop_frames(5.0, 10.0, 231) == 231


def test_a_content_crop_student_trains_on_1s_crops_and_is_scored_on_whole_clips(
        tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        tiny_kd_space: Callable[..., Path]) -> None:
    # 1 s clips padded to 3 s, a searched `crops` param
    space = tiny_kd_space({"crops": (["clip", "content"], "content")},
                          {"clip_seconds = 1.0": "clip_seconds = 3.0"})
    setup = prepare_search(SearchOptions(technique="kd", data=tiny_dataset, progress=False,
                                         space=space,
                                         home=tmp_path / "home", epochs=1), status=lambda m: None)
    tech, ctx = setup.technique, setup.context
    assert ctx.train_xy[0].shape[-1] == 301  # 3 s at a 10 ms hop
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(setup.space.paper_trial_params())
    config = setup.space.suggest(study.ask())
    assert config["crops"] == "content"

    seen: list[tuple[bool, int]] = []
    forward = CnnStudent.forward

    def recording(self: CnnStudent, x: torch.Tensor):
        seen.append((self.training, x.shape[-1]))
        return forward(self, x)

    monkeypatch.setattr(CnnStudent, "forward", recording)
    tech.prepare(ctx)
    candidate = tech.build(config, ctx)
    seen.clear()  # building counted one example clip
    outcome = tech.fit(candidate, config, ctx)
    assert {w for training, w in seen if training} == {101}
    assert {w for training, w in seen if not training} == {301}
    assert 0.0 <= outcome.accuracy <= 1.0

    assert train_crop({**config, "crops": "clip"}, ctx) is None
    assert train_crop({k: v for k, v in config.items() if k != "crops"}, ctx) is None
    with pytest.raises(ConfigError, match=r"params\.crops.*'contents' is not a value"):
        train_crop({**config, "crops": "contents"}, ctx)
