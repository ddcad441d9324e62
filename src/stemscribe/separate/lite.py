"""The embedded ``lite`` separator: a small causal mask network shipped inside the package.

Weights: ``stemscribe/data/models/lite.safetensors`` (float16) with its manifest ``lite.json``
(config, sha256, training notes, licence).  They are loaded from the package, never downloaded,
and their sha256 is checked before use.  The network (:mod:`stemscribe.separate.lite_net`) is
causal with one frame of look-ahead, so the same model separates a whole file
(:meth:`LiteSeparator.separate`) or a stream block by block (:meth:`LiteSeparator.stream`), and the
two give the same samples (to float rounding).

The network's steps run on ONNX Runtime when the package has their graphs (``lite.encode.onnx``,
``lite.recur.onnx``, ``lite.masks.onnx``, exported from the same weights and registered in the
manifest; :mod:`stemscribe.separate.lite_onnx`) and a stream's blocks are small: 30 ms live blocks
took 0.152 x real time instead of 0.247 on PyTorch (``python benchmarks/live_speed.py``, idle Xeon).
A whole file goes through in 2 s chunks, where PyTorch is as fast or faster (0.050-0.054 against
0.057 in the two-thread pipeline, 3-minute file), so ``separate`` keeps PyTorch unless asked for
``engine="onnx"``.  The engines give the same samples to float rounding (8e-6 at most).

Training code, data and scores: ``training/`` and ``docs/models/lite.md`` in the source tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from ..cores import usable_cores
from ..errors import BadInputError, ModelUnavailableError
from ..models import file_sha256
from ..types import Audio, Progress, report_progress
from .base import Separator

__all__ = ["MODEL_DIR", "LiteSeparator", "LiteStreamer", "lite_info", "load_lite"]

#: where the shipped weights live
MODEL_DIR = Path(__file__).resolve().parent.parent / "data" / "models"
_WEIGHTS = "lite.safetensors"
_MANIFEST = "lite.json"
_REINSTALL = "reinstall stemscribe (the lite weights ship inside the package), or use --model htdemucs"
#: samples per chunk when separating a whole file. Small chunks keep the network's intermediate
#: tensors (a few MB each) in cache and out of fresh page-faulted allocations: on 2 cores, 60 s of
#: audio took 0.107 x real time in 10 s chunks, 0.066 in 2 s, 0.069 in 1 s, 0.074 in 0.5 s
#: (same output: the chunks go through the streaming path)
_CHUNK = 2 * 44100


def _manifest_path(weights: Path) -> Path:
    """``name.safetensors`` -> ``name.json`` beside it."""
    return weights.with_suffix(".json")


def _read_manifest(weights: Path) -> dict[str, Any]:
    path = _manifest_path(weights)
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelUnavailableError(f"lite model manifest {path} is missing; {_REINSTALL}") from None
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"lite model manifest {path} is unreadable ({exc}); {_REINSTALL}") from None
    if not isinstance(manifest, dict) or "sha256" not in manifest or "config" not in manifest:
        raise ModelUnavailableError(f"lite model manifest {path} lacks sha256/config; {_REINSTALL}")
    return manifest


def _onnx_files(weights: Path, manifest: dict[str, Any]) -> dict[str, tuple[Path, str]]:
    """``{graph: (path, sha256)}`` of the ONNX graphs the manifest registers beside ``weights``."""
    entries = manifest.get("onnx") or {}
    if not isinstance(entries, dict):
        return {}
    return {name: (weights.parent / str(e.get("file", "")), str(e.get("sha256", "")))
            for name, e in entries.items() if isinstance(e, dict)}


def lite_info() -> dict[str, Any]:
    """Registry entry for ``stemscribe models`` (no torch import, no network).

    Keys: ``description, stems, sr, licence, files, sha256, size_bytes, available`` and, when the
    manifest has them, ``parameters, version, latency_ms, training, validation_sdr_db``.
    """
    weights = MODEL_DIR / _WEIGHTS
    info: dict[str, Any] = {
        "description": "small causal mask network embedded in stemscribe (offline, fast, live-capable)",
        "stems": ["drums", "bass", "other", "vocals"],
        "sr": 44100,
        "files": [str(weights)],
        "available": False,
    }
    try:
        manifest = _read_manifest(weights)
    except ModelUnavailableError as exc:
        info["error"] = str(exc)
        return info
    cfg = manifest["config"]
    info.update({
        "stems": list(cfg.get("stems", info["stems"])),
        "sr": int(cfg.get("sr", 44100)),
        "licence": "research/non-commercial (weights trained on MUSDB18)",
        "licence_note": manifest.get("licence", ""),
        "sha256": {_WEIGHTS: manifest["sha256"]},
        "parameters": manifest.get("parameters"),
        "version": manifest.get("version"),
        "latency_ms": round(1000 * (cfg["n_fft"] + cfg["lookahead"] * cfg["hop"]) / cfg["sr"], 1),
        "training": manifest.get("training"),
        "validation_sdr_db": manifest.get("validation_sdr_db"),
    })
    graphs = _onnx_files(weights, manifest)
    info["files"] += [str(path) for path, _ in graphs.values()]
    info["sha256"].update({path.name: digest for path, digest in graphs.values()})
    info["engine"] = "onnxruntime" if graphs else "torch"
    if weights.is_file():
        info["size_bytes"] = weights.stat().st_size + sum(p.stat().st_size for p, _ in graphs.values() if p.is_file())
        info["available"] = file_sha256(weights) == manifest["sha256"]
        if not info["available"]:
            info["error"] = f"{weights} does not match its sha256 (corrupt); {_REINSTALL}"
        for path, digest in graphs.values():
            if info["available"] and (not path.is_file() or file_sha256(path) != digest):
                info["available"] = False
                info["error"] = f"{path} is missing or does not match its sha256; {_REINSTALL}"
    return info


def load_lite(*, weights: str | os.PathLike[str] | None = None, engine: str = "auto") -> LiteSeparator:
    """Load the lite model (default: the package's weights), checking its sha256.

    ``weights``: another ``.safetensors`` file with its ``.json`` manifest beside it.
    ``engine``: ``"onnx"`` (ONNX Runtime for streams and whole files; needs the graphs the manifest
    registers), ``"torch"``, or ``"auto"``: ONNX Runtime for streams when the manifest registers
    graphs, PyTorch for whole files (the faster engine for each, see the module doc).
    Raises ModelUnavailableError when a file or the manifest is missing, corrupt or unloadable.
    """
    if engine not in ("auto", "onnx", "torch"):
        raise ValueError(f"engine must be 'auto', 'onnx' or 'torch', got {engine!r}")
    path = Path(weights) if weights is not None else MODEL_DIR / _WEIGHTS
    manifest = _read_manifest(path)
    if not path.is_file():
        raise ModelUnavailableError(f"lite model weights {path} are missing; {_REINSTALL}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise ModelUnavailableError(f"lite model weights {path} do not match their sha256 (corrupt or "
                                    f"replaced); {_REINSTALL}")
    import torch
    from safetensors.torch import load as load_tensors

    from .lite_net import LiteNet

    try:
        tensors = load_tensors(data)
        net = LiteNet(manifest["config"])
        net.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
    except Exception as exc:  # noqa: BLE001  (any mismatch between file and config: unusable)
        raise ModelUnavailableError(f"lite model weights {path} could not be loaded ({exc}); {_REINSTALL}") from None
    net.eval()
    stream_engine = _load_engine(path, manifest, net, engine)
    return LiteSeparator(net, manifest, stream_engine, offline_engine=stream_engine if engine == "onnx" else None)


class _LazyEngine:
    """An ONNX Runtime engine made on first use: a split never streams, so it never pays for the
    sessions (0.1 s and their memory)."""

    def __init__(self, net: Any, graphs: dict[str, bytes], weights: Path) -> None:
        self._args = (net, graphs)
        self._weights = weights
        self._engine: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._engine is None:
                from .lite_onnx import OnnxEngine

                try:
                    self._engine = OnnxEngine(*self._args)
                except Exception as exc:  # noqa: BLE001  (onnxruntime rejects the graph: unusable)
                    raise ModelUnavailableError(f"lite model graphs beside {self._weights} could not be loaded by "
                                                f"onnxruntime ({exc}); {_REINSTALL}") from None
            return self._engine


def _load_engine(weights: Path, manifest: dict[str, Any], net: Any, engine: str) -> _LazyEngine | None:
    """The ONNX Runtime engine for ``net``, made on first use (None: PyTorch), its graphs checked
    against the manifest now."""
    graphs = _onnx_files(weights, manifest)
    if engine == "torch" or (engine == "auto" and not graphs):
        return None
    from .lite_onnx import GRAPHS

    if set(graphs) != set(GRAPHS):
        raise ModelUnavailableError(f"lite model manifest {_manifest_path(weights)} registers no ONNX graphs "
                                    f"{', '.join(GRAPHS)} (export them with training/export.py), or use engine 'torch'")
    data = {}
    for name, (path, digest) in graphs.items():
        try:
            data[name] = path.read_bytes()
        except OSError:
            raise ModelUnavailableError(f"lite model graph {path} is missing; {_REINSTALL}") from None
        if hashlib.sha256(data[name]).hexdigest() != digest:
            raise ModelUnavailableError(f"lite model graph {path} does not match its sha256 (corrupt or replaced); "
                                        f"{_REINSTALL}")
    return _LazyEngine(net, data, weights)


class LiteStreamer:
    """Live separation state: feed blocks, get the stems that are final.

    ``push(block)``: ``(channels, m)`` float32 at the model rate (mono or stereo) ->
    ``(stems, channels, k)`` float32; the output lags the input by at most ``latency`` samples
    plus the block length.  ``flush()`` returns the rest, so total output length equals total input.
    """

    def __init__(self, sep: LiteSeparator, channels: int = 2, level: float | None = None, *, engine: Any = None) -> None:
        from .lite_net import LiteStream

        if channels not in (1, 2):
            raise BadInputError(f"live separation takes mono or stereo, got {channels} channels")
        self.channels = channels
        self.stems = sep.stems
        self.sr = sep.sr
        self.latency = sep.latency
        self._stream = LiteStream(sep.net, level, engine)

    def _prep(self, block: np.ndarray) -> Any:
        import torch

        x = np.asarray(block, dtype=np.float32)
        if x.ndim == 1:
            x = x[None]
        if x.shape[0] != self.channels:
            raise BadInputError(f"expected {self.channels} channels, got a block of shape {x.shape}")
        if self.channels == 1:
            x = np.repeat(x, 2, axis=0)
        return torch.from_numpy(np.nan_to_num(x))

    def _post(self, y: Any) -> np.ndarray:
        out = y.numpy()
        return out.mean(axis=1, keepdims=True) if self.channels == 1 else out

    def push(self, block: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode(), _one_thread():
            return self._post(self._stream.push(self._prep(block)))

    def flush(self) -> np.ndarray:
        import torch

        with torch.inference_mode(), _one_thread():
            return self._post(self._stream.flush())

    def run(self, blocks: Iterable[np.ndarray], *, pipeline: bool | None = None) -> Iterator[np.ndarray]:
        """Push every block of ``blocks``, then flush: yields what :meth:`push` and :meth:`flush`
        would return, in order, with the same samples.

        With ``pipeline`` (default: when this process may use two or more cores) the network's
        two halves overlap: a worker thread runs the analysis, encoder and recurrence of block
        *i* + 1 while this thread computes the masks and the synthesis of block *i*.  Each half
        runs on one torch thread, so a busy second core slows it down to about the serial speed
        instead of stalling an intra-op thread pool (see :func:`_one_thread`)."""
        import torch

        if pipeline is None:
            pipeline = usable_cores() >= 2
        stream = self._stream
        if not pipeline:
            for block in blocks:
                yield self.push(block)
            yield self.flush()
            return
        from concurrent.futures import ThreadPoolExecutor

        def front(block: np.ndarray | None) -> Any:
            with torch.inference_mode():
                return stream.flush_front() if block is None else stream.front(self._prep(block))

        def back(work: Any) -> np.ndarray:
            with torch.inference_mode():
                return self._post(stream.back(work))

        with _one_thread(), ThreadPoolExecutor(1, thread_name_prefix="stemscribe-lite") as pool:
            pending = None
            for block in _then_none(blocks):
                nxt = pool.submit(front, block)
                if pending is not None:
                    yield back(pending.result())
                pending = nxt
            yield back(pending.result())  # the flush's


def _then_none(blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray | None]:
    """``blocks``, then None (the flush)."""
    yield from blocks
    yield None


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run the network on one torch thread. Its frame-by-frame GRU is many small products where
    a second thread gains little on an idle 2-core machine (0.078 -> 0.055 x real time) and costs
    a lot when the other core is busy (0.55 x offline; 11 x real time live, against 0.15 x).
    A whole file uses the second core another way: :meth:`LiteStreamer.run` runs the network's
    two halves in two threads of one torch thread each (0.092 -> 0.054 x real time, idle)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class LiteSeparator(Separator):
    """The embedded model behind the :class:`Separator` interface (see module doc)."""

    name = "lite"

    def __init__(self, net: Any, manifest: dict[str, Any], engine: Any = None, *, offline_engine: Any = None) -> None:
        self.net = net
        self.manifest = manifest
        self.stems = tuple(net.config["stems"])
        self.sr = int(net.config["sr"])
        self._engine = engine
        self._offline_engine = offline_engine

    @property
    def engine(self) -> Any:
        """What computes the network's steps on a stream (:meth:`stream`): an ``OnnxEngine``, or
        None for PyTorch."""
        return self._engine.get() if isinstance(self._engine, _LazyEngine) else self._engine

    @property
    def engine_name(self) -> str:
        """``"onnxruntime"`` or ``"torch"``: the stream engine, without making it."""
        return "torch" if self._engine is None else "onnxruntime"

    @property
    def offline_engine(self) -> Any:
        """The same for whole files (:meth:`separate`)."""
        eng = self._offline_engine
        return eng.get() if isinstance(eng, _LazyEngine) else eng

    @property
    def latency(self) -> int:
        """Algorithmic latency of live separation in samples (window + look-ahead)."""
        return int(self.net.latency)

    def stream(self, channels: int = 2, level: float | None = None) -> LiteStreamer:
        """A fresh :class:`LiteStreamer` for live separation at :attr:`sr`.

        ``level``: the input's level (:meth:`input_level`) when it is known in advance, as for a
        whole file; a live stream leaves it out and the model measures the level as it listens."""
        return LiteStreamer(self, channels, level, engine=self.engine)

    def input_level(self, samples: np.ndarray) -> float | None:
        """The level the model normalises ``(channels, n)`` samples at the model rate by (mean
        square of the audible hop blocks); None when the model does not normalise level."""
        net = self.net
        if not net.level:
            return None
        import torch

        x = np.asarray(samples)
        step = net.hop * 2048  # about 24 s per piece: no full-length copy
        end = x.shape[1] - x.shape[1] % net.hop
        powers = [net.hop_powers(torch.from_numpy(np.nan_to_num(x[None, :, i : min(i + step, end)])
                                                  .astype(np.float32)))
                  for i in range(0, end, step)]
        return float(net.level_of(torch.cat(powers, dim=1))[0]) if powers else None

    def separate(self, audio: Audio, *, progress: Progress | None = None) -> dict[str, Audio]:
        """Split ``audio`` ``(channels, n)`` into ``{stem: Audio}`` at the input's rate and length.

        Mono stays mono, stereo stays stereo, more channels are mixed down to stereo.  Processed
        in 2 s chunks through the streaming path (bounded memory, identical to one pass), the
        network's two halves in two threads when two cores are free (:meth:`LiteStreamer.run`).
        """
        if audio.n_samples == 0:
            raise BadInputError("cannot separate empty audio (0 samples)")
        x = audio.samples
        if x.shape[0] > 2:
            x = np.stack([x[0::2].mean(axis=0), x[1::2].mean(axis=0)])
        channels = x.shape[0]
        work = Audio(x, audio.sr)
        if audio.sr != self.sr:
            from ..audio import resample

            work = resample(work, self.sr)
        streamer = LiteStreamer(self, channels, self.input_level(work.samples), engine=self.offline_engine)
        n = work.n_samples
        # written in place, chunk by chunk: each stem is then a contiguous view (no second copy of
        # all four stems, about 850 MB for a 10-minute stereo file)
        y = np.empty((len(self.stems), channels, n), dtype=np.float32)
        filled = 0

        def put(part: np.ndarray) -> None:
            nonlocal filled
            y[:, :, filled : filled + part.shape[-1]] = part
            filled += part.shape[-1]

        report_progress(progress, "separate", 0.0)
        for part in streamer.run(work.samples[:, start : start + _CHUNK] for start in range(0, n, _CHUNK)):
            put(part)
            report_progress(progress, "separate", min(filled / n, 0.99))
        if filled != n:  # the streamer returns exactly as many samples as it was given
            raise RuntimeError(f"lite streamer returned {filled} samples for {n}")
        out: dict[str, Audio] = {}
        for i, stem in enumerate(self.stems):
            a = Audio(y[i], self.sr)
            if audio.sr != self.sr:
                from ..audio import resample

                a = resample(a, audio.sr)
                s = a.samples[:, : audio.n_samples]
                if s.shape[1] < audio.n_samples:
                    s = np.pad(s, ((0, 0), (0, audio.n_samples - s.shape[1])))
                a = Audio(s, audio.sr)
            out[stem] = a
        report_progress(progress, "separate", 1.0)
        return out
