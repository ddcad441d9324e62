"""A small built-in synthesizer for the backing: additive tones and synthetic drums (numpy only).

Used when the SoundFont renderer (:func:`stemscribe.render.render_midi`) is unavailable or asked
against (``renderer="builtin"``). Timbres are picked from the General MIDI program family: bass
(32-39), organ (16-23), guitars (24-31), pads/strings (48-55, 88-95), leads (80-87), else piano.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..types import Audio, NoteTrack

__all__ = ["synth_tracks"]


def _tone(f0: float, n: int, sr: int, program: int, vel: float) -> np.ndarray:
    t = np.arange(n) / sr
    if 32 <= program <= 39:  # bass: few harmonics, plucked
        harm, decay, attack = [1.0, 0.5, 0.25, 0.12], 2.5, 0.005
    elif 16 <= program <= 23:  # organ
        harm, decay, attack = [1.0, 0.6, 0.3, 0.2, 0.1], 0.0, 0.01
    elif 24 <= program <= 31:  # guitars
        harm, decay, attack = [1.0, 0.7, 0.5, 0.35, 0.25, 0.15], 3.0, 0.003
    elif 48 <= program <= 55 or 88 <= program <= 95:  # strings and pads
        harm, decay, attack = [1.0, 0.4, 0.25, 0.1], 0.0, 0.15
    elif 80 <= program <= 87:  # leads: saw-like
        harm, decay, attack = [1.0 / k for k in range(1, 9)], 4.0, 0.004
    else:  # piano-ish
        harm, decay, attack = [1.0, 0.45, 0.3, 0.15, 0.1], 1.6, 0.004
    x = np.zeros(n)
    for k, a in enumerate(harm, start=1):
        if f0 * k < sr / 2.2:
            x += a * np.sin(2 * np.pi * f0 * k * t + 0.3 * k)
    env = np.exp(-decay * t) if decay else np.ones(n)
    env *= np.minimum(t / attack, 1.0)
    rel = min(int(0.03 * sr), n)
    env[n - rel:] *= np.linspace(1, 0, rel)
    return vel * env * x / sum(harm)


def _drum(note: int, sr: int, vel: float, rng: np.random.Generator) -> np.ndarray:
    if note in (35, 36):  # kick: falling sine
        n = int(0.35 * sr)
        t = np.arange(n) / sr
        f = 45 + 90 * np.exp(-t * 30)
        return vel * np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t * 9)
    if note in (38, 40, 39, 37):  # snare / clap / stick: noise + body
        n = int((0.25 if note != 37 else 0.06) * sr)
        t = np.arange(n) / sr
        noise = rng.standard_normal(n) * np.exp(-t * (18 if note != 39 else 25))
        body = 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t * 30)
        return vel * 0.5 * (noise + body)
    if note in (42, 44, 46, 51, 49, 57, 59):  # hats, ride, crash: high-passed noise
        long = note in (46, 49, 57, 51, 59)
        n = int((0.6 if long else 0.07) * sr)
        t = np.arange(n) / sr
        noise = rng.standard_normal(n)
        noise = np.diff(np.concatenate([[0.0], noise]))  # crude high-pass
        return vel * 0.25 * noise * np.exp(-t * (6 if long else 60))
    # toms and anything else: pitched thud
    n = int(0.3 * sr)
    t = np.arange(n) / sr
    f = 80 + 6 * (note - 41)
    return vel * 0.8 * np.sin(2 * np.pi * f * t) * np.exp(-t * 12)


def synth_tracks(tracks: Sequence[NoteTrack], *, sr: int = 44100, seed: int = 0) -> Audio:
    """Render note tracks to stereo ``(2, n)`` audio at ``sr`` with the built-in timbres."""
    rng = np.random.default_rng(seed)
    end = max((n.end for tr in tracks for n in tr.notes), default=0.0) + 1.0
    total = int(end * sr) + 1
    out = np.zeros((2, total))
    pans = {"bass": 0.0, "drums": 0.0, "chords": -0.35, "comping": 0.35}
    for tr in tracks:
        buf = np.zeros(total)
        for note in tr.notes:
            i0 = int(note.start * sr)
            vel = (note.velocity / 127.0) ** 1.5
            if tr.is_drum:
                x = _drum(int(note.pitch), sr, vel, rng)
            else:
                f0 = 440.0 * 2 ** ((note.pitch - 69) / 12)
                n = int(max(note.end - note.start, 0.02) * sr)
                x = _tone(f0, n, sr, tr.program, vel)
            m = min(len(x), total - i0)
            if m > 0:
                buf[i0:i0 + m] += x[:m]
        pan = pans.get(tr.name, 0.0)
        out[0] += buf * np.sqrt((1 - pan) / 2) * np.sqrt(2)
        out[1] += buf * np.sqrt((1 + pan) / 2) * np.sqrt(2)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 0.99:
        out *= 0.99 / peak
    return Audio(out.astype(np.float32), sr)
