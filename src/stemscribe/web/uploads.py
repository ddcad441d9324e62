"""Receiving an upload: streamed to disk with a size limit, typed by its content, probed as audio.

The song comes as the raw request body (what the page sends) or as the file field of a
``multipart/form-data`` body (what ``curl -F song=@song.mp3`` and most HTTP libraries send);
:func:`multipart_file` streams the file part out of the latter without buffering the whole body.

The client's file name is kept only for display; the file is stored as ``song.<ext>``, where
``<ext>`` comes from the file's first bytes (its "magic number"), never from its name.
"""

from __future__ import annotations

import os
import secrets
import unicodedata
from pathlib import Path
from typing import Any, AsyncIterator

from ..errors import StemscribeError

#: (offset, signature, stored extension); first match wins.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"fLaC", "flac"),
    (0, b"OggS", "ogg"),
    (0, b"ID3", "mp3"),
    (0, b"\x1a\x45\xdf\xa3", "webm"),  # Matroska / WebM
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "wma"),  # ASF (wma/wmv)
    (0, b"caff", "caf"),
    (4, b"ftyp", "m4a"),  # MP4 family: m4a, mp4, mov, 3gp
)

#: What a few common non-audio files look like, for a friendlier refusal.
_NOT_AUDIO: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"MThd", "a MIDI file (stemscribe needs a recording, not MIDI)"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a program"),
)

#: The name of the upload inside a job folder is ``song.<ext>`` with one of these.
UPLOAD_EXTENSIONS = frozenset({"wav", "aiff", "flac", "ogg", "mp3", "aac", "webm", "wma", "caf", "m4a"})

SUPPORTED = "MP3, WAV, FLAC, OGG/Opus, M4A/AAC, AIFF or a video with sound"

#: bytes a multipart body may carry beyond the upload limit: the form's other fields and part headers
MULTIPART_ENVELOPE = 1 << 20


class UploadError(StemscribeError):
    """An upload was refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def sniff(head: bytes) -> str | None:
    """The audio container that ``head`` (a file's first bytes, 12 or more) starts, as an extension.

    Returns ``None`` when the bytes do not start any container we read.
    """
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    for offset, sig, ext in _SIGNATURES:
        if head[offset : offset + len(sig)] == sig:
            return ext
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:  # ADTS AAC: sync 0xFFF, layer bits 00
            return "aac"
        if head[1] & 0xE0 == 0xE0 and head[1] & 0x06:  # MPEG audio frame sync with a layer
            return "mp3"
    return None


def describe(head: bytes) -> str:
    """A short human description of a file that is not audio (``"text"``, ``"a PNG image"``...)."""
    for sig, what in _NOT_AUDIO:
        if head.startswith(sig):
            return what
    sample = head[:512]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        stripped = text.lstrip().lower()
        if stripped.startswith(("<!doctype html", "<html")):
            return "a web page (HTML)"
        return "text"
    return "not a format stemscribe can read"


class _FirstFilePart:
    """python-multipart callbacks that keep the data of the first part with a file name."""

    def __init__(self) -> None:
        self.field = self.value = b""
        self.headers: dict[bytes, bytes] = {}
        self.filename: str | None = None  # set once the file part's headers are read
        self.in_file = False
        self.data: list[bytes] = []

    def callbacks(self) -> dict[str, Any]:
        return {"on_header_field": self.on_header_field, "on_header_value": self.on_header_value,
                "on_header_end": self.on_header_end, "on_headers_finished": self.on_headers_finished,
                "on_part_data": self.on_part_data, "on_part_end": self.on_part_end}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.field.strip().lower()] = self.value.strip()
        self.field = self.value = b""

    def on_headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, disp = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.headers = {}
        # a browser sends filename="" for a file input left empty: that is no file
        if self.filename is None and disp.get(b"filename"):
            self.filename = disp[b"filename"].decode("utf-8", "replace")
            self.in_file = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.data.append(data[start:end])

    def on_part_end(self) -> None:
        self.in_file = False


async def multipart_file(chunks: AsyncIterator[bytes], content_type: str, *, limit: int,
                         info: dict[str, str]) -> AsyncIterator[bytes]:
    """The bytes of the first file part of a ``multipart/form-data`` body, as they arrive.

    ``info["filename"]`` is set to the part's file name once its headers are read (an empty chunk
    is yielded then, before the first bytes). Other fields are skipped. Raises :class:`UploadError`
    for a body without a boundary or without a file part (400), or one far over ``limit`` (413: the
    file part itself is limited by :func:`receive`).
    """
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadError("The multipart upload has no boundary in its Content-Type header.", 400)
    part = _FirstFilePart()
    parser = MultipartParser(boundary, part.callbacks())
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit + MULTIPART_ENVELOPE:
            raise UploadError(f"The upload is larger than the upload limit of {_mb(limit)} "
                              "(start stemscribe with --max-upload-mb to raise it).", 413)
        try:
            parser.write(chunk)
        except MultipartParseError as exc:
            raise UploadError(f"The multipart upload could not be read ({exc}).", 400) from None
        if part.filename is not None and "filename" not in info:
            info["filename"] = part.filename
            yield b""
        while part.data:
            yield part.data.pop(0)
    parser.finalize()
    if part.filename is None:
        raise UploadError("The multipart upload has no file in it: send the song as a file field "
                          "(curl -F song=@song.mp3 ...) or as the raw request body (curl --data-binary @song.mp3 ...).", 400)


def display_name(name: str | None) -> str:
    """The client's file name made safe to show and to use in a download name."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '"<>|*?:')
    name = name.strip().strip(".").strip()
    return (name or "song")[:120]


async def receive(chunks: AsyncIterator[bytes], job_dir: Path, *, limit: int, name: str = "") -> tuple[Path, int]:
    """Write an uploaded body to ``job_dir/song.<ext>`` while checking it.

    Stops as soon as the body is over ``limit`` bytes (413); stops writing (but reads on, so the
    client gets the answer) when its first bytes are not an audio container (415); an empty body is
    refused (400). Nothing is left behind on a refusal.
    Returns the stored path and its size in bytes.
    """
    job_dir.mkdir(parents=True, exist_ok=True)
    part = job_dir / f".upload-{secrets.token_hex(4)}.part"
    size = 0
    head = b""
    ext: str | None = None
    shown = f"“{name}”" if name else "The file"
    refused: UploadError | None = None
    try:
        with open(part, "wb") as fh:
            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if size > limit:
                    raise UploadError(
                        f"{shown} is larger than the upload limit of {_mb(limit)} "
                        "(start stemscribe with --max-upload-mb to raise it).",
                        413,
                    )
                if refused is not None:
                    continue  # read the rest (bounded by the limit) so the client sees our answer
                if ext is None:
                    head += chunk[:4096]
                    if len(head) >= 16:
                        try:
                            ext = _check_head(head, shown)
                        except UploadError as exc:
                            refused = exc
                            continue
                fh.write(chunk)
        if refused is not None:
            raise refused
        if size == 0:
            raise UploadError(f"{shown} is empty (0 bytes).", 400)
        if ext is None:
            ext = _check_head(head, shown)
        final = job_dir / f"song.{ext}"
        os.replace(part, final)
        return final, size
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise UploadError(f"{shown} could not be stored: {exc.strerror or exc} (is the disk full?)", 507) from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _check_head(head: bytes, shown: str) -> str:
    ext = sniff(head)
    if ext is None:
        raise UploadError(f"{shown} is not an audio file (it looks like {describe(head)}). Use {SUPPORTED}.", 415)
    return ext


def probe(path: Path, name: str = "") -> float:
    """Open ``path`` as audio (header and stream check); returns its duration in seconds.

    Raises :class:`UploadError` (415) when it cannot be read as audio.
    """
    from ..audio import info

    shown = f"“{name}”" if name else "The file"
    try:
        meta = info(path)
    except StemscribeError as exc:
        detail = str(exc).replace(str(path), "").strip(" :")
        raise UploadError(f"{shown} could not be read as audio ({detail}). Use {SUPPORTED}.", 415) from None
    duration = float(getattr(meta, "duration", 0.0) or 0.0)
    if duration <= 0.0 and getattr(meta, "frames", None) == 0:
        raise UploadError(f"{shown} contains no audio.", 415)
    return duration


def _mb(n: int) -> str:
    return f"{n / 1_000_000:g} MB"
