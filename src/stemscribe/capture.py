"""Capture a playable sampler instrument (SFZ + WAV samples) from a recording.

``capture_instrument(audio, *, stem="other", notes=None) -> Capture`` transcribes the recording
(:func:`stemscribe.transcribe.pitched.transcribe_pitched`, or takes the ``notes`` you give), then:

1. keeps the *clean* notes: not part of a chord, no earlier note still held over their onset (and the
   audio just before the onset at least 12 dB below the note's peak), held at least 60 ms before the
   next onset of any note;
2. cuts each from its onset (refined to the sharpest energy rise within ±40 ms of the transcribed
   onset) to the end of its release (where the level falls 50 dB below the note's peak, or to the noise
   floor but at least 30 dB below the peak; at most 2 s after the note ends, never into the next onset);
3. measures the take's pitch by autocorrelation (takes more than 60 cents off the transcribed pitch are
   dropped; the rest keep the recording's tuning, or are corrected to A440 with ``retune``), its
   periodicity and level;
4. gives each take the velocity its level implies (100 for the usual level of its register, more or
   less along the sampler's ``(v/127)^2`` curve), splits these into up to three layers (quantiles) and
   keeps the best take per pitch and layer (most periodic, longest held, with a complete release);
5. finds loop points for sustained takes (held >= 0.15 s, level falling by less than 10 dB/s after the
   attack): a loop end at a rising zero crossing near the end of the held part and a loop start a whole
   number of periods earlier at the lag with the highest autocorrelation, again on a rising zero
   crossing, with a 10 ms crossfade written into the sample so the loop is seamless in any sampler; a
   layer whose take is short and cannot loop borrows a take of that pitch twice as long from another;
6. (pitches never played alone) pulls takes out of chords by harmonic masking, unless ``chords=False``;
7. maps every key up to ``max_shift`` semitones (default 4) from a sampled pitch to the nearest take (the
   sampler pitch-shifts it), per velocity layer, borrowing a neighbouring layer's take where a layer has
   no sample close enough. Keys farther from every take stay unmapped.

``write_instrument(capture, out_dir)`` writes ``out_dir/<name>.sfz`` and ``out_dir/samples/*.wav``
(24-bit PCM) atomically: the folder appears complete or not at all. Region volumes are set so that
playing a take's own velocity reproduces its original level, and the sampler's velocity curve
(``amp_veltrack=100``) scales other velocities around it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import BadArgumentError, BadInputError, OutputError
from .sfz import Instrument, Region, format_sfz
from .types import Audio, Note, NoteTrack, Progress, report_progress

NOTE_NAMES = ("C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A", "As", "B")


@dataclass
class Take:
    """One clean note cut from the recording: ``data`` ``(n,)`` float32 from onset to release end."""

    pitch: int
    velocity: int
    start: float  # seconds in the recording
    held: float  # seconds from onset to note end
    data: np.ndarray
    tune: float = 0.0  # cents to add to play it exactly at ``pitch`` (measured)
    periodicity: float = 0.0  # 0..1, normalised autocorrelation at the period
    level_db: float = -120.0
    release: float = 0.1  # seconds from note end to release end
    release_complete: bool = False
    sustained: bool = False
    loop: tuple[int, int] | None = None  # (start, end) sample indices, end exclusive
    score: float = 0.0
    layer: int = 0
    score_penalty: float = 0.0  # lower priority (taken out of a chord)


@dataclass
class Capture:
    """A captured instrument, its takes and numbers describing how it was made."""

    instrument: Instrument
    takes: list[Take]
    stats: dict = field(default_factory=dict)


def _note_list(notes: NoteTrack | Sequence[Note]) -> list[Note]:
    return list(notes.notes if isinstance(notes, NoteTrack) else notes)


def clean_notes(
    notes: Sequence[Note], *, together: float = 0.03, held_over: float = 0.3, min_held: float = 0.06
) -> list[tuple[Note, float]]:
    """Notes that sound on their own, each with the time its clean part ends.

    A note is kept when no other note starts within ``together`` s of it (a chord), no earlier note is
    still held more than ``held_over`` s past its onset (transcribed note ends include some release, so
    a small overlap is allowed; :func:`cut_takes` also checks the audio before the onset), and its part
    before the next onset of any note lasts at least ``min_held`` s. Returns ``[(note, clean_end)]``
    where ``clean_end = min(note.end, next onset)``.
    """
    ordered = sorted(notes, key=lambda n: n.start)
    starts = np.array([n.start for n in ordered])
    ends = np.array([n.end for n in ordered])
    out = []
    for i, n in enumerate(ordered):
        others = np.ones(len(ordered), dtype=bool)
        others[i] = False
        if np.any(others & (np.abs(starts - n.start) < together)):
            continue
        if np.any(others & (starts < n.start) & (ends > n.start + held_over)):
            continue
        later = starts[others & (starts > n.start)]
        clean_end = min(n.end, float(later.min()) - 0.005) if len(later) else n.end
        if clean_end - n.start >= min_held:
            out.append((n, clean_end))
    return out


def _rms_db(x: np.ndarray, sr: int, win: float, hop: float) -> tuple[np.ndarray, int]:
    """Frame RMS in dB ``(n_frames,)`` and the hop in samples."""
    w = max(int(win * sr), 1)
    h = max(int(hop * sr), 1)
    if len(x) < w:
        return np.array([10 * np.log10(np.mean(x**2) + 1e-12)]), h
    c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    idx = np.arange(0, len(x) - w + 1, h)
    power = (c[idx + w] - c[idx]) / w
    return 10 * np.log10(power + 1e-12), h


def _refine_onset(x: np.ndarray, sr: int, t: float, lo: float) -> float:
    """Time of the sharpest energy rise within ±40 ms of ``t`` (never before ``lo``)."""
    a = max(int((t - 0.04) * sr), int(lo * sr), 0)
    b = min(int((t + 0.04) * sr), len(x))
    if b - a < int(0.01 * sr):
        return t
    seg = x[max(a - int(0.005 * sr), 0) : b]
    db, hop = _rms_db(seg, sr, 0.005, 0.001)
    if len(db) < 3:
        return t
    rise = np.diff(db)
    k = int(np.argmax(rise))
    # frame k + 1 is the first whose window reaches into the new note: the rise happened at its end
    return max(a - int(0.005 * sr), 0) / sr + (k + 1) * hop / sr + 0.005 - hop / sr


def _pitch(seg: np.ndarray, sr: int, pitch: int) -> tuple[float, float]:
    """(cents off ``pitch``, periodicity 0..1) of ``seg`` by normalised autocorrelation near the
    expected period (within ±1 semitone), with parabolic interpolation."""
    f_nom = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    lag_lo = int(math.floor(sr / (f_nom * 2 ** (1.1 / 12))))
    lag_hi = int(math.ceil(sr / (f_nom * 2 ** (-1.1 / 12))))
    if len(seg) < 2 * lag_hi + 8 or lag_lo < 2:
        return 0.0, 0.0
    seg = seg - seg.mean()
    n = len(seg)
    spec = np.fft.rfft(seg, 2 * n)
    ac = np.fft.irfft(np.abs(spec) ** 2)[: lag_hi + 2]
    # normalise by the energy of the overlapping parts so long lags are not penalised
    c = np.cumsum(seg[::-1] ** 2)[::-1]
    e0 = np.sqrt(c[: lag_hi + 2] * c[0]) + 1e-12
    r = ac / e0
    k = lag_lo + int(np.argmax(r[lag_lo : lag_hi + 1]))
    if 0 < k < len(r) - 1:
        y0, y1, y2 = r[k - 1], r[k], r[k + 1]
        den = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / den if den != 0 else 0.0
    else:
        shift = 0.0
    f0 = sr / (k + float(np.clip(shift, -0.5, 0.5)))
    return 1200.0 * math.log2(f0 / f_nom), float(np.clip(r[k], 0.0, 1.0))


def _rising_zero_crossings(x: np.ndarray) -> np.ndarray:
    return np.flatnonzero((x[:-1] < 0) & (x[1:] >= 0)) + 1


def find_loop(data: np.ndarray, sr: int, f0: float, start: int, end: int, *, xfade: float = 0.01) -> tuple[int, int] | None:
    """Loop points ``(loop_start, loop_end)`` inside ``data[start:end]`` for a sustained sound.

    The loop end is the last rising zero crossing before ``end``; the loop start is a rising zero crossing
    a whole number of periods (``sr / f0``) earlier, chosen where the waveform before the two points
    matches best (normalised correlation over ~20 ms), preferring long loops. None when no good loop
    (correlation >= 0.8) exists.
    """
    period = sr / f0
    w = int(max(0.02 * sr, 2 * period))
    zc = _rising_zero_crossings(data[: end])
    zc = zc[(zc >= start + w) & (zc <= end)]
    if len(zc) < 2:
        return None
    le = int(zc[-1])
    ref = data[le - w : le]
    best: tuple[float, int] | None = None
    m_max = int((le - start - w) / period)
    min_len = max(2 * period, 0.03 * sr)
    for m in range(m_max, 0, -1):
        lag = m * period
        if lag < min_len:
            break
        cand = zc[np.argmin(np.abs(zc - (le - lag)))]
        if cand - w < start or cand >= le:
            continue
        other = data[cand - w : cand]
        corr = float(np.dot(ref, other) / (np.linalg.norm(ref) * np.linalg.norm(other) + 1e-12))
        # prefer long loops: a small bonus for length keeps ties from choosing short ones
        value = corr + 0.02 * (le - cand) / max(le - start, 1)
        if best is None or value > best[0]:
            best = (value, int(cand))
    if best is None or best[0] < 0.8:
        return None
    ls = best[1]
    if le - ls < int(2 * xfade * sr) + 2:
        return ls, le
    # crossfade the end of the loop into the material before its start (equal power)
    k = int(xfade * sr)
    t = np.linspace(0.0, 1.0, k, endpoint=False, dtype=np.float32)
    data[le - k : le] = data[le - k : le] * np.cos(t * np.pi / 2) + data[ls - k : ls] * np.sin(t * np.pi / 2)
    return ls, le


def _cut(
    x: np.ndarray, sr: int, n: Note, t0: float, clean_end: float, limit_t: float, noise_db: float,
    bleed_db: float | None, offset: int = 0,
) -> Take | None:
    """One take of note ``n`` from signal ``x`` (which starts at sample ``offset`` of the recording):
    from ``t0`` (s) to the end of the release after ``clean_end``, never past ``limit_t``."""
    a = max(int(round((t0 - 0.003) * sr)) - offset, 0)
    held_end = min(int(round(clean_end * sr)) - offset, len(x))
    if held_end - a < int(0.05 * sr) or a >= len(x):
        return None
    limit = max(min(int(limit_t * sr) - offset, len(x)), held_end)
    db, hop = _rms_db(x[a:limit], sr, 0.01, 0.005)
    peak_db = float(db.max())
    if peak_db < -70.0:
        return None
    # what still sounds just before the onset (an earlier note ringing on) bleeds into the take
    pre = x[max(a - int(0.04 * sr), 0) : max(a - int(0.005 * sr), 0)]
    if bleed_db is not None and len(pre) and 10 * np.log10(np.mean(pre.astype(np.float64) ** 2) + 1e-12) > peak_db - bleed_db:
        return None
    # the noise floor of dense music is the other notes: a release must fall at least 30 dB to count as done
    floor = max(peak_db - 50.0, min(noise_db + 6.0, peak_db - 30.0))
    k0 = max((held_end - a) // hop, 0)
    below = np.flatnonzero(db[k0:] < floor)
    complete = len(below) > 0
    rel_end = a + (k0 + int(below[0])) * hop + hop if complete else limit
    rel_end = int(min(max(rel_end, held_end), limit))
    data = x[a:rel_end].astype(np.float32)
    if len(data) < int(0.05 * sr):
        return None
    fi, fo = int(0.001 * sr), min(int(0.005 * sr), len(data) // 4)
    data[:fi] *= np.linspace(0, 1, fi, endpoint=False, dtype=np.float32)
    data[len(data) - fo :] *= np.linspace(1, 0, fo, dtype=np.float32)
    held = (held_end - a) / sr
    body = data[int(0.03 * sr) : max(int(min(held, 0.6) * sr), int(0.03 * sr))]
    cents, periodicity = _pitch(body, sr, n.pitch)
    return Take(
        pitch=int(n.pitch), velocity=int(np.clip(n.velocity, 1, 127)), start=(a + offset) / sr, held=held,
        data=data, tune=-cents, periodicity=periodicity, level_db=peak_db,
        release=max((rel_end - held_end) / sr, 0.0), release_complete=complete,
    )


def _noise_db(x: np.ndarray, sr: int) -> float:
    db_all, _ = _rms_db(x, sr, 0.05, 0.05)
    return float(np.percentile(db_all, 10)) if len(db_all) else -120.0


def cut_takes(audio: Audio, notes: Sequence[Note], *, bleed_db: float | None = 12.0) -> list[Take]:
    """Cut the clean notes of ``audio`` into :class:`Take` s (see the module docstring).

    Takes whose audio just before the onset is less than ``bleed_db`` below the take's peak are
    dropped (an earlier note still ringing); ``None`` skips that check (monophonic lines, where a
    new note ends the previous one).
    """
    x = audio.mono().astype(np.float32)
    sr = audio.sr
    all_notes = sorted(notes, key=lambda n: n.start)
    onsets = np.array([n.start for n in all_notes] + [math.inf])
    noise_db = _noise_db(x, sr)
    takes = []
    for n, clean_end in clean_notes(all_notes):
        prev_start = max([m.start for m in all_notes if m.start < n.start - 0.03] or [0.0])
        t0 = _refine_onset(x, sr, n.start, prev_start + 0.03)
        nxt = onsets[np.searchsorted(onsets, n.start + 1e-6)]
        limit_t = min(n.end + 2.0, nxt - 0.005 if math.isfinite(nxt) else math.inf)
        take = _cut(x, sr, n, t0, clean_end, limit_t, noise_db, bleed_db)
        if take is not None:
            takes.append(take)
    return takes


def _comb(freqs: np.ndarray, pitch: int, bin_hz: float) -> np.ndarray:
    """Harmonic comb ``(n_bins,)``: Gaussian bumps at the partials of ``pitch`` (about 17 cents wide)."""
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    g = np.zeros_like(freqs)
    for k in range(1, int(freqs[-1] / f0) + 1):
        sigma = max(0.8 * bin_hz, 0.01 * k * f0)
        lo, hi = np.searchsorted(freqs, [k * f0 - 4 * sigma, k * f0 + 4 * sigma])
        g[lo:hi] += np.exp(-0.5 * ((freqs[lo:hi] - k * f0) / sigma) ** 2)
    return np.minimum(g, 1.0)


def chord_takes(
    audio: Audio, notes: Sequence[Note], pitches: Sequence[int] | None = None, *, per_pitch: int = 6
) -> list[Take]:
    """Takes of notes played with others, pulled out of the mix by harmonic masking.

    For each note (of ``pitches`` only, when given; the ``per_pitch`` longest of each pitch) held at
    least 0.1 s, the short-time spectrum
    around it is split between the notes sounding in each frame in proportion to their harmonic
    combs; whatever lies between partials (noise, attack transients) is left out. Thinner than a clean
    take — used only for pitches that have no clean take.
    """
    from scipy.signal import istft, stft

    x = audio.mono().astype(np.float32)
    sr = audio.sr
    n_fft = int(2 ** round(math.log2(sr * 0.093)))
    hop = n_fft // 4
    bin_hz = sr / n_fft
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    all_notes = sorted(notes, key=lambda n: n.start)
    clean = {id(n) for n, _ in clean_notes(all_notes)}
    noise_db = _noise_db(x, sr)
    combs: dict[int, np.ndarray] = {}
    takes = []
    candidates: dict[int, list[Note]] = {}
    for n in all_notes:
        if id(n) in clean or n.end - n.start < 0.1 or (pitches is not None and n.pitch not in pitches):
            continue
        candidates.setdefault(n.pitch, []).append(n)
    chosen = {id(n) for ns in candidates.values() for n in sorted(ns, key=lambda m: m.start - m.end)[:per_pitch]}
    for n in all_notes:
        if id(n) not in chosen:
            continue
        same = [m.start for m in all_notes if m.pitch == n.pitch and m.start > n.start]
        w0 = max(n.start - 0.1, 0.0)
        w1 = min(n.end + 2.0, (min(same) - 0.005) if same else math.inf, len(x) / sr)
        if w1 - w0 < 0.2:
            continue
        a, b = int(w0 * sr), int(w1 * sr)
        _, times, X = stft(x[a:b], fs=sr, window="hann", nperseg=n_fft, noverlap=n_fft - hop, boundary="zeros")
        times = w0 + times
        sounding = [m for m in all_notes if m.start < w1 and m.end + 0.3 > w0]
        total = np.full(X.shape, 0.05, dtype=np.float32)  # the floor leaves non-harmonic energy out
        mine = np.zeros(X.shape, dtype=np.float32)
        for m in sounding:
            if m.pitch not in combs:
                combs[m.pitch] = _comb(freqs, m.pitch, bin_hz).astype(np.float32)
            active = ((times >= m.start - 0.03) & (times <= m.end + 0.3)).astype(np.float32)
            if m is n:
                # this note owns its partials from its onset to the end of the window (its release)
                active = (times >= m.start - 0.03).astype(np.float32)
                mine += combs[m.pitch][:, None] * active[None, :]
            total += combs[m.pitch][:, None] * active[None, :]
        _, y = istft(X * (mine / total), fs=sr, window="hann", nperseg=n_fft, noverlap=n_fft - hop, boundary=True)
        y = np.pad(y, (0, max(b - a - len(y), 0)))[: b - a]
        take = _cut(y, sr, n, n.start, n.end, w1, noise_db, None, offset=a)
        if take is not None:
            take.score_penalty = 0.5
            takes.append(take)
    return takes


def _layer_edges(velocities: np.ndarray, layers: int) -> list[tuple[int, int]]:
    """Velocity ranges ``[(lo, hi)]`` covering 1..127, split at quantiles of ``velocities``.

    Layers need real dynamics: splits closer than 16 velocity steps (about 2.5 dB around velocity
    100) to each other or to the extreme takes are dropped.
    """
    if layers <= 1 or len(velocities) < 3 * layers:
        return [(1, 127)]
    lo_v, hi_v = np.percentile(velocities, [5, 95])
    cuts: list[int] = []
    for c in np.quantile(velocities, np.linspace(0, 1, layers + 1)[1:-1]):
        c = int(round(c))
        if c - max([lo_v, *cuts]) >= 16 and hi_v - c >= 16:
            cuts.append(c)
    bounds = [1] + cuts + [128]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(len(bounds) - 1)]


def capture_instrument(
    audio: Audio,
    *,
    stem: str = "other",
    notes: NoteTrack | Sequence[Note] | None = None,
    max_shift: int = 4,
    layers: int = 3,
    retune: bool = False,
    chords: bool = True,
    name: str = "captured",
    progress: Progress | None = None,
) -> Capture:
    """Build a sampler instrument from the clean notes of a recording ``(channels, n)``.

    ``notes`` (e.g. a known MIDI) skips transcription. Samples keep the recording's own tuning unless
    ``retune``, which corrects each to equal temperament at A440 (the SFZ ``tune``). Raises
    :class:`BadInputError` when the recording has no usable note. With ``chords``, pitches that
    are never played alone are taken out of chords by harmonic masking (:func:`chord_takes`).
    """
    if stem not in ("other", "bass", "vocals", "piano", "guitar"):
        raise BadArgumentError(f"unknown stem {stem!r}; choose other, bass or vocals")
    if not 0 <= max_shift <= 12:
        raise BadArgumentError(f"max_shift must be 0..12 semitones, got {max_shift}")
    if not 1 <= layers <= 8:
        raise BadArgumentError(f"layers must be 1..8, got {layers}")
    if audio.n_samples < audio.sr * 0.05 or not np.isfinite(audio.samples).all():
        raise BadInputError("the recording is too short (or holds invalid samples) to capture an instrument from")
    report_progress(progress, "capture", 0.0)
    if notes is None:
        from .transcribe.pitched import transcribe_pitched

        track = transcribe_pitched(audio, stem=stem, progress=None)
        note_list = track.notes
    else:
        note_list = _note_list(notes)
    report_progress(progress, "capture", 0.5)
    if not note_list:
        raise BadInputError("no notes found in the recording; capture needs a recording of single pitched notes")
    bleed_db = None if stem in ("bass", "vocals") else 12.0
    def usable(found: list[Take]) -> list[Take]:
        return [t for t in found if abs(t.tune) <= 60.0 and t.periodicity >= 0.3]

    takes = usable(cut_takes(audio, note_list, bleed_db=bleed_db))
    n_clean = len(takes)
    if chords:
        missing = sorted({n.pitch for n in note_list} - {t.pitch for t in takes})
        if missing:
            takes += usable(chord_takes(audio, note_list, missing))
    if not takes:
        raise BadInputError(
            f"none of the {len(note_list)} notes found is usable (played alone{' or in a clear chord' if chords else ''}, "
            "held >= 60 ms, in tune); capture needs a recording of one instrument's notes"
        )
    sr = audio.sr
    # Velocities from the measured level, not from the transcription (whose velocities are not
    # calibrated): a take at the usual level of its register (median of takes within 3 semitones) gets
    # velocity 100, louder or softer ones more or less along the sampler's (v/127)^2 curve. Register
    # loudness thus stays a property of the instrument and only playing dynamics make layers.
    pitches = np.array([t.pitch for t in takes])
    levels = np.array([t.level_db for t in takes])
    for t in takes:
        usual = float(np.median(levels[np.abs(pitches - t.pitch) <= 3]))
        t.velocity = int(np.clip(round(100 * 10 ** ((t.level_db - usual) / 40.0)), 1, 127))
    edges = _layer_edges(np.array([t.velocity for t in takes]), layers)
    for t in takes:
        t.layer = next(i for i, (lo, hi) in enumerate(edges) if lo <= t.velocity <= hi)
        t.score = t.periodicity + 0.5 * min(t.held, 1.5) / 1.5 + 0.3 * t.release_complete - t.score_penalty
    best: dict[tuple[int, int], Take] = {}
    for t in takes:
        key = (t.pitch, t.layer)
        if key not in best or t.score > best[key].score:
            best[key] = t
    kept = sorted(best.values(), key=lambda t: (t.pitch, t.layer))
    for t in kept:
        _make_loop(t, sr)
    # a layer's take that is short and cannot loop would cut long notes off: where another layer has a
    # take of that pitch at least twice as long (or looping), that layer borrows it instead
    longest: dict[int, float] = {}
    for t in kept:
        longest[t.pitch] = max(longest.get(t.pitch, 0.0), math.inf if t.loop else t.held)
    kept = [t for t in kept if t.loop or t.held >= 0.5 * longest[t.pitch]]
    peak = max(float(np.max(np.abs(t.data))) for t in kept)
    norm = 0.89 / peak if peak > 0 else 1.0
    for t in kept:
        t.data = t.data * np.float32(norm)
    regions = _map_keys(kept, edges, max_shift, sr, norm, retune)
    instrument = Instrument(name, regions)
    pitches = sorted({t.pitch for t in kept})
    stats = {
        "notes_found": len(note_list),
        "clean_takes": n_clean,
        "chord_takes": len(takes) - n_clean,
        "kept_takes": len(kept),
        "sampled_pitches": pitches,
        "velocity_layers": [list(e) for e in edges],
        "looped_takes": sum(t.loop is not None for t in kept),
        "median_cents_off": round(float(np.median([-t.tune for t in kept])), 1),
        "key_range": list(instrument.key_range()),
        "mapped_keys": int(instrument.mapped_keys().sum()),
    }
    report_progress(progress, "capture", 1.0)
    return Capture(instrument, kept, stats)


def _make_loop(t: Take, sr: int) -> None:
    """Decide whether ``t`` is sustained and, if so, set its loop points.

    Sustained: held at least 0.15 s, and after the attack (peak + 30 ms, at least 60 ms in) the level
    falls by less than 10 dB/s over at least 60 ms.
    """
    held_n = int(t.held * sr)
    if t.held < 0.15:
        return
    db, hop = _rms_db(t.data[:held_n], sr, 0.02, 0.005)
    k_peak = int(np.argmax(db[: max(int(0.3 * sr / hop), 1)]))
    s0 = max(k_peak + int(0.03 * sr / hop), int(0.06 * sr / hop))
    s1 = len(db) - int(0.01 * sr / hop)
    if s1 - s0 < int(0.06 * sr / hop):
        return
    tt = np.arange(s0, s1) * hop / sr
    slope = float(np.polyfit(tt, db[s0:s1], 1)[0])
    if slope < -10.0:
        return
    t.sustained = True
    f0 = 440.0 * 2.0 ** ((t.pitch - 69 - t.tune / 100.0) / 12.0)
    t.loop = find_loop(t.data, sr, f0, s0 * hop, min(held_n - int(0.01 * sr), len(t.data)))


def _map_keys(
    kept: list[Take], edges: list[tuple[int, int]], max_shift: int, sr: int, norm: float, retune: bool
) -> list[Region]:
    """Regions covering keys within ``max_shift`` of a take, per velocity layer."""
    all_pitches = np.array(sorted({t.pitch for t in kept}))
    # takes whose release was not measured (cut by the next note, or a transcription whose note end
    # already includes the release) borrow the typical measured one
    measured = [t.release for t in kept if t.release_complete and t.release >= 0.05]
    default_release = float(np.clip(np.median(measured), 0.05, 2.0)) if measured else 0.25
    lo_key = max(int(all_pitches[0]) - max_shift, 0)
    hi_key = min(int(all_pitches[-1]) + max_shift, 127)
    regions: list[Region] = []
    for li, (vlo, vhi) in enumerate(edges):
        chosen: list[Take | None] = []
        for k in range(lo_key, hi_key + 1):
            cands = [t for t in kept if abs(t.pitch - k) <= max_shift]
            if not cands:
                chosen.append(None)
                continue
            near_any = min(cands, key=lambda t: (abs(t.pitch - k), abs(t.layer - li), t.pitch))
            same = [t for t in cands if t.layer == li]
            near_same = min(same, key=lambda t: (abs(t.pitch - k), t.pitch)) if same else None
            # this layer's take is preferred unless another layer's is much closer in pitch
            if near_same is not None and abs(near_same.pitch - k) <= abs(near_any.pitch - k) + 2:
                chosen.append(near_same)
            else:
                chosen.append(near_any)
        k = lo_key
        while k <= hi_key:
            t = chosen[k - lo_key]
            j = k
            while j + 1 <= hi_key and chosen[j + 1 - lo_key] is t:
                j += 1
            if t is not None:
                regions.append(_region(t, k, j, vlo, vhi, sr, norm, retune, default_release))
            k = j + 1
    return regions


def _region(
    t: Take, lokey: int, hikey: int, lovel: int, hivel: int, sr: int, norm: float, retune: bool, default_release: float
) -> Region:
    release = float(np.clip(t.release, 0.02, 2.0)) if t.release_complete and t.release >= 0.05 else default_release
    # playing the take's own velocity gives back its original level
    vel_gain_db = -40.0 * math.log10(t.velocity / 127.0)
    volume = float(np.clip(vel_gain_db - 20.0 * math.log10(norm), -48.0, 24.0))
    loop_start, loop_end = t.loop if t.loop else (0, 0)
    return Region(
        data=t.data, sr=sr, pitch_keycenter=t.pitch, lokey=lokey, hikey=hikey, lovel=lovel, hivel=hivel,
        tune=float(np.clip(t.tune, -100, 100)) if retune else 0.0, volume=volume, amp_veltrack=1.0,
        release=release,
        loop_mode="loop_sustain" if t.loop else "no_loop", loop_start=loop_start, loop_end=loop_end,
        sample=f"samples/{sample_name(t)}",
    )


def sample_name(t: Take) -> str:
    """File name of a take's sample, e.g. ``C4_v2.wav`` (``s`` for sharp; layer 1 = softest)."""
    return f"{NOTE_NAMES[t.pitch % 12]}{t.pitch // 12 - 1}_v{t.layer + 1}.wav"


def write_instrument(capture: Capture, out_dir: str | Path, *, comment: str = "") -> Path:
    """Write ``out_dir/<name>.sfz`` and ``out_dir/samples/*.wav`` (24-bit); returns the .sfz path.

    The folder is built under a temporary name and renamed into place. An existing folder is replaced
    only when it is empty or holds nothing but ``.sfz`` files and ``samples/`` (an earlier capture);
    otherwise :class:`OutputError` is raised.
    """
    import soundfile as sf

    from .atomic import atomic_dir

    out_dir = Path(out_dir)
    if out_dir.exists() and out_dir.is_dir() and any(out_dir.iterdir()):
        entries = list(out_dir.iterdir())
        looks_like_instrument = any(p.suffix == ".sfz" for p in entries) and all(
            p.suffix == ".sfz" or (p.name == "samples" and p.is_dir()) for p in entries
        )
        if not looks_like_instrument:
            raise OutputError(f"{out_dir} exists and is not an instrument folder; choose a new or empty --out folder")
    inst = capture.instrument
    sr = inst.regions[0].sr
    name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in inst.name) or "captured"
    # regions point at the normalised take arrays; write each take once
    with atomic_dir(out_dir) as tmp:
        (tmp / "samples").mkdir()
        for t in capture.takes:
            sf.write(str(tmp / "samples" / sample_name(t)), np.clip(t.data, -1, 1), sr, subtype="PCM_24")
        (tmp / f"{name}.sfz").write_text(format_sfz(inst, comment=comment), encoding="utf-8")
    return out_dir / f"{name}.sfz"
