"""Decode, resample and encode audio.

``load`` reads wav/flac/ogg/aiff through soundfile (libsndfile) and everything else — mp3,
m4a/aac, opus, wma, and the audio track of video files — through PyAV, which bundles FFmpeg, so
no system codec is needed. Any sample rate and channel count are kept as they are in the file
(``Audio.samples`` is ``(channels, n)`` float32); callers downmix with :func:`to_channels`.

Bad files raise :class:`~stemscribe.errors.BadInputError` with one line that names the file
and the problem: missing, a folder, empty (0 bytes), not audio, truncated or corrupt, no audio
samples, or a video without an audio track.

Truncated files. By default (``strict=True``) a file that stops before the length its header
declares, or that hits a decode error part-way, is rejected: a silently shortened song would give
stems and MIDI that look complete but are not. ``strict=False`` keeps the part that decoded
(like most players do) and only fails when nothing decoded. Formats that declare no length
(raw mp3 without a Xing/Info header, ogg) cannot be told apart from a shorter file and load as is.

``write`` encodes wav (32-bit float by default), flac (24-bit), ogg (Vorbis) and mp3 (LAME via
PyAV), always through :func:`stemscribe.atomic.atomic_output`.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .atomic import atomic_output
from .errors import BadArgumentError, BadInputError
from .types import Audio

__all__ = ["AudioInfo", "finite_samples", "load", "info", "resample", "to_channels", "write", "WRITE_FORMATS"]

#: Extensions read with soundfile first (libsndfile); anything else goes to PyAV.
_SOUNDFILE_EXTS = {".wav", ".wave", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".au", ".snd",
                   ".caf", ".w64", ".rf64"}

#: Formats :func:`write` can produce.
WRITE_FORMATS: tuple[str, ...] = ("wav", "flac", "ogg", "mp3")

#: MP3 (MPEG-1/2/2.5 layer III) supports only these rates; others are resampled to the nearest.
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`info` finds without decoding: rate, channels, duration (s), frames if known."""

    sr: int
    channels: int
    duration: float
    frames: int | None
    format: str
    codec: str | None = None


class _NotForSoundfile(Exception):
    """soundfile cannot open this file; try PyAV."""


# ----------------------------------------------------------------------------------------------
# checks shared by load and info


def _check_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise BadInputError(f"input file not found: {p}")
    if p.is_dir():
        raise BadInputError(f"{p} is a folder, not an audio file")
    try:
        size = p.stat().st_size
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise BadInputError(f"cannot read {p}: {exc.strerror or exc}") from None
    if size == 0:
        raise BadInputError(f"{p} is empty (0 bytes), not an audio file")
    return p


def _looks_like_text(p: Path) -> bool:
    head = p.open("rb").read(512)
    if not head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c >= 32 or c in (9, 10, 13) for c in head)


def _not_audio(p: Path, detail: str = "") -> BadInputError:
    text = _looks_like_text(p)
    what = "a text file, not audio" if text else "not a readable audio or video file"
    hint = f" ({detail})" if detail and not text else ""
    return BadInputError(f"{p} is {what}{hint}; supported: wav, flac, mp3, ogg, opus, m4a/aac, "
                         "and video files with an audio track")


def _truncated(p: Path, got: float, expected: float | None, detail: str = "") -> BadInputError:
    if expected:
        msg = f"{p} is truncated or corrupt: only {got:.2f} s of {expected:.2f} s decode"
    else:
        msg = f"{p} is truncated or corrupt: decoding failed after {got:.2f} s"
    if detail:
        msg += f" ({detail})"
    return BadInputError(msg + "; re-export or re-download the file")


# ----------------------------------------------------------------------------------------------
# soundfile path


def _wav_missing_bytes(p: Path) -> tuple[int, int]:
    """``(missing, declared)`` bytes of a RIFF/WAVE ``data`` chunk (declared size minus what is there).

    libsndfile silently shortens a truncated wav; this restores the check. Returns ``(0, 0)`` for
    other files or streaming headers (size 0 or 0xFFFFFFFF).
    """
    with p.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0, 0
        size = p.stat().st_size
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk = fh.read(8)
            cid, clen = chunk[:4], struct.unpack("<I", chunk[4:8])[0]
            if cid == b"data":
                if clen in (0, 0xFFFFFFFF):
                    return 0, 0
                return max(0, clen - (size - pos - 8)), clen
            pos += 8 + clen + (clen & 1)
    return 0, 0


def _load_soundfile(p: Path, strict: bool) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        fh = sf.SoundFile(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise _NotForSoundfile(str(exc)) from None
    with fh:
        sr, channels, declared = fh.samplerate, fh.channels, fh.frames
        blocks: list[np.ndarray] = []
        got = 0
        try:
            while True:
                block = fh.read(frames=1 << 18, dtype="float32", always_2d=True)
                if not len(block):
                    break
                blocks.append(block.T.copy())
                got += len(block)
        except (sf.LibsndfileError, RuntimeError) as exc:
            if strict or not got:
                raise _truncated(p, got / sr, declared / sr if declared > 0 else None, str(exc)) from None
    missing, declared_bytes = _wav_missing_bytes(p) if p.suffix.lower() in (".wav", ".wave") else (0, 0)
    if strict and missing > 0:
        expected = got / sr * declared_bytes / max(declared_bytes - missing, 1)
        raise _truncated(p, got / sr, expected)
    if strict and declared > 0 and got < declared - max(1, sr // 100):
        raise _truncated(p, got / sr, declared / sr)
    samples = np.concatenate(blocks, axis=1) if blocks else np.zeros((channels, 0), np.float32)
    return samples, sr


_MP3_BITRATES = {  # kbps by (MPEG-1?, bitrate index) for layer III
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_SRATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_cut_mid_frame(p: Path) -> bool:
    """True when an MPEG layer III stream ends part-way through a frame (an interrupted download).

    Raw mp3 declares no length, so this is the one sign of truncation it carries: walk the frame
    headers from the start (after an ID3v2 tag) and see whether the last frame runs past the end
    of the file (ignoring a trailing ID3v1/APE tag). Any unexpected bytes stop the walk (no verdict).
    """
    data = p.read_bytes()
    end = len(data)
    if end >= 128 and data[end - 128:end - 125] == b"TAG":
        end -= 128
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        pos = 10 + ((data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F))
    frames = 0
    while pos + 4 <= end:
        b1, b2 = data[pos + 1], data[pos + 2]
        if data[pos] != 0xFF or (b1 & 0xE0) != 0xE0 or (b1 >> 1) & 3 != 1:  # sync + layer III
            return False  # a tag (APE, ID3v1) or anything unexpected: no verdict
        version = (b1 >> 3) & 3
        br_idx, sr_idx, pad = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
        if version == 1 or br_idx in (0, 15) or sr_idx == 3:
            return False  # reserved / free format: no verdict
        mpeg1 = version == 3
        length = (144 if mpeg1 else 72) * _MP3_BITRATES[mpeg1][br_idx] * 1000 // _MP3_SRATES[version][sr_idx] + pad
        pos += length
        frames += 1
    return frames > 0 and pos > end


# ----------------------------------------------------------------------------------------------
# PyAV path


def _open_av(p: Path):  # -> av.container.InputContainer
    import av

    try:
        return av.open(str(p), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise _not_audio(p, getattr(exc, "strerror", None) or str(exc)) from None


def _audio_stream(container, p: Path, stream: int):  # -> av.audio.stream.AudioStream
    streams = container.streams.audio
    if not streams:
        if container.streams.video:
            raise BadInputError(f"{p} is a video without an audio track; nothing to separate")
        raise BadInputError(f"{p} contains no audio stream")
    if not 0 <= stream < len(streams):
        raise BadArgumentError(f"{p} has {len(streams)} audio stream(s); stream {stream} does not exist")
    return streams[stream]


def _declared_duration(container, st) -> float | None:
    if st.duration is not None and st.time_base is not None:
        return float(st.duration * st.time_base)
    return None


def _load_av(p: Path, strict: bool, stream: int) -> tuple[np.ndarray, int]:
    import av

    with _open_av(p) as container:
        st = _audio_stream(container, p, stream)
        resampler = av.AudioResampler(format="fltp")  # keep the file's rate and channel layout
        blocks: list[np.ndarray] = []
        sr = int(st.rate or st.codec_context.sample_rate or 0)
        error: str | None = None
        try:
            for frame in container.decode(st):
                for out in resampler.resample(frame):
                    blocks.append(out.to_ndarray().reshape(out.layout.nb_channels, -1))
                    sr = out.sample_rate
            for out in resampler.resample(None):
                blocks.append(out.to_ndarray().reshape(out.layout.nb_channels, -1))
        except (av.error.FFmpegError, ValueError) as exc:
            error = getattr(exc, "strerror", None) or str(exc)
        declared = _declared_duration(container, st)
        channels = st.codec_context.channels or (blocks[0].shape[0] if blocks else 1)
        is_mp4 = container.format.name.startswith("mov")
        codec = container.format.name
    got = sum(b.shape[1] for b in blocks)
    if is_mp4 and declared and sr and error is None:
        # FFmpeg drops AAC's priming samples but not the encoder's end padding; the mp4 header's
        # duration is exact, so trim the last (partial) codec frame back to it.
        excess = got - int(round(declared * sr))
        if 0 < excess <= 4096:
            blocks[-1] = blocks[-1][:, :max(0, blocks[-1].shape[1] - excess)]
            got -= excess
    if error is not None and (strict or not got):
        if not got:
            raise _not_audio(p, error) if not sr else _truncated(p, 0.0, declared, error)
        raise _truncated(p, got / sr, declared, error)
    if strict and declared and sr and got / sr < declared - (0.25 + 0.005 * declared):
        raise _truncated(p, got / sr, declared)
    if strict and codec == "mp3" and _mp3_cut_mid_frame(p):
        raise BadInputError(f"{p} is truncated: it ends part-way through an mp3 frame after {got / sr:.2f} s; "
                            "re-export or re-download the file")
    samples = np.concatenate(blocks, axis=1) if blocks else np.zeros((channels, 0), np.float32)
    return np.ascontiguousarray(samples, dtype=np.float32), int(sr)


# ----------------------------------------------------------------------------------------------
# public API


def finite_samples(samples: np.ndarray, notes: list[str] | None = None) -> np.ndarray:
    """``samples`` with NaN set to 0 and infinities to full scale (+-1); a sentence saying how many
    were repaired is appended to ``notes`` (when given). Unchanged (no copy) when all are finite."""
    finite = np.isfinite(samples)
    if finite.all():
        return samples
    bad = int(samples.size - np.count_nonzero(finite))
    if notes is not None:
        notes.append(f"{bad} of {samples.size} samples were NaN or infinite: NaN set to 0, infinity to full scale")
    return np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)


def load(path: str | os.PathLike[str], *, sr: int | None = None, mono: bool = False,
         strict: bool = True, stream: int = 0, notes: list[str] | None = None) -> Audio:
    """Decode an audio or video file to :class:`Audio` ``(channels, n)`` float32.

    Parameters
    ----------
    path : the file; format found from its content (the extension only picks the first decoder).
    sr : resample to this rate; ``None`` keeps the file's rate.
    mono : average the channels to one.
    strict : reject truncated/corrupt files (default); ``False`` keeps what decodes.
    stream : which audio stream of a multi-stream file (e.g. ``.stem.mp4``: 0 is the mixture).
    notes : if given, what was repaired in the input is appended here as sentences (samples that
        were NaN or infinite, set to 0 or full scale), for the caller to tell its user.

    Raises
    ------
    BadInputError : missing, folder, empty, not audio, truncated, no samples, video without audio.
    """
    p = _check_path(path)
    samples: np.ndarray | None = None
    rate = 0
    if p.suffix.lower() in _SOUNDFILE_EXTS and stream == 0:
        try:
            samples, rate = _load_soundfile(p, strict)
        except _NotForSoundfile:
            samples = None  # e.g. a .wav that is really mp3-in-wav or mislabelled: let FFmpeg try
    if samples is None:
        samples, rate = _load_av(p, strict, stream)
    if samples.shape[1] == 0 or rate <= 0:
        raise BadInputError(f"{p} contains no audio samples (zero length)")
    samples = finite_samples(samples, notes)
    audio = Audio(samples, rate)
    if mono:
        audio = to_channels(audio, 1)
    if sr is not None and sr != audio.sr:
        audio = resample(audio, sr)
    return audio


def info(path: str | os.PathLike[str]) -> AudioInfo:
    """Sample rate, channels and duration of a file, read from its header (no full decode).

    For formats without a declared length (raw mp3 without a Xing header) the duration is
    FFmpeg's estimate from the bit rate.
    """
    p = _check_path(path)
    if p.suffix.lower() in _SOUNDFILE_EXTS:
        import soundfile as sf

        try:
            i = sf.info(str(p))
        except (sf.LibsndfileError, RuntimeError, TypeError):
            pass
        else:
            if i.frames <= 0:
                raise BadInputError(f"{p} contains no audio samples (zero length)")
            return AudioInfo(int(i.samplerate), int(i.channels), i.frames / i.samplerate, int(i.frames),
                             i.format.lower(), i.subtype.lower())
    with _open_av(p) as container:
        st = _audio_stream(container, p, 0)
        duration = _declared_duration(container, st)
        if duration is None and container.duration is not None:
            duration = container.duration / 1_000_000
        sr = int(st.rate or st.codec_context.sample_rate or 0)
        if not sr:
            raise _not_audio(p, "audio stream without a sample rate")
        frames = int(round(duration * sr)) if duration else None
        return AudioInfo(sr, int(st.codec_context.channels or 0), float(duration or 0.0), frames,
                         container.format.name, st.codec_context.name)


def resample(audio: Audio, sr: int, *, quality: str = "HQ") -> Audio:
    """Resample to ``sr`` Hz with soxr (band-limited, linear phase); returns a new Audio.

    Output length is ``round(n * sr / audio.sr)`` samples (soxr's convention); channels are kept.
    """
    sr = int(sr)
    if sr <= 0:
        raise BadArgumentError(f"sample rate must be positive, got {sr}")
    if sr == audio.sr:
        return audio
    import soxr

    if audio.n_samples == 0:
        return Audio(np.zeros((audio.channels, 0), np.float32), sr)
    out = soxr.resample(np.ascontiguousarray(audio.samples.T), audio.sr, sr, quality=quality)
    out = np.asarray(out, dtype=np.float32).reshape(-1, audio.channels)
    return Audio(np.ascontiguousarray(out.T), sr)


def to_channels(audio: Audio, channels: int) -> Audio:
    """Return ``audio`` with ``channels`` channels (1 or 2), keeping the rate and length.

    Mono → stereo duplicates; stereo → mono averages. More than two channels → stereo: 5.1 in the
    usual WAV/FFmpeg order (L R C LFE Ls Rs) uses the ITU downmix (centre and surrounds at -3 dB,
    LFE dropped, rescaled so full-scale input stays in range); other counts put even channels
    left and odd channels right.
    """
    x, n_in = audio.samples, audio.channels
    if channels == n_in:
        return audio
    if channels not in (1, 2):
        raise BadArgumentError(f"can only convert to 1 or 2 channels, not {channels}")
    if n_in == 1:
        return Audio(np.repeat(x, channels, axis=0), audio.sr)
    if n_in == 2:
        stereo = x
    elif n_in == 6:
        g = np.float32(np.sqrt(0.5))
        left = x[0] + g * x[2] + g * x[4]
        right = x[1] + g * x[2] + g * x[5]
        stereo = np.stack([left, right]) / np.float32(1 + 2 * g)
    else:
        stereo = np.stack([x[0::2].mean(axis=0), x[1::2].mean(axis=0)])
    if channels == 1:
        return Audio(stereo.mean(axis=0, keepdims=True), audio.sr)
    return Audio(np.ascontiguousarray(stereo, dtype=np.float32), audio.sr)


def _clip(x: np.ndarray, clip: str) -> np.ndarray:
    x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak <= 1.0:
        return x
    if clip == "rescale":
        return x / np.float32(peak)
    return np.clip(x, -1.0, 1.0)


def write(path: str | os.PathLike[str], audio: Audio, *, format: str | None = None,
          subtype: str | None = None, clip: Literal["clamp", "rescale"] = "clamp",
          bitrate: int = 320_000) -> Path:
    """Encode ``audio`` to ``path`` atomically (temporary name in the same folder, then rename).

    ``format`` is ``wav``, ``flac``, ``ogg`` or ``mp3``; ``None`` takes it from the extension.
    WAV defaults to 32-bit float: separated stems can peak above full scale (they sum to the mix,
    and the mix is often at 0 dBFS), and float keeps those peaks and the model's full precision,
    so stems still add up to the mix; every DAW and audio library reads it. Pass
    ``subtype="PCM_24"`` or ``"PCM_16"`` for integer wav. Integer and lossy formats (flac is
    24-bit, ogg, mp3) cannot hold peaks above 1.0: ``clip="clamp"`` (default) hard-limits those
    samples only, ``"rescale"`` scales the whole file down to peak 1.0 (changes its level).
    MP3 holds one or two channels at 8–48 kHz: more channels are downmixed to stereo and other
    rates resampled to the nearest MP3 rate. Returns ``path`` as a :class:`Path`.
    """
    p = Path(path)
    fmt = (format or p.suffix.lstrip(".")).lower()
    if fmt in ("wave",):
        fmt = "wav"
    if fmt not in WRITE_FORMATS:
        raise BadArgumentError(f"unknown audio format {fmt!r}; choose one of: {', '.join(WRITE_FORMATS)}")
    if clip not in ("clamp", "rescale"):
        raise BadArgumentError(f"clip must be 'clamp' or 'rescale', not {clip!r}")
    if audio.n_samples == 0:
        raise BadArgumentError(f"refusing to write {p}: the audio has no samples")
    if fmt == "mp3":
        _write_mp3(p, audio, clip, bitrate)
        return p
    import soundfile as sf

    if fmt == "wav":
        subtype = subtype or "FLOAT"
        x = audio.samples if subtype.upper() in ("FLOAT", "DOUBLE") else _clip(audio.samples, clip)
        x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
        # RF64 header only when a plain RIFF would pass the 4 GiB limit.
        bytes_needed = audio.n_samples * audio.channels * (8 if subtype.upper() == "DOUBLE" else 4)
        sf_format = "RF64" if bytes_needed > 0xFFFF0000 else "WAV"
    elif fmt == "flac":
        subtype, sf_format = subtype or "PCM_24", "FLAC"
        x = _clip(audio.samples, clip)
    else:
        subtype, sf_format = subtype or "VORBIS", "OGG"
        x = _clip(audio.samples, clip)
    with atomic_output(p) as tmp:
        try:
            sf.write(str(tmp), np.ascontiguousarray(x.T), audio.sr, format=sf_format, subtype=subtype)
        except (ValueError, TypeError, sf.LibsndfileError) as exc:
            if isinstance(exc, sf.LibsndfileError) and "System error" in str(exc):
                raise OSError(28, f"could not write ({exc})") from exc
            raise BadArgumentError(f"cannot encode {fmt} ({subtype}, {audio.sr} Hz, "
                                   f"{audio.channels} ch): {exc}") from None
    return p


def _write_mp3(p: Path, audio: Audio, clip: str, bitrate: int) -> None:
    import av

    if audio.channels > 2:
        audio = to_channels(audio, 2)
    if audio.sr not in _MP3_RATES:
        audio = resample(audio, min(_MP3_RATES, key=lambda r: abs(r - audio.sr)))
    x = np.ascontiguousarray(_clip(audio.samples, clip), dtype=np.float32)
    layout = "mono" if audio.channels == 1 else "stereo"
    with atomic_output(p) as tmp:
        with av.open(str(tmp), mode="w", format="mp3") as out:
            st = out.add_stream("libmp3lame", rate=audio.sr, layout=layout)
            st.bit_rate = int(bitrate)
            block = 1152 * 64
            for start in range(0, x.shape[1], block):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, start:start + block]),
                                                   format="fltp", layout=layout)
                frame.sample_rate = audio.sr
                frame.pts = start
                for packet in st.encode(frame):
                    out.mux(packet)
            for packet in st.encode(None):
                out.mux(packet)
