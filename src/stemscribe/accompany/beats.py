"""A beat grid that follows a singer: beats tracked from the melody's note onsets.

The vocal is never time-stretched; the band follows it. Each note onset adds a pulse to an onset
envelope (100 frames/s), weighted by how long the note is held (long notes tend to sit on strong
beats). The tempo comes from the envelope's autocorrelation with a log-normal prior around
100 BPM; beats from a dynamic-programming tracker (Ellis 2007) with a loose ``tightness`` so the tempo
may drift with the singer. ``tempo=BPM`` instead fixes a strict grid at that tempo, phase-aligned to
the onsets. Downbeats: the beat phase (of four) on which the held notes start most. For a
recording, the vocal's own spectral-flux onset strength is added to the note pulses
(``audio_weight`` 1.5, chosen on MUSDB clips 0-11; see docs/accompany.md).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import BadArgumentError
from ..types import BeatGrid, Note

__all__ = ["onset_envelope", "track_beats", "FPS"]

FPS = 100.0
MIN_BPM, MAX_BPM = 50.0, 200.0


def onset_envelope(notes: Sequence[Note], duration: float) -> np.ndarray:
    """Onset pulses ``(n_frames,)`` at ``FPS``, each note weighted by ``0.5 + min(duration, 1 s)``."""
    n = int(np.ceil(duration * FPS)) + 1
    env = np.zeros(n)
    for note in notes:
        i = int(round(note.start * FPS))
        if 0 <= i < n:
            env[i] += 0.5 + min(max(note.end - note.start, 0.0), 1.0)
    k = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)  # ~20 ms Gaussian
    return np.convolve(env, k, mode="same")


def _tempo(env: np.ndarray) -> float:
    n = len(env)
    x = env - env.mean()
    ac = np.correlate(x, x, mode="full")[n - 1:]
    lags = np.arange(int(FPS * 60 / MAX_BPM), min(int(FPS * 60 / MIN_BPM) + 1, n - 1))
    if len(lags) == 0 or ac[0] <= 0:
        return 100.0
    bpm = 60.0 * FPS / lags
    prior = np.exp(-0.5 * (np.log2(bpm / 100.0) / 0.5) ** 2)
    # a beat period also shows at two and four times its lag: add that evidence
    score = ac[lags].copy()
    for m in (2, 4):
        ok = lags * m < n
        score[ok] += 0.5 * ac[lags[ok] * m]
    best = lags[int(np.argmax(np.maximum(score, 0) * prior))]
    # parabolic refinement
    if 1 <= best < n - 1:
        a, b, c = ac[best - 1], ac[best], ac[best + 1]
        den = a - 2 * b + c
        off = 0.5 * (a - c) / den if den < 0 else 0.0
        return float(60.0 * FPS / (best + np.clip(off, -0.5, 0.5)))
    return float(60.0 * FPS / best)


def _dp_beats(env: np.ndarray, period: float, tightness: float) -> np.ndarray:
    """Dynamic-programming beat tracking (Ellis 2007): frames ``(n_beats,)`` maximising onset
    strength minus ``tightness * log(interval / period)^2`` per beat interval, so the interval may
    drift from ``period`` where the onsets ask for it."""
    n = len(env)
    norm = env / (env.std() + 1e-9)
    lo, hi = max(int(round(period / 2)), 1), int(round(2 * period))
    lags = np.arange(lo, hi + 1)
    penalty = -tightness * np.log(lags / period) ** 2
    score = norm.copy()
    back = -np.ones(n, dtype=np.int64)
    for t in range(lo, n):
        prev = t - lags
        ok = prev >= 0
        cand = score[prev[ok]] + penalty[ok]
        k = int(np.argmax(cand))
        if cand[k] > 0:
            score[t] = norm[t] + cand[k]
            back[t] = prev[ok][k]
    # best end: the top-scoring frame in the last beat period
    t = int(n - 1 - np.argmax(score[::-1][: int(period) + 1]))
    path = [t]
    while back[t] >= 0:
        t = int(back[t])
        path.append(t)
    return np.asarray(path[::-1], dtype=float)


def _fixed_grid(env: np.ndarray, bpm: float, duration: float) -> np.ndarray:
    period = 60.0 / bpm
    phases = np.linspace(0, period, 48, endpoint=False)
    best, best_s = 0.0, -1.0
    for ph in phases:
        t = np.arange(ph, duration, period / 2)  # beats and off-beats
        idx = np.clip((t * FPS).astype(int), 0, len(env) - 1)
        w = np.where(np.arange(len(t)) % 2 == 0, 1.0, 0.5)
        s = float(np.sum(env[idx] * w))
        if s > best_s:
            best, best_s = ph, s
    return np.arange(best, duration + 1e-9, period)


def _downbeats(beats: np.ndarray, notes: Sequence[Note], per_bar: int) -> np.ndarray:
    if len(beats) == 0:
        return beats
    weight = np.zeros(len(beats))
    for note in notes:
        i = int(np.argmin(np.abs(beats - note.start)))
        if abs(beats[i] - note.start) < 0.08:
            weight[i] += min(note.end - note.start, 2.0)
    scores = [weight[p::per_bar].sum() for p in range(per_bar)]
    return beats[int(np.argmax(scores))::per_bar]


def audio_envelope(y: np.ndarray, sr: int) -> np.ndarray:
    """Spectral-flux onset strength of mono audio ``y (n,)`` at ``FPS``, scaled to unit mean."""
    import librosa

    hop = max(int(round(sr / FPS)), 1)
    env = librosa.onset.onset_strength(y=np.asarray(y, np.float32), sr=sr, hop_length=hop, n_fft=2048)
    return env / (env.mean() + 1e-9)


def track_beats(
    notes: Sequence[Note], duration: float, *, tempo: float | None = None, per_bar: int = 4,
    tightness: float = 80.0, audio_env: np.ndarray | None = None, audio_weight: float = 1.5,
) -> BeatGrid:
    """Beats (s) covering ``[0, duration]`` from the melody ``notes``; ``tempo`` fixes the BPM.

    ``audio_env`` (from :func:`audio_envelope`) adds the recording's own onset strength, with
    ``audio_weight`` relative to the note pulses. Returns a :class:`BeatGrid` whose ``tempo`` is
    the median tempo of the tracked beats.
    """
    if tempo is not None and not (20.0 <= tempo <= 300.0):
        raise BadArgumentError(f"--tempo {tempo:g} is out of range: give 20..300 BPM or 'auto'")
    env = onset_envelope(notes, duration)
    if audio_env is not None and len(audio_env) and env.max() > 0:
        a = np.zeros(len(env))
        m = min(len(a), len(audio_env))
        a[:m] = audio_env[:m]
        env = env / (env.mean() + 1e-9) + audio_weight * a
    if tempo is not None:
        beats = _fixed_grid(env, float(tempo), duration)
        bpm = float(tempo)
    else:
        bpm = _tempo(env)
        beats = _dp_beats(env, 60.0 * FPS / bpm, tightness) / FPS
        if len(beats) < 2:
            beats = _fixed_grid(env, bpm, duration)
        else:
            # extend at the local period to cover the whole clip at both ends
            p0 = float(np.median(np.diff(beats[:5])))
            p1 = float(np.median(np.diff(beats[-5:])))
            head = beats[0] - p0 * np.arange(int(beats[0] // p0), 0, -1)
            tail = beats[-1] + p1 * np.arange(1, int(max(duration - beats[-1], 0) // p1) + 1)
            beats = np.concatenate([head, beats, tail])
            bpm = float(60.0 / np.median(np.diff(beats)))
    downbeats = _downbeats(beats, notes, per_bar)
    return BeatGrid(tempo=round(bpm, 2), beats=beats, downbeats=downbeats, time_signature=(per_bar, 4))
