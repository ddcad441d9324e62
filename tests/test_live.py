"""Live mode: block-by-block output equals offline output; files, report, latency, vocal timeline;
stdin parsing; the CLI."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf

from stemscribe.errors import BadInputError
from stemscribe.types import Audio

SR = 44100


@pytest.fixture(scope="module")
def sep():
    from stemscribe.separate.lite import load_lite

    return load_lite()


def _signal(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tone = 0.3 * np.sin(2 * np.pi * 330 * t * (1 + 0.01 * np.sin(2 * np.pi * 5 * t)))
    clicks = np.zeros_like(t)
    clicks[:: SR // 4] = 0.8
    noise = 0.05 * rng.standard_normal((2, len(t)))
    return (np.stack([tone + clicks, 0.7 * tone + clicks]) + noise).astype(np.float32)


def test_stream_blocks_equal_offline_output(sep):
    # Tolerance 1e-5 absolute (float32 rounding; signals peak near 1): the streaming path is the
    # offline computation cut at block boundaries, not an approximation of it. Offline, the model's
    # level window starts filled with the whole input's level; told that level, a stream is exact.
    x = _signal(3.0, 0)
    offline = sep.separate(Audio(x, SR))
    rng = np.random.default_rng(1)
    st = sep.stream(2, level=sep.input_level(x))
    parts, pos = [], 0
    while pos < x.shape[1]:
        n = int(rng.integers(1, 3000))
        y = st.push(x[:, pos : pos + n])
        assert y.shape[:2] == (4, 2)
        parts.append(y)
        pos += n
        # never more output than input, never further behind than latency + block
        done = sum(p.shape[-1] for p in parts)
        assert pos - sep.latency - n <= done <= pos
    parts.append(st.flush())
    live = np.concatenate(parts, axis=-1)
    assert live.shape == (4, 2, x.shape[1])
    for i, stem in enumerate(sep.stems):
        assert np.max(np.abs(live[i] - offline[stem].samples)) < 1e-5


def test_live_stream_measures_the_level_as_it_listens_and_converges_to_offline():
    # A live stream cannot know the input's level in advance: its level window starts empty and
    # fills as it listens, so its first moments differ from the offline output (whose window starts
    # with the whole input's level). Once the window has filled, the features are the offline ones
    # and only the recurrent state still remembers the start: measured -16 dB error in the first
    # 0.5 s (a quiet start), then -30..-44 dB. A 1 s window keeps this quick.
    import torch

    from stemscribe.separate.lite import load_lite
    from stemscribe.separate.lite_net import LiteNet, LiteStream

    shipped = load_lite().net
    net = LiteNet({**shipped.config, "level": {**shipped.level, "window_s": 1.0}}).eval()
    net.load_state_dict(shipped.state_dict())
    x = torch.from_numpy(_signal(4.0, 4))
    x[:, : SR // 2] *= 0.1  # a quiet start: the running level differs most there
    with torch.no_grad():
        offline = net(x[None])[0]
        stream, parts, pos = LiteStream(net), [], 0
        while pos < x.shape[-1]:
            parts.append(stream.push(x[:, pos : pos + 1000]))
            pos += 1000
        parts.append(stream.flush())
    live = torch.cat(parts, dim=-1)

    def error_db(a: int, b: int) -> float:
        d = live[..., a:b] - offline[..., a:b]
        return float(10 * torch.log10(torch.sum(d**2) / torch.sum(offline[..., a:b] ** 2)))

    assert -30 < error_db(0, SR // 2) < -10  # the level estimate is still settling
    settled = SR + SR // 2  # one window, and some time for the recurrent state to forget
    assert max(error_db(a, a + SR // 2) for a in range(settled, x.shape[-1], SR // 2)) < -30


def test_run_live_writes_karaoke_and_report(sep, tmp_path):
    from stemscribe.live import run_live

    x = _signal(2.0, 2)
    block = 882  # 20 ms
    blocks = (x[:, i : i + block] for i in range(0, x.shape[1], block))
    report = run_live(blocks, out_dir=tmp_path, channels=2, block=block, separator=sep, input_name="synthetic")
    vocals, sr = sf.read(tmp_path / "vocals.wav", dtype="float32", always_2d=True)
    inst, _ = sf.read(tmp_path / "instrumental.wav", dtype="float32", always_2d=True)
    assert sr == SR and vocals.shape == inst.shape == (x.shape[1], 2)
    # karaoke + vocals give back the input (16-bit files: 2 LSB of rounding)
    assert np.max(np.abs(vocals + inst - x.T)) < 2 / 32768 + 1e-6
    assert json.loads((tmp_path / "report.json").read_text()) == report
    lat = report["latency_ms"]
    assert lat["model"] <= 100
    assert lat["model"] <= lat["measured_max"] <= lat["model"] + 1000 * block / SR + 0.1
    assert report["duration_s"] == pytest.approx(2.0, abs=1e-3)
    assert report["cpu_real_time_factor"] > 0
    assert len(report["vocal_activity_frames"]["ratio"]) == 20
    assert not list(tmp_path.glob("*.tmp*"))


def test_vocal_activity_timeline():
    from stemscribe.live import VocalActivity

    rng = np.random.default_rng(4)
    act = VocalActivity()
    mix = 0.1 * rng.standard_normal((2, 5 * SR)).astype(np.float32)
    vocals = np.zeros_like(mix)
    vocals[:, SR : 3 * SR] = 0.8 * mix[:, SR : 3 * SR]  # sung from 1 s to 3 s
    vocals[:, int(1.9 * SR) : int(2.0 * SR)] = 0  # a 0.1 s breath: bridged
    vocals[:, int(4.0 * SR) : int(4.1 * SR)] = mix[:, int(4.0 * SR) : int(4.1 * SR)]  # a 0.1 s blip: dropped
    for i in range(0, mix.shape[1], 1000):  # arbitrary block sizes
        act.add(vocals[:, i : i + 1000], mix[:, i : i + 1000])
    act.finish()
    assert act.segments() == [{"start": 1.0, "end": 3.0}]


def test_stdin_wav_and_raw_parsing():
    from stemscribe.live import read_wav_header, stdin_blocks

    x = (np.arange(2 * 1000).reshape(1000, 2) % 200 - 100).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, x, SR, format="WAV", subtype="PCM_16")
    stream = io.BytesIO(buf.getvalue())
    rate, channels, fmt = read_wav_header(stream)
    assert (rate, channels, fmt) == (SR, 2, "s16le")
    blocks = list(stdin_blocks(stream, 300, channels=channels, sample_format=fmt))
    assert [b.shape for b in blocks] == [(2, 300)] * 3 + [(2, 100)]
    got = np.concatenate(blocks, axis=1)
    assert np.allclose(got, x.T / 32768.0)
    # a raw stream cut mid-frame keeps whole frames only
    raw = io.BytesIO(np.arange(7, dtype="<f4").tobytes())
    out = np.concatenate(list(stdin_blocks(raw, 2, channels=2, sample_format="f32le")), axis=1)
    assert out.tolist() == [[0, 2, 4], [1, 3, 5]]
    with pytest.raises(BadInputError):
        read_wav_header(io.BytesIO(b"not a wav file at all"))


def test_cli_live_file_and_errors(tmp_path, capsys):
    from stemscribe.cli import main

    x = _signal(1.0, 5)
    src = tmp_path / "in.wav"
    sf.write(src, x.T, SR)
    assert main(["live", str(src), "--out", str(tmp_path / "o"), "--all-stems", "--block-ms", "10"]) == 0
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert names == ["bass.wav", "drums.wav", "instrumental.wav", "other.wav", "report.json", "vocals.wav"]
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["latency_ms"]["measured_max"] <= 100 and report["input_notes"] == []
    assert "latency" in capsys.readouterr().out
    broken = x.T.copy()
    broken[100:110, 0] = np.nan
    sf.write(tmp_path / "broken.wav", broken, SR, subtype="FLOAT")
    assert main(["live", str(tmp_path / "broken.wav"), "--out", str(tmp_path / "n"), "-q"]) == 0
    assert "note: " in capsys.readouterr().err  # the user is told NaN samples were set to 0
    assert json.loads((tmp_path / "n" / "report.json").read_text())["input_notes"][0].startswith("10 of ")
    assert main(["live", str(src), "--out", str(tmp_path / "p"), "--block-ms", "0"]) != 0
    assert "block-ms" in capsys.readouterr().err
    assert main(["live", str(tmp_path / "missing.wav"), "--out", str(tmp_path / "q")]) != 0


def test_interrupted_stream_keeps_what_was_separated(sep, tmp_path):
    from stemscribe.live import run_live

    x = _signal(1.0, 6)

    def blocks():
        for i in range(0, SR // 2, 1000):
            yield x[:, i : i + 1000]
        raise KeyboardInterrupt  # Ctrl-C half-way

    report = run_live(blocks(), out_dir=tmp_path, channels=2, block=1000, separator=sep)
    assert report["interrupted"] is True
    vocals, _ = sf.read(tmp_path / "vocals.wav", dtype="float32", always_2d=True)
    inst, _ = sf.read(tmp_path / "instrumental.wav", dtype="float32", always_2d=True)
    n = 1000 * len(range(0, SR // 2, 1000))
    assert vocals.shape == (n, 2)
    assert np.max(np.abs(vocals + inst - x[:, :n].T)) < 2 / 32768 + 1e-6


def test_resampled_stream_matches_a_whole_file_resample_and_reports_its_delay():
    import soxr

    from stemscribe.live import resampled_blocks

    rate = 48000
    rng = np.random.default_rng(7)
    t = np.arange(rate) / rate
    x = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
    x += 0.01 * rng.standard_normal(x.shape).astype(np.float32)
    blocks, delay_ms = resampled_blocks((x[:, i : i + 1440] for i in range(0, rate, 1440)), rate, 2)
    y = np.concatenate(list(blocks), axis=1)
    assert y.shape == (2, SR)  # one second in, one second out: the stream is delay-compensated
    whole = soxr.resample(x.T, rate, SR, quality="LQ").T
    inner = slice(2000, SR - 2000)
    assert np.max(np.abs(y[:, inner] - whole[:, inner])) < 1e-3
    assert 5.0 < delay_ms < 15.0  # the resampler's hold, counted into the latency
    same, zero = resampled_blocks([x[:, :10]], SR, 2)
    assert zero == 0.0 and np.array_equal(next(same), x[:, :10])


def test_stdin_at_48k_is_resampled_and_latency_counts_the_resampler(tmp_path, monkeypatch, capsys):
    import sys

    from stemscribe.cli import main

    rate = 48000
    x = _signal(1.0, 8)
    import soxr

    x48 = soxr.resample(x.T, SR, rate).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x48, rate, format="WAV", subtype="FLOAT")
    monkeypatch.setattr(sys, "stdin", type("S", (), {"buffer": io.BytesIO(buf.getvalue())})())
    # no --block-ms: resampled input defaults to 20 ms blocks, to stay under 100 ms in all
    assert main(["live", "-", "--out", str(tmp_path / "o"), "-q"]) == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["input"] == "<stdin, 48000 Hz>"
    assert report["block_ms"] == 20.0
    assert abs(report["duration_s"] - 1.0) < 0.01
    assert 5.0 < report["latency_ms"]["input"] < 15.0
    assert report["latency_ms"]["measured_max"] <= 100
    vocals, sr = sf.read(tmp_path / "o" / "vocals.wav", dtype="float32", always_2d=True)
    inst, _ = sf.read(tmp_path / "o" / "instrumental.wav", dtype="float32", always_2d=True)
    assert sr == SR
    # the two outputs still add up to the input, resampled (16-bit files: 2 LSB of rounding)
    back = soxr.resample(x48, rate, SR, quality="LQ")[: len(vocals)]
    assert np.max(np.abs((vocals + inst)[2000:-2000] - back[2000:-2000])) < 1e-3


def test_sound_card_capture_through_miniaudio_null_backend(sep, tmp_path):
    # miniaudio's null back end is a real capture device that delivers silence at the pace of
    # real time: the whole device path (open, callback thread, blocks, stop) runs without a card.
    from stemscribe.live import device_blocks, list_devices, run_live

    assert [d["name"] for d in list_devices(backend="null")] == ["NULL Capture Device"]
    blocks, info = device_blocks(None, 1323, channels=2, backend="null", seconds=0.5)
    report = run_live(blocks, out_dir=tmp_path, channels=2, block=1323, separator=sep, source=info)
    assert report["duration_s"] == 0.5
    assert report["device"] == {"name": "default input", "backend": "Null", "dropped_s": 0.0}
    vocals, _ = sf.read(tmp_path / "vocals.wav", dtype="float32", always_2d=True)
    assert vocals.shape == (SR // 2, 2) and not vocals.any()


def test_capture_drops_the_oldest_input_when_separation_falls_behind():
    import time

    from stemscribe.live import device_blocks

    blocks, info = device_blocks(None, 441, channels=1, backend="null", seconds=2.0, max_queue_s=0.2)
    first = next(blocks)
    time.sleep(0.6)  # a consumer stuck for 0.6 s: the queue keeps at most about 0.2 s of it
    rest = list(blocks)
    assert first.shape == (1, 441)
    assert info.dropped_s > 0.2
    assert sum(b.shape[1] for b in rest) + 441 == 2 * SR  # still exactly the asked-for length


def test_cli_device_options_and_errors(tmp_path, capsys, monkeypatch):
    import sys

    from stemscribe.cli import main

    assert main(["live", "--list-devices", "--audio-backend", "null"]) == 0
    assert "0: NULL Capture Device" in capsys.readouterr().out
    assert main(["live", "--device", "--audio-backend", "null", "--seconds", "0.3", "--out", str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o" / "report.json").read_text())["device"]["backend"] == "Null"
    capsys.readouterr()
    for argv, words in [
        (["live", "--out", str(tmp_path / "p")], "give INPUT"),
        (["live", "x.wav", "--device", "--out", str(tmp_path / "p")], "not both"),
        (["live", "--device", "nothing-like-this", "--audio-backend", "null", "--out", str(tmp_path / "p")],
         "no input device matches"),
        (["live", "--device", "--audio-backend", "bogus", "--out", str(tmp_path / "p")], "unknown audio back end"),
        (["live", "x.wav", "--seconds", "2", "--out", str(tmp_path / "p")], "--seconds"),
    ]:
        assert main(argv) == 2, argv
        assert words in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "miniaudio", None)  # not installed
    assert main(["live", "--device", "--out", str(tmp_path / "p")]) == 2
    assert "pip install miniaudio" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
