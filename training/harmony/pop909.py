"""Read POP909 songs (MELODY track, annotated beats, chords and keys) into plain Python values.

POP909 layout (one folder per song id ``001``..``909``):
``NNN.mid`` (tracks MELODY, BRIDGE, PIANO), ``beat_midi.txt`` (time, 2/4-downbeat flag, 4/4-downbeat
flag, in MIDI time), ``chord_midi.txt`` (start, end, Harte-like label in MIDI time),
``key_audio.txt`` (start, end, key such as ``Gb:maj`` in *audio* time), plus ``*_audio`` variants.

Keys are annotated in audio time only; we map them to MIDI time by a linear map between the first
and last annotated beats of the two beat files (only matters for songs that modulate).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemscribe.types import Note

NAME_TO_PC = {
    "C": 0, "B#": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "Fb": 4, "E#": 5, "F": 5,
    "F#": 6, "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11, "Cb": 11,
}
MIN_FAMILY = {"min", "min7", "min6", "minmaj7", "dim", "hdim7", "dim7", "min9", "min11"}


@dataclass
class Song:
    sid: int
    melody: list[Note]
    beats: np.ndarray  # (n_beats,) MIDI seconds
    downbeats: np.ndarray  # (n_bars,)
    chords: list[tuple[float, float, str]]  # MIDI seconds, original labels
    keys: list[tuple[float, float, int, str]]  # MIDI seconds, tonic pc, "major"/"minor"


def chord_root_quality(label: str) -> tuple[int, str] | None:
    """``"Bb:min7/b7"`` -> (10, "min"); maj-family qualities -> "maj"; ``N``/``X`` -> None."""
    if label in ("N", "X") or ":" not in label:
        return None
    root, rest = label.split(":", 1)
    qual = rest.split("/")[0].split("(")[0]
    return NAME_TO_PC[root], ("min" if qual in MIN_FAMILY else "maj")


def _read_rows(path: Path) -> list[list[str]]:
    return [ln.split() for ln in path.read_text().splitlines() if ln.strip()]


def load_song(folder: Path) -> Song:
    import pretty_midi

    sid = int(folder.name)
    pm = pretty_midi.PrettyMIDI(str(folder / f"{folder.name}.mid"))
    mel = next(i for i in pm.instruments if i.name.strip().upper() == "MELODY")
    melody = [Note(int(n.pitch), float(n.start), float(n.end), int(n.velocity)) for n in mel.notes]
    b = np.loadtxt(folder / "beat_midi.txt", ndmin=2)
    beats = b[:, 0]
    downbeats = b[b[:, 2] > 0.5, 0]
    chords = [(float(r[0]), float(r[1]), r[2]) for r in _read_rows(folder / "chord_midi.txt")]
    ba = np.loadtxt(folder / "beat_audio.txt", ndmin=2)[:, 0]
    a0, a1, m0, m1 = ba[0], ba[-1], beats[0], beats[-1]

    def a2m(t: float) -> float:
        return m0 + (t - a0) * (m1 - m0) / max(a1 - a0, 1e-6)

    keys = []
    for r in _read_rows(folder / "key_audio.txt"):
        root, q = r[2].split(":")
        keys.append((a2m(float(r[0])), a2m(float(r[1])), NAME_TO_PC[root], "minor" if q.startswith("min") else "major"))
    keys[0] = (-1e9, keys[0][1], keys[0][2], keys[0][3])
    keys[-1] = (keys[-1][0], 1e9, keys[-1][2], keys[-1][3])
    return Song(sid, melody, beats, downbeats, chords, keys)


def load_all(root: Path, cache: Path | None = None) -> list[Song]:
    """All songs under ``root`` (the extracted ``pop909`` folder), cached as a pickle if asked."""
    if cache is not None and cache.exists():
        with open(cache, "rb") as fh:
            return pickle.load(fh)
    songs = [load_song(d) for d in sorted(root.iterdir()) if d.is_dir() and d.name.isdigit()]
    if cache is not None:
        with open(cache, "wb") as fh:
            pickle.dump(songs, fh)
    return songs


def key_at(song: Song, t: float) -> tuple[int, str]:
    for s, e, pc, mode in song.keys:
        if s <= t < e:
            return pc, mode
    return song.keys[-1][2], song.keys[-1][3]


def major_tonic(pc: int, mode: str) -> int:
    return (pc + 3) % 12 if mode == "minor" else pc
