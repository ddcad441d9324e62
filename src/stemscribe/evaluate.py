"""Scores against ground truth: separation (SDR) and transcription (mir_eval note metrics).

Metrics (pure functions, numpy in, floats out)
----------------------------------------------
``sdr``            whole-clip SDR, the MDX-2021 "global SDR":
                   ``10 log10((eps + sum s^2) / (eps + sum (s - s_hat)^2))`` over all samples and channels,
                   ``eps = 1e-7``. A perfect estimate gives a very high value (about 10 log10(|s|^2 / eps)),
                   a silent estimate gives exactly 0 dB. A silent reference gives 0 dB for a silent
                   estimate and a large negative value otherwise; such stems are flagged
                   ``reference_silent`` and left out of the averages.
``framewise_sdr``  the SDR of museval's BSSEval v4 (``museval.evaluate(..., mode="v4")``, i.e.
                   ``bss_eval`` with time-invariant 512-tap distortion filters, images version, no
                   permutation): per 1 s window with 1 s hop (full windows only; a clip shorter than
                   one window is one frame), ``10 log10(|s|^2 / |s - s_hat|^2)`` on the window. In
                   BSSEval v4 the SDR term does not depend on the distortion filters (``s_true`` is the
                   zero-padded reference and the three error terms sum to ``s_hat - s``), so this is
                   exact without computing them; ISR/SIR/SAR, which do, are not computed. As in museval,
                   a frame in which *any* target's reference or estimate is all zeros (channel sum
                   exactly 0) is NaN for every target, and a zero error gives +inf.
``interference_share``        share of an estimate's energy that is the other references, from one
                   gain per reference over the whole clip (misses leaks through time-varying masks).
``local_interference_share``  the same from a complex least-squares projection per 4 x 4 STFT tile
                   (46 ms x 86 Hz): the ground truth the quality report's bleed estimate is checked against.
``museval_median`` per song: median over its non-NaN frames; over a dataset: median over songs
                   (the SiSEC 2018 reporting convention).
``note_scores``    mir_eval.transcription note precision/recall/F1, onset only (50 ms, 50 cents) and
                   onset+offset (offset within max(50 ms, 20 % of the note's duration)).
``drum_scores``    per drum class (kick, snare, hi-hat, toms, cymbals) onset P/R/F1 with
                   mir_eval's one-to-one event matching (50 ms); GM pitches map to classes by
                   :data:`DRUM_CLASSES`.
When both reference and estimate are empty the scores are 1 (nothing to find, nothing found);
when exactly one is empty they are 0.

Datasets
--------
:func:`load_dataset` reads a folder of song folders (``mixture`` + ``drums``/``bass``/``other``/``vocals``
as wav/flac, optional ``<stem>.mid`` and ``meta.json`` with ``tempo``, and the key as ``key`` (tonic
pitch class, 0 = C) and ``minor``) or a folder of MUSDB-style
``*.stem.mp4`` files (streams mixture, drums, bass, other, vocals; decoded with PyAV).

Runs
----
:func:`evaluate_separation` and :func:`evaluate_transcription` score a model or the transcribers on a
dataset and return JSON-serialisable dicts; :func:`write_results` writes ``<task>.json``, ``<task>.md``
and PNG plots.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BadArgumentError, BadInputError
from .report import quality_report
from .types import (
    STEM_NAMES,
    Audio,
    BeatGrid,
    Note,
    NoteTrack,
    Progress,
    report_progress,
)

#: epsilon of the whole-clip SDR (MDX 2021 challenge convention)
SDR_EPS = 1e-7
#: the conventions, as written into every result file
SDR_CONVENTION = "whole-clip SDR = 10*log10((1e-7 + sum s^2) / (1e-7 + sum (s - s_hat)^2)), all samples and channels (MDX 2021 'global SDR')"
MUSEVAL_CONVENTION = (
    "museval BSSEval v4 SDR (bss_eval_images, time-invariant filters, no permutation): 1 s windows, 1 s hop, "
    "frames where any target's reference or estimate is all-zero skipped; median over frames per song, "
    "median over songs"
)
ONSET_TOLERANCE = 0.05
PITCH_TOLERANCE_CENTS = 50.0
OFFSET_RATIO = 0.2
OFFSET_MIN_TOLERANCE = 0.05

#: General MIDI drum pitches grouped into the five classes we score.
DRUM_CLASSES: dict[str, tuple[int, ...]] = {
    "kick": (35, 36),
    "snare": (37, 38, 39, 40),
    "hihat": (42, 44, 46),
    "toms": (41, 43, 45, 47, 48, 50),
    "cymbals": (49, 51, 52, 53, 55, 57, 59),
}
_PITCH_TO_CLASS = {p: c for c, ps in DRUM_CLASSES.items() for p in ps}

AUDIO_EXTENSIONS = (".wav", ".flac")
MUSDB_STREAMS = ("mixture", "drums", "bass", "other", "vocals")


# --------------------------------------------------------------------------------------------
# separation metrics


def _as_2d(x: np.ndarray | Audio) -> np.ndarray:
    arr = x.samples if isinstance(x, Audio) else np.asarray(x)
    arr = np.asarray(arr, dtype=np.float64)
    return arr[None, :] if arr.ndim == 1 else arr


def align(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """Return ``estimate`` cut or zero-padded to ``reference``'s length, channels matched.

    Both ``(channels, n)``. A mono estimate is repeated over the reference's channels; a
    multichannel estimate for a mono reference is averaged (museval pads/truncates the same way).
    """
    ref, est = _as_2d(reference), _as_2d(estimate)
    if est.shape[0] != ref.shape[0]:
        if est.shape[0] == 1:
            est = np.repeat(est, ref.shape[0], axis=0)
        elif ref.shape[0] == 1:
            est = est.mean(axis=0, keepdims=True)
        else:
            raise BadInputError(f"estimate has {est.shape[0]} channels, reference {ref.shape[0]}")
    n = ref.shape[1]
    if est.shape[1] >= n:
        return est[:, :n]
    return np.pad(est, ((0, 0), (0, n - est.shape[1])))


def sdr(reference: np.ndarray | Audio, estimate: np.ndarray | Audio, *, eps: float = SDR_EPS) -> float:
    """Whole-clip SDR in dB of ``estimate`` against ``reference`` (both ``(channels, n)`` or ``(n,)``).

    ``10 log10((eps + sum s^2) / (eps + sum (s - s_hat)^2))``; the estimate is aligned to the
    reference first (:func:`align`).
    """
    ref = _as_2d(reference)
    est = align(ref, estimate)
    num = float(np.sum(ref**2)) + eps
    den = float(np.sum((ref - est) ** 2)) + eps
    return 10.0 * math.log10(num / den)


def framewise_sdr(
    references: np.ndarray, estimates: np.ndarray, *, sr: int, window: float = 1.0, hop: float = 1.0
) -> np.ndarray:
    """museval BSSEval-v4 SDR per frame.

    Parameters
    ----------
    references, estimates : array ``(n_targets, channels, n)``
        All targets of one song, evaluated together (the silence rule looks at all of them).
    sr : int
        Sample rate; ``window`` and ``hop`` are in seconds (museval: 1 s and 1 s).

    Returns
    -------
    array ``(n_targets, n_frames)`` in dB; NaN for frames in which any reference or estimate is
    all zeros, +inf where the error is exactly zero.
    """
    ref = np.asarray(references, dtype=np.float64)
    est = np.asarray(estimates, dtype=np.float64)
    if ref.shape != est.shape or ref.ndim != 3:
        raise BadInputError(f"references {ref.shape} and estimates {est.shape} must both be (targets, channels, n)")
    n = ref.shape[2]
    win, hp = int(window * sr), int(hop * sr)
    n_frames = int(np.floor((n - win + hp) / hp)) if win < n else 1
    out = np.full((ref.shape[0], n_frames), np.nan)
    for t in range(n_frames):
        sl = slice(t * hp, min(t * hp + win, n))
        r, e = ref[:, :, sl], est[:, :, sl]
        # museval's _any_source_silent: the channel sum is exactly zero at every sample
        if np.any(np.all(r.sum(axis=1) == 0, axis=1)) or np.any(np.all(e.sum(axis=1) == 0, axis=1)):
            continue
        num = np.sum(r**2, axis=(1, 2))
        den = np.sum((r - e) ** 2, axis=(1, 2))
        with np.errstate(divide="ignore"):
            out[:, t] = np.where(den == 0, np.inf, 10.0 * np.log10(num / np.where(den == 0, 1.0, den)))
    return out


def interference_share(references: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """Share of each estimate's energy that is the *other* references, by a gain-only projection.

    ``references``, ``estimates``: ``(n_targets, channels, n)``. Each estimate is projected (least
    squares, one gain per reference, no filters) onto the span of all references; the result is
    ``|sum_{j != i} a_j s_j|^2 / |s_hat_i|^2`` per target (0 = no bleed; NaN for a silent estimate).
    Like BSSEval's SIR with 0-tap instead of 512-tap distortion filters. A leak through a
    time-varying mask is not a scaled copy of the whole source, so this misses most of it (on
    ``lite``'s output it finds about half of :func:`local_interference_share`); kept for comparison.
    """
    ref = np.asarray(references, dtype=np.float64).reshape(len(references), -1)
    est = np.asarray(estimates, dtype=np.float64).reshape(len(estimates), -1)
    gram = ref @ ref.T
    out = np.full(len(est), np.nan)
    for i, e in enumerate(est):
        energy = float(e @ e)
        if energy == 0:
            continue
        gains = np.linalg.lstsq(gram, ref @ e, rcond=None)[0]
        others = np.delete(np.arange(len(ref)), i)
        inter = gains[others] @ ref[others]
        out[i] = float(inter @ inter) / energy
    return out


#: local projection: STFT size and hop (samples at the references' rate) and tile (frames, bins)
LOCAL_N_FFT = 2048
LOCAL_HOP = 512
LOCAL_TILE = (4, 4)


def _stft_c(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Complex STFT of ``(..., n)`` -> ``(..., frames, n_fft // 2 + 1)`` (Hann, centred)."""
    import scipy.fft

    pad = [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_fft // 2 + hop)]
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, pad), n_fft, axis=-1)[..., ::hop, :]
    return scipy.fft.rfft(frames * np.hanning(n_fft), axis=-1)


def _tiles(z: np.ndarray, tile: tuple[int, int]) -> np.ndarray:
    """``(k, channels, frames, bins)`` -> ``(channels, frame tiles, bin tiles, k, cells per tile)``, zero-padded."""
    k, c, t, f = z.shape
    tt, tf = tile
    n_t, n_f = -(-t // tt), -(-f // tf)
    z = np.pad(z, ((0, 0), (0, 0), (0, n_t * tt - t), (0, n_f * tf - f))).reshape(k, c, n_t, tt, n_f, tf)
    return z.transpose(1, 2, 4, 0, 3, 5).reshape(c, n_t, n_f, k, tt * tf)


def local_interference_share(
    references: np.ndarray, estimates: np.ndarray, *, tile: tuple[int, int] = LOCAL_TILE,
    n_fft: int = LOCAL_N_FFT, hop: int = LOCAL_HOP,
) -> tuple[np.ndarray, np.ndarray]:
    """Share of each estimate's energy that is the *other* references, by a local projection.

    ``references``, ``estimates``: ``(n_targets, channels, n)``. Both are cut into STFT tiles of
    ``tile`` = (frames, bins) (default 4 x 4 = 46 ms x 86 Hz at 44.1 kHz) per channel; in each tile
    the estimate's STFT is projected (complex least squares) onto the references' STFTs, and the
    part explained by the other references is interference. Unlike a whole-clip projection this
    follows a time-varying mask: for a mask separator ``s_hat_i = M_i X`` it recovers the exact
    leak ``M_i S_j`` to within a few percent. A tile's chance fit (a regressor explains about one
    residual-noise variance even if unrelated) is subtracted. Returns ``(share (n_targets,),
    pair (n_targets, n_targets))``: ``pair[i, j]`` is the share of estimate ``i`` explained by
    reference ``j`` (diagonal 0); NaN rows for a silent estimate. Memory is bounded (blocks of frames).
    """
    ref = np.asarray(references, dtype=np.float64)
    est = np.asarray(estimates, dtype=np.float64)
    if ref.shape != est.shape or ref.ndim != 3:
        raise BadInputError(f"references {ref.shape} and estimates {est.shape} must both be (targets, channels, n)")
    k, tt, tf = ref.shape[0], tile[0], tile[1]
    n_cells = tt * tf
    inter = np.zeros(k)
    pair = np.zeros((k, k))
    energy = np.zeros(k)
    block = 64 * tt * hop  # samples per block: 64 tiles of frames
    n = ref.shape[2]
    for start in range(0, max(n, 1), block):
        # each block is transformed on its own, with a window of context either side
        lo, hi = max(0, start - n_fft), min(n, start + block + n_fft)
        s_ = _stft_c(ref[:, :, lo:hi], n_fft, hop)
        e_ = _stft_c(est[:, :, lo:hi], n_fft, hop)
        f0 = (start - lo) // hop
        f1 = f0 + (min(block, n - start) + hop - 1) // hop
        s_, e_ = s_[:, :, f0:f1], e_[:, :, f0:f1]
        st, et = _tiles(s_, tile), _tiles(e_, tile)
        gram = np.einsum("ctfkn,ctfln->ctfkl", st.conj(), st)
        rhs = np.einsum("ctfkn,ctfin->ctfik", st.conj(), et)
        trace = np.real(np.einsum("ctfkk->ctf", gram))[..., None, None]
        gains = np.linalg.solve((gram + (1e-9 * trace + 1e-30) * np.eye(k))[:, :, :, None], rhs[..., None])[..., 0]
        e_energy = np.sum(np.abs(et) ** 2, axis=-1)  # (c, t, f, i)
        explained = np.real(np.einsum("ctfik,ctfkl,ctfil->ctfi", gains.conj(), gram, gains))
        noise = np.maximum(e_energy - explained, 0.0) / max(n_cells - k, 1)
        per = np.abs(gains) ** 2 * np.real(np.einsum("ctfkk->ctfk", gram))[:, :, :, None, :]
        energy += e_energy.sum(axis=(0, 1, 2))
        for i in range(k):
            g_o = gains[:, :, :, i, :].copy()
            g_o[..., i] = 0.0
            part = np.real(np.einsum("ctfk,ctfkl,ctfl->ctf", g_o.conj(), gram, g_o))
            inter[i] += np.maximum(part - (k - 1) * noise[..., i], 0.0).sum()
            pair[i] += np.maximum(per[:, :, :, i, :] - noise[..., i, None], 0.0).sum(axis=(0, 1, 2))
    np.fill_diagonal(pair, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(energy > 0, inter / np.where(energy > 0, energy, 1.0), np.nan)
        pair = np.where(energy[:, None] > 0, pair / np.where(energy > 0, energy, 1.0)[:, None], np.nan)
    return share, pair


def nanmedian(values: Iterable[float]) -> float:
    """Median ignoring NaN (and None); NaN when nothing is left. +inf values are kept."""
    arr = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(np.median(arr)) if arr.size else float("nan")


# --------------------------------------------------------------------------------------------
# transcription metrics


def _prf(n_match: int, n_ref: int, n_est: int) -> dict[str, float | int]:
    if n_ref == 0 and n_est == 0:
        p = r = f = 1.0
    else:
        p = n_match / n_est if n_est else 0.0
        r = n_match / n_ref if n_ref else 0.0
        f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return {"precision": p, "recall": r, "f1": f, "n_ref": n_ref, "n_est": n_est, "n_match": n_match}


def _note_arrays(notes: Sequence[Note]) -> tuple[np.ndarray, np.ndarray]:
    if not notes:
        return np.zeros((0, 2)), np.zeros(0)
    iv = np.array([[n.start, max(n.end, n.start + 1e-3)] for n in notes], dtype=float)
    hz = 440.0 * 2.0 ** ((np.array([n.pitch for n in notes], dtype=float) - 69.0) / 12.0)
    return iv, hz


def note_scores(
    reference: NoteTrack | Sequence[Note],
    estimate: NoteTrack | Sequence[Note],
    *,
    onset_tolerance: float = ONSET_TOLERANCE,
) -> dict[str, dict[str, float | int]]:
    """mir_eval note P/R/F1: ``{"onset": {...}, "onset_offset": {...}}`` (each with match counts)."""
    from mir_eval.transcription import match_notes

    ref_notes = reference.notes if isinstance(reference, NoteTrack) else list(reference)
    est_notes = estimate.notes if isinstance(estimate, NoteTrack) else list(estimate)
    ref_iv, ref_hz = _note_arrays(ref_notes)
    est_iv, est_hz = _note_arrays(est_notes)
    out = {}
    for key, offset_ratio in (("onset", None), ("onset_offset", OFFSET_RATIO)):
        if len(ref_notes) and len(est_notes):
            matches = match_notes(
                ref_iv, ref_hz, est_iv, est_hz,
                onset_tolerance=onset_tolerance, pitch_tolerance=PITCH_TOLERANCE_CENTS,
                offset_ratio=offset_ratio, offset_min_tolerance=OFFSET_MIN_TOLERANCE,
            )
            n_match = len(matches)
        else:
            n_match = 0
        out[key] = _prf(n_match, len(ref_notes), len(est_notes))
    return out


def drum_class(pitch: int) -> str | None:
    """The scoring class of a General MIDI drum pitch (``None`` for other percussion)."""
    return _PITCH_TO_CLASS.get(int(pitch))


def drum_scores(
    reference: NoteTrack | Sequence[Note],
    estimate: NoteTrack | Sequence[Note],
    *,
    window: float = ONSET_TOLERANCE,
) -> dict[str, Any]:
    """Per-class onset P/R/F1 for drums: ``{"classes": {class: {...}}, "all": {...}}``.

    ``all`` pools the match counts of the five classes (a hit counts only in its own class).
    Classes absent from both reference and estimate are left out of ``classes``.
    """
    from mir_eval.util import match_events

    ref_notes = reference.notes if isinstance(reference, NoteTrack) else list(reference)
    est_notes = estimate.notes if isinstance(estimate, NoteTrack) else list(estimate)
    classes: dict[str, dict[str, float | int]] = {}
    tot = [0, 0, 0]
    for cls in DRUM_CLASSES:
        r = np.array(sorted(n.start for n in ref_notes if drum_class(n.pitch) == cls))
        e = np.array(sorted(n.start for n in est_notes if drum_class(n.pitch) == cls))
        if len(r) == 0 and len(e) == 0:
            continue
        m = len(match_events(r, e, window)) if len(r) and len(e) else 0
        classes[cls] = _prf(m, len(r), len(e))
        tot = [tot[0] + m, tot[1] + len(r), tot[2] + len(e)]
    return {"classes": classes, "all": _prf(*tot)}


# --------------------------------------------------------------------------------------------
# datasets


@dataclass
class Song:
    """One song of a dataset; audio is loaded on demand (:meth:`load`)."""

    name: str
    path: Path
    kind: str  # "folder" or "stem.mp4"
    stems: tuple[str, ...] = ()
    midi: dict[str, Path] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def _file(self, name: str) -> Path:
        for ext in AUDIO_EXTENSIONS:
            p = self.path / f"{name}{ext}"
            if p.is_file():
                return p
        raise BadInputError(f"{self.path}: no {name}.wav or {name}.flac")

    def load_mixture(self) -> Audio:
        """The mixture as :class:`Audio`."""
        if self.kind == "stem.mp4":
            return read_stem_mp4(self.path, streams=("mixture",))["mixture"]
        from .audio import load

        return load(self._file("mixture"))

    def load_stems(self) -> dict[str, Audio]:
        """The reference stems ``{stem: Audio}``."""
        if self.kind == "stem.mp4":
            return read_stem_mp4(self.path, streams=self.stems)
        from .audio import load

        return {s: load(self._file(s)) for s in self.stems}

    def load_midi(self, stem: str) -> NoteTrack:
        """The ground-truth notes of ``stem`` (all instruments of ``<stem>.mid`` merged)."""
        from .midi import read_midi

        tracks, _ = read_midi(self.midi[stem])
        notes = [n for t in tracks for n in t.notes]
        return NoteTrack(stem, notes, is_drum=any(t.is_drum for t in tracks) or stem == "drums").sorted()


def read_stem_mp4(path: str | Path, *, streams: Sequence[str] = MUSDB_STREAMS) -> dict[str, Audio]:
    """Decode the named streams of a MUSDB ``.stem.mp4`` (stream order: mixture, drums, bass, other, vocals)."""
    import av

    path = Path(path)
    want = {MUSDB_STREAMS.index(s): s for s in streams}
    try:
        container = av.open(str(path))
    except Exception as exc:  # PyAV raises many error types
        raise BadInputError(f"{path}: cannot open as a stem file ({exc})") from None
    with container:
        audio_streams = list(container.streams.audio)
        if len(audio_streams) < max(want) + 1:
            raise BadInputError(f"{path}: has {len(audio_streams)} audio streams, a .stem.mp4 has 5")
        chunks: dict[int, list[np.ndarray]] = {i: [] for i in want}
        selected = [audio_streams[i] for i in want]
        for packet in container.demux(*selected):
            idx = audio_streams.index(packet.stream)
            for frame in packet.decode():
                arr = frame.to_ndarray()
                if frame.format.is_planar:
                    arr = arr.reshape(len(frame.layout.channels), -1)
                else:
                    arr = arr.reshape(-1, len(frame.layout.channels)).T
                if arr.dtype.kind in "iu":
                    arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
                chunks[idx].append(arr.astype(np.float32))
        out = {}
        for i, name in want.items():
            if not chunks[i]:
                raise BadInputError(f"{path}: stream {name} has no audio")
            out[name] = Audio(np.concatenate(chunks[i], axis=1), audio_streams[i].rate)
    n = min(a.n_samples for a in out.values())
    return {k: Audio(a.samples[:, :n], a.sr) for k, a in out.items()}


def load_dataset(path: str | Path) -> list[Song]:
    """List the songs of a dataset folder (song folders, or ``*.stem.mp4`` files), sorted by name."""
    root = Path(path)
    if not root.is_dir():
        raise BadInputError(f"{root}: not a folder (give a folder of song folders or of .stem.mp4 files)")
    songs: list[Song] = []
    for mp4 in sorted(root.glob("*.stem.mp4")):
        songs.append(Song(mp4.name[: -len(".stem.mp4")], mp4, "stem.mp4", STEM_NAMES))
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if not any((d / f"mixture{e}").is_file() for e in AUDIO_EXTENSIONS):
            continue
        stems = tuple(s for s in STEM_NAMES if any((d / f"{s}{e}").is_file() for e in AUDIO_EXTENSIONS))
        midi = {s: d / f"{s}.mid" for s in STEM_NAMES if (d / f"{s}.mid").is_file()}
        meta: dict[str, Any] = {}
        if (d / "meta.json").is_file():
            try:
                meta = json.loads((d / "meta.json").read_text())
            except (OSError, ValueError):
                meta = {}
        songs.append(Song(d.name, d, "folder", stems, midi, meta))
    if not songs:
        raise BadInputError(
            f"{root}: no songs found (expected song folders with mixture.wav/.flac and stems, or *.stem.mp4 files)"
        )
    return songs


# --------------------------------------------------------------------------------------------
# runs


class _Clock:
    """Accumulates wall time per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, t0: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0


def _rtf(seconds: Mapping[str, float], duration: float) -> dict[str, float]:
    return {k: v / duration for k, v in seconds.items()} if duration > 0 else {}


def _mean(values: Iterable[float | None]) -> float:
    arr = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return float(np.mean(arr)) if arr else float("nan")


def evaluate_separation(
    dataset: str | Path | Sequence[Song],
    *,
    model: str | None = None,
    separator: Any = None,
    model_dir: str | Path | None = None,
    limit: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Separate every song's mixture and score each stem against its reference.

    ``separator`` (anything with ``.separate(Audio) -> {stem: Audio}`` and ``.name``) overrides
    ``model``. Returns a JSON-serialisable dict: ``songs`` (per song, per stem: ``sdr``,
    ``museval_sdr``, ``museval_frames``), ``summary`` (per stem: mean/median whole-clip SDR,
    median-of-medians museval SDR), ``rtf`` (seconds of work per second of audio, per stage).
    """
    songs = load_dataset(dataset) if isinstance(dataset, (str, Path)) else list(dataset)
    songs = songs[:limit] if limit else songs
    if separator is None:
        from .separate import get_separator

        separator = get_separator(model, model_dir=model_dir)
    clock = _Clock()
    total = 0.0
    rows = []
    for k, song in enumerate(songs):
        report_progress(progress, "eval", k / len(songs), song=song.name)
        t0 = time.perf_counter()
        mixture = song.load_mixture()
        refs = song.load_stems()
        clock.add("load", t0)
        t0 = time.perf_counter()
        est = separator.separate(mixture)
        clock.add("separate", t0)
        total += mixture.duration
        t0 = time.perf_counter()
        names = [s for s in refs if s in est]
        ref_arr = np.stack([_as_2d(refs[s]) for s in names])
        est_arr = np.stack([align(refs[s].samples, est[s].samples) for s in names])
        frames = framewise_sdr(ref_arr, est_arr, sr=refs[names[0]].sr)
        bleed = quality_report({s: est[s] for s in names}, {}, BeatGrid(120.0))["stems"]
        inter = interference_share(ref_arr, est_arr)
        local, local_pair = local_interference_share(ref_arr, est_arr)
        stems = {}
        for i, s in enumerate(names):
            silent = not np.any(ref_arr[i])
            stems[s] = {
                "sdr": sdr(ref_arr[i], est_arr[i]),
                "museval_sdr": nanmedian(frames[i]),
                "museval_frames": int(np.sum(~np.isnan(frames[i]))),
                "reference_silent": silent,
                "interference_share": inter[i],
                "local_interference_share": local[i],
                "local_interference_from": {t: local_pair[i, k] for k, t in enumerate(names) if k != i},
                "report_bleed": bleed[s]["bleed"]["estimate"],
                "report_bleed_from": bleed[s]["bleed"]["from"],
            }
        clock.add("score", t0)
        rows.append({"name": song.name, "duration": mixture.duration, "stems": stems})
    report_progress(progress, "eval", 1.0)
    summary = {}
    for s in STEM_NAMES:
        vals = [r["stems"][s] for r in rows if s in r["stems"] and not r["stems"][s]["reference_silent"]]
        if not vals:
            continue
        summary[s] = {
            "sdr_mean": _mean(v["sdr"] for v in vals),
            "sdr_median": nanmedian(v["sdr"] for v in vals),
            "interference_share_mean": _mean(v["interference_share"] for v in vals),
            "local_interference_share_mean": _mean(v["local_interference_share"] for v in vals),
            "report_bleed_mean": _mean(v["report_bleed"] for v in vals),
            "museval_sdr": nanmedian(v["museval_sdr"] for v in vals),
            "songs": len(vals),
        }
    scored = [v for r in rows for v in r["stems"].values() if not v["reference_silent"]
              and not math.isnan(v["interference_share"]) and not math.isnan(v["local_interference_share"])]
    local_pairs = [(v["report_bleed"], v["local_interference_share"]) for v in scored]
    global_pairs = [(v["report_bleed"], v["interference_share"]) for v in scored]
    return {
        "task": "separation",
        "dataset": str(dataset) if isinstance(dataset, (str, Path)) else None,
        "model": getattr(separator, "name", model),
        "conventions": {"sdr": SDR_CONVENTION, "museval_sdr": MUSEVAL_CONVENTION},
        "songs": rows,
        "summary": summary,
        "report_check": {
            "what": "correlation, over every (song, stem), between the quality report's bleed estimate "
            "(no ground truth) and the true local interference share (per 4x4 STFT tile, complex "
            "least-squares projection on the references)",
            "pearson": _pearson(local_pairs),
            "spearman": _spearman(local_pairs),
            "mean_abs_error": _mean(abs(a - b) for a, b in local_pairs),
            "n": len(local_pairs),
            "old_ground_truth": {
                "what": "whole-clip interference share (one gain per reference, no filters)",
                "pearson": _pearson(global_pairs),
                "spearman": _spearman(global_pairs),
            },
        },
        "seconds": clock.seconds,
        "audio_seconds": total,
        "rtf": _rtf(clock.seconds, total),
    }


SOURCES = ("true", "separated", "both")


def _transcribe(stem: str, audio: Audio, others: Mapping[str, Audio]) -> NoteTrack:
    if stem == "drums":
        from .transcribe.drums import transcribe_drums

        return transcribe_drums(audio, others=others)
    from .transcribe.pitched import transcribe_pitched

    return transcribe_pitched(audio, stem=stem, others=others)


def evaluate_transcription(
    dataset: str | Path | Sequence[Song],
    *,
    source: str = "true",
    model: str | None = None,
    separator: Any = None,
    model_dir: str | Path | None = None,
    transcriber: Any = None,
    limit: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Transcribe every song's stems that have ``<stem>.mid`` ground truth and score them.

    ``source``: ``"true"`` (reference stems), ``"separated"`` (stems from ``model``) or ``"both"``.
    Pitched stems get :func:`note_scores`, drums :func:`drum_scores`; the tempo and key estimated
    from the mixture are compared with ``meta.json``'s ``tempo`` and ``key``/``minor`` when present
    (the key by :func:`key_score`). ``transcriber(stem, audio,
    others) -> NoteTrack`` replaces stemscribe's transcribers (used by the tests and benchmarks).
    """
    if source not in SOURCES:
        raise BadArgumentError(f"unknown source {source!r}: choose from {', '.join(SOURCES)}")
    kinds = ("true", "separated") if source == "both" else (source,)
    songs = load_dataset(dataset) if isinstance(dataset, (str, Path)) else list(dataset)
    songs = [s for s in songs if s.midi][: limit or None]
    if not songs:
        raise BadInputError("no song in the dataset has <stem>.mid ground truth to score transcription against")
    if "separated" in kinds and separator is None:
        from .separate import get_separator

        separator = get_separator(model, model_dir=model_dir)
    transcriber = transcriber or _transcribe
    clock = _Clock()
    total = 0.0
    rows = []
    for k, song in enumerate(songs):
        report_progress(progress, "eval", k / len(songs), song=song.name)
        t0 = time.perf_counter()
        mixture = song.load_mixture()
        audio_by_kind: dict[str, dict[str, Audio]] = {}
        if "true" in kinds:
            audio_by_kind["true"] = song.load_stems()
        clock.add("load", t0)
        total += mixture.duration
        if "separated" in kinds:
            t0 = time.perf_counter()
            audio_by_kind["separated"] = separator.separate(mixture)
            clock.add("separate", t0)
        row: dict[str, Any] = {"name": song.name, "duration": mixture.duration, "results": {}}
        t0 = time.perf_counter()
        from .transcribe.tempo import estimate_beats

        grid = estimate_beats(mixture)
        tempo_est = float(grid.tempo)
        clock.add("tempo", t0)
        ref_tempo = song.meta.get("tempo")
        row["tempo"] = {
            "reference": ref_tempo,
            "estimate": tempo_est,
            "error_bpm": abs(tempo_est - float(ref_tempo)) if ref_tempo else None,
        }
        ref_key = _meta_key(song.meta)
        if ref_key is not None:
            from .transcribe.key import estimate_key

            t0 = time.perf_counter()
            key_est = estimate_key(mixture)
            clock.add("key", t0)
            row["key"] = {"reference": ref_key, "estimate": key_est, "score": key_score(ref_key, key_est)}
        for kind in kinds:
            stems = audio_by_kind[kind]
            res = {}
            tracks = {}
            for stem in (s for s in STEM_NAMES if s in song.midi and s in stems):
                ref = song.load_midi(stem)
                others = {s: a for s, a in stems.items() if s != stem}
                t0 = time.perf_counter()
                est = tracks[stem] = transcriber(stem, stems[stem], others)
                clock.add(f"transcribe_{stem}", t0)
                res[stem] = drum_scores(ref, est) if stem == "drums" else note_scores(ref, est)
            t0 = time.perf_counter()
            quality = quality_report({s: stems[s] for s in tracks}, tracks, grid)["stems"]
            clock.add("report", t0)
            for stem, q in quality.items():
                res[stem]["report_midi_score"] = (q["midi"] or {}).get("score")
            row["results"][kind] = res
        rows.append(row)
    report_progress(progress, "eval", 1.0)
    errors = [r["tempo"]["error_bpm"] for r in rows if r["tempo"]["error_bpm"] is not None]
    keys = [r["key"]["score"] for r in rows if "key" in r]
    pairs = [
        (v["report_midi_score"], v["all"]["f1"] if stem == "drums" else v["onset"]["f1"])
        for r in rows for res in r["results"].values() for stem, v in res.items()
        if v.get("report_midi_score") is not None
    ]
    return {
        "task": "transcription",
        "dataset": str(dataset) if isinstance(dataset, (str, Path)) else None,
        "model": getattr(separator, "name", model) if "separated" in kinds else None,
        "sources": list(kinds),
        "conventions": {
            "notes": f"mir_eval.transcription: onset within {ONSET_TOLERANCE * 1000:.0f} ms, pitch within "
            f"{PITCH_TOLERANCE_CENTS:.0f} cents; onset_offset also needs the offset within "
            f"max({OFFSET_MIN_TOLERANCE * 1000:.0f} ms, {OFFSET_RATIO:.0%} of the reference duration)",
            "drums": f"mir_eval one-to-one onset matching within {ONSET_TOLERANCE * 1000:.0f} ms per class; "
            + ", ".join(f"{c}={list(p)}" for c, p in DRUM_CLASSES.items()),
            "summary": "mean over songs of per-song scores; 'pooled' sums matches over songs",
        },
        "songs": rows,
        "summary": _summarise_transcription(rows, kinds),
        "report_check": {
            "what": "Pearson correlation, over every (song, source, stem), between the quality report's MIDI "
            "consistency score (no ground truth) and the true onset F1",
            "pearson": _pearson(pairs),
            "n": len(pairs),
        },
        "tempo": {
            "mean_abs_error_bpm": _mean(errors),
            "within_2bpm": float(np.mean([e <= 2.0 for e in errors])) if errors else float("nan"),
            "songs": len(errors),
        },
        "key": {
            "correct": float(np.mean([k == 1.0 for k in keys])) if keys else float("nan"),
            "mirex_weighted": _mean(keys),
            "songs": len(keys),
        },
        "seconds": clock.seconds,
        "audio_seconds": total,
        "rtf": _rtf(clock.seconds, total),
    }


def key_score(reference: str, estimate: str | None) -> float:
    """MIREX weighted key score (``mir_eval.key.weighted_score``): 1 for the same key, 0.5 a fifth
    away (same mode), 0.3 the relative, 0.2 the parallel key, else 0 (also for no estimate, ``None``).
    Keys as ``"A minor"``."""
    import mir_eval

    if estimate is None:
        return 0.0

    return float(mir_eval.key.weighted_score(reference, estimate))


def _meta_key(meta: Mapping[str, Any]) -> str | None:
    """``meta.json``'s key as ``"<tonic> major|minor"``: ``key`` a pitch class (0 = C) or a tonic
    name, ``minor`` a bool; ``None`` when absent or unreadable."""
    from .transcribe.key import PITCH_CLASSES

    key = meta.get("key")
    if isinstance(key, bool) or key is None:
        return None
    if isinstance(key, (int, float)) and float(key).is_integer():
        tonic = PITCH_CLASSES[int(key) % 12]
    elif isinstance(key, str) and key.strip():
        parts = key.split()
        if len(parts) == 2 and parts[1].lower() in ("major", "minor"):
            return f"{parts[0]} {parts[1].lower()}"
        tonic = key.strip()
    else:
        return None
    return f"{tonic} {'minor' if meta.get('minor') else 'major'}"


def _pearson(pairs: Sequence[tuple[float, float]]) -> float:
    if len(pairs) < 3:
        return float("nan")
    a = np.array(pairs, dtype=float)
    if np.std(a[:, 0]) == 0 or np.std(a[:, 1]) == 0:
        return float("nan")
    return float(np.corrcoef(a[:, 0], a[:, 1])[0, 1])


def _spearman(pairs: Sequence[tuple[float, float]]) -> float:
    from scipy.stats import rankdata

    if len(pairs) < 3:
        return float("nan")
    a = np.array(pairs, dtype=float)
    return _pearson(list(zip(rankdata(a[:, 0]), rankdata(a[:, 1]))))


def _pooled(scores: Sequence[Mapping[str, Any]]) -> float:
    m = sum(int(s["n_match"]) for s in scores)
    return float(_prf(m, sum(int(s["n_ref"]) for s in scores), sum(int(s["n_est"]) for s in scores))["f1"])


def _summarise_transcription(rows: Sequence[Mapping[str, Any]], kinds: Sequence[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for kind in kinds:
        per: dict[str, Any] = {}
        for stem in STEM_NAMES:
            res = [r["results"][kind][stem] for r in rows if stem in r["results"].get(kind, {})]
            if not res:
                continue
            if stem == "drums":
                entry: dict[str, Any] = {"f1": _mean(x["all"]["f1"] for x in res), "f1_pooled": _pooled([x["all"] for x in res])}
                for cls in DRUM_CLASSES:
                    c = [x["classes"][cls] for x in res if cls in x["classes"]]
                    if c:
                        entry[cls] = {"f1": _mean(v["f1"] for v in c), "f1_pooled": _pooled(c), "songs": len(c)}
                per[stem] = entry
            else:
                per[stem] = {
                    key: {
                        "precision": _mean(x[key]["precision"] for x in res),
                        "recall": _mean(x[key]["recall"] for x in res),
                        "f1": _mean(x[key]["f1"] for x in res),
                        "f1_pooled": _pooled([x[key] for x in res]),
                    }
                    for key in ("onset", "onset_offset")
                }
            per[stem]["songs"] = len(res)
        summary[kind] = per
    return summary


# --------------------------------------------------------------------------------------------
# output files


def to_jsonable(obj: Any) -> Any:
    """Turn numpy scalars/arrays and non-finite floats into plain JSON (NaN and +-inf become null)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return round(f, 6) if math.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    f = float(v)
    if math.isnan(f):
        return "–"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f"{f:.{digits}f}"


def results_markdown(results: Mapping[str, Any]) -> str:
    """Markdown tables of a separation or transcription result."""
    lines: list[str] = []
    if results["task"] == "separation":
        lines += [f"### Separation — model `{results.get('model')}`", ""]
        lines += [f"- SDR: {results['conventions']['sdr']}", f"- museval: {results['conventions']['museval_sdr']}", ""]
        stems = [s for s in STEM_NAMES if s in results["summary"]]
        lines += [("| stem | SDR mean (dB) | SDR median (dB) | museval SDR (dB) | interference share: local "
                   "| interference share: whole-clip | report bleed | songs |"),
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for s in stems:
            v = results["summary"][s]
            lines.append(f"| {s} | {_fmt(v['sdr_mean'], 2)} | {_fmt(v['sdr_median'], 2)} | {_fmt(v['museval_sdr'], 2)} "
                         f"| {_fmt(v.get('local_interference_share_mean'), 3)} "
                         f"| {_fmt(v.get('interference_share_mean'), 3)} | {_fmt(v.get('report_bleed_mean'), 3)} "
                         f"| {v['songs']} |")
        lines += ["", "Per song (whole-clip SDR / museval SDR, dB):", ""]
        lines += ["| song | " + " | ".join(stems) + " |", "|---|" + "---:|" * len(stems)]
        for r in results["songs"]:
            cells = [f"{_fmt(r['stems'][s]['sdr'], 2)} / {_fmt(r['stems'][s]['museval_sdr'], 2)}" if s in r["stems"] else "–" for s in stems]
            lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    else:
        lines += ["### Transcription", "", f"- notes: {results['conventions']['notes']}", f"- drums: {results['conventions']['drums']}", ""]
        kinds = results["sources"]
        lines += ["| stem | " + " | ".join(f"{k}: onset F1 | {k}: onset+offset F1" for k in kinds) + " |"]
        lines += ["|---|" + "---:|---:|" * len(kinds)]
        for s in ("vocals", "bass", "other"):
            if not any(s in results["summary"][k] for k in kinds):
                continue
            cells = []
            for k in kinds:
                v = results["summary"][k].get(s)
                cells += [_fmt(v["onset"]["f1"]) if v else "–", _fmt(v["onset_offset"]["f1"]) if v else "–"]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        if any("drums" in results["summary"][k] for k in kinds):
            lines += ["", "Drums, onset F1 per class (mean over songs):", ""]
            lines += ["| class | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
            for cls in (*DRUM_CLASSES, "all"):
                cells = []
                for k in kinds:
                    d = results["summary"][k].get("drums", {})
                    cells.append(_fmt(d.get("f1") if cls == "all" else d.get(cls, {}).get("f1")))
                lines.append(f"| {cls} | " + " | ".join(cells) + " |")
        t = results["tempo"]
        lines += ["", (f"Tempo: mean absolute error {_fmt(t['mean_abs_error_bpm'], 2)} BPM, "
                       f"within 2 BPM on {_fmt(t['within_2bpm'], 2)} of {t['songs']} songs.")]
        k = results.get("key")
        if k and k["songs"]:
            lines += ["", (f"Key: correct on {_fmt(k['correct'], 2)} of {k['songs']} songs, "
                           f"MIREX weighted score {_fmt(k['mirex_weighted'], 3)}.")]
    check = results.get("report_check")
    if check:
        line = f"Quality report check: {check['what']}: Pearson r = {_fmt(check['pearson'], 2)}"
        if "spearman" in check:
            line += f", Spearman rho = {_fmt(check['spearman'], 2)}"
        if "mean_abs_error" in check:
            line += f", mean absolute error {_fmt(check['mean_abs_error'], 3)}"
        line += f" (n = {check['n']})."
        old = check.get("old_ground_truth")
        if old:
            line += (f" Against the {old['what']}: Pearson r = {_fmt(old['pearson'], 2)}, "
                     f"Spearman rho = {_fmt(old['spearman'], 2)}.")
        lines += ["", line]
    lines += ["", "Real-time factor (seconds of work per second of audio, 1 = real time):", ""]
    lines += ["| stage | RTF |", "|---|---:|"] + [f"| {k} | {_fmt(v, 4)} |" for k, v in results["rtf"].items()]
    return "\n".join(lines) + "\n"


def _save(fig: Any, path: Path) -> Path:
    from .atomic import atomic_output

    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path


def _plots(results: Mapping[str, Any], out_dir: Path, stem_name: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    if results["task"] == "separation":
        stems = [s for s in STEM_NAMES if s in results["summary"]]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        data = [[r["stems"][s]["sdr"] for r in results["songs"] if s in r["stems"]] for s in stems]
        ax.boxplot(data, tick_labels=stems)
        med = [results["summary"][s]["museval_sdr"] for s in stems]
        ax.plot(range(1, len(stems) + 1), med, "D", color="tab:red", label="museval SDR (median of medians)")
        ax.set_ylabel("whole-clip SDR per song (dB)")
        ax.set_title(f"Separation: {results.get('model')} ({len(results['songs'])} songs)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = _save(fig, out_dir / f"{stem_name}_sdr.png")
        plt.close(fig)
        paths.append(p)
    else:
        kinds = results["sources"]
        labels, groups = [], []
        for s in ("vocals", "bass", "other", "drums"):
            vals = []
            for k in kinds:
                v = results["summary"][k].get(s)
                vals.append(float("nan") if not v else (v["f1"] if s == "drums" else v["onset"]["f1"]))
            labels.append(s)
            groups.append(vals)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        x = np.arange(len(labels))
        w = 0.8 / len(kinds)
        for j, k in enumerate(kinds):
            ax.bar(x + j * w - 0.4 + w / 2, [g[j] for g in groups], w, label=f"{k} stems")
        ax.set_xticks(x, labels)
        ax.set_ylim(0, 1.15)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylabel("onset F1")
        ax.set_title("Transcription (50 ms onsets)")
        ax.legend(fontsize=8, loc="upper center", ncol=len(kinds))
        fig.tight_layout()
        p = _save(fig, out_dir / f"{stem_name}_f1.png")
        plt.close(fig)
        paths.append(p)
    fig, ax = plt.subplots(figsize=(6, 3))
    keys = list(results["rtf"])
    ax.barh(keys, [results["rtf"][k] for k in keys], color="tab:gray")
    ax.set_xlabel("real-time factor (lower is faster)")
    fig.tight_layout()
    p = _save(fig, out_dir / f"{stem_name}_rtf.png")
    plt.close(fig)
    paths.append(p)
    return paths


def write_results(results: Mapping[str, Any], out_dir: str | Path, *, name: str | None = None) -> dict[str, Path]:
    """Write ``<name>.json``, ``<name>.md`` and PNG plots into ``out_dir``; return their paths.

    ``name`` defaults to the task (``separation`` / ``transcription``). Files are written
    atomically (temporary name, then rename).
    """
    from .atomic import atomic_output, ensure_dir

    out = ensure_dir(out_dir)
    name = name or str(results["task"])
    paths: dict[str, Path] = {}
    with atomic_output(out / f"{name}.json") as tmp:
        Path(tmp).write_text(json.dumps(to_jsonable(results), indent=2, allow_nan=False))
    paths["json"] = out / f"{name}.json"
    with atomic_output(out / f"{name}.md") as tmp:
        Path(tmp).write_text(results_markdown(results))
    paths["markdown"] = out / f"{name}.md"
    for i, p in enumerate(_plots(results, out, name)):
        paths[f"plot{i}"] = p
    return paths
