"""Audio file access through soundfile, with the checks libsndfile does not make.

libsndfile silently shortens a truncated WAV to whatever bytes are present, so a half-copied
dataset would train on clipped clips without a word. `audio_info` therefore also walks the RIFF
chunks and compares the size the header claims with the bytes that are really there.
"""

from __future__ import annotations

import os
import struct
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
    path = Path(path)
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise DataError(path, f"unreadable audio ({_short(exc)})", _FIX_REPLACE) from None
    if info.frames <= 0:
        raise DataError(path, "empty audio: no sample frames", _FIX_REPLACE)
    if info.format in ("WAV", "WAVEX", "RF64"):
        _check_wav_complete(path, info.frames, info.channels)
    return AudioInfo(
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        duration_s=info.frames / info.samplerate,
    )


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Decode a file to float32 (channels, frames) in [-1, 1] plus its sample rate."""
    path = Path(path)
    expected = audio_info(path)
    try:
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise DataError(path, f"unreadable audio ({_short(exc)})", _FIX_REPLACE) from None
    if data.shape[0] != expected.frames:
        raise DataError(
            path,
            f"truncated audio: header claims {expected.frames} frames, decoded {data.shape[0]}",
            _FIX_REPLACE,
        )
    _check_finite(path, data, 0, sample_rate)
    return np.ascontiguousarray(data.T), int(sample_rate)


# Only floating-point files can hold NaN or infinity; integer PCM (TAU's 24-bit) cannot.
_FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})
_SCAN_FRAMES = 65536


def scan_audio(path: Path) -> AudioInfo:
    """`audio_info` plus the checks decoding makes (`read_audio` runs the same ones): a float
    file is streamed in blocks, so NaN/inf anywhere in it is found without holding it whole."""
    path = Path(path)
    info = audio_info(path)
    try:
        subtype = sf.info(str(path)).subtype
        if subtype not in _FLOAT_SUBTYPES:
            return info
        offset = 0
        for block in sf.blocks(str(path), blocksize=_SCAN_FRAMES, dtype="float32",
                               always_2d=True):
            _check_finite(path, block, offset, info.sample_rate)
            offset += len(block)
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise DataError(path, f"unreadable audio ({_short(exc)})", _FIX_REPLACE) from None
    if offset != info.frames:
        raise DataError(path, f"truncated audio: header claims {info.frames} frames, decoded "
                        f"{offset}", _FIX_REPLACE)
    return info


def _check_finite(path: Path, frames: np.ndarray, offset: int, sample_rate: int) -> None:
    """DataError naming the first NaN/inf sample of (frames, channels) starting at `offset`."""
    bad = ~np.isfinite(frames)
    if bad.any():
        first = offset + int(np.argmax(bad.any(axis=1)))
        raise DataError(path, f"audio contains NaN or infinite samples (first at frame {first}, "
                        f"{first / sample_rate:.3f} s)", "re-export the file as PCM, or remove "
                        "its rows from the CSV files")


def _check_wav_complete(path: Path, frames: int, channels: int) -> None:
    """Raise DataError when the data chunk holds fewer bytes than the header promises."""
    file_size = os.path.getsize(path)
    with open(path, "rb") as fh:
        riff = fh.read(12)
        if len(riff) < 12 or riff[8:12] != b"WAVE":
            return  # not RIFF/WAVE (e.g. W64): trust libsndfile
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


def _short(exc: BaseException) -> str:
    """One line of a libsndfile message (they repeat the path, which the DataError already has)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text
