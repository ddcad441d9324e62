"""Render synthetic 4-stem training clips from POP909 MIDI with General MIDI soundfonts.

Each clip is 8 s of a POP909 song (random window, tempo x0.85-1.2, transposed -5..+6 semitones):

* ``vocals``: the MELODY track sung by :func:`sing` (a formant voice: glottal source with
  spectral tilt, vowel formants that change per syllable, vibrato, portamento, breath noise and
  consonant noise bursts) or, one time in four, a GM voice patch (choir/voice oohs/synth voice);
* ``other``: the PIANO track and often the BRIDGE track, with random keyboard/guitar/string/pad/
  organ/brass programs (the melody too, on an instrument, when the vocals are silent);
* ``bass``: a bass line made from the chord annotations (roots, fifths, octaves; several rhythmic
  patterns), random GM bass program;
* ``drums``: a drum part made on the beat annotations (rock, four-on-the-floor, half-time,
  syncopated, ride-driven patterns, crashes on phrase starts, tom fills), random GM drum kit.

Each stem is rendered by the ``fluidsynth`` program (Debian ``fluidsynth``) with a soundfont drawn
per stem from those installed (Debian ``fluid-soundfont-gm``: FluidR3_GM; ``musescore-general-
soundfont``: MuseScore_General; ``csound-soundfont``: sf_GMbank), with or without its reverb and
chorus, then optionally convolved with a synthetic room. Output: ``cache/rendered/NNN.npy``
``(4, 2, n)`` float16 (drums, bass, other, vocals) and ``index.json``.

    python training/render_data.py --count 400 --jobs 2      # ~10 min on 2 cores
    python training/render_data.py --labelled /tmp/rendered-eval --count 40 --seed 7   # labelled set, devset layout

Licences: POP909 MIT; FluidR3_GM MIT; MuseScore_General MIT; sf_GMbank public domain.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "cache" / "rendered"
# pop909.tar.xz holds one top folder "pop909": extracted beside the repo (tar -xJf ... -C ..) or into
# ../pop909 (-C ../pop909); either layout is found
POP909 = next((d for d in (ROOT.parent.parent / "pop909" / "pop909", ROOT.parent.parent / "pop909")
               if (d / "001").is_dir()), ROOT.parent.parent / "pop909")
SR = 44100
SECONDS = 8.0
SOUNDFONTS = [
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf3/MuseScore_General_Full.sf3",
    "/usr/share/sounds/sf2/sf_GMbank.sf2",
]
STEMS = ("drums", "bass", "other", "vocals")

# GM programs (0-based) per role
KEYS = [0, 1, 2, 4, 5, 6, 7, 16, 17, 18, 19]
GUITARS = [24, 25, 26, 27, 28, 29, 30]
STRINGS_PADS = [48, 49, 50, 51, 88, 89, 90, 91, 94, 95]
LEADS_BRASS = [56, 57, 60, 61, 64, 65, 66, 68, 71, 73, 80, 81, 11, 12, 13]
OTHER_PROGRAMS = KEYS * 3 + GUITARS * 2 + STRINGS_PADS + LEADS_BRASS
BASS_PROGRAMS = [32, 33, 33, 34, 35, 36, 37, 38, 39, 33]
VOICE_PROGRAMS = [52, 53, 54, 85]
DRUM_KITS = [0, 0, 8, 16, 24, 25, 32, 40]

PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


# ---------------------------------------------------------------------------------------------
# POP909 reading


def parse_root(label: str) -> int | None:
    """Pitch class of a POP909 chord label's bass note (``"B:maj"``, ``"C#:min7/b3"``, ``"N"``)."""
    if label == "N" or not label:
        return None
    name = label.split(":")[0]
    pc = PITCH_CLASS.get(name[0])
    if pc is None:
        return None
    for ch in name[1:]:
        pc += 1 if ch == "#" else -1 if ch == "b" else 0
    return pc % 12


def load_song(folder: Path) -> dict:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(folder / f"{folder.name}.mid"))
    tracks = {inst.name.upper(): [(n.start, n.end, n.pitch, n.velocity) for n in inst.notes] for inst in pm.instruments}
    beats = np.loadtxt(folder / "beat_midi.txt", ndmin=2)
    chords = []
    for line in (folder / "chord_midi.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            chords.append((float(parts[0]), float(parts[1]), parse_root(parts[2])))
    keys = []  # (tonic pitch class, minor) per annotated key region
    if (folder / "key_audio.txt").is_file():
        for line in (folder / "key_audio.txt").read_text().splitlines():
            parts = line.split()
            tonic = parse_root(parts[2]) if len(parts) >= 3 else None
            if tonic is not None:
                keys.append((tonic, parts[2].endswith("min")))
    return {"tracks": tracks, "beats": beats[:, 0], "downbeats": beats[:, 2] > 0.5, "chords": chords, "keys": keys}


# ---------------------------------------------------------------------------------------------
# generated parts (times in the song's seconds; the caller maps them to the clip)


def bass_line(song: dict, rng: np.random.Generator, t0: float, t1: float) -> list[tuple[float, float, int, int]]:
    beats = song["beats"]
    pattern = rng.choice(["whole", "half", "quarter", "eighth", "root5", "octave"])
    base = int(rng.integers(28, 41))  # lowest note allowed
    notes = []
    for c0, c1, root in song["chords"]:
        if root is None or c1 < t0 or c0 > t1:
            continue
        pitch = base + (root - base) % 12
        inside = beats[(beats >= c0 - 1e-3) & (beats < c1 - 1e-3)]
        if len(inside) == 0:
            inside = np.array([c0])
        period = float(np.median(np.diff(beats))) if len(beats) > 1 else 0.5
        times = []
        if pattern == "whole":
            times = [(c0, c1)]
        elif pattern == "half":
            times = [(b, min(b + 2 * period, c1)) for b in inside[::2]]
        elif pattern in ("quarter", "root5", "octave"):
            times = [(b, min(b + period, c1)) for b in inside]
        else:  # eighths
            times = [(b + h * period / 2, min(b + (h + 1) * period / 2, c1)) for b in inside for h in (0, 1)]
        for k, (a, b) in enumerate(times):
            p = pitch
            if pattern == "root5" and k % 2:
                p = pitch + 7
            elif pattern == "octave" and k % 2:
                p = pitch + 12
            gate = rng.uniform(0.6, 0.98)
            notes.append((a, a + (b - a) * gate, p, int(rng.integers(70, 118))))
    return notes


def drum_part(song: dict, rng: np.random.Generator, t0: float, t1: float) -> list[tuple[float, float, int, int]]:
    beats = song["beats"]
    sel = np.flatnonzero((beats >= t0 - 2) & (beats < t1 + 1))
    if len(sel) < 2:
        return []
    style = rng.choice(["rock", "four", "half", "syncopated", "ride", "sparse"])
    hat = 51 if style == "ride" or rng.random() < 0.15 else (46 if rng.random() < 0.15 else 42)
    eighths = rng.random() < 0.7
    notes = []

    def hit(t, pitch, vel):
        notes.append((t, t + 0.1, pitch, int(np.clip(vel + rng.normal(0, 8), 30, 127))))

    for idx in sel:
        b = beats[idx]
        period = beats[idx + 1] - b if idx + 1 < len(beats) else beats[idx] - beats[idx - 1]
        # position in the bar: beats since the last downbeat
        last_down = np.flatnonzero(song["downbeats"][: idx + 1])
        pos = idx - last_down[-1] if len(last_down) else idx % 4
        bar = len(last_down)
        if style != "sparse" or pos % 2 == 0:
            hit(b, hat, 80)
            if eighths:
                hit(b + period / 2, hat, 60)
        if style == "four":
            hit(b, 36, 110)
            if pos % 2 == 1:
                hit(b, 38 if rng.random() < 0.8 else 39, 100)
        elif style == "half":
            if pos == 0:
                hit(b, 36, 110)
            if pos == 2:
                hit(b, 38, 105)
        elif style == "syncopated":
            if pos == 0 or (pos == 2 and rng.random() < 0.5):
                hit(b, 36, 110)
            if pos == 1 and rng.random() < 0.6:
                hit(b + period / 2, 36, 95)
            if pos in (1, 3):
                hit(b, 38, 105)
        else:  # rock, ride, sparse
            if pos in (0, 2):
                hit(b, 36, 110)
                if rng.random() < 0.25:
                    hit(b + period / 2, 36, 90)
            if pos in (1, 3):
                hit(b, 38 if rng.random() < 0.9 else 40, 105)
        if pos == 0 and bar % 4 == 0 and rng.random() < 0.6:
            hit(b, 49 if rng.random() < 0.7 else 57, 100)
        if pos == 3 and bar % 4 == 3 and rng.random() < 0.5:  # fill on the last beat of a phrase
            for k, tom in enumerate((50, 47, 45, 43)):
                hit(b + k * period / 4, tom, 100)
    return notes


# ---------------------------------------------------------------------------------------------
# the formant singer

# F1..F4 (Hz) and bandwidths for a few vowels, roughly an adult speaker
VOWELS = {
    "a": ((800, 1200, 2500, 3500), (80, 90, 120, 130)),
    "e": ((500, 1800, 2500, 3500), (60, 100, 120, 150)),
    "i": ((300, 2200, 3000, 3700), (50, 100, 120, 150)),
    "o": ((500, 850, 2500, 3400), (70, 80, 100, 130)),
    "u": ((320, 800, 2300, 3300), (50, 80, 100, 130)),
    "ae": ((650, 1700, 2500, 3500), (70, 100, 120, 150)),
    "schwa": ((550, 1400, 2500, 3500), (70, 100, 120, 150)),
}


def _envelope(freqs: np.ndarray, formants, bandwidths, gains) -> np.ndarray:
    """Sum of resonances evaluated at ``freqs`` (any shape)."""
    out = np.zeros_like(freqs) + 0.02
    for f, bw, g in zip(formants, bandwidths, gains):
        out += g / (1 + ((freqs - f) / (bw / 2)) ** 2)
    return out


def sing(notes, n: int, rng: np.random.Generator, sr: int = SR) -> np.ndarray:
    """Render ``notes`` ``[(start, end, pitch, velocity)]`` (clip seconds) as a voice; mono ``(n,)``."""
    if not notes:
        return np.zeros(n, np.float32)
    notes = sorted(notes)
    ctrl = 128  # control rate: one parameter value per 128 samples
    m = n // ctrl + 2
    tc = np.arange(m) * ctrl / sr
    f0 = np.zeros(m)
    amp = np.zeros(m)
    vowel_idx = np.zeros(m, np.int64)
    names = list(VOWELS)
    glide = rng.uniform(0.02, 0.08)
    attack, release = rng.uniform(0.02, 0.07), rng.uniform(0.04, 0.12)
    consonants = []
    for k, (s, e, p, v) in enumerate(notes):
        e = max(e, s + 0.08)
        i0, i1 = np.searchsorted(tc, [s, e + release])
        f = 440.0 * 2 ** ((p - 69) / 12)
        seg = tc[i0:i1]
        prev_f = f0[i0 - 1] if i0 > 0 and amp[i0 - 1] > 0 else f
        w = np.clip((seg - s) / glide, 0, 1)
        f0[i0:i1] = prev_f ** (1 - w) * f ** w
        env = np.clip((seg - s) / attack, 0, 1) * np.clip(1 - (seg - e) / release, 0, 1)
        amp[i0:i1] = np.maximum(amp[i0:i1], env * (v / 127) ** 1.5)
        vowel_idx[i0:i1] = rng.integers(len(names))
        if rng.random() < 0.6:
            consonants.append((s, rng.choice(["s", "sh", "t", "f", "k"])))
    # vibrato after a delay in each note, slow pitch drift
    rate, depth = rng.uniform(4.5, 6.5), rng.uniform(15, 60)
    onset_age = np.zeros(m)
    for s, e, _, _ in notes:
        i0, i1 = np.searchsorted(tc, [s, e])
        onset_age[i0:i1] = tc[i0:i1] - s
    vib = depth * np.clip((onset_age - 0.15) / 0.3, 0, 1) * np.sin(2 * np.pi * rate * tc + rng.uniform(0, 6.3))
    drift = np.cumsum(rng.normal(0, 1.5, m))
    drift -= np.convolve(drift, np.ones(64) / 64, mode="same")
    f0 = np.where(f0 > 0, f0, 200.0) * 2 ** ((vib + drift) / 1200)
    # per-control-step formants, smoothed so vowels glide over ~50 ms
    scale = rng.uniform(0.85, 1.2)
    formants = np.array([VOWELS[names[i]][0] for i in vowel_idx], float) * scale
    bands = np.array([VOWELS[names[i]][1] for i in vowel_idx], float)
    kern = np.hanning(max(3, int(0.05 * sr / ctrl)))
    kern /= kern.sum()
    formants = np.stack([np.convolve(formants[:, j], kern, mode="same") for j in range(4)], 1)
    gains = np.array([1.0, 0.6, 0.3, 0.2]) * rng.uniform(0.7, 1.3, 4)
    tilt = rng.uniform(0.8, 1.6)
    # additive synthesis, harmonics under 0.45 sr, amplitudes from the vowel envelope
    t = np.arange(n) / sr
    f0s = np.interp(t, tc, f0)
    phase = 2 * np.pi * np.cumsum(f0s) / sr
    out = np.zeros(n)
    max_h = int(0.45 * sr / max(60.0, float(f0.min())))
    for h in range(1, min(max_h, 120) + 1):
        fh = h * f0
        a = _envelope(fh, formants.T, bands.T, gains) * h ** -tilt
        a = np.where(fh < 0.45 * sr, a, 0.0)
        if not a.any():
            break
        out += np.interp(t, tc, a) * np.sin(h * phase + rng.uniform(0, 6.3))
    amps = np.interp(t, tc, amp)
    out *= amps
    # breath noise shaped like the voice, and consonant bursts
    from scipy.signal import butter, sosfilt

    breath = sosfilt(butter(2, [1500, 9000], btype="band", fs=sr, output="sos"), rng.standard_normal(n))
    out += breath * amps * rng.uniform(0.02, 0.1) * np.abs(out).max() / (np.abs(breath).max() + 1e-9)
    bands_c = {"s": (4500, 10000), "sh": (2000, 6000), "t": (2500, 8000), "f": (1200, 9000), "k": (1500, 4000)}
    for s, c in consonants:
        length = int(sr * (0.06 if c in ("s", "sh", "f") else 0.025))
        i0 = max(0, int((s - 0.6 * length / sr) * sr))
        if i0 + length >= n:
            continue
        burst = sosfilt(butter(2, bands_c[c], btype="band", fs=sr, output="sos"), rng.standard_normal(length))
        burst *= np.hanning(length) * rng.uniform(0.02, 0.1) * np.abs(out).max() / (np.abs(burst).max() + 1e-9)
        out[i0 : i0 + length] += burst
    peak = np.abs(out).max()
    return (out / peak * 0.5).astype(np.float32) if peak > 0 else out.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# rendering


def write_midi(path: Path, notes, program: int, drums: bool = False) -> None:
    """One-track MIDI at 960 ticks per second; drums on channel 10, where ``program`` picks the kit."""
    import mido

    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))  # 1 beat = 0.5 s: 960 ticks/s
    ch = 9 if drums else 0
    track.append(mido.Message("program_change", channel=ch, program=program, time=0))
    events = []
    for s, e, p, v in notes:
        if e <= 0 or s >= SECONDS:
            continue
        s, e = max(s, 0.0), min(e, SECONDS)
        events.append((s, 1, p, v))
        events.append((e, 0, p, 0))
    events.sort(key=lambda x: (x[0], x[1]))
    now = 0
    for t, on, p, v in events:
        tick = round(t * 960)
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, channel=ch, note=int(np.clip(p, 0, 127)), velocity=int(v), time=tick - now))
        now = tick
    mid.save(str(path))


def fluid(notes, program: int, rng: np.random.Generator, tmp: Path, n: int, drums: bool = False) -> np.ndarray:
    """Render ``notes`` with a random soundfont; stereo ``(2, n)`` float32."""
    if not notes:
        return np.zeros((2, n), np.float32)
    mid, raw = tmp / "x.mid", tmp / "x.raw"
    write_midi(mid, notes, program, drums=drums)
    sf = SOUNDFONTS[int(rng.integers(len(SOUNDFONTS)))]
    fx = ["-R", "1" if rng.random() < 0.4 else "0", "-C", "1" if rng.random() < 0.3 else "0"]
    cmd = ["fluidsynth", "-ni", "-q", "-g", "0.5", *fx, "-r", str(SR), "-T", "raw", "-O", "float",
           "-o", "synth.dynamic-sample-loading=1", "-F", str(raw), sf, str(mid)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    x = np.fromfile(raw, dtype=np.float32).reshape(-1, 2).T
    out = np.zeros((2, n), np.float32)
    k = min(n, x.shape[1])
    out[:, :k] = x[:, :k]
    return out


def room(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Convolve a stereo stem with a synthetic decaying-noise room; ``(2, n)`` -> ``(2, n)``."""
    from scipy.signal import fftconvolve

    rt60 = rng.uniform(0.2, 1.5)
    m = int(min(rt60, 1.0) * SR)
    decay = np.exp(-6.9 * np.arange(m) / (rt60 * SR))
    ir = rng.standard_normal((2, m)) * decay
    ir[:, : int(0.005 * SR)] = 0
    wet = rng.uniform(0.1, 0.4)
    ir *= wet / np.sqrt((ir**2).sum(axis=1, keepdims=True))
    ir[:, 0] += 1.0
    y = np.stack([fftconvolve(x[c], ir[c])[: x.shape[1]] for c in range(2)])
    return y.astype(np.float32)


def pan(mono: np.ndarray, rng: np.random.Generator, width: float = 0.3) -> np.ndarray:
    p = rng.uniform(-width, width)
    return np.stack([mono * np.sqrt(0.5 - p / 2) * 1.41, mono * np.sqrt(0.5 + p / 2) * 1.41]).astype(np.float32)


def clip_window(song: dict, rng: np.random.Generator) -> tuple[float, float]:
    """The first draws of :func:`make_clip`: the time stretch (clip seconds per song second) and the
    song time (s) where the clip starts, on an annotated beat."""
    stretch = rng.uniform(0.85, 1.2)
    span = SECONDS / stretch
    beats = song["beats"]
    start_choices = beats[(beats > beats[0] + 2) & (beats < beats[-1] - span - 1)]
    t0 = float(rng.choice(start_choices)) if len(start_choices) else float(beats[0])
    return float(stretch), t0


def clip_beats(song: dict, stretch: float, t0: float) -> dict:
    """POP909's annotated beats and 4/4 downbeats inside a clip, in clip seconds, and the beats per bar
    (the median spacing of the downbeats; 3 in the few songs annotated in threes)."""
    beats = song["beats"]
    inside = (beats >= t0) & (beats < t0 + SECONDS / stretch)
    idx = np.flatnonzero(song["downbeats"])
    per_bar = int(np.median(np.diff(idx))) if len(idx) > 1 else 4
    return {"beats": [round(float(b), 4) for b in (beats[inside] - t0) * stretch],
            "downbeats": [round(float(b), 4) for b in (beats[inside & song["downbeats"]] - t0) * stretch],
            "beats_per_bar": per_bar}


def make_clip(folder: Path, seed: int, labels: dict | None = None) -> np.ndarray:
    """One ``(4, 2, n)`` clip; when ``labels`` is a dict it receives each stem's notes (clip seconds,
    ``(start, end, pitch, velocity)``; GM drum numbers for drums) under ``"notes"`` and the clip's
    ``"tempo"`` (BPM), how the vocals were made (``"vocals"``) and, when the song keeps one key,
    ``"key"`` (tonic pitch class, 0 = C) and ``"minor"``. The random draws are the same either way,
    so a seed gives the same audio."""
    rng = np.random.default_rng(seed)
    song = load_song(folder)
    n = int(SECONDS * SR)
    stretch, t0 = clip_window(song, rng)
    span = SECONDS / stretch
    beats = song["beats"]
    t1 = t0 + span
    shift = int(rng.integers(-5, 7))

    def clip_notes(notes, transpose=True):
        return [((s - t0) * stretch, (e - t0) * stretch, p + (shift if transpose else 0), v)
                for s, e, p, v in notes if e > t0 and s < t1]

    tracks = song["tracks"]
    melody = clip_notes(tracks.get("MELODY", []))
    stems, notes = {}, {s: [] for s in STEMS}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        notes["drums"] = clip_notes(drum_part(song, rng, t0, t1), transpose=False)
        stems["drums"] = fluid(notes["drums"], int(rng.choice(DRUM_KITS)), rng, tmp, n, drums=True)
        notes["bass"] = clip_notes(bass_line(song, rng, t0, t1))
        stems["bass"] = fluid(notes["bass"], int(rng.choice(BASS_PROGRAMS)), rng, tmp, n)
        notes["other"] = clip_notes(tracks.get("PIANO", []))
        other_parts = [fluid(notes["other"], int(rng.choice(OTHER_PROGRAMS)), rng, tmp, n)]
        if rng.random() < 0.6:
            bridge = clip_notes(tracks.get("BRIDGE", []))
            notes["other"] = notes["other"] + bridge
            other_parts.append(fluid(bridge, int(rng.choice(OTHER_PROGRAMS)), rng, tmp, n) * rng.uniform(0.4, 1.0))
        r = rng.random()
        if r < 0.65:
            stems["vocals"] = pan(sing(melody, n, rng), rng, 0.15)
            notes["vocals"], kind = melody, "sung"
        elif r < 0.9:
            stems["vocals"] = fluid(melody, int(rng.choice(VOICE_PROGRAMS)), rng, tmp, n)
            notes["vocals"], kind = melody, "gm voice"
        else:  # instrumental: the melody moves to an instrument in "other"
            stems["vocals"] = np.zeros((2, n), np.float32)
            other_parts.append(fluid(melody, int(rng.choice(LEADS_BRASS)), rng, tmp, n))
            notes["other"], kind = notes["other"] + melody, "instrumental"
        stems["other"] = sum(other_parts)
    out = np.zeros((4, 2, n), np.float32)
    for i, s in enumerate(STEMS):
        x = stems[s]
        if rng.random() < 0.3:
            x = room(x, rng)
        peak = np.abs(x).max()
        out[i] = x / peak * rng.uniform(0.3, 0.9) if peak > 0 else x
    if labels is not None:
        inside = beats[(beats >= t0) & (beats <= t1)]
        period = float(np.median(np.diff(inside))) if len(inside) > 2 else float(np.median(np.diff(beats)))
        labels["notes"] = notes
        labels["vocals"] = kind
        labels["tempo"] = round(60.0 / (period * stretch), 2)  # a song beat lasts period * stretch clip seconds
        labels.update(clip_beats(song, stretch, t0))
        # the key, transposed with the clip, when the song keeps one key throughout (POP909's key
        # regions are in audio time, the notes in MIDI time, so a modulating song's clip cannot be placed)
        if len(set(song["keys"])) == 1:
            labels["key"] = (song["keys"][0][0] + shift) % 12
            labels["minor"] = song["keys"][0][1]
    return out


def _work(args) -> tuple[int, str, bool]:
    i, folder, seed = args
    path = OUT / f"{i:04d}.npy"
    if path.exists():
        return i, folder.name, True
    try:
        clip = make_clip(folder, seed)
    except (OSError, ValueError, IndexError, KeyError, subprocess.SubprocessError) as exc:  # odd annotations: skip
        print(f"skip {folder.name}: {exc}", flush=True)
        return i, folder.name, False
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, clip.astype(np.float16))
    os.replace(tmp, path)
    return i, folder.name, True


def _labelled(args) -> tuple[str, bool]:
    """One song folder of a devset-style labelled set: mixture and stems as FLAC, each stem's notes as
    MIDI (a stem with no notes gets none), ``meta.json`` with the tempo (and the key, as the devset)."""
    import soundfile as sf

    out, name, folder, seed = args
    dest = out / name
    if (dest / "meta.json").exists():
        return name, True
    labels: dict = {}
    try:
        clip = make_clip(folder, seed, labels)
    except (OSError, ValueError, IndexError, KeyError, subprocess.SubprocessError) as exc:
        print(f"skip {folder.name}: {exc}", flush=True)
        return name, False
    mix = clip.sum(axis=0)
    scale = min(1.0, 0.95 / max(float(np.abs(mix).max()), 1e-9))
    tmp = out / f".{name}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    sf.write(tmp / "mixture.flac", (mix * scale).T, SR, subtype="PCM_24")
    for i, stem in enumerate(STEMS):
        sf.write(tmp / f"{stem}.flac", (clip[i] * scale).T, SR, subtype="PCM_24")
        if labels["notes"][stem]:
            write_midi(tmp / f"{stem}.mid", labels["notes"][stem], 0, drums=stem == "drums")
    meta = {"tempo": labels["tempo"], "seconds": SECONDS, "vocals": labels["vocals"], "pop909_song": folder.name,
            "seed": seed, **{k: labels[k] for k in ("beats", "downbeats", "beats_per_bar")}}
    if "key" in labels:  # as the devset: tonic pitch class (0 = C) and mode
        meta.update(key=labels["key"], minor=labels["minor"])
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    os.replace(tmp, dest)
    return name, True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pop909", type=Path, default=POP909, help="extracted pop909 folder (song folders 001..909)")
    p.add_argument("--count", type=int, default=400)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labelled", type=Path, metavar="DIR",
                   help="write a devset-style labelled set here instead (song folders with stems, MIDI and meta.json) "
                        "for scoring transcription on rendered music; use a --seed other than the training render's")
    p.add_argument("--annotate", type=Path, metavar="DIR",
                   help="add the annotated beats, downbeats and beats per bar to the meta.json of a labelled set "
                        "rendered before they were written there (the same clips: same seeds), and exit")
    args = p.parse_args()
    if args.annotate:
        for meta_path in sorted(args.annotate.glob("*/meta.json")):
            meta = json.loads(meta_path.read_text())
            song = load_song(args.pop909 / meta["pop909_song"])
            meta.update(clip_beats(song, *clip_window(song, np.random.default_rng(meta["seed"]))))
            meta_path.write_text(json.dumps(meta, indent=1))
        return
    songs = sorted(d for d in args.pop909.iterdir() if d.is_dir())
    rng = np.random.default_rng(args.seed)
    work = [(i, songs[int(rng.integers(len(songs)))], args.seed * 100003 + i) for i in range(args.count)]
    from multiprocessing import Pool

    if args.labelled:
        args.labelled.mkdir(parents=True, exist_ok=True)
        jobs = [(args.labelled, f"r{args.seed:02d}_{i:04d}", folder, seed) for i, folder, seed in work]
        with Pool(args.jobs) as pool:
            written = sum(ok for _, ok in pool.imap_unordered(_labelled, jobs))
        print(f"wrote {written} songs to {args.labelled}", flush=True)
        return
    OUT.mkdir(parents=True, exist_ok=True)

    done = []
    with Pool(args.jobs) as pool:
        for k, (i, name, ok) in enumerate(pool.imap_unordered(_work, work)):
            if ok:
                done.append({"file": f"{i:04d}.npy", "song": name})
            if k % 20 == 0:
                print(f"{k + 1}/{len(work)}", flush=True)
    done.sort(key=lambda d: d["file"])
    index = {"sr": SR, "streams": list(STEMS), "dtype": "float16", "clips": done}
    (OUT / "index.json").write_text(json.dumps(index, indent=1))


if __name__ == "__main__":
    main()
