"""Note tracks to Standard MIDI Files and back; beat-grid quantisation.

Notes keep their true times: a file carries the song's tempo (one ``set_tempo`` from the
:class:`BeatGrid`) and every note's tick position is its time in seconds at that tempo, so the
MIDI lines up with the stems when both are dropped into a DAW at 0:00.

So that the DAW's bars and beats also line up with the song's (a song rarely starts on a bar
line), the file opens with a *pickup* that ends where the song's tracked bar lines fall: a short
bar for the part of a beat before the song's first beat (e.g. 13/64), then a bar of the beats
before its first bar line (e.g. 3/4); from there on the song's meter runs. The pickup is a whole
number of 64th notes, so the file's beats sit within a 128th note (1/32 of a beat) of the tracked
ones; the tempo is not touched (one ``set_tempo``).

Quantized tracks are the exception (:func:`quantize`, ``write_midi(..., follow_beats=True)``):
their onsets sit exactly on the file's grid lines; their pickup is whole 16ths (a time signature
such as 3/16, which every DAW accepts; Ableton Live takes no denominator above 16), its first 16th
at its own tempo so that the file's grid falls exactly on the song's; and a song whose tempo drifts
away from one tempo gets a tempo map through its tracked beats, so that grid stays on the music.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import BadArgumentError, BadInputError
from .types import BeatGrid, Note, NoteTrack

#: General MIDI programs (0-based) given to each stem's track by default.
GM_PROGRAMS: dict[str, int] = {
    "vocals": 53,  # Voice Oohs: a sung line played back as a voice-like patch
    "bass": 33,  # Electric Bass (finger)
    "other": 0,  # Acoustic Grand Piano
    "drums": 0,  # Standard kit (channel 10)
}

#: The MIDI channel (0-based) General MIDI reserves for drums (channel 10 in 1-based numbering).
DRUM_CHANNEL = 9
TICKS_PER_BEAT = 480
DEFAULT_TEMPO = 120.0

_GRID_RE = re.compile(r"^1/(\d+)(t?)$")
#: The pickup is a whole number of these (a 64th note): finer than any note grid a DAW snaps to,
#: and a time-signature denominator that MIDI (any power of 2) and notation programs accept.
_PICKUP_STEP = TICKS_PER_BEAT // 16
#: A quantized file's pickup, which plays at its own tempo, is a whole number of these (a 16th
#: note): its time signature (e.g. 3/16) is then one that every DAW accepts.
_EXACT_PICKUP_STEP = TICKS_PER_BEAT // 4
#: Below this beat-phase coherence (mean resultant length of the beats' phases at the tempo) the
#: tracked beats do not agree on where the beat falls, and the file gets no pickup.
_MIN_PHASE_COHERENCE = 0.5
#: A quantized file gets a tempo map when its smoothed tracked beats fall further than this (s)
#: from the constant-tempo grid (about a 1/64 note at 120 BPM, less than a DAW user would accept
#: as "on the grid") ...
DRIFT_S = 0.025
#: ... for at least this many beats in a row (two bars of 4/4).
DRIFT_BEATS = 8
#: Tracked beats are smoothed over this many beats either side before they become a tempo map.
_SMOOTH_BEATS = 4


def parse_grid(grid: str) -> float:
    """Length of one grid step in beats (quarter notes) for ``"1/16"``, ``"1/8t"``, ...

    Raises :class:`BadArgumentError` for anything else.
    """
    m = _GRID_RE.match(grid.strip().lower())
    if not m or int(m.group(1)) not in (1, 2, 4, 8, 16, 32, 64):
        raise BadArgumentError(
            f"unknown quantize grid {grid!r}: use 1/4, 1/8, 1/16, 1/32 (add 't' for triplets, e.g. 1/8t)"
        )
    steps = 4.0 / int(m.group(1))
    return steps * 2.0 / 3.0 if m.group(2) else steps


class _TimeMap:
    """Seconds <-> file ticks, piecewise linear through anchors (one tempo per segment, the last
    segment's beyond both ends), and the tick of the file's first bar line (``pickup``)."""

    def __init__(self, times: np.ndarray, ticks: np.ndarray, pickup: int) -> None:
        self.times = np.asarray(times, dtype=float)
        self.ticks = np.asarray(ticks, dtype=float)
        self.pickup = int(pickup)

    @staticmethod
    def _extend(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        y = np.interp(x, xs, ys)
        lo, hi = x < xs[0], x > xs[-1]
        y[lo] = ys[0] + (x[lo] - xs[0]) * (ys[1] - ys[0]) / (xs[1] - xs[0])
        y[hi] = ys[-1] + (x[hi] - xs[-1]) * (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        return y

    def ticks_at(self, seconds: np.ndarray | float) -> np.ndarray:
        return self._extend(np.atleast_1d(np.asarray(seconds, dtype=float)), self.times, self.ticks)

    def seconds_at(self, ticks: np.ndarray | float) -> np.ndarray:
        return self._extend(np.atleast_1d(np.asarray(ticks, dtype=float)), self.ticks, self.times)

    def tempos(self) -> list[tuple[int, float]]:
        """``(tick, bpm)`` where each segment starts (the first at tick 0)."""
        bpm = 60.0 * np.diff(self.ticks) / TICKS_PER_BEAT / np.diff(self.times)
        out = [(0, float(bpm[0]))]
        for tick, b in zip(self.ticks[1:-1], bpm[1:]):
            out.append((int(round(tick)), float(b)))
        return out


def _pickup_sixteenths(first_line: float, step_s: float) -> tuple[int, float]:
    """A quantized file's pickup before the song's first grid line at ``first_line`` s (its first
    bar line, or its first beat), with 16ths of ``step_s`` s: the number of whole 16ths before it,
    and where the file's second 16th line falls. The file's first 16th holds the part of a 16th
    before the song's first 16th line and plays at its own tempo; from its second line on, the
    file's 16ths are the song's."""
    m = int(round(first_line / step_s))
    return m, first_line - (m - 1) * step_s


def _constant_map(grid: BeatGrid, exact_pickup: bool = False) -> _TimeMap:
    """One tempo (``grid.tempo``) after the pickup (:func:`pickup_ticks`), which is a whole number of
    64ths: the file's bar lines then sit up to a 128th note (19 ms at 100 BPM) off the song's.

    ``exact_pickup`` (quantized files) makes the file's grid fall exactly on the song's instead:
    the pickup is a whole number of 16ths (so that its time signature, e.g. 3/16, is one every DAW
    accepts: Ableton Live takes no denominator above 16), and its first 16th, which holds the part
    of a 16th before the song's first 16th line, plays at its own tempo (2/3 to 2 x the song's; a
    ``set_tempo`` at 0 and one at the file's second 16th line). A bar line within half a 16th of the
    start gets no pickup: the file's first bar starts at 0 and its first 16th is the longer one."""
    tempo = float(grid.tempo) if grid.tempo and np.isfinite(grid.tempo) and grid.tempo > 0 else DEFAULT_TEMPO
    beat_s = 60.0 / tempo
    t_bar = first_bar_line(grid) if exact_pickup else None
    if t_bar is not None:
        step = _EXACT_PICKUP_STEP
        step_s = step * beat_s / TICKS_PER_BEAT
        num, den = (int(v) for v in grid.time_signature)
        bar_ticks = max(num, 1) * TICKS_PER_BEAT * 4 // max(den, 1)
        m, second = _pickup_sixteenths(t_bar, step_s)
        return _TimeMap(np.array([0.0, second, second + beat_s]),
                        np.array([0.0, float(step), float(step + TICKS_PER_BEAT)]), (m * step) % bar_ticks)
    return _TimeMap(np.array([0.0, beat_s]), np.array([0.0, float(TICKS_PER_BEAT)]), pickup_ticks(grid))


def _smooth_beats(beats: np.ndarray, half: int = _SMOOTH_BEATS) -> np.ndarray:
    """Each beat time replaced by a robust straight line (over beat numbers: Theil-Sen, the median
    of the pairwise slopes, and the median intercept) through the beats within ``half`` of it: the
    tracker's jitter (a few ms) and its odd misplaced beat (often among the last ones of a song)
    are removed, a tempo that drifts stays."""
    n = len(beats)
    out = np.empty(n)
    for j in range(n):
        lo, hi = max(0, j - half), min(n, j + half + 1)
        k = np.arange(lo, hi, dtype=float)
        b = beats[lo:hi]
        i1, i2 = np.triu_indices(k.size, 1)
        slope = float(np.median((b[i2] - b[i1]) / (k[i2] - k[i1])))
        out[j] = float(np.median(b - slope * k)) + slope * j
    return out


def _beat_map(grid: BeatGrid, b: np.ndarray) -> _TimeMap | None:
    """A map whose file beats are ``b``, the song's smoothed tracked beats (:func:`_smooth_beats`):
    a tempo per beat. ``None`` when the beats are too few or not increasing."""
    beats = np.asarray(grid.beats, dtype=float)
    if len(beats) < 4:
        return None
    if np.any(np.diff(b) <= 0) or b[0] < 0:
        return None
    num, den = (int(v) for v in grid.time_signature)
    beat_ticks = TICKS_PER_BEAT * 4 // max(den, 1)
    # the part before the first beat in 16ths at the first beat's tempo (as the pickup of
    # _constant_map(exact_pickup=True)); the beats the file's first 16th reaches are not anchors
    step = _EXACT_PICKUP_STEP
    m, second = _pickup_sixteenths(b[0], (b[1] - b[0]) * step / beat_ticks)
    first = m * step
    ticks = first + beat_ticks * np.arange(len(b), dtype=float)
    keep = ticks > step
    times = np.concatenate([[0.0, second], b[keep]])
    tick_anchors = np.concatenate([[0.0, float(step)], ticks[keep]])
    # the bar line: the beat (mod the meter) on which most tracked downbeats fall
    marks = np.asarray(grid.downbeats, dtype=float)
    j0 = 0
    if len(marks):
        which = np.array([int(np.argmin(np.abs(beats - m))) for m in marks]) % max(num, 1)
        j0 = int(np.bincount(which).argmax())
    bar_ticks = max(num, 1) * beat_ticks
    return _TimeMap(times, tick_anchors, int((first + j0 * beat_ticks) % bar_ticks))


def _drifts(grid: BeatGrid, constant: _TimeMap, beats: np.ndarray) -> bool:
    """Whether the song's smoothed tracked beats ``beats`` (:func:`_smooth_beats`) stray from the
    nearest beats of the constant-tempo file grid by more than :data:`DRIFT_S` for
    :data:`DRIFT_BEATS` beats in a row (a tempo that really moves, not the tracker's odd misplaced
    beat); always when the beats do not agree on one phase at the tempo."""
    if first_bar_line(grid) is None:
        return True
    beat_ticks = TICKS_PER_BEAT * 4 // max(int(grid.time_signature[1]), 1)
    r = (constant.ticks_at(beats) - constant.pickup) / beat_ticks
    # a beat at the song's tempo: the map's last segment (the first may be the pickup's own tempo)
    beat_s = beat_ticks * float(np.diff(constant.times[-2:])[0] / np.diff(constant.ticks[-2:])[0])
    off = np.abs(r - np.round(r)) * beat_s > DRIFT_S
    run = longest = 0
    for o in off:
        run = run + 1 if o else 0
        longest = max(longest, run)
    return longest >= DRIFT_BEATS


def time_map(grid: BeatGrid | None, follow_beats: bool = False) -> _TimeMap:
    """How a file written for ``grid`` places seconds on ticks.

    By default one tempo (``grid.tempo``) after the pickup (:func:`pickup_ticks`), and note times
    stay exact in any program that reads the file at that tempo. With ``follow_beats`` (quantized
    tracks, whose grid is the point) the pickup is whole 16ths and its first 16th gets its own tempo,
    so that the file's bar lines fall exactly on the song's (:func:`_constant_map`); and a song whose tracked beats drift from that constant grid (by over
    :data:`DRIFT_S` for :data:`DRIFT_BEATS` beats in a row: a live band speeding up, a rubato intro) gets a tempo map
    instead, one tempo per beat through its smoothed beats, so that the file's beats are the song's."""
    grid = grid or BeatGrid(tempo=DEFAULT_TEMPO)
    constant = _constant_map(grid, exact_pickup=follow_beats)
    if follow_beats and len(grid.beats) >= DRIFT_BEATS:
        smoothed = _smooth_beats(np.asarray(grid.beats, dtype=float))
        follow = _beat_map(grid, smoothed) if _drifts(grid, constant, smoothed) else None
        if follow is not None:
            return follow
    return constant


def quantize(track: NoteTrack, grid: BeatGrid, step: str) -> NoteTrack:
    """Snap every onset to the nearest ``step`` (``"1/16"``...) of the file grid that
    ``write_midi(..., grid, follow_beats=True)`` writes: the grid lines of the DAW that opens the
    file, counted from its bar lines, which follow the song's tracked beats (a tempo map when the
    song's tempo drifts, see :func:`time_map`). Durations are kept.

    Returns a new track; ``track`` is not modified.
    """
    step_ticks = parse_grid(step) * TICKS_PER_BEAT
    if not track.notes:
        return NoteTrack(track.name, [], track.program, track.is_drum)
    tmap = time_map(grid, follow_beats=True)
    ticks = tmap.ticks_at(np.array([n.start for n in track.notes]))
    snapped = tmap.pickup + np.round((ticks - tmap.pickup) / step_ticks) * step_ticks
    snapped = np.where(snapped < 0, snapped + step_ticks, snapped)
    starts = tmap.seconds_at(np.round(snapped))
    notes = []
    for n, t in zip(track.notes, starts):
        t = max(float(t), 0.0)
        notes.append(Note(n.pitch, t, t + max(n.duration, 0.01), n.velocity))
    return NoteTrack(track.name, notes, track.program, track.is_drum).sorted()


def first_bar_line(grid: BeatGrid) -> float | None:
    """Time (s, within the first bar from 0) of the song's bar lines under its constant tempo.

    The beat phase is the circular mean of all tracked beats at ``grid.tempo`` (robust to a few
    misplaced beats); the bar phase is the beat (mod the meter's beats per bar) on which most
    tracked downbeats fall, else the first tracked beat. ``None`` without at least two beats, or when
    the beats do not agree on a phase.
    """
    beats = np.asarray(grid.beats, dtype=float)
    tempo = float(grid.tempo)
    if len(beats) < 2 or not np.isfinite(tempo) or tempo <= 0:
        return None
    num, den = (int(v) for v in grid.time_signature)
    beat_s = 60.0 / tempo * 4.0 / max(den, 1)
    bar_s = max(num, 1) * beat_s
    turns = np.exp(2j * np.pi * beats / beat_s)
    vec = np.mean(turns)
    if abs(vec) < _MIN_PHASE_COHERENCE:
        return None
    # again without the beats more than an eighth of a beat off that phase (the tracker's odd
    # misplaced beat would pull it)
    off = np.abs(np.angle(turns / vec)) / (2 * np.pi) * beat_s
    if np.count_nonzero(off <= beat_s / 8) >= max(2, len(beats) // 2):
        vec = np.mean(turns[off <= beat_s / 8])
    phase = (np.angle(vec) / (2 * np.pi) * beat_s) % beat_s
    marks = np.asarray(grid.downbeats, dtype=float)
    if len(marks) == 0:
        marks = beats[:1]
    which = np.round((marks - phase) / beat_s).astype(int) % max(num, 1)
    j = int(np.bincount(which).argmax())
    return float((phase + j * beat_s) % bar_s)


def pickup_ticks(grid: BeatGrid) -> int:
    """Length (ticks) of the pickup that puts the file's bar lines on the song's: a whole number
    of 64th notes shorter than one bar (0: the song's bars already start at 0, or unknown)."""
    t = first_bar_line(grid)
    if t is None:
        return 0
    num, den = (int(v) for v in grid.time_signature)
    bar_ticks = max(num, 1) * TICKS_PER_BEAT * 4 // max(den, 1)
    ticks = int(round(t * TICKS_PER_BEAT * grid.tempo / 60.0 / _PICKUP_STEP)) * _PICKUP_STEP
    return ticks % bar_ticks


def _pickup_signatures(ticks: int, time_signature: tuple[int, int]) -> list[tuple[int, int, int]]:
    """``(tick, numerator, denominator)`` of the time signatures that open a file whose first bar line
    falls at ``ticks``, then the song's meter: the part of a beat before the song's first beat as a
    bar of 64ths in lowest terms (390 ticks -> 13/64, 360 -> 3/16), then the whole beats before its
    first bar line as a bar of beats (so that those beats fall on the file's), then the meter."""
    num, den = (int(v) for v in time_signature)
    beat = TICKS_PER_BEAT * 4 // max(den, 1)
    out = []
    frac, whole = ticks % beat, ticks // beat
    if frac:
        n, d = frac // _PICKUP_STEP, 64  # (a quantized file's pickup: whole 16ths, e.g. 3/16)
        while n % 2 == 0 and d > 4:
            n, d = n // 2, d // 2
        out.append((0, n, d))
    if whole:
        out.append((frac, whole, den))
    out.append((ticks, num, den))
    return out


def _tracks_to_midifile(tracks: Sequence[NoteTrack], tmap: _TimeMap, time_signature: tuple[int, int]):
    import mido

    mf = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = mido.MidiTrack()
    meta = []  # (tick, order, message): a bar's time signature before its tempo
    previous = None
    for tick, bpm in tmap.tempos():
        us = mido.bpm2tempo(bpm)
        if us != previous:
            meta.append((tick, 1, mido.MetaMessage("set_tempo", tempo=us)))
            previous = us
    for tick, num, den in _pickup_signatures(max(tmap.pickup, 0), time_signature):
        meta.append((tick, 0, mido.MetaMessage("time_signature", numerator=num, denominator=den)))
    last = 0
    for tick, _, msg in sorted(meta, key=lambda e: (e[0], e[1])):
        conductor.append(msg.copy(time=tick - last))
        last = tick
    conductor.append(mido.MetaMessage("end_of_track", time=0))
    mf.tracks.append(conductor)

    channels = iter(c for c in range(16) if c != DRUM_CHANNEL)
    for track in tracks:
        channel = DRUM_CHANNEL if track.is_drum else next(channels, 0)
        mt = mido.MidiTrack()
        mt.append(mido.MetaMessage("track_name", name=track.name, time=0))
        mt.append(mido.Message("program_change", channel=channel, program=int(track.program) & 127, time=0))
        events = []  # (tick, order, message); note-offs sort before note-ons at the same tick
        starts = tmap.ticks_at(np.maximum([n.start for n in track.notes], 0.0))
        ends = tmap.ticks_at(np.maximum([n.end for n in track.notes], 0.0))
        for n, t_on, t_off in zip(track.notes, starts, ends):
            on = max(int(round(t_on)), 0)
            off = max(int(round(t_off)), on + 1)
            pitch = int(np.clip(n.pitch, 0, 127))
            vel = int(np.clip(n.velocity, 1, 127))
            events.append((on, 1, mido.Message("note_on", channel=channel, note=pitch, velocity=vel)))
            events.append((off, 0, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))
        events.sort(key=lambda e: (e[0], e[1]))
        last = 0
        for tick, _, msg in events:
            mt.append(msg.copy(time=tick - last))
            last = tick
        mt.append(mido.MetaMessage("end_of_track", time=0))
        mf.tracks.append(mt)
    return mf


def write_midi(path: str | Path, tracks: Sequence[NoteTrack], grid: BeatGrid | None = None, *,
               follow_beats: bool = False) -> Path:
    """Write ``tracks`` as a type-1 MIDI file at ``path`` (atomically) and return the path.

    The file carries ``grid.tempo`` (120 BPM without a grid) and a 4/4 (or the grid's) time
    signature, after a pickup when the grid's tracked bar lines do not fall on 0
    (:func:`pickup_ticks`); each track gets its name and General MIDI program, drum tracks go to
    channel 10. Note times are the tracks' own either way. ``follow_beats`` (for tracks
    :func:`quantize` snapped): a song whose tempo drifts gets a tempo map through its tracked
    beats instead of one tempo (:func:`time_map`), the grid ``quantize`` snapped to.
    """
    from .atomic import atomic_output

    grid = grid or BeatGrid(tempo=DEFAULT_TEMPO)
    mf = _tracks_to_midifile(tracks, time_map(grid, follow_beats), grid.time_signature)
    path = Path(path)
    with atomic_output(path) as tmp:
        mf.save(str(tmp))
    return path


def open_pretty_midi(path: str | Path):
    """Parse ``path`` with pretty_midi; :class:`BadInputError` when missing or not a MIDI file."""
    import pretty_midi

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such MIDI file")
    try:
        return pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # pretty_midi/mido raise many types for broken files
        raise BadInputError(f"{path}: not a readable MIDI file ({exc.__class__.__name__}: {exc})") from None


def _main_signature(pm) -> tuple[int, int]:
    """The time signature that governs most of a PrettyMIDI file (not a pickup's); 4/4 if none."""
    ts = sorted(pm.time_signature_changes, key=lambda t: t.time)
    if not ts:
        return (4, 4)
    end = max(pm.get_end_time(), ts[-1].time)
    spans = [(b.time if b is not None else end) - a.time for a, b in zip(ts, [*ts[1:], None])]
    best = ts[int(np.argmax(spans))] if max(spans) > 0 else ts[-1]
    return (best.numerator, best.denominator)


def read_midi(path: str | Path) -> tuple[list[NoteTrack], BeatGrid]:
    """Read a MIDI file into note tracks (one per instrument) and its beat grid.

    Raises :class:`BadInputError` when the file is missing or not a MIDI file.
    """
    pm = open_pretty_midi(path)
    tracks = []
    for i, inst in enumerate(pm.instruments):
        notes = [Note(int(n.pitch), float(n.start), float(n.end), int(n.velocity)) for n in inst.notes]
        name = inst.name or ("drums" if inst.is_drum else f"track{i + 1}")
        tracks.append(NoteTrack(name, notes, int(inst.program), bool(inst.is_drum)).sorted())
    times, tempi = pm.get_tempo_changes()
    tempo = float(tempi[0]) if len(tempi) else DEFAULT_TEMPO
    if len(tempi) > 1:  # a tempo map: the tempo that holds for most of the file (a span-weighted median)
        spans = np.diff(np.append(times, max(pm.get_end_time(), times[-1] + 1.0)))
        order = np.argsort(tempi)
        cum = np.cumsum(spans[order])
        tempo = float(tempi[order][np.searchsorted(cum, cum[-1] / 2)])
    try:
        beats = np.asarray(pm.get_beats(), dtype=float)
        downbeats = np.asarray(pm.get_downbeats(), dtype=float)
    except Exception:  # an odd time-signature map; beats are a convenience
        beats = downbeats = np.zeros(0)
    sig = _main_signature(pm)
    return tracks, BeatGrid(tempo=tempo, beats=beats, downbeats=downbeats, time_signature=sig)
