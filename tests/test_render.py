"""MIDI rendering: energy at the right times and pitches, tempo map, drums, SFZ files, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemscribe.cli import main
from stemscribe.errors import BadInputError
from stemscribe.midi import write_midi
from stemscribe.render import DEFAULT_SOUNDFONT, load_soundfont, render_midi
from stemscribe.sfz import Instrument, Region, format_sfz, read_sfz
from stemscribe.types import Note, NoteTrack

SR = 22050


def _rms(y: np.ndarray, a: float, b: float, sr: int = SR) -> float:
    seg = y[int(a * sr) : int(b * sr)]
    return float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0


def _f0(y: np.ndarray, a: float, b: float, sr: int = SR) -> float:
    """Frequency of the strongest spectral peak of ``y[a:b]`` (Hz), refined by a parabola."""
    seg = y[int(a * sr) : int(b * sr)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), 8 * len(seg)))
    freqs = np.fft.rfftfreq(8 * len(seg), 1 / sr)
    spec[freqs < 60] = 0
    k = int(np.argmax(spec))
    return float(freqs[k])


def _onset(y: np.ndarray, sr: int = SR) -> float:
    """First time the 2 ms envelope reaches 10% of its maximum."""
    hop = int(0.002 * sr)
    env = np.array([np.max(np.abs(y[i : i + hop])) for i in range(0, len(y) - hop, hop)])
    return float(np.argmax(env >= 0.1 * env.max()) * hop / sr)


def test_packaged_soundfont_has_general_midi() -> None:
    assert DEFAULT_SOUNDFONT.is_file() and DEFAULT_SOUNDFONT.stat().st_size < 10_000_000
    font = load_soundfont()
    assert all((0, p) in font.presets for p in (0, 24, 33, 40, 56, 73))
    assert font.instrument(0, drum=True).regions_for(38, 100)  # snare in the drum kit


def test_render_energy_at_right_times_and_pitches() -> None:
    # flute (GM 73): its strongest partial is the fundamental
    track = NoteTrack("flute", [Note(69, 0.5, 1.0, 100), Note(60, 1.5, 2.0, 100)], program=73)
    audio = render_midi([track], sr=SR)
    assert audio.sr == SR and audio.channels == 2
    y = audio.mono()
    assert _rms(y, 0.0, 0.45) < 1e-4
    assert _rms(y, 0.6, 0.95) > 100 * max(_rms(y, 0.0, 0.45), 1e-6)
    assert _rms(y, 1.3, 1.45) < 0.1 * _rms(y, 0.6, 0.95)  # released before the next note
    assert _rms(y, 1.6, 1.95) > 0.1 * _rms(y, 0.6, 0.95)
    assert _f0(y, 0.6, 0.95) == pytest.approx(440.0, rel=0.015)
    assert _f0(y, 1.6, 1.95) == pytest.approx(261.63, rel=0.015)
    assert abs(_onset(y) - 0.5) < 0.02


def test_velocity_and_drums() -> None:
    soft = render_midi([NoteTrack("p", [Note(60, 0.1, 0.6, 30)], 0)], sr=SR).mono()
    loud = render_midi([NoteTrack("p", [Note(60, 0.1, 0.6, 120)], 0)], sr=SR).mono()
    assert _rms(loud, 0.1, 0.6) > 4 * _rms(soft, 0.1, 0.6)
    kick = render_midi([NoteTrack("d", [Note(36, 0.7, 0.8, 110)], 0, True)], sr=SR).mono()
    assert abs(_onset(kick) - 0.7) < 0.02


def test_tempo_map_is_followed(tmp_path: Path) -> None:
    import mido

    mf = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    tr.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(120), time=0))
    tr.append(mido.Message("program_change", program=73, time=0))
    tr.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60), time=480))  # beat 1 at 0.5 s
    tr.append(mido.Message("note_on", note=69, velocity=100, time=480))  # beat 2: 0.5 + 1.0 s
    tr.append(mido.Message("note_off", note=69, velocity=0, time=240))
    mf.tracks.append(tr)
    mf.save(tmp_path / "tempo.mid")
    out = tmp_path / "tempo.wav"
    assert main(["render", str(tmp_path / "tempo.mid"), "--out", str(out), "--sr", str(SR)]) == 0
    y, sr = sf.read(out)
    assert sr == SR
    assert abs(_onset(y.mean(axis=1)) - 1.5) < 0.02


def test_sfz_round_trip_and_render(tmp_path: Path, rng: np.random.Generator) -> None:
    sr = 16000
    t = np.arange(sr) / sr
    tone = (0.5 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    (tmp_path / "s").mkdir()
    sf.write(tmp_path / "s" / "a3.wav", tone, sr, subtype="PCM_24")
    region = Region(tone, sr, pitch_keycenter=57, lokey=50, hikey=64, lovel=1, hivel=127, release=0.05,
                    loop_mode="loop_sustain", loop_start=800, loop_end=16000, sample="s/a3.wav")
    (tmp_path / "i.sfz").write_text(format_sfz(Instrument("i", [region])))
    inst = read_sfz(tmp_path)
    r = inst.regions[0]
    assert (r.lokey, r.hikey, r.pitch_keycenter, r.loop_start, r.loop_end, r.loop_mode) == (50, 64, 57, 800, 16000, "loop_sustain")
    # a 3 s note from a 1 s looped sample, a fifth up
    y = render_midi([NoteTrack("x", [Note(64, 0.0, 3.0, 127)])], sr=SR, instrument=tmp_path).mono()
    assert _rms(y, 2.5, 2.9) > 0.5 * _rms(y, 0.2, 0.6)
    assert _f0(y, 2.0, 2.9) == pytest.approx(220.0 * 2 ** (7 / 12), rel=0.01)


def test_sfz_note_names_and_header_inheritance(tmp_path: Path) -> None:
    sf.write(tmp_path / "x.wav", np.zeros(100, np.float32) + 0.1, 8000)
    (tmp_path / "n.sfz").write_text(
        "// comment\n<group> lovel=64 hivel=127 volume=-6\n<region> sample=x.wav lokey=c4 hikey=f#4 pitch_keycenter=d4\n"
        "<region> sample=x.wav key=a3 lovel=1\n"
    )
    regs = read_sfz(tmp_path / "n.sfz").regions
    assert (regs[0].lokey, regs[0].hikey, regs[0].pitch_keycenter, regs[0].lovel, regs[0].volume) == (60, 66, 62, 64, -6.0)
    assert (regs[1].lokey, regs[1].hikey, regs[1].lovel, regs[1].hivel) == (57, 57, 1, 127)


def _sfz_folder(tmp_path: Path, text: str, wav: bool = True) -> Path:
    d = tmp_path / "inst"
    d.mkdir()
    if wav:
        sf.write(d / "a.wav", np.full(4000, 0.2, np.float32), 8000)
    (d / "inst.sfz").write_text(text)
    return d


@pytest.mark.parametrize("case,message", [
    ("empty_dir", "no .sfz file"),
    ("missing_sample", "sample file missing"),
    ("no_regions", "no playable <region>"),
    ("bad_wav", "cannot read sample"),
])
def test_broken_sfz_folder(tmp_path: Path, capsys: pytest.CaptureFixture, case: str, message: str) -> None:
    if case == "empty_dir":
        d = tmp_path / "inst"
        d.mkdir()
    elif case == "missing_sample":
        d = _sfz_folder(tmp_path, "<region> sample=gone.wav key=60\n")
    elif case == "no_regions":
        d = _sfz_folder(tmp_path, "<control> default_path=x/\n")
    else:
        d = _sfz_folder(tmp_path, "<region> sample=bad.wav key=60\n")
        (d / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    midi = write_midi(tmp_path / "m.mid", [NoteTrack("x", [Note(60, 0, 1)])])
    out = tmp_path / "out.wav"
    assert main(["render", str(midi), "--instrument", str(d), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_bad_midi_inputs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = write_midi(tmp_path / "empty.mid", [NoteTrack("x", [])])
    out = tmp_path / "o.wav"
    assert main(["render", str(empty), "--out", str(out)]) == 2
    assert "no notes" in capsys.readouterr().err
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"hello")
    assert main(["render", str(junk), "--out", str(out)]) == 2
    assert "not a readable MIDI" in capsys.readouterr().err
    assert not out.exists()
    bad_font = tmp_path / "x.sf2"
    bad_font.write_bytes(b"RIFF\x04\x00\x00\x00sfbk")
    with pytest.raises(BadInputError, match="not a complete SF2"):
        render_midi([NoteTrack("x", [Note(60, 0, 1)])], soundfont=bad_font)


def test_notes_far_outside_instrument_range(tmp_path: Path) -> None:
    sr = 16000
    tone = np.sin(2 * np.pi * 261.63 * np.arange(sr) / sr).astype(np.float32)
    inst = Instrument("i", [Region(tone, sr, pitch_keycenter=60, lokey=58, hikey=62)])
    ok = render_midi([NoteTrack("x", [Note(66, 0, 0.3)])], sr=SR, instrument=inst)  # within reach 7
    assert ok.n_samples > 0
    with pytest.raises(BadInputError, match=r"too far from the instrument's keys 58\.\.62"):
        render_midi([NoteTrack("x", [Note(60, 0, 0.3), Note(84, 0.5, 1.0)])], sr=SR, instrument=inst)


def test_low_pass_filter_and_its_envelope(tmp_path: Path, rng: np.random.Generator) -> None:
    sr = 22050
    noise = rng.uniform(-0.5, 0.5, sr).astype(np.float32)
    sf.write(tmp_path / "n.wav", noise, sr)
    (tmp_path / "f.sfz").write_text(
        "<region> sample=n.wav key=60 amp_veltrack=0\n"
        "<region> sample=n.wav key=62 amp_veltrack=0 pitch_keycenter=62 fil_type=lpf_2p cutoff=500 resonance=0\n"
        "<region> sample=n.wav key=64 amp_veltrack=0 pitch_keycenter=64 cutoff=300 fileg_depth=4800 "
        "fileg_attack=0.5 fileg_sustain=100\n"
    )
    inst = read_sfz(tmp_path / "f.sfz")
    assert inst.regions[1].cutoff == 500.0 and inst.regions[2].fileg_depth == 4800

    def high_share(y: np.ndarray, a: float, b: float) -> float:
        spec = np.abs(np.fft.rfft(y[int(a * sr) : int(b * sr)])) ** 2
        freqs = np.fft.rfftfreq(int(b * sr) - int(a * sr), 1 / sr)
        return float(spec[freqs > 2000].sum() / spec.sum())

    def play(pitch: int) -> np.ndarray:
        return render_midi([NoteTrack("x", [Note(pitch, 0, 0.9, 100)])], sr=sr, instrument=inst).mono()

    assert high_share(play(60), 0.1, 0.8) > 0.5  # white noise: most power above 2 kHz
    assert high_share(play(62), 0.1, 0.8) < 0.01
    swept = play(64)  # cutoff opens from 300 Hz to 4.8 kHz over 0.5 s
    assert high_share(swept, 0.0, 0.1) < 0.02 < 0.2 < high_share(swept, 0.6, 0.85)


def test_channel_volume_and_pan(tmp_path: Path) -> None:
    import mido

    def song(volume: int, pan: int) -> Path:
        mf = mido.MidiFile(ticks_per_beat=480)
        tr = mido.MidiTrack()
        tr.append(mido.Message("program_change", program=73, time=0))
        tr.append(mido.Message("control_change", control=7, value=volume, time=0))
        tr.append(mido.Message("control_change", control=10, value=pan, time=0))
        tr.append(mido.Message("note_on", note=69, velocity=100, time=0))
        tr.append(mido.Message("note_off", note=69, velocity=0, time=480))
        mf.tracks.append(tr)
        path = tmp_path / f"v{volume}_p{pan}.mid"
        mf.save(path)
        return path

    loud = render_midi(song(100, 64), sr=SR).samples
    soft = render_midi(song(50, 0), sr=SR).samples
    rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
    assert rms(soft) == pytest.approx(rms(loud) * 0.25, rel=0.3)  # (50/100)^2
    assert rms(soft[0]) > 20 * rms(soft[1])  # hard left
    assert rms(loud[0]) == pytest.approx(rms(loud[1]), rel=0.3)
