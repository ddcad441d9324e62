"""The CLI contract: outputs of `split`, exit codes and one-line messages for every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from stemscribe.cli import main

SR = 44100


def _song(path: Path, seconds: float = 4.0, sr: int = SR, channels: int = 2, rng=None) -> Path:
    """A tiny song: kick on every beat at 120 BPM, a bass note, a sung-like tone."""
    rng = rng or np.random.default_rng(0)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = np.zeros(n)
    for b in np.arange(0, seconds, 0.5):
        i = int(b * sr)
        m = min(int(0.2 * sr), n - i)
        tt = np.arange(m) / sr
        y[i:i + m] += 0.6 * np.sin(2 * np.pi * (50 + 80 * np.exp(-tt / 0.03)) * tt) * np.exp(-tt / 0.08)
    y += 0.2 * np.sin(2 * np.pi * 55.0 * t) * (t > 0.5)
    f = 440 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    ph = 2 * np.pi * np.cumsum(f) / sr
    y += 0.15 * sum(np.sin(k * ph) / k for k in range(1, 8)) * (t > 1.0)
    y += 0.001 * rng.standard_normal(n)
    data = np.stack([y] * channels, axis=1) * 0.7
    sf.write(path, data.astype(np.float32), sr)
    return path


def _run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_is_instant_and_imports_nothing_heavy():
    code = (
        "import sys, stemscribe.cli as c; c.build_parser();"
        "heavy = [m for m in ('torch', 'onnxruntime', 'librosa', 'fastapi', 'demucs', 'scipy') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    res = subprocess.run([sys.executable, "-m", "stemscribe", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "split" in res.stdout


def test_split_writes_the_contract(tmp_path, capsys):
    src = _song(tmp_path / "my song.wav")
    code, out, err = _run(["split", str(src), "--out", str(tmp_path / "out"), "--model", "lite", "-q"], capsys)
    assert code == 0, err
    d = tmp_path / "out" / "my song"
    info = sf.info(str(src))
    for stem in ("drums", "bass", "other", "vocals"):
        si = sf.info(str(d / f"{stem}.wav"))
        assert si.samplerate == SR and si.channels == 2 and si.frames == info.frames
        mf = mido.MidiFile(d / f"{stem}.mid")
        assert any(m.type == "set_tempo" for m in mf.tracks[0])
    combined = mido.MidiFile(d / "my song.mid")
    assert len(combined.tracks) == 5  # conductor + 4 stems
    drum_notes = [m for m in combined.tracks[1] if m.type == "note_on"]
    assert all(m.channel == 9 for m in drum_notes)
    report = json.loads((d / "report.json").read_text())
    for key in ("model", "duration_seconds", "seconds_per_stage", "tempo_bpm", "key", "note_counts"):
        assert key in report
    assert report["model"] == "lite"
    assert abs(report["duration_seconds"] - 4.0) < 0.01
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_split_selected_stems_flac_no_midi_mono_odd_rate(tmp_path, capsys):
    src = _song(tmp_path / "mono.wav", seconds=3.0, sr=22050, channels=1)
    code, _, err = _run(["split", str(src), "--out", str(tmp_path / "o"), "--model", "lite", "--stems", "vocals,bass",
                         "--format", "flac", "--no-midi", "-q"], capsys)
    assert code == 0, err
    d = tmp_path / "o" / "mono"
    assert sorted(p.name for p in d.iterdir()) == ["bass.flac", "report.json", "vocals.flac"]
    si = sf.info(str(d / "vocals.flac"))
    assert si.samplerate == 22050 and si.frames == 3 * 22050 and si.channels == 2


def test_silence_gives_silent_stems_and_empty_midi(tmp_path, capsys):
    src = tmp_path / "silence.wav"
    sf.write(src, np.zeros((SR * 2, 2), dtype=np.float32), SR)
    code, _, err = _run(["split", str(src), "--out", str(tmp_path / "o"), "--model", "lite", "-q"], capsys)
    assert code == 0, err
    d = tmp_path / "o" / "silence"
    for stem in ("drums", "bass", "other", "vocals"):
        y, _ = sf.read(str(d / f"{stem}.wav"))
        assert np.max(np.abs(y)) < 1e-3
        notes = [m for t in mido.MidiFile(d / f"{stem}.mid").tracks for m in t if m.type == "note_on"]
        assert notes == []
    report = json.loads((d / "report.json").read_text())
    assert report["key"] is None  # no evidence of a key: none is made up
    code, out, err = _run(["split", str(src), "--out", str(tmp_path / "o2"), "--model", "lite"], capsys)
    assert code == 0 and "key unknown" in out and "tempo unknown" in out and "BPM" not in out, (out, err)
    assert report["beats"] == [] and report["tempo_bpm"] == 120.0  # the MIDI default, no tempo was heard


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    text = tmp_path / "notes.mp3"
    text.write_text("this is not audio\n" * 50)
    good = _song(tmp_path / "good.wav", seconds=2.0)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2), dtype=np.float32), SR)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should be")
    out = str(tmp_path / "out")
    return {
        "missing": (["split", str(tmp_path / "nope.wav"), "--out", out], "nope.wav"),
        "directory": (["split", str(tmp_path), "--out", out], "folder"),
        "text named mp3": (["split", str(text), "--out", out], "notes.mp3"),
        "truncated": (["split", str(truncated), "--out", out], "truncated.wav"),
        "zero-length": (["split", str(empty), "--out", out], "empty.wav"),
        "unwritable out": (["split", str(good), "--out", str(blocker / "sub")], "blocker"),
        "unknown model": (["split", str(good), "--out", out, "--model", "nosuchmodel"], "nosuchmodel"),
        "unknown stem": (["split", str(good), "--out", out, "--stems", "vocals,kazoo"], "kazoo"),
        "bad grid": (["split", str(good), "--out", out, "--quantize", "1/7"], "1/7"),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "text named mp3", "truncated", "zero-length",
                                  "unwritable out", "unknown model", "unknown stem", "bad grid"])
def test_bad_input_one_line_nonzero_nothing_written(tmp_path, capsys, case):
    argv, mention = _bad_inputs(tmp_path)[case]
    code, out, err = _run(argv + ["-q"], capsys)
    # the typed error's code (stemscribe/errors.py), as every command exits: 4 output, 2 the rest
    assert code == (4 if case == "unwritable out" else 2), (code, err)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines and all(ln.startswith("stemscribe:") for ln in lines), err
    assert "Traceback" not in err
    assert mention.lower() in err.lower(), err
    out_dir = tmp_path / "out"
    if out_dir.exists():
        assert list(out_dir.iterdir()) == []


def test_one_bad_input_does_not_stop_the_others(tmp_path, capsys):
    good = _song(tmp_path / "good.wav", seconds=2.0)
    code, out, err = _run(["split", str(tmp_path / "missing.wav"), str(good), "--out", str(tmp_path / "o"),
                           "--model", "lite", "--no-midi", "-q"], capsys)
    assert code == 2  # the one failure's own code
    assert "missing.wav" in err
    assert (tmp_path / "o" / "good" / "vocals.wav").is_file()


def test_inputs_with_the_same_name_do_not_overwrite_each_other(tmp_path, capsys):
    for song in ("a", "b"):
        (tmp_path / song).mkdir()
        _song(tmp_path / song / "mixture.wav", seconds=1.0)
    other = tmp_path / "a" / "mixture.flac"
    sf.write(other, sf.read(tmp_path / "a" / "mixture.wav")[0], SR)
    inputs = [tmp_path / "a" / "mixture.wav", tmp_path / "b" / "mixture.wav", other]
    code, out, _ = _run(["split", *map(str, inputs), "--out", str(tmp_path / "o"), "--model", "lite", "-q"], capsys)
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a-mixture", "a-mixture-2", "b-mixture"]
    for name in ("a-mixture", "a-mixture-2", "b-mixture"):
        assert (tmp_path / "o" / name / "vocals.wav").is_file() and (tmp_path / "o" / name / f"{name}.mid").is_file()


def test_output_names_are_plain_unless_they_collide():
    from stemscribe.pipeline import output_names

    assert output_names(["x/song.stem.mp4", "y/other.mp3"]) == ["song", "other"]
    assert output_names(["d/s.wav", "d/s.wav"]) == ["d-s", "d-s-2"]


def test_transcribe_command_writes_midi_with_tempo(tmp_path, capsys):
    sr = 22050
    t = np.arange(int(2.0 * sr)) / sr
    y = 0.3 * sum(np.sin(2 * np.pi * k * 110.0 * t) / k for k in range(1, 5))  # A2 bass
    src = tmp_path / "bass.wav"
    sf.write(src, y.astype(np.float32), sr)
    code, out, err = _run(["transcribe", str(src), "--stem", "bass", "--out", str(tmp_path / "b.mid")], capsys)
    assert code == 0, err
    from stemscribe.midi import read_midi

    tracks, grid = read_midi(tmp_path / "b.mid")
    pitches = [n.pitch for tr in tracks for n in tr.notes]
    assert pitches and all(p == 45 for p in pitches)
    assert grid.tempo > 0


def test_transcribe_command_says_when_no_tempo_was_heard(tmp_path, capsys):
    src = tmp_path / "silence.wav"
    sf.write(src, np.zeros(22050, dtype=np.float32), 22050)
    code, out, err = _run(["transcribe", str(src), "--stem", "bass", "--out", str(tmp_path / "s.mid")], capsys)
    assert code == 0 and "0 notes, tempo unknown" in out and "BPM" not in out, (out, err)


def test_real_cli_exit_code(tmp_path):
    res = subprocess.run([sys.executable, "-m", "stemscribe", "split", str(tmp_path / "none.flac"), "--out",
                          str(tmp_path / "o")], capture_output=True, text=True)
    assert res.returncode != 0
    assert res.stderr.strip().count("\n") <= 1 and "none.flac" in res.stderr


@pytest.mark.parametrize("stem", ["drums", "bass", "vocals", "other"])
def test_transcribe_auto_recognises_each_devset_stem(devset, stem):
    from stemscribe.audio import load
    from stemscribe.pipeline import _guess_stem

    assert _guess_stem(load(devset / "dev00" / f"{stem}.flac")) == stem


def test_nan_samples_are_repaired_and_the_user_is_told(tmp_path, capsys):
    rng = np.random.default_rng(5)
    x = (0.1 * rng.standard_normal((SR * 2, 2))).astype(np.float32)
    x[1000:1250, 0] = np.nan
    x[5000, 1] = np.inf
    src = tmp_path / "broken.wav"
    sf.write(src, x, SR, subtype="FLOAT")
    code, out, err = _run(["split", str(src), "--out", str(tmp_path / "o"), "--model", "lite", "-q"], capsys)
    assert code == 0, err
    assert "note: " in err and "251 of 176400 samples were NaN or infinite" in err, err
    report = json.loads((tmp_path / "o" / "broken" / "report.json").read_text())
    assert report["input_notes"] == ["251 of 176400 samples were NaN or infinite: NaN set to 0, infinity to full scale"]
    for stem in ("drums", "bass", "other", "vocals"):
        y, _ = sf.read(tmp_path / "o" / "broken" / f"{stem}.wav")
        assert np.all(np.isfinite(y))
    # a clean input says nothing
    sf.write(tmp_path / "clean.wav", np.nan_to_num(x, posinf=0.0), SR, subtype="FLOAT")
    code, out, err = _run(["split", str(tmp_path / "clean.wav"), "--out", str(tmp_path / "o"), "--model", "lite", "-q"], capsys)
    assert code == 0 and "note:" not in err, err
    assert json.loads((tmp_path / "o" / "clean" / "report.json").read_text())["input_notes"] == []
