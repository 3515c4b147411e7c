"""GCC-PHAT grams and the `gcc` frontend: binaural log-mels plus a spatial plane (seed paper 2.4).

Per STFT frame, GCC-PHAT is R(tau) = IFFT(X1 X2* / |X1 X2*|): whitening the cross-spectrum
keeps only its phase, so the correlation is a sharp peak at the inter-channel delay whatever the
source's spectrum (Knapp & Carter 1976). The gram keeps the `n_lags` central lags of every frame.

Lag orientation: row j of the gram is lag j - n_lags // 2 (lags -20..19 for 40 rows), and a
positive lag means the right channel lags behind the left: right(t) = left(t - d) puts the peak
at +d. (With the formula above, the IFFT's peak sits at -d; the rows are read in that order.)

The three planes share their frames exactly: the same Hann window, hop and frame centres
(center=True). The log-mels pad the clip's ends by reflection, as `frontends.LogMel` does (so
they equal logmel features); the GCC plane pads with zeros instead, because a reflected edge is
time-reversed and would put a mirror peak at -d in the first and last frames. Zero padding alone
makes the clip's abrupt start and end a step shared by both channels, i.e. a coherent lag-0
component that wins the edge frames of low-pass sources; a short half-Hann fade (a quarter
window) at both ends of the GCC path's input removes it (measured: every frame peaks at the true
lag for white and 300 Hz low-passed noise, lags -20..19).

Numerically safe by construction: the PHAT weight divides by max(|X1 X2*|, PHAT_FLOOR), so
silence or a zero channel gives an all-zero plane (not NaN) and identical channels a peak at 0.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from asc_auto.features.config import GccConfig

LOG_FLOOR = 1e-6  # the same floor as frontends.LogMel, so gcc log-mels equal logmel ones
PHAT_FLOOR = 1e-12  # |cross-spectrum| below this is treated as no signal (weight -> 0)


def fade_edges(wave: torch.Tensor, n: int) -> torch.Tensor:
    """Half-Hann fade-in over the first `n` samples and fade-out over the last `n`."""
    n = min(n, wave.shape[-1] // 2)
    if n < 1:
        return wave
    ramp = torch.hann_window(2 * n, periodic=False, device=wave.device, dtype=wave.dtype)[:n]
    gain = torch.ones(wave.shape[-1], device=wave.device, dtype=wave.dtype)
    gain[:n] = ramp
    gain[-n:] = ramp.flip(0)
    return wave * gain


def central_lags(n_lags: int) -> torch.Tensor:
    """Lags (in samples) of the gram's rows: -n//2 .. n - n//2 - 1."""
    return torch.arange(n_lags) - n_lags // 2


def gcc_phat(spec_left: torch.Tensor, spec_right: torch.Tensor, n_fft: int,
             n_lags: int) -> torch.Tensor:
    """GCC-PHAT of complex STFTs (..., freq, frames) -> (..., n_lags, frames), rows = lags.

    Row j holds the correlation at lag `central_lags(n_lags)[j]`, the delay of the right
    channel behind the left (see the module docstring).
    """
    if n_lags > n_fft:
        raise ValueError(f"{n_lags} lags do not fit an FFT of {n_fft}")
    cross = spec_left * spec_right.conj()
    weight = cross.abs().clamp_min(PHAT_FLOOR)
    whitened = torch.where(cross.abs() >= PHAT_FLOOR, cross / weight, torch.zeros_like(cross))
    corr = torch.fft.irfft(whitened, n=n_fft, dim=-2)  # (..., n_fft circular lags, frames)
    # IFFT index i is lag i; a right channel delayed by d peaks at index -d (mod n_fft).
    rows = (-central_lags(n_lags)) % n_fft
    return corr.index_select(-2, rows.to(corr.device))


class GccGram(nn.Module):
    """Batched frontend: stereo (B, 2, samples) -> (B, 3, n_mels, n_frames) on any device.

    Planes: 0 log-mel left, 1 log-mel right, 2 GCC-PHAT gram (n_mels central lags).
    """

    def __init__(self, cfg: GccConfig) -> None:
        super().__init__()
        self.cfg = cfg
        framing = dict(n_fft=cfg.n_fft, win_length=cfg.win_length, hop_length=cfg.hop_length,
                       power=None, center=True)
        self.stft = torchaudio.transforms.Spectrogram(**framing, pad_mode="reflect")
        self.stft_zero = torchaudio.transforms.Spectrogram(**framing, pad_mode="constant")
        self.mel = torchaudio.transforms.MelScale(
            n_mels=cfg.n_mels, sample_rate=cfg.sample_rate, f_min=cfg.f_min, f_max=cfg.f_max,
            n_stft=cfg.n_fft // 2 + 1,
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() != 3 or wave.shape[1] != 2:
            raise ValueError(f"GccGram expects (batch, 2, samples), got {tuple(wave.shape)}")
        wave = wave.float()
        logmel = torch.log(self.mel(self.stft(wave).abs().pow(2)) + LOG_FLOOR)
        spec = self.stft_zero(fade_edges(wave, self.cfg.win_length // 4))  # (B, 2, F, T) complex
        gram = gcc_phat(spec[:, 0], spec[:, 1], self.cfg.n_fft, self.cfg.n_mels)
        return torch.cat([logmel, gram.unsqueeze(1)], dim=1)
