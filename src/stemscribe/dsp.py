"""Small signal-processing helpers shared by the analysis stages: librosa's STFT and mel filters,
and a windowed percentile over events (:func:`window_percentile`, for the bleed checks).

:func:`stft`, :func:`mel_frequencies` and :func:`mel_filters` give exactly what ``librosa.stft``
(defaults: periodic Hann window, centred frames, zero padding, complex64), ``librosa.mel_frequencies``
and ``librosa.filters.mel`` (Slaney mel scale) give (tests compare them), with numpy and
``scipy.fft`` only. Reason: importing librosa's core compiles its numba kernels, about 20-27 s once
per installation (per numba cache), which every new user met on their first split and every fresh
CI run on its first test. The split path now never imports librosa; librosa stays for what only it
does here (pYIN, HPSS, onset strength in ``accompany`` and ``transcribe --stem auto``).
"""

from __future__ import annotations

import numpy as np

#: frames per block (bounds the temporary windowed frames, not the result)
_BLOCK = 4096


def hann(n: int) -> np.ndarray:
    """The periodic Hann window of length ``n`` (``scipy.signal.get_window("hann", n)``), float32."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def stft(y: np.ndarray, *, n_fft: int = 2048, hop_length: int | None = None, center: bool = True) -> np.ndarray:
    """Complex STFT ``(1 + n_fft // 2, n_frames)`` of mono ``y`` ``(n,)``, as ``librosa.stft``.

    Frame ``t`` starts at sample ``t * hop_length`` of ``y`` (of ``y`` padded with ``n_fft // 2``
    zeros on both sides when ``center``); ``n_frames = 1 + (len - n_fft) // hop_length`` of the
    (padded) signal.
    """
    import scipy.fft

    hop = hop_length or n_fft // 4
    x = np.asarray(y, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"stft expects a mono signal (n,), got shape {x.shape}")
    if center:
        x = np.pad(x, (n_fft // 2, n_fft // 2))
    if x.size < n_fft:
        raise ValueError(f"signal of {x.size} samples is shorter than n_fft={n_fft}")
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop]
    window = hann(n_fft)
    out = np.empty((n_fft // 2 + 1, frames.shape[0]), dtype=np.complex64)
    for lo in range(0, frames.shape[0], _BLOCK):
        out[:, lo : lo + _BLOCK] = scipy.fft.rfft(frames[lo : lo + _BLOCK] * window, axis=1).T
    return out


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    mel = 3.0 * f / 200.0
    log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log_part, mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (m - 15.0)), 200.0 * m / 3.0)


def mel_frequencies(n_mels: int = 128, *, fmin: float = 0.0, fmax: float = 11025.0) -> np.ndarray:
    """``n_mels`` frequencies (Hz) evenly spaced on the mel scale from ``fmin`` to ``fmax``."""
    return _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels))


def mel_filters(*, sr: int, n_fft: int, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None,
                norm: str | None = "slaney") -> np.ndarray:
    """Triangular mel filterbank ``(n_mels, 1 + n_fft // 2)`` float32, as ``librosa.filters.mel``
    (``norm="slaney"``: each filter divided by its width in Hz / 2, i.e. constant energy per band)."""
    fmax = sr / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0.0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    elif norm is not None:
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    return weights.astype(np.float32)


__all__ = ["hann", "mel_filters", "mel_frequencies", "stft"]


def window_percentile(times: np.ndarray, values: np.ndarray, half: float, q: float) -> np.ndarray:
    """For each event, the ``q``-th percentile of ``values`` over the events within ``half`` of its
    time (itself included); ``times`` and ``values`` ``(n,)``, in any order."""
    order = np.argsort(times, kind="stable")
    t, v = np.asarray(times, dtype=float)[order], np.asarray(values, dtype=float)[order]
    lo, hi = np.searchsorted(t, t - half, "left"), np.searchsorted(t, t + half, "right")
    out = np.empty(len(t))
    out[order] = [np.percentile(v[a:b], q) for a, b in zip(lo, hi)]
    return out
