"""basic-pitch's ICASSP 2022 note model, run with onnxruntime (no TensorFlow).

The model (``data/basic_pitch/nmp.onnx``, Apache-2.0, Spotify) is vendored unchanged from the
``basic-pitch==0.4.0`` wheel. Pre-processing follows ``basic_pitch.inference`` so that the raw
posteriorgrams are the same as the original's: mono audio at 22050 Hz, ``3840`` zero samples prepended,
windows of ``43844`` samples every ``36164`` samples (30 frames of overlap), 15 frames cut from each side
of every window's output, the rest concatenated and trimmed to the audio's length.

Unlike basic-pitch we also return the exact time of every output frame: windows hop by 141.27 frames
but each contributes 142, so the frame grid is not uniform (basic-pitch patches this with an empirical
offset in ``model_frames_to_time``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from stemscribe.errors import MissingDependencyError, ModelUnavailableError
from stemscribe.types import Audio, Progress, report_progress

SAMPLE_RATE = 22050
FFT_HOP = 256
WINDOW_SAMPLES = 2 * SAMPLE_RATE - FFT_HOP  # 43844
FRAMES_PER_WINDOW = 172
OVERLAP_FRAMES = 30
OVERLAP_SAMPLES = OVERLAP_FRAMES * FFT_HOP  # 7680
WINDOW_HOP = WINDOW_SAMPLES - OVERLAP_SAMPLES  # 36164
KEPT_FRAMES = FRAMES_PER_WINDOW - OVERLAP_FRAMES  # 142
FRAMES_PER_SECOND = SAMPLE_RATE // FFT_HOP  # 86, basic-pitch's (truncated) frame rate for trimming
MIDI_OFFSET = 21  # note bin 0 is A0
N_NOTE_BINS = 88
CONTOUR_BINS_PER_SEMITONE = 3

MODEL_SHA256 = "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec"
_INPUT = "serving_default_input_2:0"
_OUTPUTS = ("StatefulPartitionedCall:1", "StatefulPartitionedCall:2", "StatefulPartitionedCall:0")  # note, onset, contour

#: A window whose peak is below this is not run through the model; its frames are zero.
SILENCE_PEAK = 10 ** (-70 / 20)


@dataclass
class Posteriorgrams:
    """Raw model output for one signal.

    ``note`` and ``onset``: ``(n_frames, 88)`` in [0, 1], bin ``i`` is MIDI pitch ``21 + i``;
    ``contour``: ``(n_frames, 264)``, three bins per semitone from A0; ``times``: ``(n_frames,)`` seconds
    of each frame's centre in the input signal.
    """

    note: np.ndarray
    onset: np.ndarray
    contour: np.ndarray
    times: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.note.shape[0])


def model_path() -> Path:
    """Path of the vendored ONNX file."""
    return Path(str(resources.files("stemscribe") / "data" / "basic_pitch" / "nmp.onnx"))


def default_threads() -> int:
    """onnxruntime intra-op threads: ``STEMSCRIBE_ONNX_THREADS`` if set, else 1.

    The model is small; on two cores one thread per session is as fast as two (measured), and it leaves
    the other core to the next stage or a second stem.
    """
    value = os.environ.get("STEMSCRIBE_ONNX_THREADS", "")
    return max(1, int(value)) if value.isdigit() else 1


_session_lock = threading.Lock()


@lru_cache(maxsize=4)
def _cached_session(path: str, threads: int) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise MissingDependencyError(
            "onnxruntime is needed for pitched transcription: pip install onnxruntime"
        ) from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelUnavailableError(
            f"basic-pitch model {path} cannot be loaded ({exc}); reinstall stemscribe"
        ) from exc


def get_session(*, threads: int | None = None) -> Any:
    """The process-wide onnxruntime session (created on first use, then reused)."""
    path = model_path()
    if not path.is_file():
        raise ModelUnavailableError(f"basic-pitch model missing at {path}; reinstall stemscribe")
    with _session_lock:
        return _cached_session(str(path), threads or default_threads())


def prepare_audio(audio: Audio) -> np.ndarray:
    """Mono float32 at 22050 Hz, shape ``(n,)``: channel mean, then soxr 'HQ' (librosa's default)."""
    y = np.ascontiguousarray(audio.samples.mean(axis=0), dtype=np.float32)
    if audio.sr == SAMPLE_RATE or y.size == 0:
        return y
    return resample(y, audio.sr, SAMPLE_RATE)


def resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a mono signal ``(n,)`` with soxr (scipy's polyphase filter if soxr is missing)."""
    try:
        import soxr

        return np.asarray(soxr.resample(y, sr_in, sr_out, quality="HQ"), dtype=np.float32)
    except ImportError:  # pragma: no cover - soxr comes with librosa
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(sr_in, sr_out)
        return resample_poly(y, sr_out // g, sr_in // g).astype(np.float32)


def frame_times(n_frames: int) -> np.ndarray:
    """Exact centre time (s) of each unwrapped output frame, ``(n_frames,)``."""
    k = np.arange(n_frames)
    window, local = np.divmod(k, KEPT_FRAMES)
    return (window * WINDOW_HOP + local * FFT_HOP) / SAMPLE_RATE


def n_output_frames(n_samples: int) -> int:
    """Number of output frames for ``n_samples`` of 22050 Hz audio (as basic-pitch trims)."""
    return int(np.floor(n_samples * (FRAMES_PER_SECOND / SAMPLE_RATE)))


def n_windows(n_samples: int) -> int:
    """Number of model windows for ``n_samples`` of 22050 Hz audio."""
    return len(range(0, n_samples + OVERLAP_SAMPLES // 2, WINDOW_HOP))


def run_model(
    y: np.ndarray,
    *,
    skip_silent: bool = True,
    active: np.ndarray | None = None,
    progress: Progress | None = None,
    stage: str = "transcribe",
    **progress_extra: Any,
) -> Posteriorgrams:
    """Run the model on mono 22050 Hz audio ``y`` ``(n,)`` and unwrap the windows.

    With ``skip_silent`` windows whose peak is below -70 dBFS are not computed (their frames are 0);
    ``active`` ``(n_windows(len(y)),)`` bool marks further windows to skip (False); with
    ``skip_silent=False`` and no ``active`` the output equals ``basic_pitch.inference.run_inference``'s.
    Window ``w`` yields output frames ``[142 w, 142 (w + 1))``.
    """
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    n_out = n_output_frames(y.size)
    padded = np.concatenate([np.zeros(OVERLAP_SAMPLES // 2, np.float32), y])
    starts = list(range(0, padded.size, WINDOW_HOP))
    note = np.zeros((len(starts) * KEPT_FRAMES, N_NOTE_BINS), np.float32)
    onset = np.zeros_like(note)
    contour = np.zeros((len(starts) * KEPT_FRAMES, N_NOTE_BINS * CONTOUR_BINS_PER_SEMITONE), np.float32)
    session = get_session() if starts else None
    half = OVERLAP_FRAMES // 2
    for w, start in enumerate(starts):
        chunk = padded[start : start + WINDOW_SAMPLES]
        if active is not None and not active[w]:
            continue
        if skip_silent and (chunk.size == 0 or float(np.max(np.abs(chunk))) < SILENCE_PEAK):
            continue
        window = np.zeros((1, WINDOW_SAMPLES, 1), np.float32)
        window[0, : chunk.size, 0] = chunk
        out_note, out_onset, out_contour = session.run(_OUTPUTS, {_INPUT: window})
        rows = slice(w * KEPT_FRAMES, (w + 1) * KEPT_FRAMES)
        note[rows] = out_note[0, half:-half]
        onset[rows] = out_onset[0, half:-half]
        contour[rows] = out_contour[0, half:-half]
        report_progress(progress, stage, (w + 1) / len(starts), **progress_extra)
    return Posteriorgrams(note[:n_out], onset[:n_out], contour[:n_out], frame_times(n_out))
