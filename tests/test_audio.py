"""audio.load / info / resample / write / to_channels and the atomic helpers, on files made here."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from stemscribe import audio
from stemscribe.atomic import atomic_dir, atomic_output
from stemscribe.errors import BadArgumentError, BadInputError, OutputError
from stemscribe.types import Audio

SR = 44100


def noise(rng: np.random.Generator, channels: int, seconds: float, sr: int = SR, amp: float = 0.2) -> np.ndarray:
    """Band-limited (< sr/8) seeded noise, (channels, n) float32: survives lossy codecs recognisably."""
    import scipy.signal as ss

    x = rng.standard_normal((channels, int(seconds * sr)))
    b, a = ss.butter(4, 0.25)
    return (amp * ss.lfilter(b, a, x, axis=1) / 0.5).astype(np.float32)


def encode_av(path: Path, x: np.ndarray, sr: int, codec: str | None, fmt: str, *, video: bool = False) -> Path:
    """Write ``x`` (channels, n) with PyAV: ``codec`` audio (None: no audio) in container ``fmt``."""
    import av

    x = np.ascontiguousarray(x, dtype=np.float32)
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[x.shape[0]]
    with av.open(str(path), "w", format=fmt) as out:
        vst = None
        if video:
            vst = out.add_stream("mpeg4", rate=10)
            vst.width, vst.height, vst.pix_fmt = 32, 32, "yuv420p"
        if codec:
            st = out.add_stream(codec, rate=sr, layout=layout)
            formats = [f.name for f in (st.codec_context.codec.audio_formats or [])] or ["fltp"]
            resampler = av.AudioResampler(format="fltp" if "fltp" in formats else formats[0], layout=layout, rate=sr)
            for s in range(0, x.shape[1], 4096):
                fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, s:s + 4096]), format="fltp", layout=layout)
                fr.sample_rate, fr.pts = sr, s
                for f2 in resampler.resample(fr):
                    for pkt in st.encode(f2):
                        out.mux(pkt)
            for pkt in st.encode(None):
                out.mux(pkt)
        if vst is not None:
            for i in range(int(x.shape[1] / sr * 10) if codec else 20):
                img = np.full((32, 32, 3), i * 5 % 255, np.uint8)
                fr = av.VideoFrame.from_ndarray(img, format="rgb24")
                fr.pts = i
                for pkt in vst.encode(fr):
                    out.mux(pkt)
            for pkt in vst.encode(None):
                out.mux(pkt)
    return path


def best_corr(y: np.ndarray, x: np.ndarray, max_lag: int = 3000) -> tuple[float, int]:
    """Peak normalised correlation of 1-D ``y`` against ``x`` over lags 0..max_lag (codec delay)."""
    seg = x[max_lag:max_lag + 20000]
    c = np.correlate(y[:len(seg) + 2 * max_lag], seg, "valid")
    lag = int(np.argmax(c))
    ref = y[lag:lag + len(seg)]
    return float(c[lag] / (np.linalg.norm(seg) * np.linalg.norm(ref) + 1e-12)), lag - max_lag


# ---------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt,tol", [("wav", 0.0), ("flac", 2e-6)])
def test_lossless_round_trip_is_exact(tmp_path, rng, fmt, tol):
    x = noise(rng, 2, 1.0)
    path = audio.write(tmp_path / f"a.{fmt}", Audio(x, SR))
    y = audio.load(path)
    assert (y.sr, y.samples.shape) == (SR, x.shape)
    assert np.max(np.abs(y.samples - x)) <= tol


@pytest.mark.parametrize("fmt", ["ogg", "mp3"])
def test_lossy_round_trip_keeps_the_signal(tmp_path, rng, fmt):
    x = noise(rng, 2, 2.0)
    y = audio.load(audio.write(tmp_path / f"a.{fmt}", Audio(x, SR)))
    assert y.sr == SR and y.channels == 2
    assert abs(y.n_samples - x.shape[1]) <= 2048  # codecs may pad to a frame
    corr, lag = best_corr(y.samples[0], x[0])
    assert corr > 0.95 and abs(lag) < 1200, (corr, lag)


@pytest.mark.parametrize("name,codec,fmt,sr,video", [
    ("a.mp3", "libmp3lame", "mp3", 44100, False),
    ("a.m4a", "aac", "ipod", 44100, False),
    ("a.aac", "aac", "adts", 32000, False),
    ("a.opus", "libopus", "ogg", 48000, False),
    ("a.mkv", "flac", "matroska", 44100, False),
    ("clip.mp4", "aac", "mp4", 44100, True),
])
def test_pyav_formats_and_video_audio_track(tmp_path, rng, name, codec, fmt, sr, video):
    x = noise(rng, 2, 2.0, sr=sr)
    path = encode_av(tmp_path / name, x, sr, codec, fmt, video=video)
    y = audio.load(path)
    assert (y.sr, y.channels) == (sr, 2)
    assert abs(y.duration - 2.0) < 0.05
    if fmt in ("ipod", "mp4", "mp3"):  # containers that declare an exact length: gapless decode
        assert y.n_samples == x.shape[1]
    corr, _ = best_corr(y.samples[1], x[1])
    assert corr > 0.9
    i = audio.info(path)
    assert (i.sr, i.channels) == (sr, 2) and abs(i.duration - 2.0) < 0.3


@pytest.mark.parametrize("sr", [8000, 22050, 48000, 11025, 96000])
def test_any_sample_rate_loads_and_resamples(tmp_path, sr):
    t = np.arange(int(0.5 * sr)) / sr
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    path = audio.write(tmp_path / f"t{sr}.wav", Audio(tone, sr))
    assert audio.info(path).sr == sr
    y = audio.load(path)
    assert y.sr == sr and y.n_samples == len(tone)
    z = audio.load(path, sr=16000)
    assert z.sr == 16000 and abs(z.n_samples - 8000) <= 1
    spec = np.abs(np.fft.rfft(z.samples[0] * np.hanning(z.n_samples)))
    assert abs(np.argmax(spec) * 16000 / z.n_samples - 1000) < 5  # the pitch survives resampling


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_channels_are_kept_and_can_be_downmixed(tmp_path, rng, channels):
    x = noise(rng, channels, 0.5)
    path = audio.write(tmp_path / "c.wav", Audio(x, SR))
    y = audio.load(path)
    assert y.channels == channels
    np.testing.assert_array_equal(y.samples, x)
    assert audio.load(path, mono=True).samples.shape == (1, x.shape[1])
    st = audio.to_channels(y, 2)
    assert st.samples.shape == (2, x.shape[1]) and np.max(np.abs(st.samples)) <= np.max(np.abs(x)) + 1e-6
    if channels == 1:
        np.testing.assert_array_equal(st.samples[0], st.samples[1])


def test_six_channel_m4a_via_pyav(tmp_path, rng):
    x = noise(rng, 6, 1.0)
    y = audio.load(encode_av(tmp_path / "surround.m4a", x, SR, "aac", "ipod"))
    assert y.channels == 6 and abs(y.duration - 1.0) < 0.05


def test_resample_keeps_channels_and_length(rng):
    a = Audio(noise(rng, 2, 1.0), SR)
    b = audio.resample(a, 22050)
    assert b.samples.shape == (2, 22050) and b.samples.dtype == np.float32
    assert audio.resample(a, SR) is a
    with pytest.raises(BadArgumentError):
        audio.resample(a, 0)


def test_load_does_not_return_views_of_cache_and_mono_sr_combined(tmp_path, rng):
    x = noise(rng, 2, 1.0, sr=48000)
    path = audio.write(tmp_path / "x.flac", Audio(x, 48000))
    y = audio.load(path, sr=SR, mono=True)
    assert y.sr == SR and y.channels == 1 and abs(y.n_samples - SR) <= 1


# ---------------------------------------------------------------------------------------------- bad input


def _wav_bytes(tmp_path: Path, rng, seconds: float = 2.0) -> Path:
    return audio.write(tmp_path / "ok.wav", Audio(noise(rng, 2, seconds), SR), subtype="PCM_16")


def _truncate(path: Path, dest: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    dest.write_bytes(data[:int(len(data) * keep)])
    return dest


def test_missing_file(tmp_path):
    with pytest.raises(BadInputError, match="not found") as e:
        audio.load(tmp_path / "nope.wav")
    assert "nope.wav" in str(e.value) and "\n" not in str(e.value)


def test_directory(tmp_path):
    with pytest.raises(BadInputError, match="folder"):
        audio.load(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "empty.mp3").write_bytes(b"")
    with pytest.raises(BadInputError, match="empty"):
        audio.load(tmp_path / "empty.mp3")


def test_text_file_named_mp3(tmp_path):
    p = tmp_path / "song.mp3"
    p.write_text("this is not audio, just some notes about a song\n" * 20)
    with pytest.raises(BadInputError, match="text file") as e:
        audio.load(p)
    assert "song.mp3" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(BadInputError):
        audio.info(p)


def test_random_bytes_named_wav(tmp_path, rng):
    p = tmp_path / "noise.wav"
    p.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(BadInputError, match="not a readable audio"):
        audio.load(p)


def test_truncated_wav_is_rejected_or_partially_read(tmp_path, rng):
    bad = _truncate(_wav_bytes(tmp_path, rng), tmp_path / "cut.wav")
    with pytest.raises(BadInputError, match="truncated") as e:
        audio.load(bad)
    assert "of 2.00 s" in str(e.value)
    part = audio.load(bad, strict=False)
    assert 0.9 < part.duration < 1.1


def test_truncated_flac(tmp_path, rng):
    good = audio.write(tmp_path / "ok.flac", Audio(noise(rng, 2, 2.0), SR))
    with pytest.raises(BadInputError, match="truncated"):
        audio.load(_truncate(good, tmp_path / "cut.flac"))


def test_truncated_mp3(tmp_path, rng):
    good = audio.write(tmp_path / "ok.mp3", Audio(noise(rng, 2, 3.0), SR))
    bad = _truncate(good, tmp_path / "cut.mp3", 0.6)
    with pytest.raises(BadInputError, match="truncated"):
        audio.load(bad)
    assert audio.load(bad, strict=False).duration < 2.5


def test_truncated_raw_mp3_without_length_header(tmp_path, rng):
    """A CBR mp3 with no Xing/Info header declares no length: the cut-off last frame gives it away."""
    lameenc = pytest.importorskip("lameenc")
    enc = lameenc.Encoder()
    enc.set_bit_rate(128)
    enc.set_in_sample_rate(SR)
    enc.set_channels(2)
    pcm = (noise(rng, 2, 3.0).T * 32767).astype(np.int16)
    data = bytes(enc.encode(pcm.tobytes()) + enc.flush())
    whole = tmp_path / "raw.mp3"
    whole.write_bytes(data)
    assert abs(audio.load(whole).duration - 3.0) < 0.1
    cut = tmp_path / "raw_cut.mp3"
    cut.write_bytes(data[:int(len(data) * 0.6) + 37])
    with pytest.raises(BadInputError, match="truncated"):
        audio.load(cut)
    assert 1.5 < audio.load(cut, strict=False).duration < 2.0


def test_truncated_m4a_without_index(tmp_path, rng):
    good = encode_av(tmp_path / "ok.m4a", noise(rng, 2, 2.0), SR, "aac", "ipod")
    with pytest.raises(BadInputError, match="not a readable|truncated"):
        audio.load(_truncate(good, tmp_path / "cut.m4a", 0.6))


def test_zero_length_audio(tmp_path):
    import soundfile as sf

    p = tmp_path / "zero.wav"
    sf.write(p, np.zeros((0, 2), np.float32), SR)
    with pytest.raises(BadInputError, match="no audio samples"):
        audio.load(p)
    with pytest.raises(BadInputError, match="no audio samples"):
        audio.info(p)


def test_video_without_audio(tmp_path, rng):
    p = encode_av(tmp_path / "silent_film.mp4", np.zeros((2, 100), np.float32), SR, None, "mp4", video=True)
    with pytest.raises(BadInputError, match="video without an audio track"):
        audio.load(p)


# ---------------------------------------------------------------------------------------------- writing


def test_wav_defaults_to_float_and_keeps_overs(tmp_path):
    import soundfile as sf

    x = np.array([[0.0, 1.5, -2.0, 0.25]], np.float32)
    p = audio.write(tmp_path / "hot.wav", Audio(x, SR))
    assert sf.info(p).subtype == "FLOAT"
    np.testing.assert_array_equal(audio.load(p).samples, x)


@pytest.mark.parametrize("clip", ["clamp", "rescale"])
def test_integer_formats_clip(tmp_path, clip):
    x = np.array([[0.0, 1.5, -2.0, 0.5] * 100], np.float32)
    y = audio.load(audio.write(tmp_path / "hot.flac", Audio(x, SR), clip=clip)).samples
    assert np.max(np.abs(y)) <= 1.0
    if clip == "rescale":
        np.testing.assert_allclose(y[0, 3], 0.5 / 2.0, atol=1e-5)  # scaled by the peak
    else:
        np.testing.assert_allclose(y[0, 3], 0.5, atol=1e-5)  # untouched below full scale


def test_mp3_writer_handles_odd_rates_and_many_channels(tmp_path, rng):
    y = audio.load(audio.write(tmp_path / "s.mp3", Audio(noise(rng, 6, 1.0, sr=96000), 96000)))
    assert y.sr == 48000 and y.channels == 2 and abs(y.duration - 1.0) < 0.06


def test_write_rejects_unknown_format_and_empty_audio(tmp_path):
    with pytest.raises(BadArgumentError, match="unknown audio format"):
        audio.write(tmp_path / "x.xyz", Audio(np.zeros((1, 10)), SR))
    with pytest.raises(BadArgumentError, match="no samples"):
        audio.write(tmp_path / "x.wav", Audio(np.zeros((1, 0)), SR))
    assert list(tmp_path.iterdir()) == []


def test_failed_encode_leaves_nothing_and_keeps_old_file(tmp_path, monkeypatch):
    import soundfile as sf

    target = tmp_path / "stem.wav"
    target.write_bytes(b"previous")

    def boom(*args, **kwargs):
        Path(args[0]).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(sf, "write", boom)
    with pytest.raises(KeyboardInterrupt):
        audio.write(target, Audio(np.zeros((1, 10)), SR))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stem.wav"]
    assert target.read_bytes() == b"previous"


def test_unwritable_location_is_an_output_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot"):
        audio.write(blocker / "sub" / "a.wav", Audio(np.zeros((1, 10)), SR))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_folder_is_an_output_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable|cannot write"):
            audio.write(ro / "a.wav", Audio(np.zeros((1, 10)), SR))
    finally:
        ro.chmod(0o700)


# ---------------------------------------------------------------------------------------------- atomic helpers


def test_atomic_output_renames_on_success_and_cleans_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".txt" and tmp != target
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("encoder failed")
    assert target.read_text() == "done"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_replaces_whole_folder_or_nothing(tmp_path):
    final = tmp_path / "song"
    with atomic_dir(final) as d:
        (d / "a.wav").write_text("1")
        assert not final.exists()
    assert sorted(p.name for p in final.iterdir()) == ["a.wav"]
    mask = os.umask(0)
    os.umask(mask)
    assert final.stat().st_mode & 0o777 == 0o777 & ~mask  # a normal folder, not mkdtemp's 0700
    with pytest.raises(ValueError):
        with atomic_dir(final) as d:
            (d / "b.wav").write_text("2")
            raise ValueError("stage failed")
    assert sorted(p.name for p in final.iterdir()) == ["a.wav"]  # the old output is untouched
    with atomic_dir(final) as d:
        (d / "c.wav").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == ["c.wav"]
    assert [p.name for p in tmp_path.iterdir()] == ["song"]
    with pytest.raises(OutputError, match="already exists"):
        with atomic_dir(final, replace=False):
            pass
