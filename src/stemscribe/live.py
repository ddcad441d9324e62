"""Live separation: vocals and instrumental (karaoke) from a stream, block by block.

The embedded ``lite`` model is causal with one frame of look-ahead, so it separates a stream as
it arrives: each block of input gives the output samples that are now final, ``latency`` samples
(window + look-ahead, 58 ms) plus at most one block behind.  The concatenated output equals what
``LiteSeparator.separate`` gives for the whole recording (to float rounding).

Sources (all yield ``(channels, m)`` float32 blocks at 44.1 kHz): :func:`file_blocks` (any file
:func:`stemscribe.audio.load` reads, optionally paced in real time), :func:`stdin_blocks` (raw PCM
or a WAV stream, at any rate through :func:`resampled_blocks`) and :func:`device_blocks` (a sound
card's input through miniaudio, which bundles its audio back ends: ALSA, PulseAudio, JACK, Core
Audio, WASAPI).  :func:`run_live` writes ``vocals.wav`` and ``instrumental.wav`` as it goes
(optionally all four stems) and returns the report also written to ``report.json``:
measured latency, real-time factor and a vocal-activity timeline.
"""

from __future__ import annotations

import json
import struct
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import BadArgumentError, BadInputError
from .types import Progress, report_progress

__all__ = [
    "SR",
    "CaptureInfo",
    "VocalActivity",
    "device_blocks",
    "file_blocks",
    "list_devices",
    "read_wav_header",
    "resampled_blocks",
    "run_live",
    "stdin_blocks",
]

#: the rate live mode works at (the lite model's rate)
SR = 44100
_SAMPLE_FORMATS = {"s16le": ("<i2", 32768.0), "s32le": ("<i4", 2147483648.0), "f32le": ("<f4", 1.0)}


@dataclass
class VocalActivity:
    """Where someone sings, from the vocal stem's share of the mixture energy (the vocal mask).

    Every ``hop_s`` seconds of output: ``ratio`` = vocal energy / mixture energy.  A frame is
    active when the ratio is >= ``threshold`` and the vocals are louder than ``floor_db`` dBFS;
    active runs shorter than ``min_s`` are dropped and gaps shorter than ``min_s`` are bridged.

    ``threshold`` is calibrated for ``lite``'s vocal stems against a fixed reference (the true
    vocals holding >= 0.25 of the mixture's energy; ``training/evaluate.py``): lite's vocals come
    out attenuated, so 0.25 on them missed most sung frames of real songs. Fitted on the 79 MUSDB
    training clips (frame accuracy 0.706 at 0.25, 0.798 at 0.15, 0.810 at 0.10), 0.15 keeps
    instrumentals quiet (3-10 % of their frames marked, against 0.2-6 % at 0.25, 8-20 % at 0.10).
    """

    sr: int = SR
    hop_s: float = 0.1
    threshold: float = 0.15
    floor_db: float = -45.0
    min_s: float = 0.3
    ratios: list[float] = field(default_factory=list)
    levels_db: list[float] = field(default_factory=list)
    _voc: list[np.ndarray] = field(default_factory=list)
    _mix: list[np.ndarray] = field(default_factory=list)
    _pending: int = 0

    def add(self, vocals: np.ndarray, mixture: np.ndarray) -> None:
        """Feed output samples ``(channels, k)`` of the vocals and of the mixture (sum of stems)."""
        self._voc.append(vocals)
        self._mix.append(mixture)
        self._pending += vocals.shape[-1]
        hop = round(self.hop_s * self.sr)
        if self._pending >= hop:
            voc, mix = np.concatenate(self._voc, axis=-1), np.concatenate(self._mix, axis=-1)
            n = voc.shape[-1] // hop
            for i in range(n):
                self._frame(voc[:, i * hop : (i + 1) * hop], mix[:, i * hop : (i + 1) * hop])
            self._voc, self._mix = [voc[:, n * hop :]], [mix[:, n * hop :]]
            self._pending = voc.shape[-1] - n * hop

    def finish(self) -> None:
        if self._pending:
            self._frame(np.concatenate(self._voc, axis=-1), np.concatenate(self._mix, axis=-1))
            self._voc, self._mix, self._pending = [], [], 0

    def _frame(self, voc: np.ndarray, mix: np.ndarray) -> None:
        ev, em = float(np.mean(voc.astype(np.float64) ** 2)), float(np.mean(mix.astype(np.float64) ** 2))
        self.ratios.append(ev / em if em > 1e-12 else 0.0)
        self.levels_db.append(10 * np.log10(ev + 1e-12))

    def segments(self) -> list[dict[str, float]]:
        """Sung passages ``[{"start": s, "end": s}]`` in seconds."""
        active = [r >= self.threshold and lv > self.floor_db for r, lv in zip(self.ratios, self.levels_db)]
        min_frames = max(1, round(self.min_s / self.hop_s))
        runs, start = [], None
        for i, a in enumerate(active + [False]):
            if a and start is None:
                start = i
            elif not a and start is not None:
                runs.append([start, i])
                start = None
        merged: list[list[int]] = []
        for r in runs:
            if merged and r[0] - merged[-1][1] < min_frames:
                merged[-1][1] = r[1]
            else:
                merged.append(r)
        total = len(self.ratios) * self.hop_s
        return [{"start": round(a * self.hop_s, 2), "end": round(min(b * self.hop_s, total), 2)}
                for a, b in merged if b - a >= min_frames]


def file_blocks(path: str | Path, block: int, *, realtime: bool = False,
                notes: list[str] | None = None) -> tuple[Iterator[np.ndarray], int, float]:
    """Decode ``path`` at 44.1 kHz and play it as a stream of ``(channels, block)`` blocks.

    Returns ``(blocks, channels, duration_s)``.  ``realtime``: yield each block only when it
    would have arrived from a sound card (to measure behaviour under real timing).  ``notes``:
    what was repaired in the file (NaN samples...) is appended here (:func:`stemscribe.audio.load`).
    """
    from .audio import load

    audio = load(path, sr=SR, notes=notes)
    x = audio.samples if audio.channels <= 2 else np.stack([audio.samples[0::2].mean(0), audio.samples[1::2].mean(0)])

    def gen() -> Iterator[np.ndarray]:
        t0 = time.perf_counter()
        for i, start in enumerate(range(0, x.shape[-1], block)):
            if realtime:
                wait = t0 + (start + block) / SR - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            yield x[:, start : start + block]

    return gen(), x.shape[0], x.shape[-1] / SR


def read_wav_header(stream: IO[bytes]) -> tuple[int, int, str]:
    """Parse a WAV header from a non-seekable stream up to the data chunk.

    Returns ``(sample_rate, channels, sample_format)`` with a key of the raw formats
    (``s16le``, ``s32le``, ``f32le``).  Raises BadInputError for anything else.
    """
    head = stream.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise BadInputError("stdin is not a WAV stream (no RIFF/WAVE header); pass --raw for headerless PCM")
    rate = channels = bits = fmt_tag = 0
    while True:
        chunk = stream.read(8)
        if len(chunk) < 8:
            raise BadInputError("WAV stream ended before its data chunk")
        cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"fmt ":
            body = stream.read(size + (size & 1))
            fmt_tag, channels, rate = struct.unpack("<HHI", body[:8])
            bits = struct.unpack("<H", body[14:16])[0]
            if fmt_tag == 0xFFFE and size >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag is in the GUID
                fmt_tag = struct.unpack("<H", body[24:26])[0]
        elif cid == b"data":
            break
        else:
            stream.read(size + (size & 1))
    kinds = {(1, 16): "s16le", (1, 32): "s32le", (3, 32): "f32le"}
    if (fmt_tag, bits) not in kinds:
        raise BadInputError(f"WAV stream format {fmt_tag}/{bits}-bit is not supported; send 16/32-bit PCM or 32-bit float")
    return rate, channels, kinds[(fmt_tag, bits)]


def stdin_blocks(stream: IO[bytes], block: int, *, channels: int, sample_format: str) -> Iterator[np.ndarray]:
    """Read interleaved PCM from ``stream`` and yield ``(channels, <= block)`` float32 blocks."""
    if sample_format not in _SAMPLE_FORMATS:
        raise BadArgumentError(f"unknown sample format {sample_format!r}; use one of {', '.join(_SAMPLE_FORMATS)}")
    dtype, scale = _SAMPLE_FORMATS[sample_format]
    frame_bytes = np.dtype(dtype).itemsize * channels
    rest = b""
    while True:
        data = stream.read(block * frame_bytes)  # blocks until a whole block or end of stream
        if not data:
            break
        buf = rest + data
        usable = len(buf) - len(buf) % frame_bytes
        rest = buf[usable:]
        if usable:
            yield (np.frombuffer(buf[:usable], dtype=dtype).astype(np.float32) / scale).reshape(-1, channels).T


def resampled_blocks(blocks: Iterable[np.ndarray], rate: int, channels: int) -> tuple[Iterator[np.ndarray], float]:
    """Resample a stream of ``(channels, m)`` blocks from ``rate`` to 44.1 kHz as it arrives.

    Returns ``(blocks, delay_ms)``: soxr's streaming resampler holds back some signal for its
    filter; ``delay_ms`` is that hold, measured, to add to the separator's latency.  The "LQ"
    setting (16-bit precision, passband to about 20 kHz) holds 10 ms at 48 kHz, against 19 ms
    for "HQ", which would push the default 30 ms blocks past 100 ms in all.  A 44.1 kHz stream
    passes through unchanged (0 ms).
    """
    if rate == SR:
        return iter(blocks), 0.0
    if not 8000 <= rate <= 384000:
        raise BadArgumentError(f"sample rate {rate} Hz is out of range (8000-384000)")
    import soxr

    def make() -> Any:
        return soxr.ResampleStream(rate, SR, channels, dtype="float32", quality="LQ")

    def gen() -> Iterator[np.ndarray]:
        stream = make()
        for x in blocks:
            y = stream.resample_chunk(np.ascontiguousarray(np.asarray(x, np.float32).T))
            if len(y):
                yield np.ascontiguousarray(y.T)
        y = stream.resample_chunk(np.zeros((0, channels), np.float32), last=True)
        if len(y):
            yield np.ascontiguousarray(y.T)

    # the hold: how far the output runs behind the ideal output count, at worst, over one second
    # of 30 ms chunks (the filter's delay plus rounding; independent of the signal and block size)
    probe, held, n_in, n_out = make(), 0.0, 0, 0
    chunk = max(1, rate * 30 // 1000)
    for _ in range(rate // chunk + 1):
        n_in += chunk
        n_out += len(probe.resample_chunk(np.zeros((chunk, channels), np.float32)))
        held = max(held, n_in * SR / rate - n_out)
    return gen(), round(1000 * held / SR, 2)


@dataclass
class CaptureInfo:
    """What :func:`device_blocks` opened: the device's name, the back end, and what was lost."""

    name: str = ""
    backend: str = ""
    #: seconds of input dropped because separation fell behind by more than the queue holds
    dropped_s: float = 0.0


def _backends(backend: str | None) -> list[Any] | None:
    import miniaudio

    if backend in (None, "", "auto"):
        return None
    try:
        return [miniaudio.Backend[backend.upper()]]
    except KeyError:
        names = ", ".join(b.name.lower() for b in miniaudio.Backend)
        raise BadArgumentError(f"unknown audio back end {backend!r}; use one of: auto, {names}") from None


def _miniaudio() -> Any:
    try:
        import miniaudio
    except ImportError:
        raise BadArgumentError("sound-card input needs the miniaudio package: pip install miniaudio "
                               "(or pipe a recorder into stdin: stemscribe live - --raw ...)") from None
    return miniaudio


def list_devices(*, backend: str | None = None) -> list[dict[str, Any]]:
    """The sound card inputs miniaudio can open: ``[{"index", "name", "backend"}]``."""
    ma = _miniaudio()
    try:
        devices = ma.Devices(backends=_backends(backend))
        captures = devices.get_captures()
    except ma.MiniaudioError as exc:
        raise BadInputError(f"no audio back end could be opened ({exc})") from None
    return [{"index": i, "name": d["name"], "backend": devices.backend} for i, d in enumerate(captures)]


def device_blocks(
    device: str | int | None,
    block: int,
    *,
    channels: int = 2,
    backend: str | None = None,
    seconds: float | None = None,
    max_queue_s: float = 10.0,
) -> tuple[Iterator[np.ndarray], CaptureInfo]:
    """Record from a sound card and yield ``(channels, block)`` float32 blocks at 44.1 kHz.

    ``device``: ``None`` for the system's default input, an index of :func:`list_devices`, or a
    part of a device's name.  miniaudio converts the card's own rate and format.  ``seconds``:
    stop after that much audio (``None``: until the consumer stops, e.g. on Ctrl-C).  Memory is
    bounded: when separation falls more than ``max_queue_s`` behind, the oldest input is dropped
    and counted in ``CaptureInfo.dropped_s``.
    """
    import collections
    import threading

    ma = _miniaudio()
    if channels not in (1, 2):
        raise BadArgumentError(f"live mode takes mono or stereo input, got {channels} channels")
    backends = _backends(backend)
    device_id, name = None, "default input"
    if device not in (None, "", "default"):
        found = list_devices(backend=backend)
        if isinstance(device, int) or str(device).isdigit():
            pick = [d for d in found if d["index"] == int(device)]
        else:
            pick = [d for d in found if str(device).lower() in d["name"].lower()]
        if not pick:
            names = "; ".join(f"{d['index']}: {d['name']}" for d in found) or "none"
            raise BadArgumentError(f"no input device matches {device!r} (inputs: {names})")
        captures = ma.Devices(backends=backends).get_captures()
        device_id, name = captures[pick[0]["index"]]["id"], pick[0]["name"]
    try:
        capture = ma.CaptureDevice(ma.SampleFormat.FLOAT32, channels, SR, buffersize_msec=max(10, block * 1000 // SR),
                                   device_id=device_id, backends=backends, app_name="stemscribe")
    except ma.MiniaudioError as exc:
        raise BadInputError(f"could not open the sound card input ({exc}); list inputs with --list-devices") from None
    info = CaptureInfo(name=name, backend=str(capture.backend))
    chunks: collections.deque[np.ndarray] = collections.deque()
    queued = [0]
    ready = threading.Condition()
    limit = int(max_queue_s * SR)

    def recorder() -> Any:
        while True:
            data = yield
            x = np.frombuffer(bytes(data), dtype=np.float32).reshape(-1, channels).T.copy()
            with ready:
                chunks.append(x)
                queued[0] += x.shape[1]
                while queued[0] > limit and len(chunks) > 1:
                    old = chunks.popleft()
                    queued[0] -= old.shape[1]
                    info.dropped_s += old.shape[1] / SR
                ready.notify()

    def gen() -> Iterator[np.ndarray]:
        rec = recorder()
        next(rec)
        capture.start(rec)
        total = int(seconds * SR) if seconds else None
        sent = 0
        buf = np.zeros((channels, 0), np.float32)
        try:
            while total is None or sent < total:
                with ready:
                    if not chunks and not ready.wait(timeout=2.0):
                        raise BadInputError(f"the sound card input ({name}) stopped delivering audio")
                    parts = list(chunks)
                    chunks.clear()
                    queued[0] = 0
                buf = np.concatenate([buf, *parts], axis=1)
                while buf.shape[1] >= block and (total is None or sent < total):
                    take = block if total is None else min(block, total - sent)
                    yield buf[:, :take]
                    buf, sent = buf[:, take:], sent + take
        finally:
            capture.stop()
            capture.close()

    return gen(), info


def run_live(
    blocks: Iterable[np.ndarray],
    *,
    out_dir: str | Path,
    channels: int,
    block: int,
    all_stems: bool = False,
    separator: Any = None,
    input_name: str = "",
    progress: Progress | None = None,
    duration: float | None = None,
    input_latency_ms: float = 0.0,
    source: Any = None,
    input_notes: list[str] | None = None,
) -> dict[str, Any]:
    """Separate a stream of ``(channels, m)`` blocks at 44.1 kHz; write stems as they come.

    Writes ``out_dir/vocals.wav`` and ``out_dir/instrumental.wav`` (drums + bass + other), and
    with ``all_stems`` also ``drums/bass/other.wav``; 16-bit, input channels, 44.1 kHz; then
    ``report.json``.  Files are written under temporary names and renamed at the end, also when
    the stream is interrupted with Ctrl-C (what arrived so far is kept).  Returns the report.

    ``input_latency_ms``: delay added before the blocks reach this function (a resampler's
    hold), counted into the reported latency.  ``source``: a :class:`CaptureInfo` whose device,
    back end and dropped input go into the report (read after the stream ends).
    """
    import contextlib

    import soundfile as sf

    from .atomic import atomic_output, ensure_dir

    if channels not in (1, 2):
        raise BadArgumentError(f"live mode takes mono or stereo input, got {channels} channels")
    if separator is None:
        from .separate.lite import load_lite

        separator = load_lite()
    if getattr(separator, "sr", SR) != SR:
        raise BadArgumentError("live mode needs a 44.1 kHz streaming separator")
    out = ensure_dir(Path(out_dir))
    streamer = separator.stream(channels)
    stems = list(streamer.stems)
    names = ["vocals", "instrumental"] + ([s for s in stems if s != "vocals"] if all_stems else [])
    activity = VocalActivity()
    n_in = n_out = 0
    max_lag = 0
    lag_sum = 0.0
    busy = cpu = 0.0
    worst_block = 0.0
    interrupted = False
    with contextlib.ExitStack() as stack:
        tmp = {name: stack.enter_context(atomic_output(out / f"{name}.wav")) for name in names}
        files = {name: stack.enter_context(sf.SoundFile(str(p), "w", samplerate=SR, channels=channels,
                                                        subtype="PCM_16", format="WAV")) for name, p in tmp.items()}

        def emit(y: np.ndarray) -> None:
            nonlocal n_out, max_lag, lag_sum
            k = y.shape[-1]
            if not k:
                return
            by = dict(zip(stems, y))
            mix = y.sum(axis=0)
            vocals = by["vocals"]
            parts = {"vocals": vocals, "instrumental": mix - vocals, **{s: by[s] for s in stems if s != "vocals"}}
            for name, f in files.items():
                f.write(np.clip(parts[name], -1, 1).T)
            activity.add(vocals, mix)
            # sample j of the output became available once input sample n_in - 1 had arrived
            lags = (n_in - 1) - np.arange(n_out, n_out + k)
            max_lag = max(max_lag, int(lags.max()))
            lag_sum += float(lags.sum())
            n_out += k

        try:
            for x in blocks:
                x = np.asarray(x, dtype=np.float32)
                if x.ndim != 2 or x.shape[0] != channels:
                    raise BadInputError(f"expected blocks of {channels} channels, got shape {x.shape}")
                n_in += x.shape[-1]
                t, c = time.perf_counter(), time.process_time()
                y = streamer.push(x)
                dt = time.perf_counter() - t
                busy += dt
                cpu += time.process_time() - c
                worst_block = max(worst_block, dt / max(x.shape[-1] / SR, 1e-9))
                emit(y)
                if duration:
                    report_progress(progress, "separate", n_in / SR / duration)
        except KeyboardInterrupt:
            interrupted = True
        if n_in == 0:
            raise BadInputError(f"no audio arrived from {input_name or 'the input'}")
        t, c = time.perf_counter(), time.process_time()
        y = streamer.flush()
        busy += time.perf_counter() - t
        cpu += time.process_time() - c
        emit(y)
        activity.finish()
    seconds = n_in / SR
    report = {
        "input": input_name,
        "input_notes": list(input_notes or []),
        "model": {"name": separator.name, "version": getattr(separator, "manifest", {}).get("version"),
                  "engine": getattr(separator, "engine_name", "torch")},
        "sr": SR,
        "channels": channels,
        "duration_s": round(seconds, 3),
        "block_ms": round(1000 * block / SR, 2),
        "interrupted": interrupted,
        "latency_ms": {
            "model": round(1000 * streamer.latency / SR, 2),
            "input": round(input_latency_ms, 2),
            "measured_max": round(1000 * max_lag / SR + input_latency_ms, 2),
            "measured_mean": round(1000 * lag_sum / max(n_out, 1) / SR + input_latency_ms, 2),
        },
        # wall-clock and CPU seconds spent separating per second of audio (CPU time is the fair
        # figure on a shared machine)
        "real_time_factor": round(busy / seconds, 4),
        "cpu_real_time_factor": round(cpu / seconds, 4),
        "worst_block_real_time_factor": round(worst_block, 4),
        "files": {name: f"{name}.wav" for name in names},
        "vocal_activity": activity.segments(),
        "vocal_activity_frames": {
            "hop_s": activity.hop_s,
            "threshold": activity.threshold,
            "ratio": [round(r, 3) for r in activity.ratios],
        },
    }
    if source is not None:
        report["device"] = {"name": source.name, "backend": source.backend, "dropped_s": round(source.dropped_s, 3)}
    with atomic_output(out / "report.json") as p:
        p.write_text(json.dumps(report, indent=1) + "\n")
    report_progress(progress, "separate", 1.0)
    return report


def _stdin() -> IO[bytes]:  # pragma: no cover - trivial
    return sys.stdin.buffer
