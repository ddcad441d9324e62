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
#: Below this beat-phase coherence (mean resultant length of the beats' phases at the tempo) the
#: tracked beats do not agree on where the beat falls, and the file gets no pickup.
_MIN_PHASE_COHERENCE = 0.5


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


def _grid_positions(grid: BeatGrid, step_beats: float, t_max: float) -> np.ndarray:
    """Times (s) of every grid step from 0 to ``t_max``, following the tracked beats.

    Between tracked beats the steps are spaced evenly; before the first and after the last beat
    they continue at the global tempo.
    """
    beat_len = 60.0 / max(grid.tempo, 1e-3)
    beats = np.asarray(grid.beats, dtype=float)
    if len(beats) < 2:
        beats = np.array([0.0, beat_len]) if len(beats) == 0 else np.array([beats[0], beats[0] + beat_len])
    n_before = int(np.ceil(beats[0] / beat_len)) + 1
    n_after = int(np.ceil(max(t_max - beats[-1], 0.0) / beat_len)) + 2
    ext = np.concatenate(
        [beats[0] - beat_len * np.arange(n_before, 0, -1), beats, beats[-1] + beat_len * np.arange(1, n_after + 1)]
    )
    beat_idx = np.arange(0.0, len(ext) - 1 + 1e-9, step_beats)
    return np.interp(beat_idx, np.arange(len(ext)), ext)


def quantize(track: NoteTrack, grid: BeatGrid, step: str) -> NoteTrack:
    """Snap every onset to the nearest ``step`` (``"1/16"``...) of ``grid``; durations are kept.

    Returns a new track; ``track`` is not modified.
    """
    step_beats = parse_grid(step)
    if not track.notes:
        return NoteTrack(track.name, [], track.program, track.is_drum)
    t_max = max(n.end for n in track.notes) + 1.0
    pos = _grid_positions(grid, step_beats, t_max)
    notes = []
    for n in track.notes:
        t = float(pos[np.argmin(np.abs(pos - n.start))])
        t = max(t, 0.0)
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
    vec = np.mean(np.exp(2j * np.pi * beats / beat_s))
    if abs(vec) < _MIN_PHASE_COHERENCE:
        return None
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
        n, d = frac // _PICKUP_STEP, 64
        while n % 2 == 0 and d > 4:
            n, d = n // 2, d // 2
        out.append((0, n, d))
    if whole:
        out.append((frac, whole, den))
    out.append((ticks, num, den))
    return out


def _tracks_to_midifile(tracks: Sequence[NoteTrack], tempo: float, time_signature: tuple[int, int], pickup: int = 0):
    import mido

    tempo = float(tempo) if tempo and np.isfinite(tempo) and tempo > 0 else DEFAULT_TEMPO
    ticks_per_second = TICKS_PER_BEAT * tempo / 60.0
    mf = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0))
    last = 0
    for tick, num, den in _pickup_signatures(max(pickup, 0), time_signature):
        conductor.append(mido.MetaMessage("time_signature", numerator=num, denominator=den, time=tick - last))
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
        for n in track.notes:
            on = int(round(max(n.start, 0.0) * ticks_per_second))
            off = max(int(round(max(n.end, 0.0) * ticks_per_second)), on + 1)
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


def write_midi(path: str | Path, tracks: Sequence[NoteTrack], grid: BeatGrid | None = None) -> Path:
    """Write ``tracks`` as a type-1 MIDI file at ``path`` (atomically) and return the path.

    The file carries ``grid.tempo`` (120 BPM without a grid) and a 4/4 (or the grid's) time
    signature, after a pickup when the grid's tracked bar lines do not fall on 0
    (:func:`pickup_ticks`); each track gets its name and General MIDI program, drum tracks go to
    channel 10. Note times are the tracks' own either way.
    """
    from .atomic import atomic_output

    grid = grid or BeatGrid(tempo=DEFAULT_TEMPO)
    mf = _tracks_to_midifile(tracks, grid.tempo, grid.time_signature, pickup_ticks(grid))
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
    _, tempi = pm.get_tempo_changes()
    tempo = float(tempi[0]) if len(tempi) else DEFAULT_TEMPO
    try:
        beats = np.asarray(pm.get_beats(), dtype=float)
        downbeats = np.asarray(pm.get_downbeats(), dtype=float)
    except Exception:  # an odd time-signature map; beats are a convenience
        beats = downbeats = np.zeros(0)
    sig = _main_signature(pm)
    return tracks, BeatGrid(tempo=tempo, beats=beats, downbeats=downbeats, time_signature=sig)
