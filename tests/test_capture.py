"""Instrument capture: samples at the played pitches, loops, layers, SFZ output, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemscribe.capture import capture_instrument, clean_notes, find_loop, write_instrument
from stemscribe.cli import main
from stemscribe.errors import BadInputError, OutputError
from stemscribe.render import render_midi
from stemscribe.sfz import read_sfz
from stemscribe.types import Audio, Note, NoteTrack

SR = 22050


def _tone(pitch: int, dur: float, sr: int, *, decay: float, amp: float, rng: np.random.Generator) -> np.ndarray:
    """A harmonic tone: 6 partials with random phases, 5 ms attack, exponential decay, 50 ms release."""
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    t = np.arange(int((dur + 0.05) * sr)) / sr
    y = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 7) if k * f0 < sr / 2)
    env = np.minimum(t / 0.005, 1.0) * np.exp(-decay * t)
    env[t > dur] *= np.exp(-(t[t > dur] - dur) / 0.008)
    return (amp * y * env).astype(np.float32)


def _recording(rng: np.random.Generator, pitches, *, decay=3.0, amps=None, dur=0.6, gap=0.25, sr=SR):
    """Notes one after another with silence between; returns (Audio, notes)."""
    amps = amps or [0.3] * len(pitches)
    total = len(pitches) * (dur + gap) + 0.5
    y = np.zeros(int(total * sr), np.float32) + rng.normal(0, 1e-4, int(total * sr)).astype(np.float32)
    notes = []
    t = 0.2
    for p, a in zip(pitches, amps):
        tone = _tone(p, dur, sr, decay=decay, amp=a, rng=rng)
        i = int(t * sr)
        y[i : i + len(tone)] += tone
        notes.append(Note(p, t, t + dur, int(min(127, 60 + 150 * a))))
        t += dur + gap
    return Audio(y[None, :], sr), notes


def _f0(x: np.ndarray, sr: int) -> float:
    seg = x[int(0.05 * sr) : int(0.4 * sr)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), 16 * len(seg)))
    freqs = np.fft.rfftfreq(16 * len(seg), 1 / sr)
    spec[freqs < 40] = 0
    return float(freqs[np.argmax(spec)])


def test_capture_known_notes_writes_sfz_with_samples_at_those_pitches(tmp_path: Path, rng: np.random.Generator) -> None:
    pitches = [48, 52, 55, 60, 64, 67, 72]
    audio, notes = _recording(rng, pitches)
    cap = capture_instrument(audio, notes=notes, max_shift=3)
    sfz = write_instrument(cap, tmp_path / "inst")
    assert sfz.is_file() and sfz.suffix == ".sfz"
    inst = read_sfz(tmp_path / "inst")
    assert sorted({r.pitch_keycenter for r in inst.regions}) == pitches
    assert inst.key_range() == (45, 75)
    for r in inst.regions:
        f_expected = 440.0 * 2 ** ((r.pitch_keycenter - 69) / 12)
        assert _f0(r.data, r.sr) == pytest.approx(f_expected, rel=0.01)
        assert r.lokey <= r.pitch_keycenter <= r.hikey and r.hikey - r.lokey <= 6
        info = sf.info(str(tmp_path / "inst" / r.sample))
        assert info.subtype == "PCM_24" and info.samplerate == SR
        # the sample starts at the onset: the first 5 ms already carry the attack
        assert np.max(np.abs(r.data[: int(0.006 * SR)])) > 0.1 * np.max(np.abs(r.data))
    # capturing again replaces the instrument; a folder holding anything else is refused
    write_instrument(cap, tmp_path / "inst")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not an instrument folder"):
        write_instrument(cap, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    # keys between 55 and 60 are split between the two nearest takes
    assert {(r.lokey, r.hikey) for r in inst.regions if r.pitch_keycenter in (55, 60)} == {(54, 57), (58, 62)}


def test_capture_by_transcription(tmp_path: Path, rng: np.random.Generator) -> None:
    pitches = [50, 57, 62, 69]
    audio, _ = _recording(rng, pitches, decay=1.0, dur=0.8)
    assert main(["capture", _write(tmp_path, audio), "--out", str(tmp_path / "inst")]) == 0
    inst = read_sfz(tmp_path / "inst")
    got = sorted({r.pitch_keycenter for r in inst.regions})
    assert set(got) <= set(pitches) and len(got) >= 3


def _write(tmp_path: Path, audio: Audio, name: str = "rec.wav") -> str:
    sf.write(tmp_path / name, audio.samples.T, audio.sr)
    return str(tmp_path / name)


def test_chords_and_overlaps_are_skipped() -> None:
    notes = [Note(60, 0.0, 1.0), Note(64, 0.01, 1.0),  # a chord
             Note(67, 2.0, 3.0), Note(71, 2.5, 3.5),  # 67 ends clean at 71's onset; 71 starts over 67
             Note(48, 5.0, 5.5)]
    got = {(n.pitch, round(end, 3)) for n, end in clean_notes(notes)}
    assert got == {(67, 2.495), (48, 5.5)}


def test_pitches_heard_only_in_chords_are_taken_out_of_them(rng: np.random.Generator) -> None:
    # a C major triad twice, and a lone G3 (55) which alone is clean
    y = np.zeros(4 * SR, np.float32)
    notes = []
    for t in (0.2, 1.4):
        for p in (60, 64, 67):
            tone = _tone(p, 0.9, SR, decay=1.0, amp=0.2, rng=rng)
            y[int(t * SR) : int(t * SR) + len(tone)] += tone
            notes.append(Note(p, t, t + 0.9, 90))
    lone = _tone(55, 0.8, SR, decay=1.0, amp=0.2, rng=rng)
    y[int(2.8 * SR) : int(2.8 * SR) + len(lone)] += lone
    notes.append(Note(55, 2.8, 3.6, 90))
    cap = capture_instrument(Audio(y[None], SR), notes=notes)
    assert cap.stats["clean_takes"] == 1 and cap.stats["chord_takes"] == 6
    by_pitch = {t.pitch: t for t in cap.takes}
    assert sorted(by_pitch) == [55, 60, 64, 67]
    for p in (60, 64, 67):
        data = by_pitch[p].data
        # the extracted note is that pitch, not its neighbours in the chord
        assert _f0(data, SR) == pytest.approx(440 * 2 ** ((p - 69) / 12), rel=0.01)
        spec = np.abs(np.fft.rfft(data[: int(0.5 * SR)]))
        freqs = np.fft.rfftfreq(int(0.5 * SR), 1 / SR)
        others = [q for q in (60, 64, 67) if q != p]
        own = spec[np.argmin(np.abs(freqs - 440 * 2 ** ((p - 69) / 12)))]
        for q in others:
            assert spec[np.argmin(np.abs(freqs - 440 * 2 ** ((q - 69) / 12)))] < 0.1 * own
    assert capture_instrument(Audio(y[None], SR), notes=notes, chords=False).stats["sampled_pitches"] == [55]


def test_sustained_sound_gets_a_seamless_loop(rng: np.random.Generator) -> None:
    audio, notes = _recording(rng, [57], decay=0.0, dur=1.5)
    cap = capture_instrument(audio, notes=notes)
    (t,) = cap.takes
    assert t.sustained and t.loop is not None
    ls, le = t.loop
    period = SR / 220.0
    assert le - ls >= 0.1 * SR
    cycles = (le - ls) / period
    assert abs(cycles - round(cycles)) < 0.05  # a whole number of periods
    assert t.data[ls - 1] < 0 <= t.data[ls] and t.data[le - 1] < 0 <= t.data[le]  # rising zero crossings
    # playing it for 4 s (far longer than the 1.5 s take) keeps sounding at a steady level
    y = render_midi([NoteTrack("x", [Note(57, 0, 4.0, 100)])], sr=SR, instrument=cap.instrument).mono()
    early = np.sqrt(np.mean(y[int(0.5 * SR) : int(1.0 * SR)] ** 2))
    late = np.sqrt(np.mean(y[int(3.4 * SR) : int(3.9 * SR)] ** 2))
    assert late == pytest.approx(early, rel=0.15)
    # no click at the loop seam: the biggest sample-to-sample step stays like the tone's own
    assert np.max(np.abs(np.diff(y[int(0.5 * SR) : int(3.9 * SR)]))) < 1.5 * np.max(np.abs(np.diff(y[int(0.5 * SR) : int(1.0 * SR)])))


def test_decaying_sound_is_not_looped_and_find_loop_rejects_noise(rng: np.random.Generator) -> None:
    audio, notes = _recording(rng, [60], decay=6.0, dur=1.0)
    (t,) = capture_instrument(audio, notes=notes).takes
    assert not t.sustained and t.loop is None
    noise = rng.normal(0, 0.1, SR).astype(np.float32)
    assert find_loop(noise, SR, 220.0, 0, SR) is None


def test_velocity_layers(rng: np.random.Generator) -> None:
    pitches = [60, 62, 64] * 4
    amps = [0.05] * 3 + [0.3] * 3 + [0.05] * 3 + [0.3] * 3
    audio, notes = _recording(rng, pitches, amps=amps, dur=0.4, gap=0.2)
    cap = capture_instrument(audio, notes=notes, layers=2)
    layers = cap.stats["velocity_layers"]
    assert len(layers) == 2 and layers[0][0] == 1 and layers[-1][1] == 127
    soft = [r for r in cap.instrument.regions if r.hivel < 127]
    loud = [r for r in cap.instrument.regions if r.hivel == 127]
    assert soft and loud
    # the loud layer holds the loud takes
    assert np.max(np.abs(loud[0].data)) > 3 * np.max(np.abs(soft[0].data))
    # playing soft and loud velocities gives clearly different levels
    quiet = render_midi([NoteTrack("x", [Note(62, 0, 0.3, 40)])], sr=SR, instrument=cap.instrument).mono()
    strong = render_midi([NoteTrack("x", [Note(62, 0, 0.3, 120)])], sr=SR, instrument=cap.instrument).mono()
    assert np.sqrt(np.mean(strong**2)) > 4 * np.sqrt(np.mean(quiet**2))


def test_render_with_captured_instrument_and_far_notes(tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture) -> None:
    from stemscribe.midi import write_midi

    audio, notes = _recording(rng, [45, 48, 52])
    write_instrument(capture_instrument(audio, notes=notes, max_shift=2), tmp_path / "inst")
    ok = write_midi(tmp_path / "ok.mid", [NoteTrack("b", [Note(49, 0.2, 0.7, 100)], 33)])
    assert main(["render", str(ok), "--instrument", str(tmp_path / "inst"), "--out", str(tmp_path / "ok.wav"), "--sr", str(SR)]) == 0
    y, sr = sf.read(tmp_path / "ok.wav")
    assert _f0(y.mean(axis=1)[int(0.2 * sr) :], sr) == pytest.approx(440 * 2 ** ((49 - 69) / 12), rel=0.01)
    far = write_midi(tmp_path / "far.mid", [NoteTrack("b", [Note(49, 0, 0.5), Note(90, 0.5, 1.0)], 33)])
    out = tmp_path / "far.wav"
    assert main(["render", str(far), "--instrument", str(tmp_path / "inst"), "--out", str(out)]) == 2
    assert "too far from the instrument's keys 43..54" in capsys.readouterr().err
    assert not out.exists()


def test_recording_without_usable_notes(tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture) -> None:
    noise = Audio(rng.normal(0, 0.05, (1, 2 * SR)).astype(np.float32), SR)
    out = tmp_path / "inst"
    assert main(["capture", _write(tmp_path, noise, "noise.wav"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stemscribe: error: ") and err.count("\n") == 1
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["noise.wav"]
    # notes given, but all in chords, and chords not wanted: nothing clean
    audio, _ = _recording(rng, [60])
    with pytest.raises(BadInputError, match="none of the 2 notes"):
        capture_instrument(audio, notes=[Note(60, 0.2, 0.8), Note(64, 0.2, 0.8)], chords=False)
    # notes given that the audio does not hold (silence): nothing usable either way
    silence = Audio(np.zeros((1, 2 * SR), np.float32), SR)
    with pytest.raises(BadInputError, match="none of the 2 notes"):
        capture_instrument(silence, notes=[Note(60, 0.2, 0.8), Note(64, 0.2, 0.8)])
    with pytest.raises(BadInputError, match="no notes found"):
        capture_instrument(audio, notes=[])


def _log_mel_distance(ref: np.ndarray, est: np.ndarray, sr: int) -> float:
    import librosa

    est = np.pad(est, (0, max(len(ref) - len(est), 0)))[: len(ref)]
    est = est * np.sqrt(np.mean(ref**2) / max(np.mean(est**2), 1e-20))
    A, B = (10 * np.log10(librosa.feature.melspectrogram(y=v.astype(np.float32), sr=sr, n_fft=2048, hop_length=512,
                                                          n_mels=128, fmax=16000) + 1e-10) for v in (ref, est))
    top = max(A.max(), B.max())
    A, B = np.maximum(A, top - 80), np.maximum(B, top - 80)
    active = (A.max(axis=0) > top - 60) | (B.max(axis=0) > top - 60)
    return float(np.mean(np.abs(A[:, active] - B[:, active])))


def test_devset_bass_captured_instrument_beats_general_midi(devset: Path) -> None:
    """The docs/timbre.md benchmark on one devset bass stem: >= 30 % closer than the GM render."""
    from stemscribe.audio import load
    from stemscribe.midi import read_midi

    audio = load(devset / "dev02" / "bass.flac")
    (track,), _ = read_midi(devset / "dev02" / "bass.mid")
    split = 8.0
    first = [n for n in track.notes if n.end <= split]
    last = NoteTrack("bass", [Note(n.pitch, n.start - split, n.end - split, n.velocity)
                              for n in track.notes if n.start >= split], track.program)
    n = int(split * audio.sr)
    cap = capture_instrument(Audio(audio.samples[:, :n], audio.sr), stem="bass", notes=first)
    ref = audio.mono()[n:]
    d_cap = _log_mel_distance(ref, render_midi([last], sr=audio.sr, instrument=cap.instrument, reach=12).mono(), audio.sr)
    d_gm = _log_mel_distance(ref, render_midi([last], sr=audio.sr).mono(), audio.sr)
    assert d_cap < 0.7 * d_gm


def test_captured_instrument_plays_chords(rng: np.random.Generator) -> None:
    audio, notes = _recording(rng, [48, 52, 55], decay=1.0)
    cap = capture_instrument(audio, notes=notes)
    chord = NoteTrack("c", [Note(p, 0.1, 0.9, 100) for p in (48, 52, 55)])
    y = render_midi([chord], sr=SR, instrument=cap.instrument).mono()
    seg = y[int(0.15 * SR) : int(0.85 * SR)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    freqs = np.fft.rfftfreq(len(seg), 1 / SR)
    peaks = []
    for p in (48, 52, 55):
        f = 440 * 2 ** ((p - 69) / 12)
        peaks.append(spec[(freqs > f * 0.98) & (freqs < f * 1.02)].max())
    between = spec[(freqs > 140) & (freqs < 150)].max()  # no partial of the chord near 145 Hz
    assert min(peaks) > 20 * between
