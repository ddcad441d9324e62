"""The htdemucs family through the ``demucs`` library.

Loading uses demucs' own pieces, as ``demucs.pretrained.get_model(name, repo=...)`` does:
``demucs.repo.check_checksum`` + ``demucs.states.load_model`` for ``<sig>-<sha>.th`` files,
``demucs.hf.load_safetensors_model`` for HuggingFace ``<sig>.safetensors`` files, and
``demucs.apply.BagOfModels`` from the bag's yaml. Files are found by :mod:`stemscribe.models`
(``--model-dir``, ``$STEMSCRIBE_MODEL_DIR``, torch hub's cache, the HuggingFace cache); when
absent and downloads are allowed, ``demucs.pretrained.get_model(name)`` downloads as demucs does.

Separation: the input is normalised with the whole track's mean/std (as demucs does), cut into
60 s chunks that overlap by 2 s (plus 1 s of context each side), each chunk resampled to 44.1 kHz,
run through ``demucs.apply.apply_model`` (its own 25 % segment overlap, no random shift so results
are deterministic), resampled back and crossfaded in place: memory stays bounded by one chunk
plus the output stems, whatever the input length.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelUnavailableError
from ..models import ModelLocation, downloads_allowed, file_sha256, how_to_get, locate_demucs, search_dirs
from ..types import STEM_NAMES, Audio, Progress, report_progress
from .base import Separator
from .chunking import overlap_add

__all__ = ["DemucsSeparator", "load_demucs_model"]

#: Chunk layout in seconds; see the module docstring.
CHUNK_S, OVERLAP_S, CONTEXT_S = 60.0, 2.0, 1.0


def _corrupt(name: str, path: Path, why: str) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"{name} weights in {path} are corrupt or not a demucs model ({why}); delete the file and "
        f"fetch it again: {how_to_get(name)}")


def _official_checksums() -> dict[str, str]:
    """sig -> sha256 prefix published in demucs' ``remote/files.txt``."""
    from ..models import _remote_files

    out = {}
    for sig, url in _remote_files().items():
        stem = url.rsplit("/", 1)[1].rsplit(".", 1)[0]
        if "-" in stem:
            out[sig] = stem.split("-", 1)[1]
    return out


def _load_one(name: str, path: Path) -> Any:
    """Load one demucs sub-model from ``path`` (.th package or .safetensors), verifying checksums.

    A ``<sig>-<prefix>.th`` file is checked against the prefix in its name (demucs' rule); a bare
    ``<sig>.th`` of an official model against the prefix demucs publishes for it; a HuggingFace
    cache blob against the sha256 it is named by.
    """
    import warnings

    from demucs.repo import ModelLoadingError, check_checksum
    from demucs.states import load_model

    try:
        if path.suffix == ".safetensors":
            target = path.resolve()
            # HuggingFace cache blobs are named by the sha256 of their content.
            if len(target.name) == 64 and all(c in "0123456789abcdef" for c in target.name):
                if file_sha256(target) != target.name:
                    raise ModelLoadingError(f"sha256 does not match the cache blob name {target.name}")
            from demucs.hf import load_safetensors_model

            return load_safetensors_model(path)
        if "-" in path.stem:
            check_checksum(path, path.stem.rsplit("-", 1)[1])
        elif path.stem in _official_checksums():
            check_checksum(path, _official_checksums()[path.stem])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_model(path)
    except ModelUnavailableError:
        raise
    except ModelLoadingError as exc:
        raise _corrupt(name, path, str(exc)) from None
    except Exception as exc:  # torch.load / safetensors / state-dict errors all mean "unusable file"
        raise _corrupt(name, path, f"{type(exc).__name__}: {str(exc)[:160]}") from None


def load_demucs_model(name: str, model_dir: str | os.PathLike[str] | None = None,
                      *, download: bool | None = None) -> tuple[Any, str]:
    """Load demucs model ``name``; returns ``(model, where)`` with ``where`` a folder or "download".

    Raises :class:`ModelUnavailableError` (missing, corrupt, download failed) with what to do.
    """
    loc: ModelLocation | None = locate_demucs(name, model_dir)
    if loc is not None:
        from demucs.apply import BagOfModels

        models = [_load_one(name, f) for f in loc.files]
        weights, segment = loc.weights, loc.segment
        if loc.bag_yaml is None:  # the bag bundled with demucs: read its weights/segment too
            from ..models import _demucs_remote_dir, _read_bag

            remote = _demucs_remote_dir()
            if remote is not None and (remote / f"{name}.yaml").is_file():
                _, weights, segment = _read_bag(remote / f"{name}.yaml")
        try:
            bag = BagOfModels(models, weights, segment)
        except (AssertionError, ValueError, TypeError) as exc:
            raise _corrupt(name, loc.folder, f"inconsistent bag: {exc}") from None
        bag.eval()
        return bag, str(loc.folder)
    searched = ", ".join(str(p) for _, p in search_dirs(model_dir)) + ", the HuggingFace cache"
    if download is None:
        download = downloads_allowed()
    if not download:
        raise ModelUnavailableError(f"{name} weights not found (looked in {searched}) and downloads are "
                                    f"off; {how_to_get(name)}")
    if not _can_reach_download_hosts():
        raise ModelUnavailableError(f"{name} weights not found (looked in {searched}) and this machine is "
                                    f"offline (cannot resolve huggingface.co or dl.fbaipublicfiles.com); "
                                    f"{how_to_get(name)}")
    try:
        from demucs.pretrained import get_model

        model = get_model(name)
    except SystemExit as exc:  # demucs' fatal() exits
        raise ModelUnavailableError(f"could not download {name} ({exc}); {how_to_get(name)}") from None
    except Exception as exc:
        raise ModelUnavailableError(f"{name} weights not found (looked in {searched}) and the download "
                                    f"failed ({type(exc).__name__}); {how_to_get(name)}") from None
    model.eval()
    return model, "download"


def _can_reach_download_hosts() -> bool:
    """Whether demucs' download hosts resolve (a DNS look-up only; skipped behind a proxy).

    Without this, an offline machine spends ~25 s in huggingface_hub's retries before failing.
    """
    import socket

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return True
    for host in ("huggingface.co", "dl.fbaipublicfiles.com"):
        try:
            socket.getaddrinfo(host, 443)
            return True
        except OSError:
            continue
    return False


def _threads() -> int:
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    from ..cores import usable_cores

    return usable_cores()


class DemucsSeparator(Separator):
    """A loaded htdemucs-family model; thread-safe to call one at a time (the web worker's way).

    ``separate`` returns drums, bass, other, vocals at the input's rate and length; a mono input
    gives mono stems, stereo gives stereo, more channels are downmixed to stereo first. For the
    6-source model guitar and piano are added into ``other`` (the four stems still sum to the
    model's estimate of the mix).
    """

    def __init__(self, name: str, model: Any, *, where: str = "", threads: int | None = None,
                 chunk_s: float = CHUNK_S, overlap_s: float = OVERLAP_S, context_s: float = CONTEXT_S) -> None:
        self.name = name
        self.model = model
        self.where = where
        self.sr = int(model.samplerate)
        self.native_stems: tuple[str, ...] = tuple(model.sources)
        missing = [s for s in STEM_NAMES if s not in self.native_stems]
        if missing:
            raise ModelUnavailableError(f"{name} model does not predict {', '.join(missing)}; "
                                        "not a 4-stem separation model")
        self.stems = STEM_NAMES
        self.threads = threads
        self.chunk_s, self.overlap_s, self.context_s = chunk_s, overlap_s, context_s
        self.notice: str | None = None

    @classmethod
    def load(cls, name: str, model_dir: str | os.PathLike[str] | None = None,
             *, download: bool | None = None, **kwargs: Any) -> "DemucsSeparator":
        model, where = load_demucs_model(name, model_dir, download=download)
        return cls(name, model, where=where, **kwargs)

    def _fold(self, est: np.ndarray) -> np.ndarray:
        """``(native_sources, C, n)`` → ``(4, C, n)`` in STEM_NAMES order, extras added to other."""
        idx = {s: i for i, s in enumerate(self.native_stems)}
        out = est[[idx[s] for s in STEM_NAMES]]
        extra = [idx[s] for s in self.native_stems if s not in STEM_NAMES]
        if extra:
            out[STEM_NAMES.index("other")] += est[extra].sum(axis=0)
        return out

    def separate(self, audio: Audio, *, progress: Progress | None = None) -> dict[str, Audio]:
        """Split ``audio`` ``(channels, n)`` into ``{stem: Audio}`` with the same rate and length."""
        import torch
        from demucs.apply import apply_model

        from ..audio import resample, to_channels

        n, in_sr = audio.n_samples, audio.sr
        out_channels = 1 if audio.channels == 1 else 2
        x = to_channels(audio, 2).samples
        if n == 0:
            return {s: Audio(np.zeros((out_channels, 0), np.float32), in_sr) for s in self.stems}
        ref = x.mean(axis=0)
        mean, std = float(ref.mean()), float(ref.std())
        del ref
        std = max(std, 1e-8)  # silence: avoid 0/0, the output stays silent

        total_chunks = [1]
        state = {"done": 0, "seg_done": 0, "seg_total": 1, "last": 0.0}

        def report(fraction: float) -> None:
            fraction = max(fraction, state["last"])
            state["last"] = fraction
            report_progress(progress, "separate", fraction, model=self.name)

        def on_segment(d: dict) -> None:
            if d.get("state") == "end":
                state["seg_done"] += 1
                within = min(state["seg_done"] / state["seg_total"], 1.0)
                report((state["done"] + within) / total_chunks[0])

        def process(block: np.ndarray) -> np.ndarray:
            m = block.shape[-1]
            # normalise with the whole track's statistics (chunk by chunk: no full-length copy)
            y = resample(Audio((block - np.float32(mean)) / np.float32(std), in_sr), self.sr).samples
            subs = list(getattr(self.model, "models", [self.model]))
            # apply_model's own split: segments of model.segment seconds, 25 % overlap, per sub-model
            state["seg_total"] = sum(max(1, -(-y.shape[-1] // max(1, int(0.75 * int(self.sr * float(
                getattr(sub, "segment", 7.8))))))) for sub in subs)
            state["seg_done"] = 0
            with torch.inference_mode():
                est = apply_model(self.model, torch.from_numpy(np.ascontiguousarray(y))[None], shifts=0,
                                  split=True, overlap=0.25, progress=False, callback=on_segment)[0].numpy()
            est = self._fold(est)
            if self.sr != in_sr:
                s, c, k = est.shape
                back = resample(Audio(est.reshape(s * c, k), self.sr), in_sr).samples
                est = back.reshape(s, c, -1)
            if est.shape[-1] < m:
                est = np.pad(est, ((0, 0), (0, 0), (0, m - est.shape[-1])))
            return est[..., :m]

        def on_chunk(done: int, total: int) -> None:
            total_chunks[0] = total
            state["done"] = done
            report(done / total)

        chunk = max(int(self.chunk_s * in_sr), 1)
        overlap = min(int(self.overlap_s * in_sr), chunk - 1)
        from .chunking import chunk_spans

        total_chunks[0] = len(chunk_spans(n, chunk, overlap))
        report(0.0)
        old_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads or _threads())
        try:
            est = overlap_add(process, x, chunk=chunk, overlap=overlap, context=int(self.context_s * in_sr),
                              on_chunk=on_chunk)
        finally:
            torch.set_num_threads(old_threads)
        est *= np.float32(std)
        est += np.float32(mean)
        if out_channels == 1:
            est = est.mean(axis=1, keepdims=True)
        return {s: Audio(est[i], in_sr) for i, s in enumerate(self.stems)}
