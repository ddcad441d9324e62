"""Key detection and chord harmonisation of a melody (HMM + Viterbi).

States are the 24 major/minor triads, written relative to the key's *major* tonic (a minor key
is handled through its relative major, so "vi" is the tonic of a minor song). One frame is half a
bar. The model's tables are learned from POP909's chord annotations by
``training/harmony/learn.py`` and shipped as ``stemscribe/data/harmony/tables.json``:

- ``init`` (24,)           first-frame chord distribution
- ``trans_in`` (24, 24)    chord change inside a bar (first half -> second half)
- ``trans_bar`` (24, 24)   chord change across a bar line
- ``emit`` (24, 12)        melody pitch-class distribution (key-relative) given the chord
- ``cadence`` (24,)        log-ratio P(chord | phrase end) / P(chord): cadence preference
- ``key_profile`` (12,)    melody pitch-class profile relative to the major tonic (key finding)
- ``alpha``, ``beta``, ``gamma``  generative-emission, cadence and classifier weights (validation split)

A bidirectional GRU (``seq.npz``, trained by ``training/harmony/train_seq.py``, run here in numpy)
reads the whole song's per-frame melody features and gives chord posteriors that are added to the
emissions (a hybrid HMM); the learned transitions and cadences then pick the path.

Emission for one frame: ``alpha * sum_pc w[pc] * log emit[state, pc] + gamma * log p_gru(state)``
(+ ``beta * cadence`` at phrase ends), with ``w`` the melody's accent-weighted durations in that
frame (fractions of the frame).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import BadArgumentError
from ..types import BeatGrid, Note

__all__ = [
    "PITCH_NAMES",
    "HarmonyTables",
    "Harmonization",
    "load_tables",
    "parse_key",
    "key_name",
    "state_label",
    "frame_times",
    "melody_weights",
    "phrase_ends",
    "start_pitch_classes",
    "pitch_features",
    "seq_features",
    "load_seq",
    "seq_log_posteriors",
    "detect_key",
    "viterbi",
    "harmonize",
]

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_NAME_TO_PC = {
    "C": 0, "B#": 0, "C#": 1, "DB": 1, "D": 2, "D#": 3, "EB": 3, "E": 4, "FB": 4, "E#": 5, "F": 5,
    "F#": 6, "GB": 6, "G": 7, "G#": 8, "AB": 8, "A": 9, "A#": 10, "BB": 10, "B": 11, "CB": 11,
}
N_STATES = 24  # state s: root = s % 12 (relative to the major tonic), quality = maj if s < 12 else min
_TABLES = Path(__file__).resolve().parents[1] / "data" / "harmony" / "tables.json"
_SEQ = _TABLES.with_name("seq.npz")


@dataclass(frozen=True)
class HarmonyTables:
    """Learned HMM tables (see module docstring for shapes)."""

    init: np.ndarray
    trans_in: np.ndarray
    trans_bar: np.ndarray
    emit: np.ndarray
    cadence: np.ndarray
    key_profile: np.ndarray
    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0
    key_alpha: float = 2.0
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "init": self.init.round(6).tolist(),
            "trans_in": self.trans_in.round(6).tolist(),
            "trans_bar": self.trans_bar.round(6).tolist(),
            "emit": self.emit.round(6).tolist(),
            "cadence": self.cadence.round(6).tolist(),
            "key_profile": self.key_profile.round(6).tolist(),
            "alpha": self.alpha,
            "beta": self.beta,
            "gamma": self.gamma,
            "key_alpha": self.key_alpha,
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, d: dict) -> "HarmonyTables":
        arr = {k: np.asarray(d[k], dtype=float) for k in ("init", "trans_in", "trans_bar", "emit", "cadence", "key_profile")}
        return cls(
            **arr,
            alpha=float(d.get("alpha", 1.0)),
            beta=float(d.get("beta", 1.0)),
            gamma=float(d.get("gamma", 1.0)),
            key_alpha=float(d.get("key_alpha", 2.0)),
            meta=dict(d.get("meta", {})),
        )


@lru_cache(maxsize=4)
def _load_cached(path: str) -> HarmonyTables:
    with open(path, encoding="utf-8") as fh:
        return HarmonyTables.from_json(json.load(fh))


def load_tables(path: str | Path | None = None) -> HarmonyTables:
    """Load the learned tables (the packaged ones by default)."""
    return _load_cached(str(path or _TABLES))


def parse_key(name: str) -> tuple[int, str]:
    """``"A minor"``, ``"Am"``, ``"A:min"``, ``"F# major"``, ``"Bb"`` -> (tonic pitch class, "major"|"minor")."""
    s = name.strip().replace(":", " ").replace("_", " ")
    parts = s.split()
    if not parts:
        raise BadArgumentError(f"unknown key {name!r}: use e.g. 'C major', 'A minor', 'F#m' or 'auto'")
    root = parts[0]
    mode = "major"
    if len(parts) > 1:
        m = parts[1].lower()
        if m in ("min", "minor", "m"):
            mode = "minor"
        elif m not in ("maj", "major"):
            raise BadArgumentError(f"unknown key {name!r}: mode must be major or minor")
    elif len(root) > 1 and root.endswith("m") and root[:-1].upper() in _NAME_TO_PC:
        root, mode = root[:-1], "minor"
    pc = _NAME_TO_PC.get(root[:1].upper() + root[1:].upper().replace("♯", "#").replace("♭", "B"))
    if pc is None:
        raise BadArgumentError(f"unknown key {name!r}: use e.g. 'C major', 'A minor', 'F#m' or 'auto'")
    return pc, mode


def key_name(tonic: int, mode: str) -> str:
    """(9, "minor") -> ``"A minor"``."""
    return f"{PITCH_NAMES[tonic % 12]} {mode}"


def state_label(state: int, major_tonic: int, *, seventh: bool = False) -> str:
    """Harte label of key-relative state ``state`` in the key whose major tonic is ``major_tonic``."""
    root = PITCH_NAMES[(state % 12 + major_tonic) % 12]
    if state < 12:
        return f"{root}:7" if seventh else f"{root}:maj"
    return f"{root}:min"


# ----------------------------------------------------------------------------------------- frames
def frame_times(grid: BeatGrid, t_end: float, *, beats_per_frame: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Frame boundaries (half bars by default) following ``grid``'s beats and downbeats.

    Returns ``(bounds (n_frames + 1,), starts_bar (n_frames,) bool)``: frames start at each
    downbeat and every ``beats_per_frame`` beats after it; the grid is extended at its last beat
    period to cover ``t_end``.
    """
    beats = np.asarray(grid.beats, dtype=float)
    period = 60.0 / max(float(grid.tempo), 1e-3)
    if len(beats) < 2:
        start = beats[0] if len(beats) else 0.0
        beats = start + period * np.arange(max(int(np.ceil((t_end - start) / period)) + 2, 2))
    else:
        last_p = float(np.median(np.diff(beats[-5:])))
        n_more = max(int(np.ceil((t_end - beats[-1]) / last_p)) + 1, 1)
        beats = np.concatenate([beats, beats[-1] + last_p * np.arange(1, n_more + 1)])
    per_bar = int(grid.time_signature[0]) if grid.time_signature[0] > 1 else 4
    down = np.asarray(grid.downbeats, dtype=float)
    if len(down):
        first_down = int(np.argmin(np.abs(beats - down[0])))
        is_down = np.zeros(len(beats), bool)
        for d in down:
            is_down[int(np.argmin(np.abs(beats - d)))] = True
        # extend the bar pattern past the annotated downbeats
        last = int(np.flatnonzero(is_down)[-1])
        is_down[last::per_bar] = True
        is_down[first_down::-per_bar] = True
    else:
        is_down = np.zeros(len(beats), bool)
        is_down[::per_bar] = True
    starts, bar = [], []
    count = 0
    for i in range(len(beats)):
        if is_down[i]:
            count = 0
        if count % beats_per_frame == 0:
            starts.append(i)
            bar.append(bool(is_down[i]) or i == 0)
        count += 1
    idx = np.asarray(starts)
    bounds = beats[idx]
    keep = bounds < t_end
    keep[0] = True
    idx, bounds, bar = idx[keep], bounds[keep], np.asarray(bar)[keep]
    nxt = beats[idx[-1] + beats_per_frame] if idx[-1] + beats_per_frame < len(beats) else beats[-1] + period
    return np.append(bounds, max(nxt, t_end)), bar


def melody_weights(notes: Sequence[Note], bounds: np.ndarray) -> np.ndarray:
    """Beat-weighted pitch-class durations per frame, shape ``(n_frames, 12)`` (units: frames).

    Each note adds its overlap with the frame (as a fraction of the frame), and notes that start
    in the first half of the frame get a 50 % accent bonus.
    """
    n = len(bounds) - 1
    w = np.zeros((n, 12))
    if n <= 0:
        return w
    for note in notes:
        i0 = max(int(np.searchsorted(bounds, note.start, side="right")) - 1, 0)
        i1 = min(int(np.searchsorted(bounds, note.end, side="left")), n)
        pc = int(note.pitch) % 12
        for i in range(i0, i1):
            lo, hi = bounds[i], bounds[i + 1]
            ov = min(note.end, hi) - max(note.start, lo)
            if ov <= 0:
                continue
            acc = 1.5 if lo <= note.start < (lo + hi) / 2 else 1.0
            w[i, pc] += acc * ov / (hi - lo)
    return w


def phrase_ends(notes: Sequence[Note], bounds: np.ndarray, *, rest: float | None = None) -> np.ndarray:
    """Frames that end a melodic phrase, shape ``(n_frames,)`` bool.

    A frame is a phrase end when a note ends in it and the melody then rests for at least
    ``rest`` seconds (default: half a frame), or it holds the last note of the song.
    """
    n = len(bounds) - 1
    out = np.zeros(n, bool)
    if n <= 0 or not notes:
        return out
    rest = rest if rest is not None else 0.5 * float(np.median(np.diff(bounds)))
    ns = sorted(notes, key=lambda x: x.start)
    starts = np.array([x.start for x in ns])
    ends = np.maximum.accumulate(np.array([x.end for x in ns]))
    for k in range(len(ns)):
        nxt = starts[k + 1] if k + 1 < len(ns) else np.inf
        if nxt - ends[k] >= rest:
            i = min(max(int(np.searchsorted(bounds, ends[k] - 1e-6, side="right")) - 1, 0), n - 1)
            out[i] = True
    return out


# ------------------------------------------------------------------------------------------- HMM
def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(p, 1e-12))


def start_pitch_classes(notes: Sequence[Note], bounds: np.ndarray) -> np.ndarray:
    """One-hot pitch class of the note sounding just after each frame starts, ``(n_frames, 12)``."""
    n = len(bounds) - 1
    out = np.zeros((max(n, 0), 12))
    if n <= 0 or not notes:
        return out
    ns = sorted(notes, key=lambda x: x.start)
    st = np.array([x.start for x in ns])
    en = np.array([x.end for x in ns])
    for i in range(n):
        t = bounds[i] + 0.15 * (bounds[i + 1] - bounds[i])
        m = np.flatnonzero((st < t) & (en > t))
        if len(m):
            out[i, ns[m[-1]].pitch % 12] = 1.0
    return out


def pitch_features(notes: Sequence[Note], bounds: np.ndarray) -> np.ndarray:
    """Per-frame pitch details ``(n_frames, 25)``: one-hot pitch class of the note sounding near the
    frame's end, one-hot pitch class of its lowest note, and its mean pitch relative to the
    melody's median (in octaves; 0 without notes). Pitch classes are absolute (roll them to the key).
    """
    n = max(len(bounds) - 1, 0)
    out = np.zeros((n, 25))
    if n == 0 or not notes:
        return out
    ns = sorted(notes, key=lambda x: x.start)
    st = np.array([x.start for x in ns])
    en = np.array([x.end for x in ns])
    pitch = np.array([x.pitch for x in ns], dtype=float)
    med = float(np.median(pitch))
    for i in range(n):
        lo, hi = bounds[i], bounds[i + 1]
        t = lo + 0.85 * (hi - lo)
        m = np.flatnonzero((st < t) & (en > t))
        if len(m):
            out[i, int(pitch[m[-1]]) % 12] = 1.0
        ov = np.flatnonzero((st < hi) & (en > lo))
        if len(ov):
            out[i, 12 + int(pitch[ov].min()) % 12] = 1.0
            out[i, 24] = (pitch[ov].mean() - med) / 12.0
    return out


def seq_features(
    w_rel: np.ndarray, sp_rel: np.ndarray, starts_bar: np.ndarray, ends: np.ndarray, pf_rel: np.ndarray | None = None
) -> np.ndarray:
    """Per-frame inputs of the sequence classifier (key-relative), ``(n_frames, 39)`` or, with the
    key-relative :func:`pitch_features` ``pf_rel``, ``(n_frames, 64)`` (the first 39 columns unchanged)."""
    norm = w_rel / np.maximum(w_rel.sum(axis=1, keepdims=True), 1e-6)
    cols = [
        norm, np.minimum(w_rel, 2.0) / 2.0, sp_rel,
        starts_bar[:, None] * 1.0, ends[:, None] * 1.0, (w_rel.sum(axis=1, keepdims=True) == 0) * 1.0,
    ]
    if pf_rel is not None:
        cols.append(pf_rel)
    return np.hstack(cols)


def roll_pitch_features(pf: np.ndarray, tonic: int) -> np.ndarray:
    """:func:`pitch_features` made relative to a major tonic (both one-hot blocks rolled)."""
    out = pf.copy()
    out[:, :12] = np.roll(pf[:, :12], -tonic, axis=1)
    out[:, 12:24] = np.roll(pf[:, 12:24], -tonic, axis=1)
    return out


@lru_cache(maxsize=2)
def _load_seq_cached(path: str) -> dict[str, np.ndarray] | None:
    if not Path(path).is_file():
        return None
    with np.load(path) as z:
        return {k: z[k].astype(np.float64) for k in z.files}


def load_seq(path: str | Path | None = None) -> dict[str, np.ndarray] | None:
    """The sequence classifier's weights (packaged ``seq.npz`` by default); None if absent."""
    return _load_seq_cached(str(path or _SEQ))


def _gru(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> np.ndarray:
    """PyTorch-convention GRU over ``x (T, in)`` -> ``(T, hidden)``."""
    hsz = w_hh.shape[1]
    h = np.zeros(hsz)
    gi = x @ w_ih.T + b_ih
    out = np.zeros((len(x), hsz))
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    for t in range(len(x)):
        gh = w_hh @ h + b_hh
        r = sig(gi[t, :hsz] + gh[:hsz])
        z = sig(gi[t, hsz:2 * hsz] + gh[hsz:2 * hsz])
        nn = np.tanh(gi[t, 2 * hsz:] + r * gh[2 * hsz:])
        h = (1 - z) * nn + z * h
        out[t] = h
    return out


def _one_model(feats: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    x = np.tanh(feats[:, : w["inp_w"].shape[1]] @ w["inp_w"].T + w["inp_b"])
    f = _gru(x, w["gru_f_weight_ih"], w["gru_f_weight_hh"], w["gru_f_bias_ih"], w["gru_f_bias_hh"])
    b = _gru(x[::-1], w["gru_b_weight_ih"], w["gru_b_weight_hh"], w["gru_b_bias_ih"], w["gru_b_bias_hh"])[::-1]
    z = np.hstack([f, b]) @ w["out_w"].T + w["out_b"]
    z -= z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def seq_log_posteriors(feats: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """Bidirectional-GRU chord log posteriors ``(n_frames, 24)`` for ``seq_features`` rows.

    ``weights`` holds one model (keys ``inp_w``, ...) or an ensemble (keys ``m0_inp_w``, ``m1_...``),
    whose probabilities are averaged.
    """
    prefixes = sorted({k.split("_", 1)[0] for k in weights if k.startswith("m") and k.split("_", 1)[0][1:].isdigit()})
    if not prefixes:
        return _one_model(feats, weights)
    probs = [np.exp(_one_model(feats, {k[len(p) + 1:]: v for k, v in weights.items() if k.startswith(p + "_")}))
             for p in prefixes]
    return np.log(np.maximum(np.mean(probs, axis=0), 1e-12))


def _emission(
    tables: HarmonyTables, w_rel: np.ndarray, ends: np.ndarray, seq_logp: np.ndarray | None = None,
    *, alpha: float | None = None,
) -> np.ndarray:
    """Log emission scores ``(n_frames, 24)`` for key-relative melody weights ``(n_frames, 12)``.

    ``alpha * w . log emit`` (generative) plus, when the sequence classifier's log posteriors
    ``seq_logp (n_frames, 24)`` are given, ``gamma * seq_logp`` (a hybrid emission), plus the
    cadence preference on phrase-end frames.
    """
    em = (tables.alpha if alpha is None else alpha) * (w_rel @ _log(tables.emit).T)
    if seq_logp is not None and tables.gamma:
        em = em + tables.gamma * seq_logp
    return em + tables.beta * ends[:, None] * tables.cadence[None, :]


def viterbi(
    em: np.ndarray, starts_bar: np.ndarray, tables: HarmonyTables
) -> tuple[np.ndarray, float]:
    """Best state path ``(n_frames,)`` and its log score for log emissions ``em (n_frames, 24)``."""
    lt_in, lt_bar = _log(tables.trans_in), _log(tables.trans_bar)
    n = len(em)
    delta = _log(tables.init) + em[0]
    back = np.zeros((n, N_STATES), dtype=np.int64)
    for t in range(1, n):
        lt = lt_bar if starts_bar[t] else lt_in
        cand = delta[:, None] + lt
        back[t] = np.argmax(cand, axis=0)
        delta = cand[back[t], np.arange(N_STATES)] + em[t]
    path = np.zeros(n, dtype=np.int64)
    path[-1] = int(np.argmax(delta))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path, float(delta.max())


def _forward(em: np.ndarray, starts_bar: np.ndarray, tables: HarmonyTables) -> float:
    """Total log likelihood (forward algorithm) of the emissions under the tables."""
    lt_in, lt_bar = _log(tables.trans_in), _log(tables.trans_bar)
    a = _log(tables.init) + em[0]
    for t in range(1, len(em)):
        lt = lt_bar if starts_bar[t] else lt_in
        m = a.max()
        a = np.log(np.exp(a - m) @ np.exp(lt)) + m + em[t]
    m = a.max()
    return float(np.log(np.exp(a - m).sum()) + m)


def detect_key(
    w: np.ndarray, starts_bar: np.ndarray, ends: np.ndarray, tables: HarmonyTables | None = None
) -> int:
    """Major tonic (0..11) of the key that best explains the melody weights ``w (n_frames, 12)``.

    Scores each of the 12 transpositions by the HMM's forward likelihood plus the melody's fit
    to the learned key profile.
    """
    tables = tables or load_tables()
    total = w.sum(axis=0)
    best, best_score = 0, -np.inf
    for k in range(12):
        w_rel = np.roll(w, -k, axis=1)
        score = _forward(_emission(tables, w_rel, ends, alpha=tables.key_alpha), starts_bar, tables)
        score += float(np.roll(total, -k) @ _log(tables.key_profile))
        if score > best_score:
            best, best_score = k, score
    return best


def _mode_of(path: np.ndarray, w_rel: np.ndarray) -> str:
    """'minor' when the vi chord (state 21) frames the song more than the I chord (state 0)."""
    if len(path) == 0:
        return "major"
    edge = np.concatenate([path[:2], path[-2:]])
    score = 2 * (np.sum(edge == 21) - np.sum(edge == 0)) + (np.sum(path == 21) - np.sum(path == 0)) / max(len(path), 1)
    tot = w_rel.sum(axis=0)
    score += 0.5 * np.sign(tot[9] - tot[0]) if tot.sum() else 0.0
    return "minor" if score > 0 else "major"


@dataclass
class Harmonization:
    """Result of :func:`harmonize`.

    ``chords``: ``[(start_s, end_s, harte_label), ...]`` merged over equal neighbours;
    ``frames``: ``(n_frames + 1,)`` frame boundaries; ``states``: ``(n_frames,)`` key-relative states;
    ``starts_bar``: ``(n_frames,)`` bool.
    """

    key: str
    tonic: int
    mode: str
    chords: list[tuple[float, float, str]]
    frames: np.ndarray
    states: np.ndarray
    starts_bar: np.ndarray
    labels: list[str]


def harmonize(
    notes: Sequence[Note],
    grid: BeatGrid,
    *,
    key: str | None = None,
    t_end: float | None = None,
    tables: HarmonyTables | None = None,
    beats_per_frame: int = 2,
    sevenths: bool = True,
    no_chord_outside: bool = False,
    use_seq: bool = True,
    seq_path: str | Path | None = None,
) -> Harmonization:
    """Chords (one per half bar) that fit ``notes`` on ``grid``.

    ``key`` is a key name (``"A minor"``) or None to detect it from the melody. With
    ``sevenths`` a dominant (V) whose frame's melody has the minor seventh is labelled ``X:7``.
    With ``no_chord_outside`` frames before the first and after the last note get ``"N"``.
    ``use_seq`` adds the bidirectional-GRU classifier (``data/harmony/seq.npz``) to the emissions.
    """
    tables = tables or load_tables()
    notes = [n for n in notes if n.end > n.start]
    if t_end is None:
        t_end = max((n.end for n in notes), default=0.0)
    bounds, starts_bar = frame_times(grid, t_end, beats_per_frame=beats_per_frame)
    w = melody_weights(notes, bounds)
    ends = phrase_ends(notes, bounds)
    if notes:
        ends[min(int(np.searchsorted(bounds, max(n.end for n in notes) - 1e-6, side="right")) - 1, len(ends) - 1)] = True
    if key is None:
        major_tonic = detect_key(w, starts_bar, ends, tables)
        mode = None
    else:
        tonic, mode = parse_key(key)
        major_tonic = (tonic + 3) % 12 if mode == "minor" else tonic
    w_rel = np.roll(w, -major_tonic, axis=1)
    seq_logp = None
    weights = load_seq(seq_path) if use_seq else None
    if weights is not None:
        sp_rel = np.roll(start_pitch_classes(notes, bounds), -major_tonic, axis=1)
        pf_rel = roll_pitch_features(pitch_features(notes, bounds), major_tonic)
        seq_logp = seq_log_posteriors(seq_features(w_rel, sp_rel, starts_bar, ends, pf_rel), weights)
    em = _emission(tables, w_rel, ends, seq_logp)
    if mode is not None:
        # a named key: prefer its own tonic chord at the edges
        em[0, 21 if mode == "minor" else 0] += 1.0
        em[-1, 21 if mode == "minor" else 0] += 1.0
    path, _ = viterbi(em, starts_bar, tables)
    if mode is None:
        mode = _mode_of(path, w_rel)
    tonic = (major_tonic - 3) % 12 if mode == "minor" else major_tonic
    labels = []
    for i, s in enumerate(path):
        seventh = sevenths and s == 7 and w_rel[i, 5] > 0.25
        labels.append(state_label(int(s), major_tonic, seventh=seventh))
    if no_chord_outside and notes:
        first = min(n.start for n in notes)
        last = max(n.end for n in notes)
        for i in range(len(labels)):
            if bounds[i + 1] <= first or bounds[i] >= last:
                labels[i] = "N"
    chords: list[tuple[float, float, str]] = []
    for i, lab in enumerate(labels):
        lo, hi = float(bounds[i]), float(bounds[i + 1])
        if chords and chords[-1][2] == lab:
            chords[-1] = (chords[-1][0], hi, lab)
        else:
            chords.append((lo, hi, lab))
    return Harmonization(key_name(tonic, mode), tonic, mode, chords, bounds, path, starts_bar, labels)
