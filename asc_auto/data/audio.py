"""Audio file access through soundfile, with the checks libsndfile does not make.

libsndfile silently shortens a truncated WAV to whatever bytes are present, so a half-copied
dataset would train on clipped clips without a word. `audio_info` therefore also walks the RIFF
chunks and compares the size the header claims with the bytes that are really there.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from asc_auto.errors import DataError

_FIX_REPLACE = "re-download or re-copy this file, or remove its rows from the CSV files"
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # streaming writers leave the data size open


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, after the truncation check."""

    sample_rate: int
    channels: int
    frames: int
    duration_s: float


def audio_info(path: Path) -> AudioInfo:
    """Header facts of one audio file without decoding it; a damaged file raises DataError."""
    return _inspect(Path(path))[0]


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Decode a file to float32 (channels, frames) in [-1, 1] plus its sample rate, after every
    check `scan_audio` makes (the same `_checked_frames`, one block the size of the file)."""
    path = Path(path)
    info, _ = _inspect(path)
    data = np.empty((info.frames, info.channels), dtype=np.float32)
    for _ in _checked_frames(path, info, data):
        pass
    return np.ascontiguousarray(data.T), info.sample_rate


def scan_audio(path: Path) -> AudioInfo:
    """What `data check` runs: the checks `read_audio` makes for search, with the decoding
    streamed in blocks (a 10 s 48 kHz file is never held whole), so the two cannot disagree.
    Only a PCM WAV whose bytes the header check counted is not decoded: every frame is there,
    and integer samples cannot be NaN or infinite."""
    path = Path(path)
    info, header_proves_it = _inspect(path)
    if not header_proves_it:
        buffer = np.empty((min(_SCAN_FRAMES, info.frames), info.channels), dtype=np.float32)
        for _ in _checked_frames(path, info, buffer):
            pass
    return info


_SCAN_FRAMES = 65536  # 0.5 MB per stereo block


def _inspect(path: Path) -> tuple[AudioInfo, bool]:
    """Header facts, and whether the header check alone proves what decoding would (an
    integer-PCM WAV whose data bytes were counted)."""
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise DataError(path, f"unreadable audio ({_short(exc)})", _FIX_REPLACE) from None
    if info.frames <= 0:
        raise DataError(path, "empty audio: no sample frames", _FIX_REPLACE)
    counted = False
    if info.format in ("WAV", "WAVEX", "RF64"):
        counted = _check_wav_complete(path, info.frames, info.channels)
    facts = AudioInfo(
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        duration_s=info.frames / info.samplerate,
    )
    return facts, counted and info.subtype.startswith("PCM_")


def _checked_frames(path: Path, info: AudioInfo, out: np.ndarray) -> Iterator[np.ndarray]:
    """Decode the file into `out` (frames, channels) block after block (in place when `out`
    holds the whole file, else reusing it), refusing NaN/inf and fewer frames than the header
    claims: the one validation of decoded audio."""
    whole = len(out) >= info.frames
    decoded = 0
    try:
        with sf.SoundFile(str(path)) as fh:
            while decoded < info.frames:
                target = (out[decoded:] if whole else out)[: info.frames - decoded]
                block = fh.read(len(target), out=target)  # the frames it got, no stale tail
                if not len(block):
                    break
                _check_finite(path, block, decoded, info.sample_rate)
                decoded += len(block)
                yield block
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise DataError(path, f"unreadable audio ({_short(exc)})", _FIX_REPLACE) from None
    if decoded != info.frames:
        raise DataError(path, f"truncated audio: header claims {info.frames} frames, decoded "
                        f"{decoded}", _FIX_REPLACE)


def _check_finite(path: Path, frames: np.ndarray, offset: int, sample_rate: int) -> None:
    """DataError naming the first NaN/inf sample of (frames, channels) starting at `offset`."""
    bad = ~np.isfinite(frames)
    if bad.any():
        first = offset + int(np.argmax(bad.any(axis=1)))
        raise DataError(path, f"audio contains NaN or infinite samples (first at frame {first}, "
                        f"{first / sample_rate:.3f} s)", "re-export the file as PCM, or remove "
                        "its rows from the CSV files")


def _check_wav_complete(path: Path, frames: int, channels: int) -> bool:
    """Raise DataError when the data chunk holds fewer bytes than the header promises; True
    when every frame's bytes were counted (uncompressed samples of a known size)."""
    file_size = os.path.getsize(path)
    with open(path, "rb") as fh:
        riff = fh.read(12)
        if len(riff) < 12 or riff[8:12] != b"WAVE":
            return False  # not RIFF/WAVE (e.g. W64): trust libsndfile
        frame_bytes = 0  # bytes per frame for uncompressed PCM/float, else 0 (unknown)
        ds64_data_size: int | None = None
        while True:
            header = fh.read(8)
            if len(header) < 8:
                raise DataError(path, "truncated WAV: no data chunk", _FIX_REPLACE)
            chunk_id, size = header[:4], struct.unpack("<I", header[4:])[0]
            start = fh.tell()
            if chunk_id == b"fmt ":
                fmt = fh.read(min(size, 16))
                if len(fmt) >= 16:
                    tag, _, _, _, align, bits = struct.unpack("<HHIIHH", fmt)
                    if tag in (1, 3, 0xFFFE) and align == channels * ((bits + 7) // 8):
                        frame_bytes = align
            elif chunk_id == b"ds64":
                ds64 = fh.read(min(size, 16))
                if len(ds64) >= 16:
                    ds64_data_size = struct.unpack("<Q", ds64[8:16])[0]
            elif chunk_id == b"data":
                break
            fh.seek(start + size + (size & 1))
        available = file_size - start
    declared = ds64_data_size if (riff[:4] == b"RF64" and ds64_data_size) else size
    if declared not in _UNKNOWN_SIZES and available < declared:
        raise DataError(
            path,
            f"truncated WAV: data chunk claims {declared} bytes but only {available} are present",
            _FIX_REPLACE,
        )
    needed = frames * frame_bytes
    if available < needed:
        raise DataError(
            path,
            f"truncated WAV: {frames} frames need {needed} bytes but only {available} are present",
            _FIX_REPLACE,
        )
    return frame_bytes > 0


def _short(exc: BaseException) -> str:
    """One line of a libsndfile message (they repeat the path, which the DataError already has)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text


_DURATIONS: dict[tuple[str, int, int, int], float] = {}  # (path, size, mtime_ns, inode) -> s


def durations(paths: list[Path] | tuple[Path, ...]) -> list[float]:
    """Each file's duration from its header, remembered in this process by the file's path,
    size, time and inode: `clip_seconds = "auto"` and the teacher's pool both measure every
    clip when a search starts, and fsdd's 3,000 headers take about 0.4 s a pass."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            out.append(audio_info(Path(p)).duration_s)  # raises the DataError naming the file
            continue
        key = (str(p), st.st_size, st.st_mtime_ns, st.st_ino)
        if key not in _DURATIONS:
            _DURATIONS[key] = audio_info(Path(p)).duration_s
        out.append(_DURATIONS[key])
    return out


def padding_share(paths: list[Path] | tuple[Path, ...], clip_seconds: float) -> float:
    """Mean share of a `clip_seconds` window that is zero padding after the recording (headers
    only, no decoding): 0.0 when every clip fills it, near 1.0 for short sounds in long windows.

    Why: a global average pool over a feature map that is mostly padding dilutes the sound
    (``[teacher] pool = "auto"`` picks max above half; see asc_auto/teacher.py).
    """
    if not paths:
        raise DataError(Path("."), "no audio files to measure", "check the dataset's CSV files")
    if clip_seconds <= 0:
        raise ValueError(f"clip_seconds must be positive, got {clip_seconds}")
    filled = [min(d, clip_seconds) / clip_seconds for d in durations(paths)]
    return 1.0 - sum(filled) / len(filled)


def longest_seconds(paths: list[Path] | tuple[Path, ...], step: float = 0.1) -> float:
    """The longest clip among `paths`, rounded up to `step` seconds (headers only, no decoding).

    Why: `clip_seconds = "auto"` crops/pads every clip to the dataset's own length. Padding
    3-second office events to TAU's 10 s would spend 70 % of every convolution on silence and
    dilute AclNet's averaged 1 s segments with 7 silent ones.
    """
    if not paths:
        raise DataError(Path("."), "no audio files to measure", "check the dataset's CSV files")
    longest = max(durations(paths))
    return round(math.ceil(longest / step - 1e-9) * step, 6)
