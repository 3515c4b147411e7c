"""asc_auto.data.synth / scenes: exact TAU layout, determinism, and a sound that is learnable
(clearly above chance, clearly below perfect) with spatial cues that differ by class."""

from __future__ import annotations

import json
import re
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asc_auto.data import synth
from asc_auto.data.audio import read_audio
from asc_auto.data.scenes import SCENE_CLASSES
from asc_auto.data.synth import synthesize
from asc_auto.data.tau import check_dataset, load_dataset
from asc_auto.errors import AscError, DataError

NAME = re.compile(r"^audio/([a-z_]+)-([a-z]+)-(\d+)-(\d+)-a\.wav$")


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# --- layout and format -----------------------------------------------------------------------


def test_layout_matches_tau_2020_3class(tiny_dataset: Path) -> None:
    meta = (tiny_dataset / "meta.csv").read_text().splitlines()
    assert meta[0] == "filename\tscene_label\tidentifier\tsource_label"
    setup = tiny_dataset / "evaluation_setup"
    train = (setup / "fold1_train.csv").read_text().splitlines()
    evaluate = (setup / "fold1_evaluate.csv").read_text().splitlines()
    test = (setup / "fold1_test.csv").read_text().splitlines()
    assert train[0] == evaluate[0] == "filename\tscene_label"
    assert test[0] == "filename"
    assert len(meta) - 1 == 48 == len(train) - 1 + len(evaluate) - 1
    assert test[1:] == [row.split("\t")[0] for row in evaluate[1:]]

    scenes = Counter()
    for row in meta[1:]:
        filename, label, identifier, source = row.split("\t")
        scene, city, location, _segment = NAME.match(filename).groups()  # type: ignore[union-attr]
        assert label == SCENE_CLASSES[scene]
        assert identifier == f"{city}-{location}"
        assert source == "a"
        assert (tiny_dataset / filename).is_file()
        scenes[scene] += 1
    assert set(scenes) == set(SCENE_CLASSES)  # all 10 real scenes, ~equally often
    assert max(scenes.values()) - min(scenes.values()) <= 1
    assert (tiny_dataset / "audio").is_dir()
    assert len(list((tiny_dataset / "audio").iterdir())) == 48


def test_audio_is_48k_24bit_stereo(tiny_dataset: Path) -> None:
    for wav in sorted((tiny_dataset / "audio").iterdir())[:5]:
        info = sf.info(str(wav))
        assert (info.samplerate, info.channels, info.frames) == (48000, 2, 48000)
        assert (info.format, info.subtype) == ("WAV", "PCM_24")
        data, _ = read_audio(wav)
        assert 0.001 < float(np.abs(data).max()) < 1.0  # not silent, not clipped
        assert not np.allclose(data[0], data[1])  # two distinct channels


def test_train_and_evaluate_are_grouped_by_location(tiny_dataset: Path) -> None:
    ds = load_dataset(tiny_dataset)
    train_ids = {c.identifier for c in ds.train}
    assert not train_ids & {c.identifier for c in ds.evaluate}
    for label in ds.labels:  # every class on both sides, ~30 % held out
        n_train = sum(c.label == label for c in ds.train)
        n_eval = sum(c.label == label for c in ds.evaluate)
        assert n_train > 0 and n_eval > 0
        assert 0.15 <= n_eval / (n_train + n_eval) <= 0.45
    assert len({c.identifier for c in ds.all_clips()}) < len(ds.all_clips())  # several/location
    summary = check_dataset(tiny_dataset, progress=False)
    assert summary.labels == ("indoor", "outdoor", "transportation")
    assert (summary.sample_rates, summary.channels) == ((48000,), (2,))


def test_manifest_records_the_settings(tiny_dataset: Path) -> None:
    made = json.loads((tiny_dataset / synth.SYNTH_MANIFEST).read_text())
    assert (made["n_clips"], made["clip_seconds"], made["seed"]) == (48, 1.0, 0)


# --- determinism and atomic writing ---------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    kwargs = {"n_clips": 12, "clip_seconds": 0.2, "progress": False}
    a = _tree(synthesize(tmp_path / "a", seed=3, **kwargs))
    b = _tree(synthesize(tmp_path / "b", seed=3, **kwargs))
    c = _tree(synthesize(tmp_path / "c", seed=4, **kwargs))
    assert a == b
    assert a["meta.csv"] != c["meta.csv"]
    wavs = [k for k in a if k.endswith(".wav")]
    assert len(wavs) == 12
    assert all(a[k] != c.get(k) for k in wavs)


def test_parallel_rendering_gives_the_same_bytes(tmp_path: Path, monkeypatch) -> None:
    kwargs = {"n_clips": 10, "clip_seconds": 0.2, "seed": 1, "progress": False}
    serial = _tree(synthesize(tmp_path / "serial", **kwargs))
    monkeypatch.setattr(synth, "PARALLEL_MIN_SECONDS", 0.0)
    monkeypatch.setattr(synth.os, "cpu_count", lambda: 2)
    assert _tree(synthesize(tmp_path / "parallel", **kwargs)) == serial


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    out = synthesize(tmp_path / "ds", n_clips=10, clip_seconds=0.1, seed=0, progress=False)
    before = _tree(out)
    with pytest.raises(DataError, match="already exists and is not empty") as err:
        synthesize(out, n_clips=10, clip_seconds=0.1, seed=1, progress=False)
    assert "--overwrite" in str(err.value)
    assert _tree(out) == before
    synthesize(out, n_clips=10, clip_seconds=0.1, seed=1, progress=False, overwrite=True)
    assert _tree(out) != before
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temp dirs left behind


def test_overwrite_never_deletes_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(DataError, match="not generated by asc-auto data synth"):
        synthesize(precious, n_clips=10, clip_seconds=0.1, progress=False, overwrite=True)
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_rejects_impossible_settings(tmp_path: Path) -> None:
    with pytest.raises(AscError, match="at least 10 clips"):
        synthesize(tmp_path / "x", n_clips=5, progress=False)
    with pytest.raises(AscError, match="clip_seconds"):
        synthesize(tmp_path / "x", n_clips=10, clip_seconds=0.0, progress=False)
    assert not (tmp_path / "x").exists()


# --- the sound is learnable, not trivial, and spatial cues differ by class -----------------


@pytest.fixture(scope="module")
def small_16k(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """240 clips of 1 s at 16 kHz: per split, band features, GCC statistics and labels."""
    root = synthesize(tmp_path_factory.mktemp("learn") / "ds", n_clips=240, clip_seconds=1.0,
                      seed=0, sample_rate=16000, progress=False)  # fmt: skip
    ds = load_dataset(root)
    out = {}
    for split in ("train", "evaluate"):
        feats, gcc, labels = [], [], []
        for clip in getattr(ds, split):
            x, sr = read_audio(ds.path(clip))
            spec = _stft(x.astype(np.float64))
            feats.append(_band_features(spec, sr))
            gcc.append(_gcc_phat_stats(spec, sr))
            labels.append(ds.label_index(clip.label))
        out[split] = (np.array(feats), np.array(gcc), np.array(labels))
    return out, {"labels": ds.labels}


def _stft(x: np.ndarray, n_fft: int = 512, hop: int = 256) -> np.ndarray:
    frames = 1 + (x.shape[1] - n_fft) // hop
    idx = np.arange(n_fft)[None] + hop * np.arange(frames)[:, None]
    return np.fft.rfft(x[:, idx] * np.hanning(n_fft), axis=-1)  # (channels, frames, bins)


def _band_features(spec: np.ndarray, sr: int) -> np.ndarray:
    """Mean and spread over time of 24 log-spaced band energies, overall gain removed."""
    power = (np.abs(spec) ** 2).mean(0)
    freqs = np.fft.rfftfreq(2 * (spec.shape[-1] - 1), 1 / sr)
    edges = np.geomspace(50, 0.47 * sr, 25)
    bands = np.stack(
        [power[:, (freqs >= lo) & (freqs < hi)].sum(1) for lo, hi in pairwise(edges)], 1
    )
    log_bands = np.log(bands + 1e-12)
    log_bands -= log_bands.mean()
    return np.concatenate([log_bands.mean(0), log_bands.std(0)])


def _gcc_phat_stats(spec: np.ndarray, sr: int) -> tuple[float, float]:
    """Per frame GCC-PHAT over +-1 ms: mean |lag of the peak| in ms and mean peak height."""
    cross = spec[0] * np.conj(spec[1])
    r = np.fft.irfft(cross / (np.abs(cross) + 1e-12), axis=-1)
    max_lag = int(0.001 * sr)
    r = np.concatenate([r[:, -max_lag:], r[:, : max_lag + 1]], axis=1)
    lags = np.abs(r.argmax(1) - max_lag) / sr * 1000
    return float(lags.mean()), float(r.max(1).mean())


def _softmax_regression(x: np.ndarray, y: np.ndarray, k: int, steps: int = 500) -> np.ndarray:
    w = np.zeros((x.shape[1] + 1, k))
    x1, onehot = np.hstack([x, np.ones((len(x), 1))]), np.eye(k)[y]
    for _ in range(steps):
        z = x1 @ w
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        w -= 0.5 * (x1.T @ (p - onehot) / len(y) + 1e-2 * w)
    return w


def test_classes_are_learnable_but_not_trivial(small_16k) -> None:
    data, _ = small_16k
    (x_tr, _, y_tr), (x_ev, _, y_ev) = data["train"], data["evaluate"]
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-9
    w = _softmax_regression((x_tr - mu) / sd, y_tr, 3)
    pred = (np.hstack([(x_ev - mu) / sd, np.ones((len(x_ev), 1))]) @ w).argmax(1)
    accuracy = float((pred == y_ev).mean())
    majority = np.bincount(y_ev).max() / len(y_ev)
    # measured 0.60 (majority class 0.40) for seed 0: unseen locations, 1 s clips, 16 kHz
    assert majority + 0.1 < accuracy < 0.9, (accuracy, majority)


def test_gcc_phat_statistics_differ_by_class(small_16k) -> None:
    data, meta = small_16k
    gcc = np.concatenate([data["train"][1], data["evaluate"][1]])
    y = np.concatenate([data["train"][2], data["evaluate"][2]])
    indoor, outdoor, transport = (meta["labels"].index(c) for c in
                                  ("indoor", "outdoor", "transportation"))  # fmt: skip
    lag = {k: gcc[y == k, 0].mean() for k in (indoor, outdoor, transport)}
    peak = {k: gcc[y == k, 1].mean() for k in (indoor, outdoor, transport)}
    # outdoor: lateral sources (large delays); transportation: centred (small delays);
    # indoor: diffuse and reverberant (the least coherent channels, lowest peaks)
    assert lag[outdoor] > lag[indoor] + 0.03 and lag[outdoor] > lag[transport] + 0.1
    assert peak[transport] > peak[indoor] + 0.08 and peak[outdoor] > peak[indoor] + 0.04
