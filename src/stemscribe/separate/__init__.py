"""Separation models behind one interface: ``get_separator(name) -> Separator``.

``name=None`` picks the default: ``htdemucs`` when its weights are present offline (see
:mod:`stemscribe.models` for where they are looked for), else the embedded ``lite`` model;
:func:`resolve_model` returns that choice plus a one-line notice saying which was used and how to
get the other (the separator also carries it as ``.notice``). Library code never prints it.

Loaded models are cached per process, keyed by name and weights folder, so the web worker and
repeated calls reuse them (:func:`clear_cache` drops them).

All separators return the four stems ``drums, bass, other, vocals``; ``htdemucs_6s``'s guitar
and piano are added into ``other``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ..models import (DEFAULT_MODEL, DEMUCS_MODELS, FALLBACK_MODEL, check_name, get_info, locate_demucs,
                      torch_hub_checkpoints)
from .base import Separator

__all__ = ["Separator", "get_separator", "resolve_model", "clear_cache"]

_CACHE: dict[tuple[str, str], Separator] = {}
_LOCK = threading.Lock()


def resolve_model(name: str | None = None, model_dir: str | os.PathLike[str] | None = None) -> tuple[str, str | None]:
    """Return ``(model name to use, notice or None)``; raises BadArgumentError for unknown names.

    The notice is set only when ``name`` is None (the default was chosen for the user).
    """
    if name is not None:
        return check_name(name), None
    loc = locate_demucs(DEFAULT_MODEL, model_dir)
    if loc is not None:
        return DEFAULT_MODEL, (f"using {DEFAULT_MODEL} (weights in {loc.folder}); "
                               f"--model {FALLBACK_MODEL} is faster but less clean")
    info = get_info(DEFAULT_MODEL, model_dir=model_dir)
    get = (f"download {info.urls[0]} into {torch_hub_checkpoints()}" if info.urls
           else f"run `stemscribe split --model {DEFAULT_MODEL}` once while online")
    return FALLBACK_MODEL, (f"using the embedded {FALLBACK_MODEL} model: {DEFAULT_MODEL} weights not found "
                            f"(for cleaner stems {get}; see `stemscribe models`)")


def _load_lite() -> Separator:
    try:
        from . import lite
    except ImportError as exc:
        from ..errors import ModelUnavailableError

        raise ModelUnavailableError(f"the embedded lite model is not available in this build ({exc}); "
                                    f"use --model {DEFAULT_MODEL}") from None
    return lite.load_lite()


def get_separator(name: str | None = None, *, model_dir: str | os.PathLike[str] | None = None,
                  download: bool | None = None) -> Separator:
    """A loaded, cached :class:`Separator` for model ``name`` (None: the default, see module doc).

    ``download`` (demucs models only): allow demucs' normal download when the weights are not
    found locally; ``None`` follows ``STEMSCRIBE_OFFLINE`` / ``HF_HUB_OFFLINE``.
    Raises BadArgumentError (unknown name) or ModelUnavailableError (missing/corrupt weights).
    """
    resolved, notice = resolve_model(name, model_dir)
    folder = ""  # the lite weights ship in the package: one cache entry whatever model_dir says
    if resolved in DEMUCS_MODELS:
        folder = (str(Path(model_dir).expanduser().resolve()) if model_dir else "") + "|" + \
            os.environ.get("STEMSCRIBE_MODEL_DIR", "")
    key = (resolved, folder)
    with _LOCK:
        sep = _CACHE.get(key)
        if sep is None:
            if resolved == FALLBACK_MODEL:
                sep = _load_lite()
            else:
                from .demucs import DemucsSeparator

                sep = DemucsSeparator.load(resolved, model_dir, download=download)
            _CACHE[key] = sep
    try:
        sep.notice = notice  # type: ignore[attr-defined]
    except AttributeError:  # a separator with __slots__: the notice stays available via resolve_model
        pass
    return sep


def clear_cache() -> None:
    """Forget every loaded model (frees their memory once no one else holds them)."""
    with _LOCK:
        _CACHE.clear()
