"""One module per CLI sub-command: ``register(subparsers)`` and ``run(args) -> int``."""

from __future__ import annotations


def tempo_text(bpm: float, n_beats: int) -> str:
    """A summary line's tempo: ``"110.3 BPM"``, or ``"tempo unknown"`` when no beats were heard
    (silence, a sound too short for two beats), where the MIDI file only keeps its default tempo."""
    return f"{bpm:.1f} BPM" if n_beats else "tempo unknown"
