"""Content hashes of dataset files, remembered by stat: read once, trusted only while unchanged."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from asc_auto.data import filehash
from asc_auto.data.filehash import FILE_NAME, file_hashes, is_hash_memory


def _files(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i}.wav" for i in range(n)]
    for i, p in enumerate(paths):
        p.write_bytes(bytes([i]) * (100 + i))
    return paths


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    read: list[Path] = []
    real = filehash.file_sha256

    def counted(path: Path) -> str:
        read.append(Path(path))
        return real(path)

    monkeypatch.setattr(filehash, "file_sha256", counted)
    return read


def test_hashes_are_the_bytes_and_are_read_once(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _files(tmp_path / "d", 3)
    read = _counting(monkeypatch)
    first = file_hashes(paths, tmp_path / "cache")
    assert first == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    assert len(read) == 3 and is_hash_memory(tmp_path / "cache" / FILE_NAME)
    assert file_hashes(paths, tmp_path / "cache") == first and len(read) == 3  # stat only

    # rewritten (new bytes, new times): read again; the others are not
    paths[1].write_bytes(b"other")
    again = file_hashes(paths, tmp_path / "cache")
    assert read[3:] == [paths[1]] and again[paths[1]] == hashlib.sha256(b"other").hexdigest()
    # without a cache folder every call reads, nothing is written
    assert file_hashes(paths[:1], None) == {paths[0]: first[paths[0]]} and len(read) == 5


def test_a_damaged_or_foreign_memory_costs_a_reread_not_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _files(tmp_path / "d", 2)
    memory = tmp_path / "cache" / FILE_NAME
    memory.parent.mkdir()
    right = file_hashes(paths, None)
    for bad in ("{not json", json.dumps({"format": 1, "files": {
            os.path.abspath(p): [p.stat().st_size, p.stat().st_mtime_ns, p.stat().st_ino, "0"]
            for p in paths}})):  # no tool marker: not ours, its "0" never trusted
        memory.write_text(bad)
        assert not is_hash_memory(memory)
        read = _counting(monkeypatch)
        assert file_hashes(paths, tmp_path / "cache") == right and len(read) == 2
        assert is_hash_memory(memory)  # rewritten whole, as the tool's


def test_workers_adding_hashes_keep_each_others(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _files(tmp_path / "a", 2), _files(tmp_path / "b", 2)
    real = filehash.file_sha256
    other_worker_done: list[bool] = []

    def meanwhile(path: Path) -> str:  # worker A finishes while B is still reading
        if not other_worker_done:
            other_worker_done.append(True)
            monkeypatch.setattr(filehash, "file_sha256", real)
            file_hashes(a, tmp_path / "cache")
            monkeypatch.setattr(filehash, "file_sha256", meanwhile)
        return real(path)

    monkeypatch.setattr(filehash, "file_sha256", meanwhile)
    file_hashes(b, tmp_path / "cache")  # B read an empty memory, then wrote after A
    files = json.loads((tmp_path / "cache" / FILE_NAME).read_text())["files"]
    assert set(files) == {os.path.abspath(p) for p in a + b}


def test_a_long_first_read_is_announced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _files(tmp_path / "d", 3)
    said: list[str] = []
    monkeypatch.setattr(filehash, "SAY_BYTES", 100)
    file_hashes(paths, tmp_path / "cache", said.append)
    assert len(said) == 1 and "reading 3 audio files" in said[0]
    file_hashes(paths, tmp_path / "cache", said.append)  # remembered: nothing to announce
    assert len(said) == 1
