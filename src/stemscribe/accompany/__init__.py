"""Sing it, get a song: key, tempo and chords from a melody, then a band to play under it.

``accompany(input, *, out_dir, style="pop", key="auto", tempo="auto", seed=0)`` is the entry point
(:mod:`.pipeline`); :mod:`.harmony` (key + chord HMM learned from POP909), :mod:`.beats` (beats from
note onsets), :mod:`.voice` (singing check, notes), :mod:`.styles`, :mod:`.arrange` (band parts)
and :mod:`.synth` (built-in fallback synthesizer) are the stages.
"""

from __future__ import annotations

from typing import Any

__all__ = ["accompany", "AccompanyResult", "STYLE_NAMES"]

STYLE_NAMES: tuple[str, ...] = ("pop", "rock", "ballad", "funk", "electronic")


def __getattr__(name: str) -> Any:
    if name in ("accompany", "AccompanyResult"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'stemscribe.accompany' has no attribute {name!r}")
