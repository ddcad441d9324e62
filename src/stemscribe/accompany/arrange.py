"""From chords and a beat grid to band parts: held chords, bass, drums and comping.

Every event is placed on a sixteenth-note step of a bar and converted to seconds through the
tracked beats, so the parts follow the singer's tempo drift. Randomness (velocity humanising, fill
choice, occasional variations) comes from one ``numpy.random.Generator`` seeded by the caller, so a
given seed always gives the same arrangement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..types import BeatGrid, Note, NoteTrack
from .harmony import PITCH_NAMES
from .styles import CRASH, KICK, OHAT, SNARE, TOMS, CLAP, Style

__all__ = ["Arrangement", "arrange", "chord_pitch_classes", "extended_beats"]

_PC = {name: i for i, name in enumerate(PITCH_NAMES)}


def chord_pitch_classes(label: str, *, seventh: bool = False) -> list[int]:
    """Pitch classes (root first) of a Harte label ``"A:min"``, ``"G:7"``, ``"C:maj"``; ``[]`` for ``N``."""
    if label == "N" or ":" not in label:
        return []
    root_name, qual = label.split(":", 1)
    root = _PC[root_name]
    third = 3 if qual.startswith("min") else 4
    pcs = [root, (root + third) % 12, (root + 7) % 12]
    if qual == "7":
        pcs.append((root + 10) % 12)
    elif seventh:
        pcs.append((root + (10 if third == 3 else 11)) % 12)
    return pcs


def extended_beats(grid: BeatGrid, t_start: float, t_end: float) -> tuple[np.ndarray, int]:
    """Beats covering ``[t_start, t_end]`` (extended at the edge periods) and the index of a downbeat."""
    beats = np.asarray(grid.beats, dtype=float)
    period = 60.0 / max(float(grid.tempo), 1e-3)
    if len(beats) < 2:
        beats = np.array([0.0, period])
    p0 = float(np.median(np.diff(beats[:5])))
    p1 = float(np.median(np.diff(beats[-5:])))
    n_head = max(int(np.ceil((beats[0] - t_start) / p0)) + 4, 0)
    n_tail = max(int(np.ceil((t_end - beats[-1]) / p1)) + 8, 0)
    ext = np.concatenate([beats[0] - p0 * np.arange(n_head, 0, -1), beats, beats[-1] + p1 * np.arange(1, n_tail + 1)])
    down = np.asarray(grid.downbeats, dtype=float)
    d = float(down[0]) if len(down) else float(beats[0])
    return ext, int(np.argmin(np.abs(ext - d)))


@dataclass
class Arrangement:
    """The band parts and where they play: ``tracks`` (chords, bass, drums, comping), the backing's
    ``start``/``end`` in seconds and the ``chords`` actually played ``[(start, end, label)]``."""

    tracks: list[NoteTrack]
    start: float
    end: float
    chords: list[tuple[float, float, str]]


class _Bar:
    def __init__(self, beats: np.ndarray, first_beat: int, per_bar: int):
        self.beats, self.b0, self.per_bar = beats, first_beat, per_bar

    def t(self, step: float) -> float:
        pos = self.b0 + step * self.per_bar / 16.0
        return float(np.interp(pos, np.arange(len(self.beats)), self.beats))


def _voicing(pcs: list[int], kind: str, prev: list[int] | None, center: int) -> list[int]:
    """MIDI pitches for chord ``pcs`` (root first) in voicing ``kind`` near ``center``."""
    root = pcs[0]
    if kind == "power":
        r = 40 + (root - 40) % 12
        return [r, r + 7, r + 12]
    if kind == "spread":
        r = 43 + (root - 43) % 12
        return [r, r + 7, r + 12 + (pcs[1] - root) % 12] + ([r + 12 + (pcs[3] - root) % 12] if len(pcs) > 3 else [])
    # close / seventh / arp: the inversion nearest the previous voicing (voice leading) or the centre
    best, best_cost = None, np.inf
    for inv in range(len(pcs)):
        order = pcs[inv:] + pcs[:inv]
        base = center - 7 + (order[0] - (center - 7)) % 12
        for shift in (-12, 0):
            notes = [base + shift]
            for pc in order[1:]:
                notes.append(notes[-1] + (pc - notes[-1]) % 12)
            mean = float(np.mean(notes))
            cost = abs(mean - center) + (sum(min(abs(a - b) for b in prev) for a in notes) / len(notes) if prev else 0.0)
            if cost < best_cost:
                best, best_cost = notes, cost
    return best  # type: ignore[return-value]


def arrange(
    chords: Sequence[tuple[float, float, str]],
    grid: BeatGrid,
    style: Style,
    *,
    start: float,
    end: float,
    seed: int = 0,
    melody_center: float | None = None,
) -> Arrangement:
    """Band parts playing ``chords`` on ``grid`` from the bar holding ``start`` through the bar holding
    ``end``, plus a one-bar ending on the last chord.
    """
    rng = np.random.default_rng(seed)
    per_bar = int(grid.time_signature[0]) if grid.time_signature[0] > 1 else 4
    beats, d0 = extended_beats(grid, start, end + 4 * 60.0 / max(grid.tempo, 1e-3))
    # first bar: the last downbeat at or before `start`
    b = d0 - per_bar * int(np.ceil(max(beats[d0] - start, 0.0) / (per_bar * 60.0 / max(grid.tempo, 1e-3))) + 1)
    while b + per_bar < len(beats) and beats[b + per_bar] <= start + 1e-6:
        b += per_bar
    b = max(b, 0)
    bars: list[_Bar] = []
    while b + per_bar < len(beats) and beats[b] < end - 1e-6:
        bars.append(_Bar(beats, b, per_bar))
        b += per_bar
    if b + per_bar >= len(beats):  # guard; extended_beats adds enough beats for the ending bar
        beats = np.concatenate([beats, beats[-1] + np.diff(beats[-2:]) * np.arange(1, per_bar + 2)])
    ending = _Bar(beats, b, per_bar)

    labels = [c for c in chords if c[2] != "N"]

    def chord_at(t: float) -> str:
        for s, e, lab in chords:
            if s - 1e-6 <= t < e - 1e-6:
                return lab
        if labels:
            return labels[-1][2] if t >= labels[-1][0] else labels[0][2]
        return "N"

    center = int(round(min(melody_center - 5, 64))) if melody_center else 62
    center = int(np.clip(center, 55, 66))
    vel = style.velocity
    hum = lambda v: int(np.clip(v + rng.integers(-6, 7), 1, 127))  # noqa: E731
    swing = lambda step: step + (style.swing if step % 4 == 2 else 0.0)  # noqa: E731

    pad, bass, drums, comp = [], [], [], []
    prev_voicing: list[int] | None = None
    arp_i = 0
    n_bars = len(bars)
    for bi, bar in enumerate(bars + [ending]):
        is_end = bar is ending
        bar_t0, bar_t1 = bar.t(0), bar.t(16)
        # chords inside this bar on the 8-step (half-bar) grid
        halves = [chord_at(bar.t(0) + 1e-3), chord_at(bar.t(8) + 1e-3)]
        if is_end:
            halves = [halves[0], halves[0]]
        # -------- held chords
        if style.pad_voicing:
            spans = [(0, 16, halves[0])] if halves[0] == halves[1] or is_end else [(0, 8, halves[0]), (8, 16, halves[1])]
            for s0, s1, lab in spans:
                pcs = chord_pitch_classes(lab)
                if pcs:
                    for p in _voicing(pcs, style.pad_voicing, None, center):
                        pad.append(Note(p, bar.t(s0), bar.t(s1) - 0.01, hum(vel["pad"])))
        if is_end:
            pcs = chord_pitch_classes(halves[0])
            if pcs:
                r = 28 + (pcs[0] - 28) % 12
                bass.append(Note(r, bar_t0, bar_t1, hum(vel["bass"])))
                for p in _voicing(pcs, "close", prev_voicing, center):
                    comp.append(Note(p, bar_t0, bar_t1, hum(vel["comp"])))
            drums += [Note(KICK, bar_t0, bar_t0 + 0.1, 115), Note(CRASH, bar_t0, bar_t0 + 0.1, 110)]
            continue
        # -------- bass
        for k, (step, deg, length) in enumerate(style.bass):
            lab = halves[0] if step < 8 else halves[1]
            pcs = chord_pitch_classes(lab)
            if not pcs:
                continue
            r = 28 + (pcs[0] - 28) % 12  # E1..D#2
            if deg == "R":
                p = r
            elif deg == "5":
                p = r + 7
            elif deg == "8":
                p = r + 12
            else:  # approach: a step below/above the next chord's root
                nxt = chord_pitch_classes(chord_at(bar_t1 + 1e-3)) or pcs
                nr = 28 + (nxt[0] - 28) % 12
                p = nr - 1 if rng.random() < 0.5 else nr + 2
                if nr == r:
                    p = r + 7
            t0 = bar.t(swing(step))
            t1 = bar.t(min(step + length, 16)) - 0.02
            if t1 > t0:
                bass.append(Note(int(p), t0, t1, hum(vel["bass"] - (0 if step % 4 == 0 else 8))))
        # -------- comping
        for step, length in style.comp:
            lab = halves[0] if step < 8 else halves[1]
            pcs = chord_pitch_classes(lab, seventh=style.comp_voicing == "seventh")
            if not pcs:
                continue
            t0, t1 = bar.t(swing(step)), bar.t(min(step + length, 16)) - 0.015
            if style.comp_voicing == "arp":
                v = _voicing(pcs, "close", prev_voicing, center)
                seq = v + [v[1] + 12] if len(v) >= 2 else v
                order = [0, 1, 2, 3, 2, 1] if len(seq) >= 4 else list(range(len(seq)))
                p = seq[order[arp_i % len(order)]]
                arp_i += 1
                comp.append(Note(int(p), t0, t1, hum(vel["comp"] - (0 if step % 4 == 0 else 10))))
                prev_voicing = v
            else:
                v = _voicing(pcs, style.comp_voicing, prev_voicing, center)
                prev_voicing = v
                for p in v:
                    comp.append(Note(int(p), t0, t1, hum(vel["comp"] - (0 if step % 4 == 0 else 6))))
        # -------- drums (with a fill closing each group of bars, a crash opening the next)
        fill_bar = (bi + 1) % style.fill_every == 0 or bi == n_bars - 1
        fill = style.fills[int(rng.integers(len(style.fills)))] if fill_bar else None
        fill_from = 12 if fill in ("snare", "clap") else 8
        for note, hits in style.drums.items():
            for step, v in hits:
                if fill and step >= fill_from and note not in (KICK,):
                    continue
                t0 = bar.t(swing(step))
                drums.append(Note(note, t0, t0 + 0.08, hum(v)))
        if bi % style.fill_every == 0 and bi > 0:
            drums.append(Note(CRASH, bar_t0, bar_t0 + 0.1, hum(105)))
        if fill:
            for j, step in enumerate(range(fill_from, 16)):
                if fill == "toms":
                    p = TOMS[min(j * len(TOMS) // (16 - fill_from), len(TOMS) - 1)]
                else:
                    p = SNARE if fill == "snare" else CLAP
                t0 = bar.t(step)
                drums.append(Note(p, t0, t0 + 0.08, hum(70 + 5 * j)))
        elif rng.random() < 0.15 and OHAT not in style.drums:
            t0 = bar.t(14)
            drums.append(Note(OHAT, t0, t0 + 0.1, hum(70)))

    played = []
    for bar in bars + [ending]:
        for s0, s1 in ((0, 8), (8, 16)):
            lab = chord_at(bar.t(0) + 1e-3) if bar is ending else chord_at(bar.t(s0) + 1e-3)
            lo, hi = bar.t(s0), bar.t(s1)
            if played and played[-1][2] == lab and abs(played[-1][1] - lo) < 1e-6:
                played[-1] = (played[-1][0], hi, lab)
            else:
                played.append((lo, hi, lab))
    t_start = max(bars[0].t(0) if bars else ending.t(0), 0.0)
    played = [(max(s, 0.0), e, lab) for s, e, lab in played if e > 0]
    clip = lambda ns: [n for n in ns if n.start >= 0.0]  # noqa: E731
    tracks = []
    if pad:
        tracks.append(NoteTrack("chords", clip(pad), style.programs["pad"]))
    tracks.append(NoteTrack("bass", clip(bass), style.programs["bass"]))
    tracks.append(NoteTrack("drums", clip(drums), 0, is_drum=True))
    tracks.append(NoteTrack("comping", clip(comp), style.programs["comp"]))
    return Arrangement([t.sorted() for t in tracks], t_start, ending.t(16), played)
