"""Regenerate examples/demo.flac: an 8-second synthetic song (drums, bass, chords, a sung-like line).

Everything is synthesised here from numbers, so the file carries no third-party rights.
Run: python examples/make_demo.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100
BPM = 110.0
BEAT = 60.0 / BPM
BARS = 4
DUR = BARS * 4 * BEAT + 0.5
RNG = np.random.default_rng(7)


def midi_hz(p: float) -> float:
    return 440.0 * 2 ** ((p - 69) / 12)


def env(n: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / SR
    return np.minimum(t / attack, 1.0) * np.exp(-t / decay)


def add(buf: np.ndarray, start: float, sig: np.ndarray) -> None:
    i = int(start * SR)
    j = min(i + len(sig), len(buf))
    buf[i:j] += sig[: j - i]


def kick() -> np.ndarray:
    n = int(0.35 * SR)
    t = np.arange(n) / SR
    f = 50 + 90 * np.exp(-t / 0.03)
    return np.sin(2 * np.pi * np.cumsum(f) / SR) * np.exp(-t / 0.12)


def snare() -> np.ndarray:
    n = int(0.25 * SR)
    t = np.arange(n) / SR
    noise = RNG.standard_normal(n) * np.exp(-t / 0.06)
    return 0.5 * noise + 0.5 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.05)


def hat() -> np.ndarray:
    n = int(0.06 * SR)
    noise = np.diff(RNG.standard_normal(n + 1))
    return 0.25 * noise * np.exp(-np.arange(n) / SR / 0.015)


def tone(pitch: float, dur: float, harmonics: int, rolloff: float, vibrato: float = 0.0) -> np.ndarray:
    n = int(dur * SR)
    t = np.arange(n) / SR
    f = midi_hz(pitch) * (1 + vibrato * np.sin(2 * np.pi * 5.5 * t) * np.minimum(t / 0.3, 1))
    phase = 2 * np.pi * np.cumsum(f) / SR
    out = sum(np.sin(k * phase) / k**rolloff for k in range(1, harmonics + 1))
    return out


def main() -> None:
    n = int(DUR * SR)
    drums, bass, keys, voice = (np.zeros(n) for _ in range(4))
    roots = [45, 41, 48, 43]  # A2 F2 C3 G2: Am F C G
    chords = [[57, 60, 64], [57, 60, 65], [55, 60, 64], [55, 59, 62]]
    melody = [(76, 0, 1), (74, 1, 1), (72, 2, 2), (72, 4, 1), (74, 5, 1), (76, 6, 2),
              (79, 8, 1.5), (77, 9.5, 0.5), (76, 10, 2), (74, 12, 1), (72, 13, 1), (71, 14, 2)]
    for bar in range(BARS):
        t0 = bar * 4 * BEAT
        for b in range(4):
            add(drums, t0 + b * BEAT, 0.9 * kick() if b in (0, 2) else 0.7 * snare())
            for h in (0, 0.5):
                add(drums, t0 + (b + h) * BEAT, hat())
        for b in range(4):
            add(bass, t0 + b * BEAT, 0.35 * tone(roots[bar], 0.9 * BEAT, 6, 1.2) * env(int(0.9 * BEAT * SR), 0.005, 0.5))
        for p in chords[bar]:
            add(keys, t0, 0.12 * tone(p, 4 * BEAT, 8, 1.5) * env(int(4 * BEAT * SR), 0.01, 1.2))
    for pitch, beat, length in melody:
        d = length * BEAT * 0.95
        add(voice, beat * BEAT, 0.25 * tone(pitch, d, 12, 1.0, vibrato=0.012) * env(int(d * SR), 0.04, 3.0))
    left = 0.8 * drums + bass + 1.15 * keys + voice  # keys panned a little left
    right = 0.8 * drums + bass + 0.85 * keys + voice
    stereo = np.stack([left, right], axis=1)
    stereo *= 0.8 / np.max(np.abs(stereo))
    out = Path(__file__).with_name("demo.flac")
    sf.write(out, stereo.astype(np.float32), SR, subtype="PCM_16")
    print(f"wrote {out} ({DUR:.1f} s, {BPM} BPM, A minor)")


if __name__ == "__main__":
    main()
