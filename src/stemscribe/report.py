"""A quality report on every split, without ground truth.

:func:`quality_report` looks only at the separated stems, their MIDI and the beat grid, and says
per stem:

``loudness_lufs``   integrated loudness, ITU-R BS.1770-4 (K-weighting, 400 ms blocks with 75 %
                    overlap, absolute gate -70 LUFS, relative gate -10 LU); ``None`` when every block
                    is gated (silence) or the stem is shorter than one block.
``peak_dbfs``       sample peak.
``silence_ratio``   share of 100 ms frames whose RMS (over channels) is below -50 dBFS.
``bleed``           the share of the stem's energy estimated to be leakage from the other stems
                    (see :func:`bleed_matrix`): ``{"estimate": 0..1, "source": the largest
                    contributor or None, "from": {stem: share}}``; the ``from`` shares add up to
                    ``estimate``. 0 = clean.
``midi``            MIDI<->audio consistency (see :func:`midi_consistency`): an overall ``score`` in
                    0..1, ``onset_f1``, ``similarity`` (chroma for pitched stems, band envelopes for
                    drums) and the ``flagged_bars`` where MIDI and audio disagree; ``None`` when the
                    stem has no MIDI track.

All analysis runs on a mono copy at 11025 Hz (STFT 2048 points, hop 512 = 46 ms; onsets from a
512-point STFT, hop 11.6 ms), except loudness
and peak, which use the stem as given. The result is plain JSON (floats rounded, no NaN).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .types import Audio, BeatGrid, NoteTrack

if TYPE_CHECKING:
    from concurrent.futures import Executor

ANALYSIS_SR = 11025
N_FFT = 2048
HOP = 512
#: onsets use a short window and hop (46 ms / 11.6 ms): a long window smears an onset over +-93 ms
ONSET_N_FFT = 512
ONSET_HOP = 128
SILENCE_DBFS = -50.0
#: onsets closer than this are one onset (chords, flams); also the onset matching tolerance
ONSET_TOLERANCE = 0.07
#: a bar whose consistency is below this is flagged
FLAG_BELOW = 0.5
#: bleed: a stem's claim on a cell is |X|^0.5 (softer than Wiener's |X|^2; chosen on MUSDB18 train clips)
BLEED_MASK_POWER = 0.5
#: bleed: neighbourhood (frames, bins) = (0.23 s, 27 Hz) over which two stems' coherence is measured
BLEED_TILE = (5, 9)
#: bleed: mean coherence of two independent white noises over such a tile (simulated; the chance level)
BLEED_CHANCE = 0.073
#: bleed: frames per block (bounded memory on long songs)
BLEED_BLOCK = 512
#: drum rendering/analysis bands in Hz: low (kick, toms), mid (snare), high (hats, cymbals)
DRUM_BANDS = ((30.0, 150.0), (150.0, 2500.0), (2500.0, ANALYSIS_SR / 2))


# --------------------------------------------------------------------------------------------
# signal helpers


def _mono_at(audio: Audio, sr: int = ANALYSIS_SR) -> np.ndarray:
    """Mono float32 copy of ``audio`` at ``sr``, shape ``(n,)`` (soxr, its default "HQ" quality)."""
    y = np.ascontiguousarray(audio.samples.mean(axis=0), dtype=np.float32)
    if audio.sr != sr:
        import soxr

        y = soxr.resample(y, audio.sr, sr)
    return np.ascontiguousarray(y, dtype=np.float32)


def _stft_mag(y: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """Magnitude STFT ``(len(y) // hop + 1, n_fft // 2 + 1)``; frame ``k`` is centred at ``k * hop``."""
    import scipy.fft

    y = np.pad(y, (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop]
    return np.abs(scipy.fft.rfft(frames * np.hanning(n_fft).astype(np.float32), axis=1)).astype(np.float32, copy=False)


def _freqs() -> np.ndarray:
    return np.fft.rfftfreq(N_FFT, 1.0 / ANALYSIS_SR)


def _k_weighting_sos(sr: int) -> np.ndarray:
    """BS.1770 K-weighting (high shelf + high-pass) as second-order sections for rate ``sr``.

    The two biquads follow the RBJ cookbook forms with the parameters that reproduce the
    standard's 48 kHz coefficients (shelf +4 dB at 1500 Hz, Q 0.7071; high-pass 38 Hz, Q 0.5), so
    any sample rate works.
    """
    a = 10 ** (4.0 / 40.0)
    w0 = 2 * math.pi * 1500.0 / sr
    alpha = math.sin(w0) / (2 * (1 / math.sqrt(2)))
    c = math.cos(w0)
    shelf = [
        a * ((a + 1) + (a - 1) * c + 2 * math.sqrt(a) * alpha),
        -2 * a * ((a - 1) + (a + 1) * c),
        a * ((a + 1) + (a - 1) * c - 2 * math.sqrt(a) * alpha),
        (a + 1) - (a - 1) * c + 2 * math.sqrt(a) * alpha,
        2 * ((a - 1) - (a + 1) * c),
        (a + 1) - (a - 1) * c - 2 * math.sqrt(a) * alpha,
    ]
    w0 = 2 * math.pi * 38.0 / sr
    alpha = math.sin(w0) / (2 * 0.5)
    c = math.cos(w0)
    hp = [(1 + c) / 2, -(1 + c), (1 + c) / 2, 1 + alpha, -2 * c, 1 - alpha]
    sos = np.array([shelf, hp], dtype=float)
    return sos / sos[:, 3:4]


def _step_energies(chunks: Iterator[np.ndarray], step: int, n_steps: int) -> np.ndarray:
    """Sums of squares ``(n_steps,)`` (float64) over consecutive ``step``-sample steps of the signal
    that ``chunks`` (float32 pieces, in order) make up; samples past the last whole step are dropped.
    Nothing the length of the signal is held, so a long song costs no large temporaries."""
    out = np.zeros(n_steps)
    done, carry = 0, np.zeros(0, dtype=np.float32)
    for chunk in chunks:
        buf = np.concatenate([carry, chunk]) if carry.size else chunk
        k = min(buf.size // step, n_steps - done)
        if k > 0:
            out[done : done + k] = np.square(buf[: k * step]).reshape(k, step).sum(axis=1, dtype=np.float64)
            done += k
        carry = buf[k * step :] if done < n_steps else np.zeros(0, dtype=np.float32)
    return out


def _k_weighted_chunks(y: np.ndarray, sr: int) -> Iterator[np.ndarray]:
    """Mono ``y`` through the K-weighting biquads, float32, one second at a time.

    The biquads run in FFmpeg's ``biquad`` filter through PyAV: as fast as ``scipy.signal.sosfilt``
    in float32 (within 1e-4 of it at float64), without the 1 s of CPU that importing
    ``scipy.signal`` costs a split (the report is the only stage that needs it). If the filter
    graph cannot be set up, the same sections run in ``sosfilt``.
    """
    import av.error

    sos = _k_weighting_sos(sr)
    y = np.ascontiguousarray(y, dtype=np.float32)
    try:
        graph = _biquad_graph(sr, sos)
    except (av.error.FFmpegError, ValueError):
        from scipy.signal import sosfilt

        zi = np.zeros((len(sos), 2))
        for start in range(0, y.size, sr):
            out, zi = sosfilt(sos, y[start : start + sr], zi=zi)
            yield out.astype(np.float32)
        return
    yield from _run_graph(graph, y, sr)


def _biquad_graph(sr: int, sos: np.ndarray):  # -> (av.filter.Graph, source, sink)
    """An FFmpeg filter graph: mono float32 at ``sr`` through the second-order sections ``sos``."""
    import av.filter

    graph = av.filter.Graph()
    node = src = graph.add_abuffer(sample_rate=sr, format="flt", layout="mono", channels=1)
    for b0, b1, b2, a0, a1, a2 in sos.tolist():
        f = graph.add("biquad", b0=repr(b0), b1=repr(b1), b2=repr(b2), a0=repr(a0), a1=repr(a1), a2=repr(a2))
        node.link_to(f)
        node = f
    sink = graph.add("abuffersink")
    node.link_to(sink)
    graph.configure()
    return graph, src, sink


def _run_graph(graph_src_sink, y: np.ndarray, sr: int) -> Iterator[np.ndarray]:
    """Push mono float32 ``y`` through the graph in one-second frames; yield what comes out."""
    import av

    _graph, src, sink = graph_src_sink
    done = 0

    def drain() -> Iterator[np.ndarray]:
        nonlocal done
        while True:
            try:
                frame = sink.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            a = frame.to_ndarray().reshape(-1)
            done += a.size
            yield a

    for start in range(0, y.size, sr):
        frame = av.AudioFrame.from_ndarray(y[None, start : start + sr], format="flt", layout="mono")
        frame.sample_rate, frame.pts = sr, start
        src.push(frame)
        yield from drain()
    src.push(None)
    yield from drain()
    if done != y.size:
        raise RuntimeError(f"the biquad filter returned {done} of {y.size} samples")


def loudness_lufs(audio: Audio) -> float | None:
    """Integrated loudness (LUFS) of ``audio`` ``(channels, n)`` per ITU-R BS.1770-4.

    Channels are weighted 1 (channels 4 and 5 of a 5.1 layout 1.41). ``None`` when the audio is
    shorter than a 400 ms block or every block falls under the gates.
    """
    sr = audio.sr
    block, step = round(0.4 * sr), round(0.1 * sr)
    if audio.n_samples < block:
        return None
    weights = np.ones(audio.channels)
    if audio.channels == 6:
        weights[3:5] = 1.41
    # 400 ms blocks every 100 ms = sums of four consecutive 100 ms steps (block = 4 * step
    # up to rounding of the rate, which moves a block edge by under a sample)
    n_steps = audio.n_samples // step
    seg = np.stack([_step_energies(_k_weighted_chunks(ch, sr), step, n_steps) for ch in audio.samples])
    csum = np.concatenate([np.zeros((seg.shape[0], 1)), np.cumsum(seg, axis=1)], axis=1)
    z = (csum[:, 4:] - csum[:, :-4]) / (4 * step)
    power = weights @ z
    with np.errstate(divide="ignore"):
        lk = -0.691 + 10 * np.log10(power)
    keep = lk > -70.0
    if not np.any(keep):
        return None
    rel = -0.691 + 10 * np.log10(np.mean(power[keep])) - 10.0
    keep &= lk > rel
    if not np.any(keep):
        return None
    return float(-0.691 + 10 * np.log10(np.mean(power[keep])))


def silence_ratio(audio: Audio, *, threshold_dbfs: float = SILENCE_DBFS, frame: float = 0.1) -> float:
    """Share of ``frame``-second frames whose RMS (over all channels) is below ``threshold_dbfs``."""
    n = max(1, round(frame * audio.sr))
    n_frames = max(1, audio.n_samples // n)
    if audio.n_samples == 0 or audio.channels == 0:
        return 1.0
    if audio.n_samples < n:
        n = audio.n_samples
    piece = n * max(1, round(10.0 / frame))  # ten-second pieces: no song-long temporaries

    def pieces(ch: np.ndarray) -> Iterator[np.ndarray]:
        for i in range(0, n_frames * n, piece):
            yield np.asarray(ch[i : i + piece], dtype=np.float32)

    ms = sum(_step_energies(pieces(ch), n, n_frames) for ch in audio.samples) / (audio.channels * n)
    return float(np.mean(ms < 10 ** (threshold_dbfs / 10)))


# --------------------------------------------------------------------------------------------
# bleed


def bleed_matrix(specs: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Estimate, for each stem ``i`` and other stem ``j``, the share of ``i``'s energy leaked from ``j``.

    A leak of ``j`` into ``i`` is a copy of part of ``j``'s signal: where it sits, ``X_i`` and
    ``X_j`` are *coherent* (same phase relation across neighbouring cells; a mask separator's stems
    are all ``mask x mixture`` and fully coherent), while two different sources playing at once
    have unrelated phases. Which of the two coherent stems owns the sound is unknown; the stems'
    own levels give the posterior ``m_k = |X_k|^p / sum_l |X_l|^p`` (p = :data:`BLEED_MASK_POWER`).
    So each cell of stem ``i`` counts as leaked from ``j`` with weight ``m_j * coh_ij``, where
    ``coh_ij`` is the magnitude-squared coherence of the two complex STFTs over a
    :data:`BLEED_TILE` neighbourhood, with the chance level of independent signals
    (:data:`BLEED_CHANCE`) subtracted and rescaled to 0..1:

        ``bleed[i][j] = sum |X_i|^2 m_j coh_ij / sum |X_i|^2``.

    0 for a clean stem (other stems absent or incoherent), 0 for silence, about 0.5 for an exact
    copy of another stem (each copy's owner is a coin toss), and ``g^2 E_j / (E_i + g^2 E_j)``
    shrunk by ``m_j`` for a leak ``s_i + g s_j``. No parameter was fitted to a separator's
    output; the two choices (p, tile) were picked on the MUSDB18 train clips (docs/bleed.md).

    ``specs``: ``{stem: complex STFT (n_frames, n_bins)}``, all the same shape (magnitudes are
    accepted: every pair then counts as coherent, which leaves the posterior alone).
    Returns ``{i: {j: share}}`` for every ordered pair ``i != j``; ``sum_j`` is stem ``i``'s
    estimated leaked share. Works in blocks of frames (bounded memory).
    """
    names = list(specs)
    n_frames = min((z.shape[0] for z in specs.values()), default=0)
    sums = _BleedSums(len(names))
    for lo, hi, core in _blocks(n_frames):
        sums.add(np.stack([np.asarray(specs[s][lo:hi]) for s in names]), core)
    return sums.result(names)


def bleed_from_signals(monos: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """:func:`bleed_matrix` of mono signals ``{stem: (n,)}`` at :data:`ANALYSIS_SR`, STFT computed block
    by block (:data:`N_FFT`, :data:`HOP`) so a long song never holds its complex spectra at once."""
    return _bleed_and_magnitudes(monos, keep_magnitudes=False)[0]


def _bleed_and_magnitudes(
    monos: Mapping[str, np.ndarray], *, keep_magnitudes: bool = True, pool: Executor | None = None
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """:func:`bleed_from_signals` and, from the same block STFTs, each stem's magnitude STFT (equal to
    :func:`_stft_mag` of the signal cut to the shortest stem), so the report transforms each stem once.
    With ``pool`` the stems' transforms and the stem pairs run on its threads (same result)."""
    names = list(monos)
    n = min((len(y) for y in monos.values()), default=0)
    n_frames = n // HOP + 1 if n else 0
    mags = {s: np.empty((n_frames, N_FFT // 2 + 1), dtype=np.float32) for s in names} if keep_magnitudes else {}
    sums = _BleedSums(len(names))
    run = pool.map if pool is not None else map
    for lo, hi, core in _blocks(n_frames):
        z = np.stack(list(run(lambda s: _stft_frames(np.asarray(monos[s][:n]), lo, hi), names)))
        mag = np.abs(z)
        if len(names) > 1:
            sums.add(z, core, mag, pool)
        for i, s in enumerate(mags):
            mags[s][lo + core.start : lo + core.stop] = mag[i, core]
    bleed = sums.result(names) if len(names) > 1 else {s: {} for s in names}
    return bleed, mags


def _blocks(n_frames: int) -> Iterator[tuple[int, int, slice]]:
    """Frame ranges ``[lo, hi)`` with a halo for the coherence tile, and the core slice inside each."""
    halo = BLEED_TILE[0] // 2
    for s0 in range(0, n_frames, BLEED_BLOCK):
        lo, hi = max(0, s0 - halo), min(n_frames, s0 + BLEED_BLOCK + halo)
        yield lo, hi, slice(s0 - lo, s0 - lo + min(BLEED_BLOCK, n_frames - s0))


def _stft_frames(y: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Complex STFT frames ``lo..hi-1`` ``(hi - lo, N_FFT // 2 + 1)`` of mono ``y``, framed like
    :func:`_stft_mag` (frame ``k`` centred at ``k * HOP``, zeros beyond the ends)."""
    import scipy.fft

    start, stop = lo * HOP - N_FFT // 2, (hi - 1) * HOP + N_FFT - N_FFT // 2
    seg = np.zeros(stop - start, dtype=np.float32)
    a, b = max(start, 0), min(stop, len(y))
    if b > a:
        seg[a - start : b - start] = y[a:b]
    frames = np.lib.stride_tricks.sliding_window_view(seg, N_FFT)[::HOP]
    return scipy.fft.rfft(frames * np.hanning(N_FFT).astype(np.float32), axis=1).astype(np.complex64, copy=False)


class _BleedSums:
    """Running sums of :func:`bleed_matrix` over blocks of frames."""

    def __init__(self, k: int) -> None:
        self.energy = np.zeros(k)
        self.leak = np.zeros((k, k))

    def add(self, z: np.ndarray, core: slice, mag: np.ndarray | None = None, pool: Executor | None = None) -> None:
        """``z``: ``(k, frames, bins)`` spectra of one block (``mag``: their magnitudes, if already
        computed); only the ``core`` frames are counted. With ``pool`` the stem pairs run on its
        threads (NumPy and SciPy release the GIL in the heavy loops); the sums are the same."""
        from scipy.ndimage import uniform_filter

        k = z.shape[0]
        mag = np.abs(z) if mag is None else mag
        power = np.square(mag, dtype=np.float32)
        w = np.sqrt(mag) if BLEED_MASK_POWER == 0.5 else mag ** np.float32(BLEED_MASK_POWER)
        total = w.sum(axis=0)
        m = w / np.where(total > 0, total, np.float32(1.0))
        size = (1, *BLEED_TILE)
        local = uniform_filter(power, size=size, mode="nearest")
        e = power[:, core]
        self.energy += e.sum(axis=(1, 2), dtype=np.float64)
        m = m[:, core]

        def pair(ij: tuple[int, int]) -> tuple[float, float]:
            i, j = ij
            cross = z[i] * np.conj(z[j])
            num = np.square(uniform_filter(cross.real, size=BLEED_TILE, mode="nearest")[core])
            num += np.square(uniform_filter(cross.imag, size=BLEED_TILE, mode="nearest")[core])
            den = local[i, core] * local[j, core]
            den[den <= 0] = 1.0
            coh = np.divide(num, den, out=num)
            coh -= BLEED_CHANCE
            coh *= 1.0 / (1.0 - BLEED_CHANCE)
            np.clip(coh, 0.0, 1.0, out=coh)
            # float32 products, float64 sums
            return (float(np.sum(np.multiply(e[i], m[j]) * coh, dtype=np.float64)),
                    float(np.sum(np.multiply(e[j], m[i]) * coh, dtype=np.float64)))

        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        for (i, j), (lij, lji) in zip(pairs, (pool.map if pool is not None else map)(pair, pairs)):
            self.leak[i, j] += lij
            self.leak[j, i] += lji

    def result(self, names: Sequence[str]) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for i, s in enumerate(names):
            tot = self.energy[i]
            out[s] = {t: (min(1.0, self.leak[i, j] / tot) if tot > 0 else 0.0) for j, t in enumerate(names) if j != i}
        return out


# --------------------------------------------------------------------------------------------
# MIDI <-> audio consistency


def render_track(track: NoteTrack, n: int, sr: int = ANALYSIS_SR) -> np.ndarray:
    """Render ``track`` simply, mono ``(n,)`` at ``sr``.

    Pitched notes: four harmonics (1/h amplitudes) with a 10 ms attack and an exponential decay
    over the note. Drum hits: 80 ms noise bursts (toms and kicks 150 ms) band-limited to the
    :data:`DRUM_BANDS` band of their class. Velocity scales amplitude.
    """
    out = np.zeros(n, dtype=np.float32)
    rng = np.random.default_rng(0)
    if track.is_drum:
        from .evaluate import drum_class

        spec_f = np.fft.rfftfreq(int(0.15 * sr), 1.0 / sr)
        band_of = {"kick": 0, "toms": 0, "snare": 1, "hihat": 2, "cymbals": 2}
        bursts = []
        for lo, hi in DRUM_BANDS:
            noise = np.fft.rfft(rng.standard_normal(len(spec_f) * 2 - 2))
            noise[(spec_f < lo) | (spec_f > hi)] = 0
            burst = np.fft.irfft(noise)
            burst *= np.exp(-np.arange(len(burst)) / (0.03 * sr))
            bursts.append((burst / (np.abs(burst).max() + 1e-9)).astype(np.float32))
        for note in track.notes:
            cls = drum_class(note.pitch)
            burst = bursts[band_of.get(cls, 1)] * (note.velocity / 127.0)
            s = int(note.start * sr)
            if 0 <= s < n:
                e = min(n, s + len(burst))
                out[s:e] += burst[: e - s]
        return out
    for note in track.notes:
        s, e = int(note.start * sr), int(max(note.end, note.start + 0.05) * sr)
        s, e = max(s, 0), min(e, n)
        if e <= s:
            continue
        t = np.arange(e - s, dtype=np.float32) / sr
        f0 = 440.0 * 2.0 ** ((note.pitch - 69) / 12.0)
        tone = np.zeros(e - s, dtype=np.float32)
        for h in range(1, 5):
            if h * f0 < sr / 2:
                tone += np.sin(2 * np.pi * h * f0 * t).astype(np.float32) / h
        env = np.minimum(1.0, t / 0.01) * np.exp(-t / max(0.3, 0.5 * (e - s) / sr))
        out[s:e] += tone * env.astype(np.float32) * (note.velocity / 127.0)
    return out


def _frame_threshold(n_fft: int) -> float:
    """Spectral peak magnitude of a sine at :data:`SILENCE_DBFS` in a Hann-windowed ``n_fft`` frame."""
    return 10 ** (SILENCE_DBFS / 20) * float(np.sum(np.hanning(n_fft))) / 2


def audio_onsets(y: np.ndarray) -> np.ndarray:
    """Onset times (s) of mono ``y`` at :data:`ANALYSIS_SR`: peaks of the log-magnitude spectral
    flux of a short STFT, above a moving-average threshold, in frames that are not silent."""
    from scipy.ndimage import maximum_filter1d, uniform_filter1d

    mag = _stft_mag(y, ONSET_N_FFT, ONSET_HOP)
    if len(mag) < 3:
        return np.zeros(0)
    logm = np.log1p(100.0 * mag)
    env = np.maximum(np.diff(logm, axis=0, prepend=np.zeros_like(logm[:1])), 0.0).sum(axis=1)
    if env.max() <= 0:
        return np.zeros(0)
    env /= env.max()
    active = mag.max(axis=1) > _frame_threshold(ONSET_N_FFT)
    local_max = env == maximum_filter1d(env, size=9)
    thresh = uniform_filter1d(env, size=43) + 0.1
    idx = np.flatnonzero(local_max & (env > thresh) & active)
    return _merge(idx * ONSET_HOP / ANALYSIS_SR)


def _merge(times: np.ndarray, gap: float = ONSET_TOLERANCE) -> np.ndarray:
    times = np.sort(np.asarray(times, dtype=float))
    if times.size == 0:
        return times
    keep = np.concatenate([[True], np.diff(times) > gap])
    return times[keep]


def match_onsets(ref: np.ndarray, est: np.ndarray, window: float) -> list[tuple[int, int]]:
    """One-to-one pairs ``(i_ref, i_est)`` of events at most ``window`` seconds apart, as many as possible.

    The same count as ``mir_eval.util.match_events`` (a maximum bipartite matching): on a line with
    one window for all events, each reference accepts a run of consecutive estimates whose ends move
    forward with the reference, and then matching every reference, in time order, to the earliest
    free estimate it accepts is optimal. Kept here because importing mir_eval (scipy.stats with it)
    costs about a second, more than the whole matching, on the first report of a process.
    """
    order_r, order_e = np.argsort(ref, kind="stable"), np.argsort(est, kind="stable")
    r, e = np.asarray(ref, dtype=float)[order_r], np.asarray(est, dtype=float)[order_e]
    pairs, j = [], 0
    for i, t in enumerate(r):
        while j < e.size and e[j] + window < t:
            j += 1
        if j == e.size:
            break
        if e[j] - window <= t:  # the comparisons mir_eval makes, to the last float bit
            pairs.append((int(order_r[i]), int(order_e[j])))
            j += 1
    return pairs


def _onset_bar_f1(midi_on: np.ndarray, audio_on: np.ndarray, bars: np.ndarray) -> list[float | None]:
    """Per-bar onset F1 between MIDI and audio onsets.

    Onsets are matched one-to-one over the whole track (within :data:`ONSET_TOLERANCE`), then
    each pair is counted in the bar of its MIDI onset, so an onset detected a few ms before a
    barline still matches the note just after it. ``None`` for bars with no onsets on either side.
    """
    pairs = match_onsets(midi_on, audio_on, ONSET_TOLERANCE)
    audio_time = audio_on.copy()
    for i_m, i_a in pairs:
        audio_time[i_a] = midi_on[i_m]
    matched_t = np.array([midi_on[i_m] for i_m, _ in pairs])
    out: list[float | None] = []
    for s, e in bars:
        n_m = int(np.sum((midi_on >= s) & (midi_on < e)))
        n_a = int(np.sum((audio_time >= s) & (audio_time < e)))
        if n_m == 0 and n_a == 0:
            out.append(None)
            continue
        m = int(np.sum((matched_t >= s) & (matched_t < e))) if matched_t.size else 0
        out.append(2.0 * m / (n_m + n_a))
    return out


def _chroma(mag: np.ndarray) -> np.ndarray:
    """Chroma ``(n_frames, 12)`` from a magnitude STFT (power folded onto pitch classes, 55 Hz-4 kHz)."""
    f = _freqs()
    sel = (f >= 55.0) & (f <= 4000.0)
    pc = np.round(12 * np.log2(f[sel] / 440.0)).astype(int) % 12
    fold = np.zeros((sel.sum(), 12), dtype=np.float32)
    fold[np.arange(sel.sum()), pc] = 1.0
    return (mag[:, sel] ** 2) @ fold


def _band_env(mag: np.ndarray) -> np.ndarray:
    """Positive flux of the log energy in each :data:`DRUM_BANDS` band, ``(n_frames, 3)``."""
    f = _freqs()
    e = np.stack([np.log1p(100.0 * (mag[:, (f >= lo) & (f < hi)] ** 2).sum(axis=1)) for lo, hi in DRUM_BANDS], axis=1)
    return np.maximum(np.diff(e, axis=0, prepend=e[:1]), 0.0)


def _cos_rows(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cosine similarity of two ``(frames, d)`` blocks, flattened; ``None`` if either is all zero."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return None
    return float(np.sum(a * b) / (na * nb))


def bar_bounds(grid: BeatGrid, duration: float) -> np.ndarray:
    """Bar start/end times ``(n_bars, 2)`` from the grid's downbeats (else every ``numerator`` beats,
    else bars of 4 beats at ``grid.tempo``), covering ``[0, duration]``. A pickup before the first
    downbeat is a bar of its own when it lasts at least a beat."""
    per_bar = int(grid.time_signature[0]) if grid.time_signature else 4
    beat = 60.0 / grid.tempo if grid.tempo and grid.tempo > 0 else 0.5
    if len(grid.downbeats) >= 2:
        starts = np.asarray(grid.downbeats, dtype=float)
    elif len(grid.beats) >= 2 * per_bar:
        starts = np.asarray(grid.beats, dtype=float)[::per_bar]
    else:
        starts = np.arange(0.0, max(duration, 1e-3), per_bar * beat)
    starts = starts[starts < duration]
    if starts.size == 0:
        return np.array([[0.0, duration]])
    bar_len = max(float(np.median(np.diff(starts))) if starts.size > 1 else per_bar * beat, 0.25)
    starts_l = list(starts)
    # the grid may stop early: keep counting bars of the median length to the end
    while duration - starts_l[-1] > 1.5 * bar_len:
        starts_l.append(starts_l[-1] + bar_len)
    if starts_l[0] >= beat * 0.99:
        starts_l.insert(0, 0.0)
    starts = np.array(starts_l)
    ends = np.concatenate([starts[1:], [duration]])
    return np.stack([starts, ends], axis=1)


#: a note belongs to a bar it overlaps by at least this long (or half its own length, if shorter),
#: so a note whose onset lands just before a bar line does not make the bar before "notes where
#: the stem is silent"
_BAR_OVERLAP_S = 0.1


def _in_bar(note_on: np.ndarray, note_off: np.ndarray, start: float, end: float) -> np.ndarray:
    """Which notes (onsets, offsets in s) sound in the bar ``[start, end)`` by more than grazing its edge."""
    overlap = np.minimum(note_off, end) - np.maximum(note_on, start)
    return (overlap > 0) & (overlap >= np.minimum(_BAR_OVERLAP_S, 0.5 * (note_off - note_on)))


def midi_consistency(
    y: np.ndarray, mag: np.ndarray, track: NoteTrack, grid: BeatGrid, active: np.ndarray
) -> dict[str, Any]:
    """How well ``track`` matches a stem: mono ``y`` ``(n,)`` at :data:`ANALYSIS_SR` and its
    magnitude STFT ``mag`` ``(n_frames, n_bins)`` (:func:`_stft_mag`).

    The track is rendered (:func:`render_track`) and analysed like the stem. Per bar:

    * ``onset_f1``: onsets picked from the stem's spectral flux against the MIDI onsets (note
      starts; chords and flams merged within 70 ms), one-to-one within 70 ms;
    * ``similarity``: cosine similarity, over the bar, of the chroma of stem and rendering
      (pitched) or of their low/mid/high band onset envelopes (drums);
    * ``score`` = mean of the two (the one that exists when the other is undefined).

    A bar where the stem is silent and the track has no notes is skipped; one where only one side
    has content scores 0 (``"notes where the stem is silent"`` / ``"stem sounds but no notes"``).
    Bars scoring below :data:`FLAG_BELOW` are flagged with the weaker side as the reason.
    ``active``: ``(n_frames,)`` bool, frames where the stem is above the silence threshold.
    """
    duration = len(y) / ANALYSIS_SR
    render_mag = _stft_mag(render_track(track, len(y)))
    audio_on = audio_onsets(y)
    midi_on = _merge([nt.start for nt in track.notes])
    if track.is_drum:
        feat_a, feat_m = _band_env(mag), _band_env(render_mag)
    else:
        feat_a, feat_m = _chroma(mag), _chroma(render_mag)
    frame_t = np.arange(len(mag)) * HOP / ANALYSIS_SR
    bars = bar_bounds(grid, duration)
    bar_f1 = _onset_bar_f1(midi_on, audio_on, bars)
    note_on = np.array([nt.start for nt in track.notes], dtype=float)
    note_off = np.array([nt.end for nt in track.notes], dtype=float)
    rows = []
    for k, (s, e) in enumerate(bars):
        fr = (frame_t >= s) & (frame_t < e)
        notes_here = bool(np.any(_in_bar(note_on, note_off, s, e)))
        sounding = bool(np.mean(active[fr]) > 0.1) if fr.any() else False
        if not notes_here and not sounding:
            continue
        if notes_here != sounding:
            reason = "notes where the stem is silent" if notes_here else "stem sounds but no notes"
            rows.append({"bar": k + 1, "start": s, "end": e, "score": 0.0, "onset_f1": None, "similarity": None, "reason": reason})
            continue
        f1 = bar_f1[k]
        sim = _cos_rows(feat_a[fr], feat_m[fr])
        parts = [v for v in (f1, sim) if v is not None]
        score = float(np.mean(parts)) if parts else 1.0
        reason = None
        if score < FLAG_BELOW:
            reason = "onsets disagree" if (f1 is not None and (sim is None or f1 <= sim)) else (
                "drum sounds disagree" if track.is_drum else "pitches disagree")
        rows.append({"bar": k + 1, "start": s, "end": e, "score": score, "onset_f1": f1, "similarity": sim, "reason": reason})
    if not rows:
        return {"score": None, "onset_f1": None, "similarity": None, "bars_checked": 0, "n_bars": len(bars), "flagged_bars": []}

    def mean(key: str) -> float | None:
        vals = [r[key] for r in rows if r[key] is not None]
        return float(np.mean(vals)) if vals else None

    flagged = [
        {k2: (round(v, 3) if isinstance(v, float) else v) for k2, v in r.items() if k2 in ("bar", "start", "end", "score", "reason")}
        for r in rows if r["reason"] is not None
    ]
    return {
        "score": mean("score"),
        "onset_f1": mean("onset_f1"),
        "similarity": mean("similarity"),
        "similarity_kind": "band onset envelopes" if track.is_drum else "chroma",
        "n_notes": len(track.notes),
        "n_audio_onsets": int(audio_on.size),
        "bars_checked": len(rows),
        "n_bars": len(bars),
        "flagged_bars": flagged,
    }


# --------------------------------------------------------------------------------------------


def _round(obj: Any, digits: int = 4) -> Any:
    if isinstance(obj, dict):
        return {k: _round(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_round(v, digits) for v in obj]
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return round(f, digits) if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _default_workers() -> int:
    """Threads for the report: the cores this process may use, at most one per stem."""
    from .cores import usable_cores

    return min(4, usable_cores())


def _stem_entry(
    name: str,
    audio: Audio,
    track: NoteTrack | None,
    monos: Mapping[str, np.ndarray],
    mags: Mapping[str, np.ndarray],
    bleed: Mapping[str, Mapping[str, float]],
    grid: BeatGrid,
) -> dict[str, Any]:
    """One stem's entry of :func:`quality_report`."""
    peak = float(np.abs(audio.samples).max()) if audio.n_samples else 0.0
    leak = float(sum(bleed[name].values()))
    src = max(bleed[name], key=bleed[name].get) if leak > 0 else None
    entry: dict[str, Any] = {
        "loudness_lufs": loudness_lufs(audio),
        "peak_dbfs": 20 * math.log10(peak) if peak > 0 else None,
        "silence_ratio": silence_ratio(audio),
        "bleed": {"estimate": leak, "source": src, "from": dict(bleed[name])},
        "midi": None,
    }
    n = min((len(y) for y in monos.values()), default=0)
    if track is not None and n > 0:
        # a frame is "active" when its spectral peak is above what a -50 dBFS sine would give
        active = mags[name].max(axis=1) > _frame_threshold(N_FFT)
        entry["midi"] = midi_consistency(monos[name][:n], mags[name], track, grid, active)
    return entry


def quality_report(
    stems: Mapping[str, Audio], tracks: Mapping[str, NoteTrack], grid: BeatGrid, *, workers: int | None = None
) -> dict[str, Any]:
    """Per-stem quality estimates for one split, without ground truth (see the module docstring).

    Parameters
    ----------
    stems : {name: Audio}
        The separated stems (same length; any rate and channel count).
    tracks : {name: NoteTrack}
        Their MIDI; a stem without a track gets ``"midi": None``.
    grid : BeatGrid
        The song's beats; bars come from its downbeats.
    workers : int, optional
        Threads (default: the machine's cores, at most 4). The stems are analysed side by side;
        the report is the same for any number.

    Returns
    -------
    ``{"version": 1, "stems": {name: {...}}, "method": {...}}``, JSON-serialisable.
    """
    from concurrent.futures import ThreadPoolExecutor

    names = list(stems)
    with ThreadPoolExecutor(max(1, workers or _default_workers())) as pool:
        monos = dict(zip(names, pool.map(_mono_at, (stems[s] for s in names))))
        bleed, mags = _bleed_and_magnitudes(monos, pool=pool)
        out = dict(zip(names, pool.map(lambda s: _stem_entry(s, stems[s], tracks.get(s), monos, mags, bleed, grid), names)))
    return _round({
        "version": 1,
        "stems": out,
        "method": {
            "loudness": "ITU-R BS.1770-4 integrated loudness (K-weighted, gated), LUFS",
            "silence_ratio": f"share of 100 ms frames with RMS below {SILENCE_DBFS:.0f} dBFS",
            "bleed": "estimated share of the stem's energy leaked from the other stems (0 = clean): per "
            "cell, the other stems' claim |X_j|^0.5 / sum_k |X_k|^0.5 times their coherence with this stem "
            f"over {BLEED_TILE[0]} frames x {BLEED_TILE[1]} bins (chance removed), energy-weighted (docs/bleed.md)",
            "midi": f"per bar: mean of onset F1 ({ONSET_TOLERANCE * 1000:.0f} ms) and chroma / drum-band "
            f"similarity between the stem and a simple rendering of its MIDI; bars below {FLAG_BELOW} flagged",
        },
    })


__all__: Sequence[str] = [
    "bar_bounds",
    "bleed_from_signals",
    "bleed_matrix",
    "loudness_lufs",
    "midi_consistency",
    "quality_report",
    "render_track",
    "silence_ratio",
]
