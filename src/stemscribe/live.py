"""Live separation: vocals and instrumental (karaoke) from a stream, block by block.

The embedded ``lite`` model is causal with one frame of look-ahead, so it separates a stream as
it arrives: each block of input gives the output samples that are now final, ``latency`` samples
(window + look-ahead, 58 ms) plus at most one block behind.  The concatenated output equals what
``LiteSeparator.separate`` gives for the whole recording (to float rounding).

Sources (all yield ``(channels, m)`` float32 blocks at 44.1 kHz): :func:`file_blocks` (any file
:func:`stemscribe.audio.load` reads, optionally paced in real time), :func:`stdin_blocks` (raw PCM
or a WAV stream).  :func:`run_live` writes ``vocals.wav`` and ``instrumental.wav`` as it goes
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

__all__ = ["SR", "VocalActivity", "file_blocks", "read_wav_header", "run_live", "stdin_blocks"]

#: the rate live mode works at (the lite model's rate)
SR = 44100
_SAMPLE_FORMATS = {"s16le": ("<i2", 32768.0), "s32le": ("<i4", 2147483648.0), "f32le": ("<f4", 1.0)}


@dataclass
class VocalActivity:
    """Where someone sings, from the vocal stem's share of the mixture energy (the vocal mask).

    Every ``hop_s`` seconds of output: ``ratio`` = vocal energy / mixture energy.  A frame is
    active when the ratio is >= ``threshold`` and the vocals are louder than ``floor_db`` dBFS;
    active runs shorter than ``min_s`` are dropped and gaps shorter than ``min_s`` are bridged.
    """

    sr: int = SR
    hop_s: float = 0.1
    threshold: float = 0.25
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


def file_blocks(path: str | Path, block: int, *, realtime: bool = False) -> tuple[Iterator[np.ndarray], int, float]:
    """Decode ``path`` at 44.1 kHz and play it as a stream of ``(channels, block)`` blocks.

    Returns ``(blocks, channels, duration_s)``.  ``realtime``: yield each block only when it
    would have arrived from a sound card (to measure behaviour under real timing).
    """
    from .audio import load

    audio = load(path, sr=SR)
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
) -> dict[str, Any]:
    """Separate a stream of ``(channels, m)`` blocks at 44.1 kHz; write stems as they come.

    Writes ``out_dir/vocals.wav`` and ``out_dir/instrumental.wav`` (drums + bass + other), and
    with ``all_stems`` also ``drums/bass/other.wav``; 16-bit, input channels, 44.1 kHz; then
    ``report.json``.  Files are written under temporary names and renamed at the end, also when
    the stream is interrupted with Ctrl-C (what arrived so far is kept).  Returns the report.
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
        "model": {"name": separator.name, "version": getattr(separator, "manifest", {}).get("version")},
        "sr": SR,
        "channels": channels,
        "duration_s": round(seconds, 3),
        "block_ms": round(1000 * block / SR, 2),
        "interrupted": interrupted,
        "latency_ms": {
            "model": round(1000 * streamer.latency / SR, 2),
            "measured_max": round(1000 * max_lag / SR, 2),
            "measured_mean": round(1000 * lag_sum / max(n_out, 1) / SR, 2),
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
    with atomic_output(out / "report.json") as p:
        p.write_text(json.dumps(report, indent=1) + "\n")
    report_progress(progress, "separate", 1.0)
    return report


def _stdin() -> IO[bytes]:  # pragma: no cover - trivial
    return sys.stdin.buffer
