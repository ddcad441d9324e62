"""Atomic outputs: nothing half-written is ever left under a final name.

``atomic_output(path)`` yields a temporary file name in the same folder (so the final
``os.replace`` is a rename on one file system); the temporary file becomes ``path`` only when the
``with`` block finishes without an error, and is removed otherwise.
``atomic_dir(path)`` does the same for a whole folder: it is built under a hidden sibling name and
renamed into place at the end.

Problems with the location (missing permission, read-only disk, a file where a folder should be,
disk full) raise :class:`~stemscribe.errors.OutputError` with one clear line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

from .errors import OutputError

__all__ = ["atomic_output", "atomic_dir", "ensure_dir"]

#: errno values that mean "this location cannot be written", turned into OutputError.
_OUTPUT_ERRNOS = {
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG,
}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _describe(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """Create folder ``path`` (and parents) if needed; raise OutputError if that is impossible."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot create output folder {path}: a file with that name exists") from None
    except OSError as exc:
        raise OutputError(f"cannot create output folder {path}: {_describe(exc)}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {path} is not writable (permission denied)")
    return path


def _temp_sibling(path: Path, kind: str) -> Path:
    # Keep the real suffix at the end: encoders that pick a format from the name still work.
    return path.with_name(f".{path.stem}.{kind}-{secrets.token_hex(4)}{path.suffix}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    The temporary file is created empty (mode 0666 minus the umask, like ``open``) before the
    ``with`` block runs, so an unwritable location fails early with :class:`OutputError`. On
    any exception inside the block (including ``KeyboardInterrupt`` and
    :class:`~stemscribe.errors.Cancelled`) the temporary file is removed and the exception
    re-raised; an ``OSError`` that means "cannot write here" becomes :class:`OutputError`.
    An existing ``path`` is replaced only at the very end.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: a folder with that name exists")
    ensure_dir(path.parent)
    tmp = _temp_sibling(path, "tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write to {path.parent}: {_describe(exc)}") from None
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno in _OUTPUT_ERRNOS:
            raise OutputError(f"cannot write {path}: {_describe(exc)}") from exc
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; rename it to ``path`` when the block succeeds.

    Used for outputs made of several files (a song's stems, MIDI and report) so a reader never
    sees a half-written folder. If ``path`` already exists it is replaced as a whole when
    ``replace`` is true (moved aside, the new folder renamed in, the old one deleted), otherwise
    :class:`OutputError` is raised before anything is written. On failure the temporary folder
    is deleted and any existing ``path`` is left untouched.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"cannot create output folder {path}: a file with that name exists")
    if path.exists() and not replace:
        raise OutputError(f"output folder {path} already exists (choose another --out or remove it)")
    ensure_dir(path.parent)
    tmp = _temp_sibling(path, "partial")
    try:
        os.mkdir(tmp, 0o777 & ~_umask())
    except OSError as exc:
        raise OutputError(f"cannot create a folder in {path.parent}: {_describe(exc)}") from None
    try:
        yield tmp
        if path.exists():
            old = _temp_sibling(path, "old")
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)  # put the previous output back
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in _OUTPUT_ERRNOS:
            raise OutputError(f"cannot write {path}: {_describe(exc)}") from exc
        raise
