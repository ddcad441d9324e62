"""stemscribe: a song in, isolated stems and a clean MIDI file per stem out.

The public API is imported lazily so ``import stemscribe`` is cheap::

    import stemscribe
    result = stemscribe.split("song.mp3", out_dir="stems")
    track = stemscribe.transcribe("bass.wav", stem="bass")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "split": ("stemscribe.pipeline", "split"),
    "transcribe": ("stemscribe.pipeline", "transcribe"),
    "separate": ("stemscribe.pipeline", "separate"),
    "load_audio": ("stemscribe.audio", "load"),
    "write_audio": ("stemscribe.audio", "write"),
    "write_midi": ("stemscribe.midi", "write_midi"),
    "Audio": ("stemscribe.types", "Audio"),
    "Note": ("stemscribe.types", "Note"),
    "NoteTrack": ("stemscribe.types", "NoteTrack"),
    "BeatGrid": ("stemscribe.types", "BeatGrid"),
    "StemscribeError": ("stemscribe.errors", "StemscribeError"),
    "BadInputError": ("stemscribe.errors", "BadInputError"),
    "ModelUnavailableError": ("stemscribe.errors", "ModelUnavailableError"),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'stemscribe' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), attr)


def __dir__() -> list[str]:
    return __all__
