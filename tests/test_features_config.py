"""Frontend settings: derived sizes, the cache key dict, and validation of TOML tables."""

from __future__ import annotations

import dataclasses

import pytest

from asc_auto.errors import ConfigError
from asc_auto.features.config import FRONTENDS, LogMelConfig, frontend_config_from_dict


def test_paper_logmel_settings_derive_the_expected_sizes() -> None:
    cfg = LogMelConfig()
    assert (cfg.win_length, cfg.hop_length, cfg.n_fft) == (400, 160, 512)
    assert cfg.n_samples == 160_000
    assert cfg.n_frames == 1001  # center=True: 160000 // 160 + 1
    assert cfg.n_planes == 1
    assert cfg.feature_shape == (1, 64, 1001)


def test_gcc_paper_window_rounds_fft_up_to_a_power_of_two() -> None:
    cfg = LogMelConfig(n_mels=40, win_ms=64.0, hop_ms=19.0, channels="stereo")
    assert (cfg.win_length, cfg.n_fft, cfg.hop_length) == (1024, 1024, 304)
    assert cfg.n_planes == 2
    assert LogMelConfig(win_ms=40.0).n_fft == 1024  # 640 samples -> 1024


def test_key_dict_holds_kind_and_every_field() -> None:
    cfg = LogMelConfig(n_mels=40)
    key = cfg.key_dict()
    assert key["kind"] == "logmel"
    assert key["n_mels"] == 40
    assert set(key) == {"kind"} | {f.name for f in dataclasses.fields(LogMelConfig)}
    assert FRONTENDS["logmel"] is LogMelConfig


def test_config_is_frozen_and_hashable() -> None:
    cfg = LogMelConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_mels = 10  # type: ignore[misc]
    assert hash(cfg) == hash(LogMelConfig())


def test_from_dict_accepts_ints_for_floats_and_defaults_the_rest() -> None:
    cfg = frontend_config_from_dict({"kind": "logmel", "n_mels": 40, "win_ms": 64}, "s.toml")
    assert cfg == LogMelConfig(n_mels=40, win_ms=64.0)
    assert isinstance(cfg.win_ms, float)


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"n_mel": 64}, "n_mel", "unknown key"),
        ({"n_mels": "64"}, "n_mels", "must be int, got '64'"),
        ({"n_mels": True}, "n_mels", "must be int, got True"),
        ({"sample_rate": 16000.0}, "sample_rate", "must be int, got 16000.0"),
        ({"f_max": "8k"}, "f_max", "must be float"),
        ({"channels": "both"}, "channels", "unknown mode 'both'"),
        ({"f_max": 9000.0}, "f_max", "must be in (f_min, 8000]"),
        ({"hop_ms": 0}, "hop_ms", "must be in (0, inf), got 0.0"),
        ({"win_ms": 0.01}, "win_ms", "window too short"),
        ({"kind": "mfcc"}, "kind", "unknown frontend 'mfcc'"),
    ],
)
def test_from_dict_names_file_and_key_of_a_bad_setting(table: dict, key: str, words: str) -> None:
    """Keys are named `features.key`, like every other settings table (one shared parser)."""
    with pytest.raises(ConfigError) as info:
        frontend_config_from_dict(table, "space/kd.toml")
    assert info.value.key == f"features.{key}"
    assert str(info.value).startswith(f"space/kd.toml: key 'features.{key}'")
    assert words in str(info.value)


def test_direct_construction_validates_too() -> None:
    with pytest.raises(ConfigError, match="channels"):
        LogMelConfig(channels="mono")
