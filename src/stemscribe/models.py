"""Registry of separation models: what each is, which files it needs, where they are looked for.

Models
------
``htdemucs``     Hybrid Transformer Demucs v4 (one model), through the ``demucs`` library.
``htdemucs_ft``  four htdemucs models fine-tuned per source (best quality, about 4x slower).
``htdemucs_6s``  six sources; stemscribe folds guitar and piano into ``other``.
``lite``         the small model embedded in this package (offline, fast).

Where demucs weights are looked for, first match wins (nothing here touches the network or
imports torch):

1. ``model_dir`` (the CLI's ``--model-dir``), then
2. ``$STEMSCRIBE_MODEL_DIR``: a folder holding the model files in either layout demucs uses —
   ``<sig>-<sha256 prefix>.th`` (the legacy downloads, e.g. ``955717e8-8726e21a.th``) or
   ``<sig>.safetensors`` (the HuggingFace files) — optionally with a ``<name>.yaml`` bag file
   (as for ``demucs --repo``); without one the bag bundled with demucs is used;
3. demucs' own caches: torch hub's ``checkpoints`` folder (``$TORCH_HOME/hub/checkpoints``,
   default ``~/.cache/torch/hub/checkpoints``), where demucs' legacy download puts
   ``<sig>-<sha256 prefix>.th`` files, and the HuggingFace hub cache (``$HF_HUB_CACHE``, default
   ``~/.cache/huggingface/hub/models--adefossez--HTDemucs*/snapshots/*``), where demucs 4.1
   downloads ``<name>.yaml`` + ``<sig>.safetensors`` first.

When none has the files and downloads are allowed (not ``STEMSCRIBE_OFFLINE=1`` /
``HF_HUB_OFFLINE=1``), :mod:`stemscribe.separate.demucs` calls demucs' normal download.

Checksums: the legacy ``.th`` files carry the first 8 hex digits of their sha256 in their name
(as published in demucs' ``remote/files.txt``); HuggingFace cache blobs are named by their full
sha256. Both are verified when a model is loaded (not by :func:`list_models`, which stays cheap).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadArgumentError

__all__ = [
    "ModelInfo", "ModelLocation", "MODEL_NAMES", "DEMUCS_MODELS", "DEFAULT_MODEL", "FALLBACK_MODEL",
    "list_models", "get_info", "locate_demucs", "search_dirs", "downloads_allowed", "check_name",
]

DEFAULT_MODEL = "htdemucs"
FALLBACK_MODEL = "lite"
DEMUCS_MODELS: tuple[str, ...] = ("htdemucs", "htdemucs_ft", "htdemucs_6s")
MODEL_NAMES: tuple[str, ...] = DEMUCS_MODELS + (FALLBACK_MODEL,)
ENV_MODEL_DIR = "STEMSCRIBE_MODEL_DIR"
ENV_OFFLINE = "STEMSCRIBE_OFFLINE"

_DEMUCS_ROOT_URL = "https://dl.fbaipublicfiles.com/demucs/"
_HF_NAMESPACE = "adefossez"
_FOUR = ("drums", "bass", "other", "vocals")

_DEMUCS_TEXT: dict[str, dict[str, Any]] = {
    "htdemucs": {
        "description": "Hybrid Transformer Demucs v4, one model: the reference quality for 4 stems",
        "native_stems": _FOUR,
    },
    "htdemucs_ft": {
        "description": "htdemucs fine-tuned per source (bag of 4 models): best quality, ~4x slower",
        "native_stems": _FOUR,
    },
    "htdemucs_6s": {
        "description": "htdemucs with guitar and piano sources, folded into 'other' here",
        "native_stems": _FOUR + ("guitar", "piano"),
    },
}


@dataclass(frozen=True)
class ModelLocation:
    """Where a demucs model's files were found: one folder, the bag definition and one file per sig."""

    folder: Path
    kind: str  # "model-dir", "env", "torch-hub", "hf-cache"
    signatures: tuple[str, ...]
    files: tuple[Path, ...]
    bag_yaml: Path | None  # None: the bag bundled with demucs
    weights: list[list[float]] | None = None
    segment: float | None = None

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files if f.exists())


@dataclass
class ModelInfo:
    """One registry entry, with where its weights are looked for and whether they are there now.

    ``stems`` is what :meth:`Separator.separate` returns; ``native_stems`` what the network predicts.
    ``sha256`` maps file name to the (prefix of the) sha256 published for it, where known.
    """

    name: str
    description: str
    stems: tuple[str, ...]
    native_stems: tuple[str, ...]
    sr: int
    licence: str
    files: tuple[str, ...]
    sha256: dict[str, str]
    urls: tuple[str, ...]
    search_paths: tuple[Path, ...]
    available_offline: bool
    location: Path | None = None
    size_bytes: int | None = None
    how_to_get: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# demucs' package data, read without importing torch


def _demucs_remote_dir() -> Path | None:
    spec = importlib.util.find_spec("demucs")
    if spec is None or not spec.submodule_search_locations:
        return None
    remote = Path(list(spec.submodule_search_locations)[0]) / "remote"
    return remote if remote.is_dir() else None


def _read_bag(yaml_path: Path) -> tuple[tuple[str, ...], list[list[float]] | None, float | None]:
    import yaml  # pyyaml, a demucs dependency; small

    with open(yaml_path) as fh:
        bag = yaml.safe_load(fh) or {}
    sigs = tuple(str(s) for s in bag.get("models", ()))
    return sigs, bag.get("weights"), bag.get("segment")


def _remote_files() -> dict[str, str]:
    """sig -> URL of its legacy .th file, from demucs' ``remote/files.txt``."""
    remote = _demucs_remote_dir()
    if remote is None or not (remote / "files.txt").is_file():
        return {}
    root, out = "", {}
    for line in (remote / "files.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("root:"):
            root = line.split(":", 1)[1].strip()
        else:
            out[line.split("-", 1)[0]] = _DEMUCS_ROOT_URL + root + line
    return out


def _official_bag(name: str) -> tuple[str, ...]:
    remote = _demucs_remote_dir()
    if remote is None or not (remote / f"{name}.yaml").is_file():
        return ()
    return _read_bag(remote / f"{name}.yaml")[0]


def _hf_repo(name: str) -> str:
    return f"{_HF_NAMESPACE}/" + ("HTDemucs" if name == "htdemucs" else "HTDemucs-" + name[len("htdemucs_"):])


# ----------------------------------------------------------------------------------------------
# search locations


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def torch_hub_checkpoints() -> Path:
    """torch.hub's checkpoint folder, computed the way ``torch.hub.get_dir()`` does."""
    torch_home = os.environ.get("TORCH_HOME")
    base = Path(torch_home).expanduser() if torch_home else _cache_home() / "torch"
    return base / "hub" / "checkpoints"


def hf_hub_cache() -> Path:
    """The HuggingFace hub cache folder, computed the way ``huggingface_hub.constants`` does."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    hf_home = os.environ.get("HF_HOME")
    return (Path(hf_home).expanduser() if hf_home else _cache_home() / "huggingface") / "hub"


def search_dirs(model_dir: str | os.PathLike[str] | None = None) -> list[tuple[str, Path]]:
    """The folders searched for demucs weights, in order, as ``(kind, folder)``.

    HuggingFace snapshot folders are added per model by :func:`locate_demucs`.
    """
    out: list[tuple[str, Path]] = []
    if model_dir:
        out.append(("model-dir", Path(model_dir).expanduser()))
    if os.environ.get(ENV_MODEL_DIR):
        out.append(("env", Path(os.environ[ENV_MODEL_DIR]).expanduser()))
    out.append(("torch-hub", torch_hub_checkpoints()))
    return out


def downloads_allowed() -> bool:
    """False when ``STEMSCRIBE_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to a true value."""
    for var in (ENV_OFFLINE, "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return False
    return True


def _find_sig(folder: Path, sig: str) -> Path | None:
    """``<sig>.safetensors``, ``<sig>-<hash>.th`` or ``<sig>.th`` in ``folder``."""
    st = folder / f"{sig}.safetensors"
    if st.is_file():
        return st
    matches = sorted(p for p in folder.glob(f"{_glob_escape(sig)}*.th")
                     if p.stem == sig or re.fullmatch(re.escape(sig) + r"-[0-9a-f]+", p.stem))
    return matches[0] if matches else None


def _glob_escape(s: str) -> str:
    return re.sub(r"([\*\?\[])", r"[\1]", s)


def _locate_in(folder: Path, kind: str, name: str) -> ModelLocation | None:
    if not folder.is_dir():
        return None
    custom = folder / f"{name}.yaml"
    weights = segment = None
    if custom.is_file():
        try:
            sigs, weights, segment = _read_bag(custom)
        except Exception:  # an unreadable yaml is reported when loading; here: not usable
            return None
        bag_yaml: Path | None = custom
    else:
        sigs, bag_yaml = _official_bag(name), None
    if not sigs:
        return None
    files = [_find_sig(folder, s) for s in sigs]
    if any(f is None for f in files):
        return None
    return ModelLocation(folder, kind, sigs, tuple(f for f in files if f), bag_yaml, weights, segment)


def _hf_snapshots(name: str) -> list[Path]:
    repo_dir = hf_hub_cache() / ("models--" + _hf_repo(name).replace("/", "--"))
    snaps = repo_dir / "snapshots"
    if not snaps.is_dir():
        return []
    ordered: list[Path] = []
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        head = snaps / ref.read_text().strip()
        if head.is_dir():
            ordered.append(head)
    others = sorted((p for p in snaps.iterdir() if p.is_dir() and p not in ordered),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    return ordered + others


def locate_demucs(name: str, model_dir: str | os.PathLike[str] | None = None) -> ModelLocation | None:
    """Find the files of demucs model ``name`` offline, or ``None``. Does not verify checksums."""
    for kind, folder in search_dirs(model_dir):
        loc = _locate_in(folder, kind, name)
        if loc is not None:
            return loc
    for snap in _hf_snapshots(name):
        if (snap / f"{name}.yaml").is_file():
            loc = _locate_in(snap, "hf-cache", name)
            if loc is not None:
                return loc
    return None


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a weights file, read in 1 MiB blocks (bounded memory for large checkpoints)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_name(name: str) -> str:
    """Return ``name`` if it is a known model, else raise BadArgumentError listing them."""
    if name not in MODEL_NAMES:
        raise BadArgumentError(f"unknown model {name!r}; choose one of: {', '.join(MODEL_NAMES)} "
                               "(see `stemscribe models`)")
    return name


def how_to_get(name: str) -> str:
    """One sentence: how to make ``name``'s weights available."""
    if name == FALLBACK_MODEL:
        return "reinstall stemscribe (the lite weights ship inside the package)"
    urls = [_remote_files().get(sig, "") for sig in _official_bag(name)]
    urls = [u for u in urls if u]
    where = torch_hub_checkpoints()
    get = (f"run once while online (demucs downloads it), or download {' and '.join(urls)} into {where} "
           f"or a folder given with --model-dir / ${ENV_MODEL_DIR}") if urls else \
        "run once while online so demucs downloads it, or put its files in a folder given with --model-dir"
    return get + "; or use --model lite"


def _demucs_info(name: str, model_dir: str | os.PathLike[str] | None) -> ModelInfo:
    text = _DEMUCS_TEXT[name]
    sigs = _official_bag(name)
    remote = _remote_files()
    urls = tuple(remote[s] for s in sigs if s in remote)
    files = tuple(u.rsplit("/", 1)[1] for u in urls)
    sha = {f: f.rsplit(".", 1)[0].split("-", 1)[1] for f in files if "-" in f}
    loc = locate_demucs(name, model_dir)
    hf_dir = hf_hub_cache() / ("models--" + _hf_repo(name).replace("/", "--"))
    searched = tuple(p for _, p in search_dirs(model_dir)) + (hf_dir,)
    return ModelInfo(
        name=name, description=text["description"], stems=_FOUR, native_stems=text["native_stems"], sr=44100,
        licence="MIT (demucs code and released weights)", files=files, sha256=sha, urls=urls,
        search_paths=searched, available_offline=loc is not None,
        location=loc.folder if loc else None, size_bytes=loc.size_bytes if loc else None,
        how_to_get=how_to_get(name), extra={"signatures": sigs, "hf_repo": _hf_repo(name)},
    )


def _lite_info() -> ModelInfo:
    try:
        from .separate import lite  # noqa: F401  (written by another part of the team)

        raw = dict(lite.lite_info())
        error = raw.get("error")
    except ImportError:
        raw, error = {}, "lite model not available in this build (stemscribe.separate.lite is missing)"
    except Exception as exc:  # a broken manifest must not break `stemscribe models`
        raw, error = {}, f"lite model manifest unreadable ({exc})"
    files_raw = raw.get("files") or ([raw["weights"]] if raw.get("weights") else [])
    paths = tuple(Path(f) for f in files_raw)
    sha = raw.get("sha256") or {}
    if isinstance(sha, str):
        sha = {paths[0].name: sha} if paths else {}
    available = bool(raw.get("available", error is None and all(p.is_file() for p in paths)))
    size = raw.get("size_bytes")
    if size is None and paths and all(p.is_file() for p in paths):
        size = sum(p.stat().st_size for p in paths)
    stems = tuple(raw.get("stems") or _FOUR)
    return ModelInfo(
        name=FALLBACK_MODEL,
        description=str(raw.get("description") or "small mask model embedded in stemscribe (offline, fast)"),
        stems=stems, native_stems=stems, sr=int(raw.get("sr") or raw.get("sample_rate") or 44100),
        licence=str(raw.get("licence") or raw.get("license") or "MIT"),
        files=tuple(p.name for p in paths), sha256=dict(sha), urls=(),
        search_paths=tuple(sorted({p.parent for p in paths})), available_offline=available,
        location=paths[0].parent if paths else None, size_bytes=size,
        how_to_get=how_to_get(FALLBACK_MODEL) if error is None else error,
        extra={k: v for k, v in raw.items() if k not in ("files", "sha256", "description")},
    )


def get_info(name: str, *, model_dir: str | os.PathLike[str] | None = None) -> ModelInfo:
    """The registry entry for ``name`` with its current offline availability."""
    check_name(name)
    return _lite_info() if name == FALLBACK_MODEL else _demucs_info(name, model_dir)


def list_models(*, model_dir: str | os.PathLike[str] | None = None) -> list[ModelInfo]:
    """All models, in :data:`MODEL_NAMES` order; no network, no torch import."""
    return [get_info(n, model_dir=model_dir) for n in MODEL_NAMES]
