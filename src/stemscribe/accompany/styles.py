"""Band styles: drum patterns, bass rhythms, comping voicings and fills.

Patterns are written on a 16-step bar (one step = a sixteenth note); ``(step, value)`` pairs.
Drum notes are General MIDI: kick 36, side stick 37, snare 38, clap 39, closed hat 42,
pedal hat 44, open hat 46, crash 49, ride 51, toms 41/45/48/50.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import BadArgumentError

__all__ = ["Style", "STYLES", "get_style"]

KICK, STICK, SNARE, CLAP, HAT, PHAT, OHAT, CRASH, RIDE = 36, 37, 38, 39, 42, 44, 46, 49, 51
TOMS = (50, 48, 45, 41)


@dataclass(frozen=True)
class Style:
    """One band style.

    ``drums``: {GM drum note: [(step, velocity), ...]} for one bar; ``bass``: [(step, degree,
    length_steps)] with degree ``"R"`` root, ``"5"`` fifth, ``"8"`` octave, ``"A"`` approach
    note to the next chord; ``comp``: [(step, length_steps)] chord hits; ``comp_voicing``:
    ``close`` | ``spread`` | ``power`` | ``seventh`` | ``arp``; ``pad_voicing`` for the held
    chords track (``None`` leaves that track out); GM programs per part.
    """

    name: str
    drums: dict[int, list[tuple[int, int]]]
    bass: list[tuple[int, str, int]]
    comp: list[tuple[int, int]]
    comp_voicing: str
    pad_voicing: str | None
    programs: dict[str, int]
    fill_every: int = 4  # bars; a fill closes each group of this many bars
    fills: tuple[str, ...] = ("toms", "snare")
    swing: float = 0.0  # fraction of a sixteenth to delay off-beat eighths
    velocity: dict[str, int] = field(default_factory=lambda: {"bass": 92, "comp": 78, "pad": 60})
    level_db: float = -3.0  # backing loudness relative to the vocal


def _every(steps: range | list[int], vel: int) -> list[tuple[int, int]]:
    return [(s, vel) for s in steps]


STYLES: dict[str, Style] = {
    "pop": Style(
        "pop",
        drums={KICK: [(0, 110), (8, 100), (10, 85)], SNARE: [(4, 105), (12, 105)],
               HAT: _every(range(0, 16, 2), 70)},
        bass=[(0, "R", 3), (4, "R", 2), (6, "5", 2), (8, "R", 3), (12, "8", 2), (14, "A", 2)],
        comp=[(0, 4), (6, 2), (8, 4), (14, 2)],
        comp_voicing="close", pad_voicing="spread",
        programs={"bass": 33, "comp": 0, "pad": 89},
    ),
    "rock": Style(
        "rock",
        drums={KICK: [(0, 115), (6, 95), (8, 110), (10, 90)], SNARE: [(4, 118), (12, 118)],
               HAT: _every(range(0, 16, 2), 85), CRASH: []},
        bass=[(s, "R", 2) for s in range(0, 14, 2)] + [(14, "A", 2)],
        comp=[(s, 2) for s in range(0, 16, 2)],
        comp_voicing="power", pad_voicing="close",
        programs={"bass": 34, "comp": 29, "pad": 16},
        fills=("toms", "toms", "snare"),
        velocity={"bass": 100, "comp": 90, "pad": 50},
        level_db=-2.0,
    ),
    "ballad": Style(
        "ballad",
        drums={KICK: [(0, 90), (10, 70)], STICK: [(8, 80)], HAT: _every(range(0, 16, 4), 55)},
        bass=[(0, "R", 8), (8, "5", 6), (14, "A", 2)],
        comp=[(s, 2) for s in range(0, 16, 2)],
        comp_voicing="arp", pad_voicing="spread",
        programs={"bass": 32, "comp": 0, "pad": 48},
        fill_every=8, fills=("snare",),
        velocity={"bass": 80, "comp": 64, "pad": 58},
        level_db=-4.0,
    ),
    "funk": Style(
        "funk",
        drums={KICK: [(0, 112), (3, 80), (6, 95), (10, 100)],
               SNARE: [(4, 110), (7, 38), (9, 35), (12, 110), (15, 40)],
               HAT: [(s, 88 if s % 4 == 0 else (70 if s % 2 == 0 else 50)) for s in range(16)]},
        bass=[(0, "R", 2), (3, "8", 1), (6, "R", 1), (7, "5", 1), (10, "R", 2), (12, "8", 1), (14, "A", 1)],
        comp=[(2, 1), (5, 1), (10, 1), (13, 1)],
        comp_voicing="seventh", pad_voicing="close",
        programs={"bass": 36, "comp": 27, "pad": 16},
        swing=0.15,
        velocity={"bass": 100, "comp": 84, "pad": 42},
    ),
    "electronic": Style(
        "electronic",
        drums={KICK: _every([0, 4, 8, 12], 118), CLAP: [(4, 100), (12, 100)],
               OHAT: _every([2, 6, 10, 14], 80), HAT: _every([1, 3, 5, 7, 9, 11, 13, 15], 45)},
        bass=[(s, "R", 2) for s in (2, 6, 10)] + [(14, "8", 2)],
        comp=[(s, 1) for s in range(0, 16, 1)],
        comp_voicing="arp", pad_voicing="spread",
        programs={"bass": 38, "comp": 81, "pad": 90},
        fill_every=8, fills=("snare", "clap"),
        velocity={"bass": 100, "comp": 58, "pad": 62},
    ),
}


def get_style(name: str) -> Style:
    """The style called ``name``; :class:`BadArgumentError` for an unknown one."""
    try:
        return STYLES[name.strip().lower()]
    except KeyError:
        raise BadArgumentError(f"unknown style {name!r}: choose one of {', '.join(STYLES)}") from None
