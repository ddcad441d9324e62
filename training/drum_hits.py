"""Tom and kick one-shots, and the training augmentation that adds them to drum stems.

Why: ``lite`` puts tom shells (and some kick body) into its bass stem. At the tom hits of the
devset and 40 rendered songs the 60-300 Hz band is -31.8 dB in the true drum stems, -49.5 dB in
lite's drum stem and -33.3 dB in its bass stem (``benchmarks/drums_separated.py``), so toms
transcribed from lite stems score onset F1 0.07. Its training data holds few toms: fills in a few
real clips and one fill per four bars in some rendered ones. ``add_fill`` overlays fills and single
tom / kick hits on the drum stem of a training example, so the network hears many pitched, decaying
drum shells that belong to the drums.

The one-shots are rendered once (``fluidsynth``, the soundfonts of ``render_data.py``, every General
MIDI kit) into ``training/cache/drum_hits.npz``:

    python training/drum_hits.py            # about 15 s
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from render_data import SOUNDFONTS, SR

OUT = ROOT / "cache" / "drum_hits.npz"
#: General MIDI drum kits (programs on channel 10): standard, room, power, electronic, TR-808, jazz, brush, orchestra
KITS = (0, 8, 16, 24, 25, 32, 40, 48)
#: low floor tom .. high tom, then the two kicks
TOMS = (41, 43, 45, 47, 48, 50)
KICKS = (35, 36)
VELOCITIES = (70, 115)
HIT_SECONDS = 1.5
#: seconds between hits in the rendering (longer than a hit, so tails never overlap)
SPACING = 2.0


def _midi(path: Path) -> list[tuple[int, int, int]]:
    """One MIDI file with every (kit, pitch, velocity) hit ``SPACING`` s apart; returns their order."""
    import mido

    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))  # 960 ticks per second
    order, now, t = [], 0, 0.5
    for kit in KITS:
        tick = round((t - 0.25) * 960)
        track.append(mido.Message("program_change", channel=9, program=kit, time=tick - now))
        now = tick
        for pitch in TOMS + KICKS:
            for vel in VELOCITIES:
                tick = round(t * 960)
                track.append(mido.Message("note_on", channel=9, note=pitch, velocity=vel, time=tick - now))
                now = tick
                tick = round((t + 0.1) * 960)
                track.append(mido.Message("note_off", channel=9, note=pitch, velocity=0, time=tick - now))
                now = tick
                order.append((kit, pitch, vel))
                t += SPACING
    mid.save(str(path))
    return order


def render(out: Path = OUT) -> None:
    """Render every kit's toms and kicks with every soundfont into ``out``: ``hits`` ``(n, 2, L)``
    float16 (each hit peak-normalised), ``pitch``, ``kit``, ``soundfont``."""
    hits, pitches, kits, fonts = [], [], [], []
    n = int(HIT_SECONDS * SR)
    with tempfile.TemporaryDirectory() as tmp:
        mid, raw = Path(tmp) / "hits.mid", Path(tmp) / "hits.raw"
        order = _midi(mid)
        for f, sf in enumerate(SOUNDFONTS):
            cmd = ["fluidsynth", "-ni", "-q", "-g", "0.5", "-R", "0", "-C", "0", "-r", str(SR), "-T", "raw",
                   "-O", "float", "-F", str(raw), sf, str(mid)]
            subprocess.run(cmd, check=True, capture_output=True, timeout=600)
            x = np.fromfile(raw, dtype=np.float32).reshape(-1, 2).T
            for k, (kit, pitch, _) in enumerate(order):
                a = int((0.5 + k * SPACING) * SR)
                h = x[:, a:a + n]
                peak = float(np.abs(h).max()) if h.size else 0.0
                if h.shape[1] < n or peak < 1e-4:  # a kit without this drum
                    continue
                hits.append(h / peak)
                pitches.append(pitch)
                kits.append(kit)
                fonts.append(f)
            print(f"{sf}: {len(hits)} hits so far", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, hits=np.stack(hits).astype(np.float16), pitch=np.array(pitches), kit=np.array(kits),
             soundfont=np.array(fonts))


class DrumHits:
    """The rendered one-shots, grouped by (soundfont, kit)."""

    def __init__(self, path: Path = OUT) -> None:
        z = np.load(path)
        self.hits = z["hits"].astype(np.float32)
        self.pitch = z["pitch"]
        keys = z["soundfont"] * 1000 + z["kit"]
        self.kits = [np.flatnonzero(keys == k) for k in np.unique(keys)]


def add_fill(seg: np.ndarray, hits: DrumHits, rng: np.random.Generator) -> np.ndarray:
    """``seg`` (a drum stem, ``(2, n)``) plus tom / kick hits of one random kit: half the time a fill
    (3-8 hits, 16ths or 8ths at 70-170 BPM, mostly falling in pitch), otherwise 1-4 scattered hits;
    each hit's peak 0.3-1.1 x the stem's own peak level (the stem's 99.9th percentile; 0.1 when silent)."""
    n = seg.shape[1]
    group = hits.kits[int(rng.integers(len(hits.kits)))]
    toms = group[np.isin(hits.pitch[group], TOMS)]
    if toms.size == 0:
        return seg
    ref = float(np.percentile(np.abs(seg), 99.9)) or 0.1
    if rng.random() < 0.5:
        step = 60.0 / rng.uniform(70, 170) / (4 if rng.random() < 0.7 else 2)
        count = int(rng.integers(3, 9))
        order = toms[np.argsort(-hits.pitch[toms])]  # high to low
        times = rng.uniform(-0.5, n / SR - 0.2) + step * np.arange(count)
        picks = [order[min(len(order) - 1, k * len(order) // count)] for k in range(count)]
        if rng.random() < 0.3:
            picks = list(rng.choice(toms, count))
        if rng.random() < 0.5:  # a kick under the last hit, as fills often end
            kicks = group[np.isin(hits.pitch[group], KICKS)]
            if kicks.size:
                times = np.append(times, times[-1] + step)
                picks.append(int(rng.choice(kicks)))
    else:
        count = int(rng.integers(1, 5))
        times = rng.uniform(-0.5, n / SR, count)
        picks = list(rng.choice(group, count))
    out = seg.copy()
    for t, i in zip(times, picks):
        h = hits.hits[i] * ref * rng.uniform(0.3, 1.1)
        a = round(t * SR)
        lo, hi = max(a, 0), min(a + h.shape[1], n)
        if hi > lo:
            out[:, lo:hi] += h[:, lo - a:hi - a]
    return out


if __name__ == "__main__":
    render()
    z = np.load(OUT)
    print(f"{OUT}: {len(z['hits'])} hits, kits {sorted(set(z['kit'].tolist()))}")
