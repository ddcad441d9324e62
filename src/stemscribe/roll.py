"""88-key piano rolls for MIDI-conditioned audio models, and back to notes.

Layout of a roll (what :func:`save_roll` writes to ``.npz``; all arrays, no pickles)::

    onsets      float32 (n_frames, 88)  velocity / 127 in the frame where a note starts, else 0
    frames      uint8   (n_frames, 88)  1 while a note sounds (onset frame included, end frame excluded)
    fps         int64   ()              frames per second: 250 (4 ms bins)
    lowest_pitch int64  ()              MIDI pitch of column 0: 21 (A0); column k is pitch 21 + k (C8 = 87)
    program     int64   ()              General MIDI program of the first pitched track (0 if none)
    layout      str     ()              this description in one line

Frame ``i`` covers ``[i / fps, (i + 1) / fps)``; a note starting at ``t`` has its onset in frame
``round(t * fps)`` and sounds through frame ``round(end * fps) - 1`` (at least one frame). Drum tracks
and pitches outside A0..C8 are left out. Notes of all pitched tracks are merged (a roll has one
voice per key): where two notes of one key overlap, the later onset ends the earlier note.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import BadInputError
from .types import Note, NoteTrack

FPS = 250
LOWEST_PITCH = 21
N_KEYS = 88
LAYOUT = (
    "onsets float32 (n_frames, 88) velocity/127 at note-start frames; frames uint8 (n_frames, 88) 1 while sounding; "
    "column k = MIDI pitch 21+k; frame i = [i/fps, (i+1)/fps) seconds; fps=250"
)


@dataclass
class PianoRoll:
    """An onset roll ``(n_frames, 88)`` float32 in [0, 1] and a frame roll ``(n_frames, 88)`` uint8."""

    onsets: np.ndarray
    frames: np.ndarray
    fps: int = FPS
    program: int = 0

    @property
    def n_frames(self) -> int:
        return int(self.onsets.shape[0])

    @property
    def duration(self) -> float:
        return self.n_frames / float(self.fps)


def tracks_to_roll(tracks: Sequence[NoteTrack], *, fps: int = FPS) -> tuple[PianoRoll, int]:
    """Piano roll of the pitched notes of ``tracks``; also returns how many notes were left out
    (outside A0..C8). Raises :class:`BadInputError` when no pitched note is left."""
    notes = [n for t in tracks if not t.is_drum for n in t.notes]
    inside = [n for n in notes if LOWEST_PITCH <= n.pitch < LOWEST_PITCH + N_KEYS]
    dropped = len(notes) - len(inside)
    if not inside:
        what = "no pitched notes" if not notes else "no notes inside the 88 piano keys (A0..C8)"
        raise BadInputError(f"the MIDI has {what}; nothing to put in a piano roll")
    n_frames = max(int(round(max(n.end for n in inside) * fps)), max(int(round(n.start * fps)) for n in inside) + 1) + 1
    onsets = np.zeros((n_frames, N_KEYS), dtype=np.float32)
    frames = np.zeros((n_frames, N_KEYS), dtype=np.uint8)
    for n in sorted(inside, key=lambda n: n.start):
        k = n.pitch - LOWEST_PITCH
        a = max(int(round(n.start * fps)), 0)
        b = max(int(round(n.end * fps)), a + 1)
        frames[a:b, k] = 1
        onsets[a, k] = max(onsets[a, k], np.clip(n.velocity, 1, 127) / 127.0)
    program = next((t.program for t in tracks if not t.is_drum and t.notes), 0)
    return PianoRoll(onsets, frames, fps, int(program)), dropped


def roll_to_track(roll: PianoRoll, *, name: str = "piano") -> NoteTrack:
    """Notes of a piano roll: each onset starts a note that lasts while the frame roll stays on,
    up to the next onset of the same key (at least one frame)."""
    onsets, frames, fps = roll.onsets, roll.frames.astype(bool), roll.fps
    notes: list[Note] = []
    n_frames = onsets.shape[0]
    for k in range(onsets.shape[1]):
        starts = np.flatnonzero(onsets[:, k] > 0)
        for j, a in enumerate(starts):
            stop = starts[j + 1] if j + 1 < len(starts) else n_frames
            b = a + 1
            while b < stop and frames[b, k]:
                b += 1
            vel = int(np.clip(round(float(onsets[a, k]) * 127), 1, 127))
            notes.append(Note(LOWEST_PITCH + k, a / fps, b / fps, vel))
    return NoteTrack(name, notes, roll.program, False).sorted()


def save_roll(path: str | Path, roll: PianoRoll) -> Path:
    """Write ``roll`` as an ``.npz`` (see the module docstring for keys), atomically."""
    from .atomic import atomic_output

    path = Path(path)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                onsets=roll.onsets.astype(np.float32),
                frames=roll.frames.astype(np.uint8),
                fps=np.int64(roll.fps),
                lowest_pitch=np.int64(LOWEST_PITCH),
                program=np.int64(roll.program),
                layout=np.array(LAYOUT),
            )
    return path


def load_roll(path: str | Path) -> PianoRoll:
    """Read a roll written by :func:`save_roll` (or any npz with ``onsets``/``frames`` ``(n, 88)`` and ``fps``)."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such piano-roll file")
    try:
        with np.load(path, allow_pickle=False) as z:
            onsets = np.asarray(z["onsets"], dtype=np.float32)
            frames = np.asarray(z["frames"]) if "frames" in z else (onsets > 0).astype(np.uint8)
            fps = int(z["fps"]) if "fps" in z else FPS
            lowest = int(z["lowest_pitch"]) if "lowest_pitch" in z else LOWEST_PITCH
            program = int(z["program"]) if "program" in z else 0
    except KeyError as exc:
        raise BadInputError(f"{path}: not a piano roll (missing array {exc})") from None
    except Exception as exc:  # zipfile/numpy raise several types for broken files
        raise BadInputError(f"{path}: not a readable .npz piano roll ({exc.__class__.__name__}: {exc})") from None
    if onsets.ndim != 2 or onsets.shape[1] != N_KEYS or frames.shape != onsets.shape:
        raise BadInputError(f"{path}: onsets/frames must both be (n_frames, 88), got {onsets.shape} and {frames.shape}")
    if lowest != LOWEST_PITCH:
        raise BadInputError(f"{path}: lowest_pitch must be {LOWEST_PITCH} (A0), got {lowest}")
    if not 1 <= fps <= 10000:
        raise BadInputError(f"{path}: fps must be 1..10000, got {fps}")
    if not np.isfinite(onsets).all() or onsets.min(initial=0) < 0 or onsets.max(initial=0) > 1:
        raise BadInputError(f"{path}: onset velocities must lie in [0, 1]")
    return PianoRoll(onsets, frames.astype(np.uint8), fps, program)


def midi_to_roll_file(midi: str | Path, out: str | Path, *, fps: int = FPS) -> tuple[Path, PianoRoll, int]:
    """MIDI file to ``.npz`` roll; returns (path, roll, notes left out)."""
    from .midi import read_midi

    tracks, _ = read_midi(midi)
    roll, dropped = tracks_to_roll(tracks, fps=fps)
    return save_roll(out, roll), roll, dropped


def roll_file_to_midi(roll_path: str | Path, out: str | Path) -> tuple[Path, NoteTrack]:
    """``.npz`` roll to a one-track MIDI file (120 BPM; times are exact seconds)."""
    from .midi import write_midi

    track = roll_to_track(load_roll(roll_path))
    if not track.notes:
        raise BadInputError(f"{roll_path}: the piano roll has no onsets")
    return write_midi(out, [track]), track
