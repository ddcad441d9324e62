"""Drum stem → General MIDI drum notes, by signal processing (no model is available offline).

Method
------
1. Mono at 44.1 kHz (hi-hats live above 10 kHz, where a snare has little energy), a 96-band mel
   magnitude spectrogram ``M`` ``(96, T)`` at 5.8 ms hops, level-normalised, taken in blocks.
2. Onsets: peaks of a log-mel superflux with an adaptive (local mean) threshold, plus peaks of
   the flux above 5 kHz alone (soft hats under a crash).  Deliberately sensitive: step 4 drops
   onsets that hold no drum.
3. For every onset, the spectrum it *added* (``max(M[t..t+2]) - M[t-2]`` per band, additive
   across simultaneous hits) is decomposed by semi-adaptive KL-NMF into three families: kick,
   snare, hi-hat/cymbal.  The templates start from generic spectral shapes and adapt to the
   song's kit (kick and snare only below the hi-hat octaves), so kick + hat or snare + hat on one
   onset come out as two hits.
4. A family is present when its activation reaches a fraction of the song's typical hit of that
   family (floored against the loudest events, so an absent family's leakage is never promoted),
   with stricter thresholds where one family is known to leak into another (a kick's click into
   the snare, a crash's wash into the snare, cymbal flutter into the hi-hat).
5. High hits are split by how long their added 8-20 kHz energy rings: closed hi-hat 42, open
   hi-hat 46 (long next to the song's shortest hats), crash 49 (longer still, or loud).
6. Ride 51: of the short high hits, those whose stick attack drops fast into a wash that rings
   on (-15 dB vs -25 dB decay times), that lift the high band less over what was ringing, and
   whose 2-9 kHz partials persist (a closed hat is noise), by a linear score fitted on the true
   and separated drum stems of rendered songs (``benchmarks/ride_fit.py``), taken as the median
   over neighbouring hits because a time keeper stays on one cymbal for a while.
7. Toms: the song's snare is the snare-like pitch heard throughout the song (fills crowd one
   stretch); an onset with some kick/snare energy that rings clearly longer than that snare or
   sits at a pitch far from it (and from the kick) is a tom (low 45 / mid 47 / high 50 by shell
   pitch); one as loud as a full snare must ring longer (a far pitch lowers the bar).  A snare is kept under a tom when its wire
   band (2-6 kHz, 30-80 ms on) buzzes like the song's snares.  In a separated stem (the song's
   other stems given) a tom needs another tom within 0.6 s (a fill); a lone one keeps the kick,
   snare or hi-hat it would have replaced.
8. Velocity from the family activation (band energy) on a 40·log10 curve, the song's typical hit
   of a family at a conventional velocity (kick/snare 110, hi-hat 90, toms 105).
9. Bleed (only when the song's other stems are given): step 2 is level-blind, so the attacks of
   a guitar or piano left in a separated drum stem make "hits" even where no drum plays. A hit
   adds energy in its family's band (kick 30-150 Hz, snare 150 Hz-5 kHz, toms 60 Hz-2 kHz,
   hi-hats and cymbals 5-20 kHz); a drum's does so well above what the other stems hold in that
   band, leakage typically some 20 dB below it. Hits are dropped where the upper quartile of that ratio
   over the hits within 4 s stays under -12 dB (one strong hit nearby marks drums as playing).

Not detected: ride bell (written as ride 51), pedal hi-hat (written as closed), floor toms
tuned near the kick (come out as kicks), splash/china (crash or open hi-hat).  Rides under a
ringing crash often come out as hi-hats; toms much louder than the snares can take over the
snare reference.  Numbers: ``docs/drums.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from stemscribe.dsp import mel_filters, mel_frequencies, stft, window_percentile
from stemscribe.errors import BadArgumentError, BadInputError
from stemscribe.types import Audio, Note, NoteTrack, Progress, report_progress

KICK, SNARE, CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 36, 38, 42, 44, 46
LOW_TOM, MID_TOM, HIGH_TOM, CRASH, RIDE = 45, 47, 50, 49, 51

_SR = 44100
_N_FFT = 1024
_HOP = 256
_N_MELS = 96
_FMIN, _FMAX = 30.0, 20000.0
_FPS = _SR / _HOP
#: The decomposition's families, in template order.
_FAMILIES = ("kick", "snare", "hat")
#: A family is present in an event when its activation exceeds this fraction of the family's
#: typical (95th percentile) hit; leakage from the other families stays well below.
_PRESENT = {"kick": 0.25, "snare": 0.25, "hat": 0.1}
#: A family's typical hit is at least this fraction of its loudest.
_RARE = 0.4
#: Lower bound of each family's reference level, as a fraction of the loudest events' total.
_FLOOR = np.array([0.06, 0.12, 0.04])
#: Decay (s, -15 dB) of the high band above which a hit is an open hi-hat, a crash, or — when
#: it is at least _LOUD_CRASH times the typical hi-hat — a crash already from _LOUD_CRASH_DECAY.
_OPEN_DECAY, _CRASH_DECAY, _LOUD_CRASH_DECAY, _LOUD_CRASH = 0.17, 0.8, 0.45, 0.7
#: ... and open hi-hats also ring this many times longer than the song's short (25th percentile) hits.
_OPEN_VS_CLOSED = 2.5
#: How much a kick or snare onset must raise its family's bands (dB).
_MIN_RISE_DB = 3.0
#: How much a hi-hat or cymbal onset must raise the 8-20 kHz band (dB).
_HAT_RISE_DB = 2.0
#: Frequencies (Hz) below which the kick, snare and hi-hat templates adapt to the song.
_ADAPT_BELOW_HZ = (6000.0, 9000.0, 30000.0)
#: A snare on the same onset as a kick must reach this fraction of the song's typical snare.
_SNARE_WITH_KICK = 0.55
#: A kick on the same onset as a confident snare must reach this fraction of the typical kick.
_KICK_WITH_SNARE = 0.4
#: Tom detection: confident snares and kicks (fraction of typical) set their pitches; an onset
#: with a weak kick share and less than a full snare whose body is more than this many
#: semitones away from both is a tom.
_CONFIDENT, _WEAK_KICK, _TOM_SEMITONES, _SNARE_WITH_TOM = 0.6, 0.5, 3.5, 0.75
#: A hit with a strong kick share is a tom only this many semitones away from the kick's pitch.
_TOM_FROM_KICK = 6.0
#: ... and one at the kick's pitch (or below _MIN_TOM_HZ) only when its kick share is below this
#: fraction of its snare share (the decomposition hears no kick in it).
_KICKY = 0.3
#: A tom's onset must carry at least this kick or snare share; a hi-hat on it must be this strong.
_TOM_SHELL, _HAT_WITH_TOM = 0.2, 1.2
#: How many confident hits set the snare and kick pitches.
_PITCH_SAMPLES = 80
#: Snare-like hits within this many semitones of the most common pitch make up the snare.
_SNARE_CLUSTER = 1.0
#: ... counting the stretches of this many seconds in which it is played, then how often.
_SNARE_STRETCH_S = 2.0
#: A hit as loud as a full snare is a tom only when it also rings this much (dB) longer.
_LOUD_TOM_SUSTAIN_DB = 1.5
#: A tom hit holds a snare too when its wire band (frames after onset) is within this many dB of
#: the song's snares'.
_WIRES_DB, _WIRE_FRAMES = -3.0, (5, 14)
#: A tom rings this much (dB) longer than the song's snare, or this many times the spread of the
#: snare's own sustain if more, measured over these frames after onset.
_TOM_SUSTAIN_DB, _SPREAD_K = 2.5, 3.0
_SUSTAIN_FRAMES = (10, 20)
#: In a separated drum stem a tom needs another tom hit within this many seconds (a fill): there,
#: lone "toms" are mostly kicks and snares whose shells went to the bass stem, or bleed.  None:
#: every tom is kept (``benchmarks/drums_fill_gap.py`` compares).
_FILL_GAP_S: float | None = 0.6
#: Lowest tom body frequency (Hz) of a hit with a kick share; below it is kick territory.
_MIN_TOM_HZ = 70.0
_BODY_N = 4096
#: A snare under a crash must reach this fraction of the song's typical snare.
_SNARE_UNDER_CRASH = 0.5
_NOTE_LENGTH = 0.1
#: Ride detection (:func:`_ride_scores`): weights of partial persistence, ln -15 dB decay,
#: ln -25 dB decay, high-band rise (dB / 10, at most 4) and a constant, fitted by logistic
#: regression on the true *and* lite-separated drum stems of 60 rendered POP909 songs
#: (``benchmarks/ride_fit.py``; separation blurs a ride's wash, and weights fitted on clean kits
#: read most separated rides as hi-hats); the median is taken over this many hits either side.
_RIDE_WEIGHTS = (3.94, -2.16, 2.67, -0.57, 0.2)
_RIDE_NEIGHBOURS = 10
#: Partial persistence: two _PING_N-sample spectra _PING_GAP samples apart, from _PING_DELAY s
#: after the onset, compared within _PING_BAND (Hz).
_PING_N, _PING_GAP, _PING_DELAY, _PING_BAND = 2048, 2048, 0.015, (2000.0, 9000.0)
#: MIDI velocity of a family's typical hit: levels are measured within a family (the families'
#: band energies are not comparable), then placed where drum parts usually sit.
_TYPICAL_VELOCITY = {"kick": 110, "snare": 110, "hat": 90, "tom": 105}
#: A high-band onset this far (s) from every broadband onset is a hit of its own.
_SEPARATE_ONSETS = 0.05
#: STFT frames per block (about 35 s) to bound memory on long inputs.
_BLOCK_FRAMES = 6000
#: Frames of look-ahead when measuring what an onset added, and the reference frame before it.
_ATTACK, _BEFORE = 3, 2
#: Bleed gate (step 9): the band (Hz) in which a hit of each GM note adds its energy ...
_BLEED_BANDS = {KICK: (30.0, 150.0), SNARE: (150.0, 5000.0), LOW_TOM: (60.0, 2000.0), MID_TOM: (60.0, 2000.0),
                HIGH_TOM: (60.0, 2000.0)}
_METAL_BAND = (5000.0, 20000.0)
#: ... the level (dB) against the other stems' in that band under which the upper quartile
#: (_BLEED_QUANTILE) of the hits within _BLEED_WINDOW_S seconds marks them all as bleed. Measured
#: with ``benchmarks/drums_bleed.py``: in drumless remixes of 61 songs it drops about half of the
#: ghost hits, and it keeps at least 99 % of the real hits found in the separated drum stems.
_BLEED_DB, _BLEED_QUANTILE, _BLEED_WINDOW_S = -12.0, 75.0, 4.0


def transcribe_drums(
    audio: Audio, *, others: Mapping[str, Audio] | None = None, progress: Progress | None = None
) -> NoteTrack:
    """Transcribe a drum stem into GM drum notes with velocities; notes last 0.1 s.

    Kick 36, snare 38, closed / open hi-hat 42 / 46, toms 45 / 47 / 50, crash 49, ride 51 (see the
    module notes for what is not detected).  ``audio`` may have any sample rate and channel count; its
    level does not matter.  Silence gives an empty track.  ``others``: the other separated stems of
    the same song (``bass``/``other``/``vocals``...; ``drums`` and ``mixture`` entries are ignored);
    hits that are their attacks leaking into the drum stem are then dropped (module notes, step 9).
    Progress events: ``{"stage": "transcribe", "stem": "drums", "fraction": ...}``.
    """
    if others is not None and not isinstance(others, Mapping):
        raise BadArgumentError("others must map stem names to Audio, e.g. {'bass': audio}")
    for name, a in (others or {}).items():
        if a is not None and not isinstance(a, Audio):
            raise BadInputError(f"stem {name!r} must be an Audio (samples (channels, n) and sr)")
    report_progress(progress, "transcribe", 0.0, stem="drums")
    track = NoteTrack("drums", [], program=0, is_drum=True)
    from stemscribe.transcribe.tempo import mono_at

    x = mono_at(audio, _SR)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if x.size < _N_FFT or peak < 1e-4:
        report_progress(progress, "transcribe", 1.0, stem="drums")
        return track
    M, high, freqs = _spectrogram(x / peak)
    report_progress(progress, "transcribe", 0.3, stem="drums")
    frames = _onset_frames(M, freqs)
    if frames.size == 0:
        report_progress(progress, "transcribe", 1.0, stem="drums")
        return track
    added = _added_energy(M, frames)
    W, A = _decompose(added, freqs)
    report_progress(progress, "transcribe", 0.7, stem="drums")
    low = M[(freqs > 60) & (freqs < 400)].sum(axis=0)
    wires = M[(freqs > 2000) & (freqs < 6000)].sum(axis=0)
    rest = [a for name, a in (others or {}).items() if a is not None and name not in ("drums", "mixture")]
    notes = _notes(frames, A, _rise_db(M, frames, added, W), high, low, wires, x / peak, lone_toms=not rest)
    if rest and notes:
        y = np.zeros(x.size, dtype=np.float32)
        for a in rest:
            z = mono_at(a, _SR)[: x.size]
            y[: z.size] += z
        notes = _drop_bleed(notes, M, _spectrogram(y / peak)[0], freqs)
    track.notes = notes
    report_progress(progress, "transcribe", 1.0, stem="drums")
    return track.sorted()


def _spectrogram(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mel magnitudes ``(n_mels, T)``, 8-20 kHz power per frame ``(T,)`` and mel band centres (Hz).

    The STFT is taken in blocks so a long song never holds its full complex spectrogram.
    """
    fb = mel_filters(sr=_SR, n_fft=_N_FFT, n_mels=_N_MELS, fmin=_FMIN, fmax=_FMAX, norm=None)  # float32
    freqs = mel_frequencies(_N_MELS + 2, fmin=_FMIN, fmax=_FMAX)[1:-1]
    bins = np.arange(_N_FFT // 2 + 1) * _SR / _N_FFT
    high_bins = (bins >= 8000) & (bins < 20000)
    n_frames = 1 + x.size // _HOP
    M = np.empty((_N_MELS, n_frames), dtype=np.float32)
    high = np.empty(n_frames)
    pad = _N_FFT // 2
    xp = np.pad(x, (pad, pad + _N_FFT))
    for start in range(0, n_frames, _BLOCK_FRAMES):
        stop = min(n_frames, start + _BLOCK_FRAMES)
        seg = xp[start * _HOP : (stop - 1) * _HOP + _N_FFT]
        mag = np.abs(stft(seg, n_fft=_N_FFT, hop_length=_HOP, center=False))[:, : stop - start]
        M[:, start:stop] = fb @ mag
        high[start:stop] = np.square(mag[high_bins], dtype=np.float64).sum(axis=0)
    return M, high, freqs


def _drop_bleed(notes: list[Note], M: np.ndarray, Mo: np.ndarray, freqs: np.ndarray) -> list[Note]:
    """Drop the hits that the other stems' attacks leave in the drum stem (module notes, step 9).

    ``M``, ``Mo``: mel magnitudes ``(n_mels, T)`` of the drum stem and of the other stems' sum, on
    one scale.
    """
    T = M.shape[1]
    ratio = np.empty(len(notes))
    for i, n in enumerate(notes):
        f = min(int(round(n.start * _FPS)), T - 1)
        lo, hi = _BLEED_BANDS.get(n.pitch, _METAL_BAND)
        band = (freqs >= lo) & (freqs < hi)
        added = float(M[band, f : f + _ATTACK].max(axis=1).sum() - M[band, max(f - _BEFORE, 0)].sum())
        theirs = float(Mo[band, f : f + _ATTACK].max(axis=1).sum())
        ratio[i] = 20 * np.log10(max(added, 1e-9) / (theirs + 1e-9))
    keep = window_percentile(np.array([n.start for n in notes]), ratio, _BLEED_WINDOW_S, _BLEED_QUANTILE) >= _BLEED_DB
    return [n for n, k in zip(notes, keep) if k]



def _moving(x: np.ndarray, size: int, fn: str, axis: int = -1) -> np.ndarray:
    from scipy import ndimage

    if fn == "max":
        return ndimage.maximum_filter1d(x, size, axis=axis, mode="nearest")
    return ndimage.uniform_filter1d(x, size, axis=axis, mode="nearest")


def _peaks(flux: np.ndarray, min_gap: int) -> np.ndarray:
    """Local maxima of an onset function ``flux`` ``(T,)`` above an adaptive threshold."""
    if not np.any(flux > 0):
        return np.zeros(0, dtype=int)
    floor = 0.04 * float(np.percentile(flux[flux > 0], 99))
    thresh = np.maximum(floor, 1.2 * _moving(flux, int(_FPS), "mean"))
    return np.flatnonzero((flux == _moving(flux, 2 * min_gap + 1, "max")) & (flux > thresh))


def _onset_frames(M: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Frames of drum onsets ``(n_events,)`` from log-mel superflux of ``M`` ``(n_mels, T)``.

    Peaks are picked in the whole spectrum and, separately, above 5 kHz, so that a soft hi-hat
    under a ringing crash or between loud hits still makes an onset.
    """
    L = np.log1p(M * (1000.0 / (float(M.max()) + 1e-12)))
    ref = _moving(L, 3, "max", axis=0)
    diff = np.zeros_like(L)
    diff[:, 1:] = np.maximum(0.0, L[:, 1:] - ref[:, :-1])
    min_gap = round(0.03 * _FPS)
    main = _peaks(diff.mean(axis=0), min_gap)
    high = freqs > 5000
    extra = _peaks(diff[high].mean(axis=0), min_gap) if np.any(high) else np.zeros(0, dtype=int)
    # A high-band onset counts only away from the broadband ones (it is usually the same hit,
    # peaking a frame or two apart).
    if main.size and extra.size:
        nearest = np.min(np.abs(extra[:, None] - main[None, :]), axis=1)
        extra = extra[nearest > _SEPARATE_ONSETS * _FPS]
    out: list[int] = []
    for f in np.unique(np.concatenate([main, extra])):
        if not out or f - out[-1] > min_gap:
            out.append(int(f))
    return np.asarray(out, dtype=int)


def _added_energy(M: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Magnitude each onset adds, per mel band: ``(n_mels, n_events)``."""
    T = M.shape[1]
    after = np.stack([M[:, f : min(T, f + _ATTACK)].max(axis=1) for f in frames], axis=1)
    before = M[:, np.clip(frames - _BEFORE, 0, T - 1)]
    return np.maximum(0.0, after - before)


def _rise_db(M: np.ndarray, frames: np.ndarray, added: np.ndarray, W: np.ndarray) -> np.ndarray:
    """How much each onset raised each family's bands (dB), weighting bands by its template: ``(3, N)``.

    Fluctuations of a steady noise lift no family by more than ~2 dB; a drum hit lifts its own
    bands by several.
    """
    before = M[:, np.clip(frames - _BEFORE, 0, M.shape[1] - 1)] * (frames >= _BEFORE)
    w = (W / W.max(axis=0, keepdims=True)).T
    return 10 * np.log10((w @ (before + added) + 1e-12) / (w @ before + 1e-12))


def _prior_templates(freqs: np.ndarray) -> np.ndarray:
    """Generic spectra ``(n_mels, 3)`` of kick, snare and hi-hat/cymbal, each summing to 1.

    Shapes are spectral densities (dB per Hz) times the mel band widths, so they do not depend
    on how many bands cover a region.
    """
    lf = np.log2(np.maximum(freqs, 1.0))
    width = np.gradient(freqs)

    def bump_db(centre: float, octaves: float) -> np.ndarray:
        return -12.0 * ((lf - np.log2(centre)) / octaves) ** 2

    def shape(db: np.ndarray) -> np.ndarray:
        return 10 ** (db / 20.0) * width

    kick = shape(np.maximum(bump_db(65, 0.8), -62.0 + bump_db(3000, 2.0)))
    snare = shape(np.maximum(bump_db(200, 0.5), -24.0 + bump_db(3000, 1.2)))
    hat = shape(np.minimum(0.0, -8.0 * (np.log2(9000) - lf)) + np.where(lf > np.log2(16000), -6.0, 0.0))
    W = np.stack([kick, snare, hat], axis=1)
    return (W / W.sum(axis=0, keepdims=True)).astype(np.float64)


def _decompose(added: np.ndarray, freqs: np.ndarray, n_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Semi-adaptive KL-NMF of onset spectra ``added (F, N) ≈ W (F, 3) @ A (3, N)``.

    The templates start at the priors and are blended towards the song's kit over the
    iterations (the first ten fit activations only), so each family keeps its role.
    """
    eps = 1e-12
    W0 = _prior_templates(freqs)
    # Where each family may adapt: kicks and snares nearly always sound together with a hi-hat,
    # so letting them learn the top octaves would fold the hat into them.
    free = freqs[:, None] < np.array(_ADAPT_BELOW_HZ)[None, :]
    W = W0.copy()
    V = added.astype(np.float64) + eps
    A = np.full((W.shape[1], V.shape[1]), float(V.mean()) + eps)
    ones = np.ones_like(V)
    for it in range(n_iter):
        A *= (W.T @ (V / (W @ A + eps))) / (W.T @ ones + eps)
        if it >= 10:
            Wn = W * ((V / (W @ A + eps)) @ A.T) / (ones @ A.T + eps)
            Wn /= Wn.sum(axis=0, keepdims=True) + eps
            # Outside its free region a template keeps the prior's level relative to the rest.
            scale = (Wn * free).sum(axis=0) / ((W0 * free).sum(axis=0) + eps)
            Wn = np.where(free, Wn, W0 * scale)
            Wn /= Wn.sum(axis=0, keepdims=True) + eps
            alpha = min(1.0, (it - 10) / (0.6 * n_iter))
            W = (1 - alpha) * W0 + alpha * Wn
    for _ in range(20):
        A *= (W.T @ (V / (W @ A + eps))) / (W.T @ ones + eps)
    return W, A


def _decay_time(env: np.ndarray, frame: int, drop_db: float = 15.0, limit_s: float = 1.5) -> float:
    """Seconds until what an onset at ``frame`` added to ``env`` ``(T,)`` has decayed by ``drop_db``.

    Measured above the level just before the onset, so a hi-hat over a ringing crash stays short.
    """
    n = env.size
    if frame >= n:
        return 0.0
    before = env[frame - _BEFORE] if frame >= _BEFORE else 0.0
    p = frame + int(np.argmax(env[frame : min(n, frame + _ATTACK + 1)]))
    stop = min(n, p + int(limit_s * _FPS))
    target = before + max(env[p] - before, 0.0) * 10 ** (-drop_db / 10) + 1e-20
    below = np.flatnonzero(env[p:stop] < target)
    return (below[0] if below.size else stop - p) / _FPS


def _velocity(strength: np.ndarray, ref: float, typical: int) -> np.ndarray:
    """Velocities 1..127 from hit strengths ``(n,)`` on a 40·log10 curve; ``ref`` maps to ``typical``."""
    db = 20 * np.log10(np.maximum(strength, 1e-12) / (ref + 1e-12))
    return np.clip(np.round(typical * 10 ** (db / 40)), 1, 127).astype(int)


def _body_spectrum(x: np.ndarray, frame: int) -> np.ndarray:
    """Log magnitude spectrum ``(_BODY_N // 2 + 1,)`` of the 93 ms from onset ``frame``."""
    start = max(0, frame * _HOP - _N_FFT // 4)
    seg = x[start : start + _BODY_N]
    seg = np.pad(seg, (0, _BODY_N - seg.size)) * np.hanning(_BODY_N)
    return np.log(np.abs(np.fft.rfft(seg)) + 1e-12)


def _body_pitch(spec: np.ndarray) -> float:
    """Frequency (Hz) of the strongest partial between 50 and 500 Hz of a :func:`_body_spectrum`."""
    lo, hi = int(50 * _BODY_N / _SR), int(500 * _BODY_N / _SR)
    k = lo + int(np.argmax(spec[lo:hi]))
    # Parabolic interpolation between bins (10.8 Hz apart) for a pitch good to a semitone.
    a, b, c = spec[k - 1], spec[k], spec[k + 1]
    offset = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) < 0 else 0.0
    # At the edge of the range the peak may lie outside it: never move more than half a bin.
    return float((k + np.clip(offset, -0.5, 0.5)) * _SR / _BODY_N)


def _sustain_db(low: np.ndarray, frames: np.ndarray, i: int) -> float | None:
    """Level (dB) of the shell band ``low`` ``(T,)`` 60-115 ms after onset ``i`` relative to its attack;
    None when the next onset comes too soon to tell."""
    f = int(frames[i])
    stop = min(f + _SUSTAIN_FRAMES[1], int(frames[i + 1]) - 1 if i + 1 < frames.size else low.size)
    start = f + _SUSTAIN_FRAMES[0]
    if stop - start < 3:
        return None
    peak = float(low[f : f + _ATTACK + 2].max()) + 1e-12
    return float(10 * np.log10(low[start:stop].mean() / peak + 1e-12))


def _wire_level(wires: np.ndarray, frames: np.ndarray, i: int) -> float | None:
    """Mean 2-6 kHz energy ``wires`` ``(T,)`` 29-81 ms after onset ``i`` (snare wires buzz on
    there, a stick's click on a tom has died); None when the next onset comes too soon."""
    f = int(frames[i])
    stop = min(f + _WIRE_FRAMES[1], int(frames[i + 1]) if i + 1 < frames.size else wires.size)
    if stop - (f + _WIRE_FRAMES[0]) < 3:
        return None
    return float(wires[f + _WIRE_FRAMES[0] : stop].mean())


def _snare_reference(present: np.ndarray, rel: np.ndarray, frames: np.ndarray, low: np.ndarray,
                     body: Callable[[int], float]) -> tuple[float | None, float | None, float | None, np.ndarray]:
    """The song's snare: body pitch (Hz), shell sustain (dB) and its spread (median absolute
    deviation, dB) over the snare's hits, and those events ``(n,)``.

    Loud toms in fills look like confident snares to the decomposition, so the snare is the pitch
    among them heard in the most stretches of the song (a fill crowds one stretch), not their
    median.  ``body(i)`` gives the body pitch of event ``i``; Nones when there are too few hits.
    """
    hits = np.flatnonzero(present[1] & ~present[0] & (rel[1] >= _CONFIDENT))
    if hits.size < 2:
        return None, None, None, hits
    hits = np.unique(hits[np.linspace(0, hits.size - 1, min(hits.size, _PITCH_SAMPLES)).round().astype(int)])
    semis = 12 * np.log2(np.array([body(int(i)) for i in hits]))
    near = np.abs(semis[:, None] - semis[None, :]) <= _SNARE_CLUSTER
    # Support: in how many stretches of the song a pitch is heard (a fill crowds one stretch).
    stretch = (frames[hits] / (_SNARE_STRETCH_S * _FPS)).astype(int)
    support = np.array([np.unique(stretch[row]).size + row.sum() / (hits.size + 1) for row in near])
    members = hits[np.abs(semis - semis[np.argmax(support)]) <= _SNARE_CLUSTER]
    pitch = float(2 ** (np.median(semis[np.isin(hits, members)]) / 12))
    sus = np.array([d for d in (_sustain_db(low, frames, int(i)) for i in members) if d is not None])
    if sus.size < 2:
        return pitch, None, None, members
    return pitch, float(np.median(sus)), float(np.median(np.abs(sus - np.median(sus)))), members


def _find_toms(present: np.ndarray, rel: np.ndarray, frames: np.ndarray, x: np.ndarray,
               low: np.ndarray, wires: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GM tom pitch per event (0 where none) ``(n_events,)``: drum hits whose shell rings unlike the
    snare's; and whether the snare sounds with the tom ``(n_events,)`` bool.

    To the decomposition a tom is a mix of the other families: its shell partly a kick or a
    snare, its stick attack partly a snare or a hi-hat.  What gives it away is the shell: it
    rings longer than a snare's (wires damp the snare) and at its own pitch.  The song's snare
    and kick are described by their confident hits; an onset with some kick/snare energy but no
    confident kick, that rings clearly longer than the snare or at a pitch far from it (and far
    from the kick), is a tom; one as loud as a full snare must also ring longer.  ``low`` ``(T,)`` is the 60-400 Hz mel energy,
    ``wires`` ``(T,)`` the 2-6 kHz one: a tom whose wire band buzzes like the song's snares is a
    tom and a snare together.
    """
    toms = np.zeros(frames.size, dtype=int)
    with_snare = np.zeros(frames.size, dtype=bool)
    cache: dict[int, tuple[np.ndarray, float]] = {}

    def spectrum(i: int) -> tuple[np.ndarray, float]:
        if i not in cache:
            spec = _body_spectrum(x, int(frames[i]))
            cache[i] = spec, _body_pitch(spec)
        return cache[i]

    def body(i: int) -> float:
        return spectrum(i)[1]

    def far(f0: float, ref: float) -> bool:
        return abs(12 * np.log2(f0 / ref)) > _TOM_SEMITONES

    snare_pitch, snare_sustain, spread, snares = _snare_reference(present, rel, frames, low, body)
    if snare_pitch is None:
        return toms, with_snare
    # Samples repeat exactly, a drummer does not: how much longer than the snare a tom must ring.
    ring_db = max(_TOM_SUSTAIN_DB, _SPREAD_K * spread) if spread is not None else _TOM_SUSTAIN_DB
    levels = [w for w in (_wire_level(wires, frames, int(i)) for i in snares) if w is not None]
    snare_wires = float(np.median(levels)) if levels else None
    confident_kicks = np.flatnonzero(present[0] & ~present[1] & (rel[0] >= _CONFIDENT))[:_PITCH_SAMPLES]
    kick_pitch = float(np.median([body(i) for i in confident_kicks])) if confident_kicks.size >= 3 else None
    shell = np.maximum(rel[0], rel[1])
    cand = np.flatnonzero(shell >= _TOM_SHELL)
    for i in cand:
        f0 = body(int(i))
        # Below the lowest floor tom, or near the kick's pitch, a tom cannot be told from a kick
        # unless the decomposition hears no kick in it; a hit with a strong kick share must be
        # clearly away from the kick.
        low_or_kick_pitch = f0 < _MIN_TOM_HZ or (kick_pitch is not None and not far(f0, kick_pitch))
        if low_or_kick_pitch and rel[0, i] >= _KICKY * rel[1, i]:
            continue
        if rel[0, i] >= _WEAK_KICK and (kick_pitch is None or abs(12 * np.log2(f0 / kick_pitch)) < _TOM_FROM_KICK):
            continue
        d = _sustain_db(low, frames, int(i))
        more = d - snare_sustain if snare_sustain is not None and d is not None else None
        rings = more is not None and more > ring_db
        if rel[1, i] >= _SNARE_WITH_TOM:
            # As loud as a snare: a far pitch alone is not enough, the shell must ring too.
            is_tom = rings or (far(f0, snare_pitch) and more is not None and more > _LOUD_TOM_SUSTAIN_DB)
        else:
            is_tom = rings or far(f0, snare_pitch)
        if is_tom:
            toms[i] = LOW_TOM if f0 < 100 else (MID_TOM if f0 < 150 else HIGH_TOM)
            # A fill often starts on snare and tom together: the wires tell.
            w = _wire_level(wires, frames, int(i))
            with_snare[i] = (bool(present[1, i]) and w is not None and snare_wires is not None
                             and w > snare_wires * 10 ** (_WIRES_DB / 10))
    return toms, with_snare


def _partial_persistence(x: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """How much of the 2-9 kHz fine spectral structure 15-60 ms after each onset in ``frames``
    ``(n,)`` is still there 45 ms later: correlation of the detrended log spectra, ``(n,)``
    (~0.5 for a ride's partials, ~0.15 for a hi-hat's noise).  ``x`` ``(samples,)`` is the signal."""
    from scipy.ndimage import median_filter

    out = np.zeros(frames.size)
    starts = frames * _HOP + int(_PING_DELAY * _SR)
    ok = starts + _PING_GAP + _PING_N <= x.size
    if not ok.any():
        return out
    idx = (starts[ok][:, None, None] + np.array([0, _PING_GAP])[None, :, None]
           + np.arange(_PING_N)[None, None, :])
    spec = np.log(np.abs(np.fft.rfft(x[idx] * np.hanning(_PING_N), axis=-1)) + 1e-9)
    # Detrend within the band (plus half the median window either side), not the whole spectrum.
    lo, hi = int(_PING_BAND[0] * _PING_N / _SR), int(_PING_BAND[1] * _PING_N / _SR)
    part = spec[..., lo - 16 : hi + 16].reshape(-1, hi - lo + 32)
    # Row by row: scipy's 1-D median filter is several times faster than its n-D one.
    trend = np.stack([median_filter(row, 31, mode="nearest") for row in part])
    fine = (part - trend).reshape(-1, 2, hi - lo + 32)[..., 16:-16]
    fine -= fine.mean(axis=-1, keepdims=True)
    a, b = fine[:, 0], fine[:, 1]
    out[ok] = (a * b).sum(axis=-1) / (np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1)) + 1e-12)
    return out


def _ride_scores(x: np.ndarray, high: np.ndarray, frames: np.ndarray, decay: np.ndarray,
                 rise_db: np.ndarray) -> np.ndarray:
    """Ride-versus-hi-hat score per short cymbal hit at ``frames`` ``(n,)`` (> 0: ride).

    A ride's stick attack drops fast (``decay``, the -15 dB time of the 8-20 kHz power ``high``
    ``(T,)``) into a wash that rings on (its -25 dB time is long), lifts the high band less than a
    hi-hat over what was ringing (``rise_db``), and holds pitched partials.  A linear score of the
    four, fitted on rendered songs' true and separated drum stems (``benchmarks/ride_fit.py``), is
    averaged (median) over neighbouring hits: a time keeper stays on one cymbal for a while.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    if frames.size == 0:
        return np.zeros(0)
    long_decay = np.array([_decay_time(high, int(f), drop_db=25.0, limit_s=2.5) for f in frames])
    persist = _partial_persistence(x, frames)
    w = _RIDE_WEIGHTS
    score = (w[0] * persist + w[1] * np.log(decay + 0.01) + w[2] * np.log(long_decay + 0.01)
             + w[3] * np.minimum(rise_db, 40.0) / 10 + w[4])
    k = _RIDE_NEIGHBOURS
    padded = np.pad(score, k, constant_values=np.nan)
    return np.nanmedian(sliding_window_view(padded, 2 * k + 1), axis=1)


def _lone(times: np.ndarray, mask: np.ndarray, gap: float) -> np.ndarray:
    """``mask`` ``(n,)`` without its events that have no other masked event within ``gap`` seconds."""
    idx = np.flatnonzero(mask)
    t = times[idx]
    near = np.zeros(idx.size, dtype=bool)
    if idx.size > 1:
        d = np.diff(t) <= gap
        near[1:] |= d
        near[:-1] |= d
    out = np.zeros(mask.size, dtype=bool)
    out[idx[~near]] = True
    return out


def _notes(frames: np.ndarray, A: np.ndarray, rise: np.ndarray, high: np.ndarray, low: np.ndarray,
           wires: np.ndarray, x: np.ndarray, *, lone_toms: bool = True) -> list[Note]:
    """GM notes from the event activations ``A`` ``(3, n_events)`` of kick, snare and hi-hat/cymbal;
    ``rise`` ``(3, n_events)`` is how much each onset lifted each family's bands (dB),
    ``high`` ``(T,)`` is the 8-20 kHz power per frame, ``low`` ``(T,)`` and ``wires`` ``(T,)`` the
    60-400 Hz and 2-6 kHz mel energies, ``x`` ``(n,)`` the normalised signal.  Without
    ``lone_toms`` (a separated stem) a tom needs another within :data:`_FILL_GAP_S`."""
    times = frames / _FPS
    # A family's typical hit, floored against the loudest events so that an absent family's
    # leakage is never promoted to hits.
    # The 95th percentile, or most of the loudest hit when a family plays only a few times.
    typical = np.maximum(np.percentile(A, 95, axis=1), _RARE * A.max(axis=1))
    refs = np.maximum(typical, _FLOOR * float(np.percentile(A.sum(axis=0), 95)))
    rel = A / (refs[:, None] + 1e-12)
    present = rel > np.array([_PRESENT[f] for f in _FAMILIES])[:, None]
    # A kick or snare (or tom) must stand out of what was sounding: steady noise never does.
    audible = rise[:2] >= _MIN_RISE_DB
    present[:2] &= audible
    # A kick's beater click leaks into the snare family in proportion to the kick: ask more then.
    # ... and a snare's body leaks into the kick family: a kick under a full snare must be clear.
    kick_ok = ~(present[1] & (rel[1] >= _CONFIDENT)) | (rel[0] > _KICK_WITH_SNARE)
    present[1] &= ~present[0] | (rel[1] > _SNARE_WITH_KICK)
    present[0] &= kick_ok
    # Flutter in a ringing cymbal makes weak onsets: a hi-hat must lift the high band audibly.
    T = high.size
    after = np.array([high[f : f + _ATTACK + 1].max() for f in frames])
    before = high[np.clip(frames - _BEFORE, 0, T - 1)] * (frames >= _BEFORE)
    present[2] &= after > before * 10 ** (_HAT_RISE_DB / 10)
    metal = np.full(frames.size, CLOSED_HAT)
    hits = np.flatnonzero(present[2])
    decay = np.array([_decay_time(high, int(frames[i])) for i in hits])
    # Room sound and reverb lengthen every hit: "open" is long next to the song's shortest hats.
    open_decay = max(_OPEN_DECAY, _OPEN_VS_CLOSED * float(np.percentile(decay, 25))) if hits.size else _OPEN_DECAY
    for i, d in zip(hits, decay):
        crash = d >= _CRASH_DECAY or (d >= _LOUD_CRASH_DECAY and rel[2, i] >= _LOUD_CRASH)
        metal[i] = CRASH if crash else (CLOSED_HAT if d < open_decay else OPEN_HAT)
    short = hits[metal[hits] == CLOSED_HAT]
    rise_high = 10 * np.log10((after[short] + 1e-20) / (before[short] + 1e-20))
    metal[short[_ride_scores(x, high, frames[short], decay[metal[hits] == CLOSED_HAT], rise_high) > 0]] = RIDE
    # A crash's broadband wash looks partly like a snare: ask more of a snare under a crash.
    present[1] &= ~((metal == CRASH) & present[2]) | (rel[1] > _SNARE_UNDER_CRASH)
    toms, with_snare = _find_toms(present, rel, frames, x, low, wires)
    toms[~audible.any(axis=0)] = 0
    if not lone_toms and _FILL_GAP_S is not None:
        toms[_lone(times, toms > 0, _FILL_GAP_S)] = 0
    is_tom = toms > 0
    # A tom takes over the kick and snare shares of its onset (unless the snare's wires buzz
    # too), and its stick attack the hi-hat's (hands on the toms rarely also play the
    # hi-hat), unless that is very strong.
    tom_vel = _velocity(A[0, is_tom] + A[1, is_tom], float(refs[1]), _TYPICAL_VELOCITY["tom"])
    present[0] &= ~is_tom
    present[1] &= ~is_tom | with_snare
    present[2] &= ~is_tom | (rel[2] >= _HAT_WITH_TOM)
    notes: list[Note] = [
        Note(int(toms[i]), float(times[i]), float(times[i]) + _NOTE_LENGTH, int(v))
        for i, v in zip(np.flatnonzero(is_tom), tom_vel)
    ]
    for k, family in enumerate(_FAMILIES):
        idx = np.flatnonzero(present[k])
        vel = _velocity(A[k, idx], float(refs[k]), _TYPICAL_VELOCITY[family])
        for i, v in zip(idx, vel):
            pitch = (KICK, SNARE, int(metal[i]))[k]
            t = float(times[i])
            notes.append(Note(pitch, t, t + _NOTE_LENGTH, int(v)))
    return notes
