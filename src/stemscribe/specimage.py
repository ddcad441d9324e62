"""Spectrogram images: audio <-> PNG with log-magnitude and phase in the colour channels.

The representation that image-to-image voice-to-song research trained on (a pix2pix network over
spectrogram pictures). Rows are frequency bins (low frequencies at the bottom), columns are STFT
frames; multichannel audio is stacked vertically, one band of rows per audio channel.

Modes (``bits`` / ``split``):

- ``bits=8``           8-bit RGB: R = log magnitude over ``range_db`` below the peak, G = phase,
                       B = 0. The research form; its quantisation noise limits the round trip to
                       roughly 30-40 dB SNR.
- ``bits=8, split``    8-bit RGB: the log magnitude coded on 16 bits split over R (high byte) and
                       B (low byte), G = phase (8 bit): phase quantisation is then the limit.
- ``bits=16``          16-bit RGB: R = log magnitude, G = phase, B = 0 (16 bits each).

The STFT settings and scaling travel in PNG ``tEXt`` chunks (keys prefixed ``stemscribe:``), so
:func:`decode` needs nothing but the file. PNGs are written and read by hand (zlib); no imaging
library is needed.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BadArgumentError, BadInputError
from .types import Audio

__all__ = ["SpecImage", "encode", "decode", "write_png", "read_png", "snr_db"]

_SIG = b"\x89PNG\r\n\x1a\n"
_PREFIX = "stemscribe:"


@dataclass
class SpecImage:
    """Pixels ``(height, width, 3)`` uint8 or uint16 plus the text metadata needed to invert them."""

    pixels: np.ndarray
    meta: dict[str, str]


# --------------------------------------------------------------------------------------- STFT
def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    import scipy.signal

    _, _, z = scipy.signal.stft(x, nperseg=n_fft, noverlap=n_fft - hop, window="hann", boundary="even", padded=True)
    return z  # (bins, frames)


def _istft(z: np.ndarray, n_fft: int, hop: int, n: int) -> np.ndarray:
    import scipy.signal

    _, x = scipy.signal.istft(z, nperseg=n_fft, noverlap=n_fft - hop, window="hann", boundary=True)
    out = np.zeros(n)
    m = min(n, len(x))
    out[:m] = x[:m]
    return out


# -------------------------------------------------------------------------------------- codec
def encode(audio: Audio, *, bits: int = 16, split: bool = False, n_fft: int = 1024, hop: int = 256,
           range_db: float | None = None) -> SpecImage:
    """Spectrogram image of ``audio`` (shape ``(channels * (n_fft // 2 + 1), frames, 3)``).

    ``range_db`` is the magnitude range kept below the loudest bin (default 80 dB for plain 8-bit,
    160 dB otherwise); quieter bins are clipped to the floor.
    """
    if bits not in (8, 16):
        raise BadArgumentError(f"unknown bit depth {bits}: use 8 or 16")
    if split and bits != 8:
        raise BadArgumentError("split magnitude is an 8-bit mode: use --bits 8 with --split")
    if n_fft < 16 or hop < 1 or hop > n_fft:
        raise BadArgumentError(f"bad STFT settings n_fft={n_fft} hop={hop}")
    if audio.n_samples < 2:
        raise BadInputError("audio too short to encode as a spectrogram image")
    range_db = float(range_db if range_db is not None else (80.0 if bits == 8 and not split else 160.0))
    specs = [_stft(ch.astype(np.float64), n_fft, hop) for ch in audio.samples]
    mag_db = [20.0 * np.log10(np.abs(z) + 1e-30) for z in specs]
    top = max(float(m.max()) for m in mag_db)
    if not np.isfinite(top) or top < -290:
        top = 0.0
    floor = top - range_db
    qmax_mag = 65535 if (bits == 16 or split) else 255
    qmax_phase = 65535 if bits == 16 else 255
    bands = []
    for z, m in zip(specs, mag_db):
        mq = np.round((np.clip(m, floor, top) - floor) / range_db * qmax_mag)
        pq = np.round((np.angle(z) + np.pi) / (2 * np.pi) * qmax_phase) % (qmax_phase + 1)
        if split:
            rgb = np.stack([mq // 256, pq, mq % 256], axis=-1)
        else:
            rgb = np.stack([mq, pq, np.zeros_like(mq)], axis=-1)
        bands.append(rgb[::-1])  # low frequencies at the bottom of the picture
    pixels = np.concatenate(bands, axis=0).astype(np.uint16 if bits == 16 else np.uint8)
    meta = {
        "sr": str(audio.sr), "n_samples": str(audio.n_samples), "channels": str(audio.channels),
        "n_fft": str(n_fft), "hop": str(hop), "window": "hann", "top_db": repr(top), "range_db": repr(range_db),
        "bits": str(bits), "mode": "split" if split else "plain",
        "layout": "rows=frequency (low at bottom), cols=frames; R=logmag, G=phase, B=0 or logmag low byte",
    }
    return SpecImage(pixels, meta)


def decode(img: SpecImage) -> Audio:
    """Invert :func:`encode` using the settings in ``img.meta``."""
    try:
        m = img.meta
        sr, n, ch = int(m["sr"]), int(m["n_samples"]), int(m["channels"])
        n_fft, hop, bits = int(m["n_fft"]), int(m["hop"]), int(m["bits"])
        top, range_db, split = float(m["top_db"]), float(m["range_db"]), m["mode"] == "split"
    except (KeyError, ValueError) as exc:
        raise BadInputError(f"not a stemscribe spectrogram image (missing or bad metadata: {exc})") from None
    bins = n_fft // 2 + 1
    px = img.pixels.astype(np.float64)
    if px.ndim != 3 or px.shape[0] != ch * bins or px.shape[2] < 3:
        raise BadInputError(f"spectrogram image has shape {img.pixels.shape}, expected ({ch * bins}, frames, 3)")
    qmax_mag = 65535 if (bits == 16 or split) else 255
    qmax_phase = 65535 if bits == 16 else 255
    out = []
    for c in range(ch):
        band = px[c * bins:(c + 1) * bins][::-1]
        mq = band[..., 0] * 256 + band[..., 2] if split else band[..., 0]
        mag = 10.0 ** ((mq / qmax_mag * range_db + top - range_db) / 20.0)
        mag[mq == 0] = 0.0  # the floor means "silence or below"
        phase = band[..., 1] / qmax_phase * 2 * np.pi - np.pi
        out.append(_istft(mag * np.exp(1j * phase), n_fft, hop, n))
    return Audio(np.stack(out).astype(np.float32), sr)


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    """``10 log10(sum ref^2 / sum (ref - est)^2)`` over all samples."""
    ref = np.asarray(ref, np.float64)
    err = ref - np.asarray(est, np.float64)
    return float(10 * np.log10(max(np.sum(ref**2), 1e-30) / max(np.sum(err**2), 1e-30)))


# ---------------------------------------------------------------------------------------- PNG
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(img: SpecImage) -> bytes:
    """The PNG file for ``img`` (RGB, 8 or 16 bit, no interlace, text metadata)."""
    px = img.pixels
    h, w, c = px.shape
    depth = 16 if px.dtype == np.uint16 else 8
    ctype = {1: 0, 3: 2, 4: 6}[c]
    raw = px.astype(">u2").tobytes() if depth == 16 else px.astype(np.uint8).tobytes()
    stride = w * c * depth // 8
    rows = np.frombuffer(raw, np.uint8).reshape(h, stride)
    # filter type 2 (Up) for all rows but the first: spectrogram rows are smooth along frequency
    up = np.empty_like(rows)
    up[0] = rows[0]
    up[1:] = rows[1:] - rows[:-1]
    filt = np.full((h, 1), 2, np.uint8)
    filt[0] = 0
    data = np.hstack([filt, up]).tobytes()
    parts = [_SIG, _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))]
    for k, v in img.meta.items():
        parts.append(_chunk(b"tEXt", f"{_PREFIX}{k}".encode("latin-1") + b"\0" + v.encode("latin-1", "replace")))
    parts += [_chunk(b"IDAT", zlib.compress(data, 6)), _chunk(b"IEND", b"")]
    return b"".join(parts)


def write_png(path: str | Path, img: SpecImage) -> Path:
    """Write ``img`` to ``path`` atomically."""
    from .atomic import atomic_output

    path = Path(path)
    data = png_bytes(img)
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return path


def _unfilter(data: bytes, h: int, stride: int, bpp: int) -> np.ndarray:
    buf = np.frombuffer(data, np.uint8)
    if len(buf) < h * (stride + 1):
        raise BadInputError("PNG image data is truncated")
    buf = buf[: h * (stride + 1)].reshape(h, stride + 1)
    out = np.zeros((h, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    for y in range(h):
        f, line = int(buf[y, 0]), buf[y, 1:].astype(np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 255
        elif f in (1, 3, 4):  # sequential filters: per byte (rare in our files)
            cur = np.zeros(stride, np.int32)
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b = prev[i]
                cc = prev[i - bpp] if i >= bpp else 0
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - cc
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
                cur[i] = (line[i] + pred) & 255
        else:
            raise BadInputError(f"PNG uses unknown filter type {f}")
        out[y] = cur
        prev = cur
    return out


def read_png(path: str | Path) -> SpecImage:
    """Read a non-interlaced 8/16-bit grey/RGB/RGBA PNG and its ``stemscribe:`` text chunks."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data.startswith(_SIG):
        raise BadInputError(f"{path}: not a PNG file")
    pos, idat, meta, hdr = 8, [], {}, None
    while pos + 8 <= len(data):
        (ln,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + ln]
        pos += 12 + ln
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"tEXt" and b"\0" in body:
            k, v = body.split(b"\0", 1)
            k = k.decode("latin-1")
            if k.startswith(_PREFIX):
                meta[k[len(_PREFIX):]] = v.decode("latin-1")
        elif kind == b"IEND":
            break
    if hdr is None or not idat:
        raise BadInputError(f"{path}: PNG has no header or image data (truncated?)")
    w, h, depth, ctype, _, _, interlace = hdr
    channels = {0: 1, 2: 3, 6: 4}.get(ctype)
    if channels is None or depth not in (8, 16) or interlace:
        raise BadInputError(f"{path}: unsupported PNG (colour type {ctype}, depth {depth}, interlace {interlace})")
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error:
        raise BadInputError(f"{path}: corrupt PNG image data") from None
    bpp = channels * depth // 8
    rows = _unfilter(raw, h, w * bpp, bpp)
    if depth == 16:
        px = rows.view(">u2").reshape(h, w, channels).astype(np.uint16)
    else:
        px = rows.reshape(h, w, channels)
    if channels == 1:
        px = np.repeat(px, 3, axis=2)
    return SpecImage(px, meta)
