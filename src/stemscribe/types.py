"""Small value types that the stages pass to each other.

``Audio``      samples ``(channels, n)`` float32 plus a sample rate.
``Note``       one MIDI note in seconds.
``NoteTrack``  the notes of one stem, with its General MIDI program (or drum flag).
``BeatGrid``   tempo and beat times estimated once from the mixture.
``Progress``   the callback every long loop reports to: ``progress({"stage": str, "fraction": float})``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

#: The four stems, in the order every model returns them.
STEM_NAMES: tuple[str, ...] = ("drums", "bass", "other", "vocals")

#: A progress callback receives a dict with at least ``stage`` (str) and ``fraction`` (0..1).
Progress = Callable[[Mapping[str, Any]], None]


def report_progress(progress: Progress | None, stage: str, fraction: float, **extra: Any) -> None:
    """Call ``progress`` if given, clamping ``fraction`` to [0, 1]."""
    if progress is not None:
        progress({"stage": stage, "fraction": float(min(max(fraction, 0.0), 1.0)), **extra})


@dataclass(frozen=True)
class Audio:
    """Audio samples of shape ``(channels, n)``, float32 in [-1, 1], at ``sr`` Hz."""

    samples: np.ndarray
    sr: int

    def __post_init__(self) -> None:
        s = np.asarray(self.samples, dtype=np.float32)
        if s.ndim == 1:
            s = s[None, :]
        if s.ndim != 2:
            raise ValueError(f"Audio samples must be (channels, n), got shape {s.shape}")
        object.__setattr__(self, "samples", s)
        object.__setattr__(self, "sr", int(self.sr))

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return self.n_samples / float(self.sr)

    def mono(self) -> np.ndarray:
        """Mean over channels, shape ``(n,)``."""
        return self.samples.mean(axis=0)


@dataclass
class Note:
    """A note: MIDI ``pitch``, ``start``/``end`` in seconds, ``velocity`` 1..127."""

    pitch: int
    start: float
    end: float
    velocity: int = 90

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class NoteTrack:
    """The notes of one stem.

    ``program`` is a General MIDI program number (0..127); ``is_drum`` puts the track on channel 10
    with General MIDI drum pitches (kick 36, snare 38, hi-hat 42/46, ...).
    """

    name: str
    notes: list[Note] = field(default_factory=list)
    program: int = 0
    is_drum: bool = False

    def __len__(self) -> int:
        return len(self.notes)

    def sorted(self) -> "NoteTrack":
        return NoteTrack(self.name, sorted(self.notes, key=lambda n: (n.start, n.pitch)), self.program, self.is_drum)


@dataclass
class BeatGrid:
    """Tempo (BPM) and beat times (seconds, ``(n_beats,)``) of a song; downbeats if known."""

    tempo: float
    beats: np.ndarray = field(default_factory=lambda: np.zeros(0))
    downbeats: np.ndarray = field(default_factory=lambda: np.zeros(0))
    time_signature: tuple[int, int] = (4, 4)

    @property
    def first_beat(self) -> float:
        return float(self.beats[0]) if len(self.beats) else 0.0
