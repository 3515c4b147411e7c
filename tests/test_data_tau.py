"""asc_auto.data.tau: parsing, every validation error (file + row + fix), check, fingerprint."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asc_auto.cli_data import summary_table
from asc_auto.data import filehash
from asc_auto.data.tau import (
    Clip,
    check_dataset,
    dataset_fingerprint,
    load_dataset,
    stat_fingerprint,
)
from asc_auto.errors import DataError

META_HEADER = "filename\tscene_label\tidentifier\tsource_label"
FOLD_HEADER = "filename\tscene_label"


def _clip(scene: str, label: str, loc: int, seg: int) -> tuple[str, str, str]:
    return (f"audio/{scene}-lisbon-{loc}-{seg}-a.wav", label, f"lisbon-{loc}")


# Two locations per class: one in train (2 clips), one in evaluate (1 clip).
CLIPS = [
    _clip("airport", "indoor", 1000, 0),
    _clip("airport", "indoor", 1000, 1),
    _clip("airport", "indoor", 1001, 0),
    _clip("park", "outdoor", 1002, 0),
    _clip("park", "outdoor", 1002, 1),
    _clip("park", "outdoor", 1003, 0),
    _clip("bus", "transportation", 1004, 0),
    _clip("bus", "transportation", 1004, 1),
    _clip("bus", "transportation", 1005, 0),
]
TRAIN = [c for c in CLIPS if c[2] in ("lisbon-1000", "lisbon-1002", "lisbon-1004")]
EVALUATE = [c for c in CLIPS if c not in TRAIN]


def write_dataset(
    root: Path,
    clips: list[tuple[str, str, str]] = CLIPS,
    train: list[tuple[str, str, str]] = TRAIN,
    evaluate: list[tuple[str, str, str]] = EVALUATE,
    sample_rate: int = 16000,
    channels: int = 2,
    seconds: float = 0.05,
) -> Path:
    """A small valid TAU-layout dataset written through real files."""
    (root / "audio").mkdir(parents=True)
    (root / "evaluation_setup").mkdir()
    frames = int(sample_rate * seconds)
    for i, (name, _, _) in enumerate(clips):
        noise = np.random.default_rng(i).uniform(-0.3, 0.3, (frames, channels))
        sf.write(str(root / name), noise.astype(np.float32), sample_rate, subtype="PCM_16")
    meta = [META_HEADER, *("\t".join((n, lab, ident, "a")) for n, lab, ident in clips)]
    _write(root / "meta.csv", meta)
    _write(root / "evaluation_setup/fold1_train.csv", _fold(train))
    _write(root / "evaluation_setup/fold1_evaluate.csv", _fold(evaluate))
    _write(root / "evaluation_setup/fold1_test.csv", ["filename", *(n for n, _, _ in evaluate)])
    return root


def _fold(clips: list[tuple[str, str, str]]) -> list[str]:
    return [FOLD_HEADER, *(f"{n}\t{lab}" for n, lab, _ in clips)]


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _expect(root: Path, rel: str, row: int | None, match: str) -> DataError:
    """load_dataset must fail naming `rel`, the row, and a fix."""
    with pytest.raises(DataError, match=match) as info:
        load_dataset(root)
    err = info.value
    assert err.file == str(root / rel)
    assert err.row == row
    message = str(err)
    assert message.startswith(f"{root / rel}, row {row}:" if row else f"{root / rel}:")
    assert "fix:" in message
    assert "\n" not in message
    return err


@pytest.fixture
def ds_root(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "tau")


# --- a valid dataset -----------------------------------------------------------------------


def test_load_dataset_parses_splits_labels_and_identifiers(ds_root: Path) -> None:
    ds = load_dataset(ds_root)
    assert ds.labels == ("indoor", "outdoor", "transportation")
    assert [c.filename for c in ds.train] == [n for n, _, _ in TRAIN]
    assert ds.evaluate[0] == Clip("audio/airport-lisbon-1001-0-a.wav", "indoor", "lisbon-1001")
    assert ds.test == tuple(n for n, _, _ in EVALUATE)
    assert ds.label_index("outdoor") == 1
    with pytest.raises(KeyError, match="unknown label 'forest'"):
        ds.label_index("forest")
    assert ds.path(ds.train[0]) == ds_root / TRAIN[0][0]
    assert ds.path("audio/x.wav") == ds_root / "audio/x.wav"
    assert len(ds.all_clips()) == len(CLIPS)
    assert {c.filename for c in ds.all_clips()} == {n for n, _, _ in CLIPS}
    assert ds.clip_paths() == [ds_root / c.filename for c in ds.all_clips()]


def test_labels_come_from_meta_so_ten_classes_work(tmp_path: Path) -> None:
    scenes = ["airport", "bus", "metro", "metro_station", "park", "public_square",
              "shopping_mall", "street_pedestrian", "street_traffic", "tram"]  # fmt: skip
    clips = [_clip(s, s, 2000 + 2 * i + k, 0) for i, s in enumerate(scenes) for k in (0, 1)]
    root = write_dataset(tmp_path / "mobile", clips, train=clips[0::2], evaluate=clips[1::2])
    ds = load_dataset(root)
    assert ds.labels == tuple(sorted(scenes))
    assert ds.label_index("tram") == 9
    assert check_dataset(root, progress=False).class_counts["train"]["street_traffic"] == 1


def test_missing_test_fold_means_no_test_clips(ds_root: Path) -> None:
    (ds_root / "evaluation_setup/fold1_test.csv").unlink()
    assert load_dataset(ds_root).test == ()


def test_blank_lines_crlf_and_bom_are_tolerated(ds_root: Path) -> None:
    meta = ds_root / "meta.csv"
    meta.write_bytes(b"\xef\xbb\xbf" + meta.read_bytes().replace(b"\n", b"\r\n") + b"\r\n\r\n")
    assert len(load_dataset(ds_root).all_clips()) == len(CLIPS)


def test_load_dataset_decodes_no_audio(ds_root: Path) -> None:
    (ds_root / TRAIN[0][0]).write_bytes(b"garbage, not a wav")
    assert len(load_dataset(ds_root).train) == len(TRAIN)  # only check_dataset opens audio


# --- validation errors ---------------------------------------------------------------------


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset folder does not exist") as err:
        load_dataset(tmp_path / "nowhere")
    assert "fix: point --data at the dataset root" in str(err.value)


@pytest.mark.parametrize(
    "rel", ["meta.csv", "evaluation_setup/fold1_train.csv", "evaluation_setup/fold1_evaluate.csv"]
)
def test_missing_csv(ds_root: Path, rel: str) -> None:
    (ds_root / rel).unlink()
    _expect(ds_root, rel, None, "missing file")


def test_wrong_header(ds_root: Path) -> None:
    path = ds_root / "evaluation_setup/fold1_train.csv"
    _write(path, ["file\tlabel", *_lines(path)[1:]])
    _expect(ds_root, "evaluation_setup/fold1_train.csv", 1, "header is 'file<TAB>label'")


def test_comma_separated_header_gets_a_hint(ds_root: Path) -> None:
    path = ds_root / "meta.csv"
    _write(path, ["filename,scene_label,identifier,source_label", *_lines(path)[1:]])
    _expect(ds_root, "meta.csv", 1, "looks comma-separated")


def test_wrong_column_count(ds_root: Path) -> None:
    path = ds_root / "meta.csv"
    lines = _lines(path)
    lines[3] = lines[3].rsplit("\t", 1)[0]  # drop source_label of data row 3 (file row 4)
    _write(path, lines)
    _expect(ds_root, "meta.csv", 4, "expected 4 tab-separated columns, found 3")


def test_empty_cell(ds_root: Path) -> None:
    path = ds_root / "evaluation_setup/fold1_evaluate.csv"
    lines = _lines(path)
    lines[2] = lines[2].split("\t")[0] + "\t"
    _write(path, lines)
    _expect(ds_root, "evaluation_setup/fold1_evaluate.csv", 3, "empty scene_label")


def test_listed_file_absent_on_disk(ds_root: Path) -> None:
    (ds_root / TRAIN[2][0]).unlink()
    err = _expect(ds_root, "evaluation_setup/fold1_train.csv", 4, "does not exist on disk")
    assert TRAIN[2][0] in str(err)


def test_listed_file_absent_from_meta(ds_root: Path) -> None:
    path = ds_root / "meta.csv"
    _write(path, [line for line in _lines(path) if not line.startswith(EVALUATE[1][0])])
    err = _expect(ds_root, "evaluation_setup/fold1_evaluate.csv", 3, "is not listed in meta.csv")
    assert EVALUATE[1][0] in str(err)


def test_unknown_label(ds_root: Path) -> None:
    path = ds_root / "evaluation_setup/fold1_train.csv"
    lines = _lines(path)
    lines[5] = lines[5].split("\t")[0] + "\tforest"
    _write(path, lines)
    err = _expect(ds_root, "evaluation_setup/fold1_train.csv", 6, "unknown label 'forest'")
    assert "indoor, outdoor, transportation" in str(err)


def test_label_disagreeing_with_meta(ds_root: Path) -> None:
    path = ds_root / "evaluation_setup/fold1_train.csv"
    lines = _lines(path)
    name = lines[1].split("\t")[0]
    lines[1] = f"{name}\toutdoor"
    _write(path, lines)
    _expect(ds_root, "evaluation_setup/fold1_train.csv", 2,
            r"label 'outdoor' of .* disagrees with meta.csv row 2 \('indoor'\)")  # fmt: skip


@pytest.mark.parametrize("bad", ["../outside.wav", "audio/../../outside.wav", "/etc/passwd"])
def test_paths_escaping_the_root(ds_root: Path, bad: str) -> None:
    path = ds_root / "evaluation_setup/fold1_train.csv"
    _write(path, [*_lines(path), f"{bad}\tindoor"])
    _expect(ds_root, "evaluation_setup/fold1_train.csv", len(TRAIN) + 2, "escapes the dataset root")


def test_paths_escaping_the_root_in_meta(ds_root: Path) -> None:
    path = ds_root / "meta.csv"
    _write(path, [*_lines(path), "../x.wav\tindoor\tlisbon-1\ta"])
    _expect(ds_root, "meta.csv", len(CLIPS) + 2, "escapes the dataset root")


def test_empty_split(ds_root: Path) -> None:
    _write(ds_root / "evaluation_setup/fold1_evaluate.csv", [FOLD_HEADER])
    _expect(ds_root, "evaluation_setup/fold1_evaluate.csv", 1, "the split is empty")


def test_empty_meta(ds_root: Path) -> None:
    _write(ds_root / "meta.csv", [META_HEADER])
    _expect(ds_root, "meta.csv", 1, "no data rows")


def test_duplicate_rows(ds_root: Path) -> None:
    path = ds_root / "evaluation_setup/fold1_train.csv"
    lines = _lines(path)
    _write(path, [*lines, lines[2]])
    _expect(ds_root, "evaluation_setup/fold1_train.csv", len(lines) + 1,
            r"duplicate row for .* \(first at row 3\)")  # fmt: skip


def test_duplicate_rows_in_meta(ds_root: Path) -> None:
    path = ds_root / "meta.csv"
    lines = _lines(path)
    _write(path, [*lines[:3], lines[1], *lines[3:]])
    _expect(ds_root, "meta.csv", 4, r"duplicate row .* \(first at row 2\)")


def test_train_and_evaluate_must_not_overlap(ds_root: Path) -> None:
    path = ds_root / "evaluation_setup/fold1_evaluate.csv"
    _write(path, [*_lines(path), f"{TRAIN[0][0]}\tindoor"])
    _expect(ds_root, "evaluation_setup/fold1_evaluate.csv", len(EVALUATE) + 2,
            "also in evaluation_setup/fold1_train.csv row 2")  # fmt: skip


# --- check_dataset ---------------------------------------------------------------------------


def test_check_dataset_summarises(ds_root: Path) -> None:
    summary = check_dataset(ds_root, progress=False)
    assert summary.labels == ("indoor", "outdoor", "transportation")
    assert summary.clips_per_split == {"train": 6, "evaluate": 3, "test": 3}
    assert summary.class_counts == {
        "train": {"indoor": 2, "outdoor": 2, "transportation": 2},
        "evaluate": {"indoor": 1, "outdoor": 1, "transportation": 1},
    }
    assert (summary.sample_rates, summary.channels) == ((16000,), (2,))
    assert summary.duration_min_s == summary.duration_max_s == pytest.approx(0.05)
    assert summary.n_identifiers == 6


def test_check_accepts_mono_and_any_length(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "mono", channels=1, seconds=0.1)
    sf.write(str(root / TRAIN[0][0]), np.zeros(4800, dtype=np.float32), 16000)  # 0.3 s
    summary = check_dataset(root, progress=False)
    assert summary.channels == (1,)
    assert summary.duration_min_s == pytest.approx(0.1)
    assert summary.duration_max_s == pytest.approx(0.3)
    assert summary.duration_mean_s == pytest.approx((8 * 0.1 + 0.3) / 9)


def test_check_finds_a_truncated_wav_and_its_row(ds_root: Path) -> None:
    wav = ds_root / TRAIN[3][0]
    wav.write_bytes(wav.read_bytes()[:-100])
    load_dataset(ds_root)  # the CSVs are fine
    with pytest.raises(DataError, match="truncated WAV") as err:
        check_dataset(ds_root, progress=False)
    message = str(err.value)
    assert message.startswith(str(wav))
    assert f"listed in {ds_root / 'evaluation_setup/fold1_train.csv'}, row 5" in message


def test_check_finds_an_unreadable_wav(ds_root: Path) -> None:
    wav = ds_root / EVALUATE[2][0]
    wav.write_bytes(b"RIFF junk")
    with pytest.raises(DataError, match=r"evaluation_setup/fold1_evaluate\.csv, row 4") as err:
        check_dataset(ds_root, progress=False)
    assert str(err.value).startswith(str(wav))


def test_check_reports_mixed_sample_rates_as_search_accepts_them(ds_root: Path) -> None:
    """The frontends resample every clip, so search accepts mixed rates; check agrees and lists
    them (it refused them before, while search went ahead)."""
    odd = ds_root / EVALUATE[0][0]
    sf.write(str(odd), np.zeros((800, 2), dtype=np.float32), 44100)
    summary = check_dataset(ds_root, progress=False)
    assert summary.sample_rates == (16000, 44100)


def test_summary_table_renders(ds_root: Path) -> None:
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(summary_table(check_dataset(ds_root, progress=False)))
    text = console.export_text()
    assert "transportation" in text
    assert "16000 Hz" in text
    assert "0.05 / 0.05 / 0.05 s" in text


# --- fingerprint ---------------------------------------------------------------------------


def _flip_last_byte(path: Path) -> None:
    """Change a file's content, keeping its size and its times (the hardest edit to notice)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_fingerprint_is_the_content_not_the_place_or_the_times(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "fp")
    first = dataset_fingerprint(load_dataset(root))
    assert first == dataset_fingerprint(load_dataset(root))
    assert len(first) == 64

    copy = tmp_path / "copy"
    shutil.copytree(root, copy, copy_function=shutil.copy)  # new times, like `cp` without -p
    assert dataset_fingerprint(load_dataset(copy)) == first  # neither the root nor times hashed

    wav = root / TRAIN[0][0]
    st = wav.stat()
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert dataset_fingerprint(load_dataset(root)) == first  # touched, not changed

    _flip_last_byte(copy / TRAIN[0][0])
    edited = dataset_fingerprint(load_dataset(copy))
    assert edited != first

    test_csv = root / "evaluation_setup/fold1_test.csv"
    _write(test_csv, _lines(test_csv)[:-1])
    assert dataset_fingerprint(load_dataset(root)) not in (first, edited)


def test_older_studies_fingerprint_still_tracks_times(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "fp")
    first = stat_fingerprint(load_dataset(root))
    wav = root / TRAIN[0][0]
    st = wav.stat()
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert stat_fingerprint(load_dataset(root)) != first


def test_fingerprint_reads_the_audio_once_per_cache(tiny_dataset: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ds = load_dataset(tiny_dataset)
    first = dataset_fingerprint(ds, tmp_path / "cache")
    assert (tmp_path / "cache" / "file-sha256.json").is_file()

    def no_reading(path: Path) -> str:
        raise AssertionError(f"{path} was read again although its stat is unchanged")

    monkeypatch.setattr(filehash, "file_sha256", no_reading)
    assert dataset_fingerprint(ds, tmp_path / "cache") == first  # stat calls only
