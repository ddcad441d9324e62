"""Spectrogram images: PNG structure, metadata, and round-trip SNR per mode."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from stemscribe import specimage
from stemscribe.cli import main
from stemscribe.errors import BadArgumentError, BadInputError
from stemscribe.types import Audio


def _signal(seed: int = 0, sr: int = 16000, seconds: float = 1.5, channels: int = 1) -> Audio:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    x += 0.15 * np.sin(2 * np.pi * (500 + 200 * t) * t) + 0.02 * rng.standard_normal(len(t))
    chans = [x * (0.5 + 0.5 * c) for c in range(channels)]
    return Audio(np.stack(chans).astype(np.float32), sr)


def test_png_is_valid_with_text_metadata(tmp_path):
    audio = _signal()
    img = specimage.encode(audio, bits=16, n_fft=512, hop=128)
    path = specimage.write_png(tmp_path / "s.png", img)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h, depth, ctype = struct.unpack(">IIBB", data[16:26])
    assert (depth, ctype) == (16, 2)
    assert h == 512 // 2 + 1 and w == img.pixels.shape[1]
    # every chunk's CRC is right and the STFT settings are tEXt chunks
    pos, texts = 8, {}
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"tEXt":
            k, v = body.split(b"\0")
            texts[k.decode()] = v.decode()
        pos += 12 + n
    assert texts["stemscribe:n_fft"] == "512" and texts["stemscribe:hop"] == "128"
    assert texts["stemscribe:sr"] == "16000"


@pytest.mark.parametrize("bits,split,floor_db", [(16, False, 40.0), (8, True, 30.0), (8, False, 20.0)])
def test_round_trip_snr(tmp_path, bits, split, floor_db):
    audio = _signal(seed=bits, channels=2)
    img = specimage.encode(audio, bits=bits, split=split)
    back = specimage.decode(specimage.read_png(specimage.write_png(tmp_path / "x.png", img)))
    assert back.sr == audio.sr and back.samples.shape == audio.samples.shape
    snr = specimage.snr_db(audio.samples, back.samples)
    assert snr >= floor_db


def test_sixteen_bit_beats_eight_bit():
    audio = _signal(seed=3)
    snr = {}
    for name, kw in {"8": dict(bits=8), "8split": dict(bits=8, split=True), "16": dict(bits=16)}.items():
        snr[name] = specimage.snr_db(audio.samples, specimage.decode(specimage.encode(audio, **kw)).samples)
    assert snr["16"] > snr["8split"] > snr["8"]
    assert snr["16"] >= 40.0


def test_bad_arguments_and_files(tmp_path):
    audio = _signal()
    with pytest.raises(BadArgumentError):
        specimage.encode(audio, bits=12)
    with pytest.raises(BadArgumentError):
        specimage.encode(audio, bits=16, split=True)
    (tmp_path / "no.png").write_bytes(b"not a png")
    with pytest.raises(BadInputError):
        specimage.read_png(tmp_path / "no.png")
    plain = specimage.SpecImage(np.zeros((4, 4, 3), np.uint8), {})
    with pytest.raises(BadInputError):
        specimage.decode(plain)


def test_cli_encode_decode(tmp_path, capsys):
    import soundfile as sf

    audio = _signal(seed=5)
    wav = tmp_path / "in.wav"
    sf.write(wav, audio.samples.T, audio.sr, subtype="FLOAT")
    png = tmp_path / "in.png"
    assert main(["specimage", "encode", str(wav), "--out", str(png), "--bits", "16"]) == 0
    assert "SNR" in capsys.readouterr().out
    out = tmp_path / "back.wav"
    assert main(["specimage", "decode", str(png), "--out", str(out)]) == 0
    y, sr = sf.read(out, always_2d=True)
    assert sr == audio.sr and y.shape[0] == audio.n_samples
    assert specimage.snr_db(audio.samples, y.T) >= 40.0
    assert main(["specimage", "decode", str(wav), "--out", str(tmp_path / "x.wav")]) != 0
    assert "not a PNG" in capsys.readouterr().err
