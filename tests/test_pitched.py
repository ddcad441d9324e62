"""Pitched transcription (basic-pitch ONNX + stem-aware decoding) on signals made here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from stemscribe.errors import BadArgumentError, BadInputError
from stemscribe.transcribe import basic_pitch_onnx as bp
from stemscribe.transcribe.pitched import (
    GM_PROGRAMS,
    MONO_RANGES,
    transcribe_pitched,
    transcribe_stems,
)
from stemscribe.types import Audio

SR = 22050
DEVSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "devset"


def hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def tone(
    midi: int,
    start: float,
    dur: float,
    total: float,
    *,
    sr: int = SR,
    amp: float = 0.3,
    vibrato_cents: float = 0.0,
    harmonics: tuple[float, ...] = (1.0, 0.5, 0.33, 0.25, 0.2),
    decay: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """A harmonic tone placed at ``start`` in a signal of ``total`` seconds, shape ``(n,)``."""
    n = round(total * sr)
    out = np.zeros(n, np.float32)
    i0, i1 = round(start * sr), min(n, round((start + dur) * sr))
    t = np.arange(i1 - i0) / sr
    cents = vibrato_cents * np.sin(2 * np.pi * 5.5 * t)
    phase = 2 * np.pi * np.cumsum(hz(midi) * 2 ** (cents / 1200)) / sr
    if rng is not None:
        phase += rng.uniform(0, 2 * np.pi)
    sig = sum(a * np.sin((h + 1) * phase) for h, a in enumerate(harmonics))
    env = np.minimum(1.0, t / 0.01) * np.minimum(1.0, (t[-1] - t) / 0.02 + 1e-9)
    if decay:
        env *= np.exp(-t / decay)
    out[i0:i1] = amp * sig * env / max(sum(harmonics), 1.0)
    return out


def onsets_match(notes, expected, tol=0.05):
    """Each expected (pitch, start) has a note of that pitch starting within ``tol`` s."""
    return all(any(n.pitch == p and abs(n.start - s) <= tol for n in notes) for p, s in expected)


def test_sung_tone_with_vibrato_is_one_note_at_its_pitch():
    rng = np.random.default_rng(0)
    y = tone(69, 0.5, 1.2, 2.5, vibrato_cents=40, rng=rng) + 1e-4 * rng.standard_normal(int(2.5 * SR))
    track = transcribe_pitched(Audio(y, SR), stem="vocals")
    assert track.name == "vocals" and track.program == GM_PROGRAMS["vocals"] and not track.is_drum
    assert [n.pitch for n in track.notes] == [69]
    note = track.notes[0]
    assert abs(note.start - 0.5) < 0.04
    assert abs(note.end - 1.7) < 0.12
    assert 1 <= note.velocity <= 127


def test_bass_line_known_notes_monophonic_in_range():
    rng = np.random.default_rng(1)
    line = [(40, 0.2), (33, 0.7), (38, 1.2), (43, 1.7), (28, 2.2)]  # E2 A1 D2 G2 E1
    y = sum(tone(p, s, 0.45, 3.0, amp=0.5, decay=0.6, rng=rng) for p, s in line)
    track = transcribe_pitched(Audio(y, SR), stem="bass")
    assert track.program == 33
    assert [n.pitch for n in track.notes] == [p for p, _ in line]
    assert onsets_match(track.notes, line, tol=0.04)
    lo, hi = MONO_RANGES["bass"]
    assert all(lo <= n.pitch <= hi for n in track.notes)
    assert all(a.end <= b.start + 1e-6 for a, b in zip(track.notes, track.notes[1:]))


@pytest.mark.parametrize("fundamental", [0.25, 0.1, 0.03])
@pytest.mark.parametrize("pitch", [28, 36, 40, 45])
def test_bass_with_weak_fundamental_has_no_octave_error(pitch, fundamental):
    rng = np.random.default_rng(2)
    # fundamental 12 or 20 dB under the 2nd harmonic: a bass through a small speaker; 30 dB under
    # it, as a separator can leave it (the spectral test, used for bass before, read it an octave up)
    y = tone(pitch, 0.3, 1.0, 1.6, amp=0.6, harmonics=(fundamental, 1.0, 0.5, 0.3), decay=1.0, rng=rng)
    track = transcribe_pitched(Audio(y, SR), stem="bass")
    assert [n.pitch for n in track.notes] == [pitch]


def test_root_fifth_bass_with_the_root_still_ringing_stays_in_its_octave():
    rng = np.random.default_rng(13)
    y = tone(48, 0.2, 0.8, 2.0, amp=0.5, decay=1.5, rng=rng) + tone(41, 0.6, 0.8, 2.0, amp=0.5, decay=1.5, rng=rng)
    notes = transcribe_pitched(Audio(y, SR), stem="bass").notes
    assert [n.pitch for n in notes] == [48, 41]


def test_vocal_with_a_harmony_a_fifth_above_is_not_moved_down():
    rng = np.random.default_rng(12)
    y = tone(60, 0.3, 1.0, 1.6, amp=0.4, vibrato_cents=20, rng=rng) + tone(67, 0.3, 1.0, 1.6, amp=0.15, rng=rng)
    assert [n.pitch for n in transcribe_pitched(Audio(y, SR), stem="vocals").notes] == [60]


def test_repeated_note_is_split_at_each_articulation():
    rng = np.random.default_rng(3)
    starts = [0.2, 0.6, 1.0, 1.4]
    y = sum(tone(45, s, 0.38, 2.0, amp=0.5, decay=0.3, rng=rng) for s in starts)
    track = transcribe_pitched(Audio(y, SR), stem="bass")
    assert len(track.notes) == 4
    assert onsets_match(track.notes, [(45, s) for s in starts], tol=0.04)


def test_chord_on_other_is_polyphonic():
    rng = np.random.default_rng(4)
    chord = (60, 64, 67)
    y = sum(tone(p, 0.4, 1.0, 2.0, amp=0.25, decay=1.5, rng=rng) for p in chord)
    track = transcribe_pitched(Audio(y, SR), stem="other")
    assert track.program == GM_PROGRAMS["other"]
    assert {n.pitch for n in track.notes} == set(chord)
    assert onsets_match(track.notes, [(p, 0.4) for p in chord], tol=0.04)


@pytest.mark.parametrize("stem", ["vocals", "bass", "other"])
def test_silence_and_tiny_inputs_give_empty_tracks(stem):
    assert len(transcribe_pitched(Audio(np.zeros((2, 3 * SR), np.float32), SR), stem=stem)) == 0
    assert len(transcribe_pitched(Audio(np.zeros((1, 1), np.float32), 44100), stem=stem)) == 0
    assert len(transcribe_pitched(Audio(np.zeros((1, 0), np.float32), 44100), stem=stem)) == 0


@pytest.mark.parametrize("sr,channels", [(8000, 1), (16000, 1), (48000, 3), (96000, 2)])
def test_odd_sample_rates_and_channel_counts(sr, channels):
    rng = np.random.default_rng(5)
    y = tone(64, 0.3, 0.8, 1.5, sr=sr, vibrato_cents=20, rng=rng)
    samples = np.stack([y * (1.0 - 0.1 * c) for c in range(channels)])
    track = transcribe_pitched(Audio(samples, sr), stem="vocals")
    assert [n.pitch for n in track.notes] == [64]
    assert abs(track.notes[0].start - 0.3) < 0.04


def test_input_is_not_modified():
    rng = np.random.default_rng(6)
    samples = np.stack([tone(57, 0.2, 0.5, 1.0, rng=rng)] * 2)
    before = samples.copy()
    transcribe_pitched(Audio(samples, SR), stem="vocals")
    np.testing.assert_array_equal(samples, before)


def test_bleed_from_another_stem_is_dropped():
    rng = np.random.default_rng(7)
    total = 3.0
    vocal = tone(71, 1.6, 1.0, total, amp=0.5, vibrato_cents=30, rng=rng)  # B4, loud in the vocal stem
    chord = sum(tone(p, 0.2, 1.0, total, amp=0.25, decay=2.0, rng=rng) for p in (48, 52, 55))
    other = chord + 0.03 * vocal  # the vocal leaks into 'other' at -30 dB, after the chord has ended
    alone = transcribe_pitched(Audio(other, SR), stem="other")
    assert any(n.pitch == 71 for n in alone.notes), "the leaked note should be visible without others"
    track = transcribe_pitched(Audio(other, SR), stem="other", others={"vocals": Audio(vocal, SR)})
    assert not any(n.pitch == 71 for n in track.notes)
    assert {48, 52, 55} <= {n.pitch for n in track.notes}


def test_transcribe_stems_matches_per_stem_calls():
    rng = np.random.default_rng(8)
    stems = {
        "drums": Audio(0.05 * rng.standard_normal(2 * SR).astype(np.float32), SR),
        "bass": Audio(tone(40, 0.2, 0.8, 2.0, amp=0.5, decay=0.8, rng=rng), SR),
        "vocals": Audio(tone(67, 0.5, 1.0, 2.0, vibrato_cents=30, rng=rng), SR),
    }
    mixture = Audio(sum(a.samples for a in stems.values()), SR)
    together = transcribe_stems({**stems, "mixture": mixture})
    assert set(together) == {"bass", "vocals"}
    for name in together:
        others = {o: a for o, a in stems.items() if o != name}
        alone = transcribe_pitched(stems[name], stem=name, others=others)
        assert [(n.pitch, n.start) for n in together[name].notes] == [(n.pitch, n.start) for n in alone.notes]
    assert [n.pitch for n in together["bass"].notes] == [40]
    assert [n.pitch for n in together["vocals"].notes] == [67]


def test_the_same_song_louder_or_quieter_gives_the_same_notes():
    # a song is transcribed at one reference level (DecodeSettings.level_db): a chord part that is
    # quiet under the band is kept however quietly the whole song was recorded (at -45 dB its notes
    # fell under the absolute -60 dBFS floor before), and velocities do not follow the recording level
    from stemscribe.transcribe.pitched import DecodeSettings

    rng = np.random.default_rng(11)
    total = 3.0
    stems = {
        "other": Audio(sum(tone(p, 0.3, 1.5, total, amp=0.06, rng=rng) for p in (60, 64, 67)), SR),
        "bass": Audio(tone(36, 0.3, 2.0, total, amp=0.6, rng=rng), SR),
        "drums": Audio((0.2 * rng.standard_normal(round(total * SR))).astype(np.float32), SR),
    }

    def notes(gain, settings=DecodeSettings()):
        song = {k: Audio(a.samples * gain, SR) for k, a in stems.items()}
        return [(n.pitch, round(n.start, 3), n.velocity) for n in transcribe_stems(song, settings=settings)["other"].notes]

    ref = notes(1.0)
    assert {p for p, _, _ in ref} == {60, 64, 67}
    assert notes(10 ** (-45 / 20)) == ref == notes(3.0)
    assert notes(10 ** (-45 / 20), DecodeSettings(level_db=None)) == []  # as recorded: under the floor


def test_progress_reports_transcribe_stage():
    events = []
    rng = np.random.default_rng(9)
    transcribe_pitched(Audio(tone(60, 0.1, 0.5, 5.0, rng=rng), SR), stem="other", progress=events.append)
    assert events and all(e["stage"] == "transcribe" and e["stem"] == "other" for e in events)
    fractions = [e["fraction"] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_bad_arguments():
    audio = Audio(np.zeros((1, SR), np.float32), SR)
    with pytest.raises(BadArgumentError, match="drums"):
        transcribe_pitched(audio, stem="drums")
    with pytest.raises(BadArgumentError, match="unknown pitched stem"):
        transcribe_pitched(audio, stem="kazoo")
    with pytest.raises(BadInputError):
        transcribe_pitched(np.zeros(SR), stem="bass")  # type: ignore[arg-type]
    with pytest.raises(BadArgumentError, match="others"):
        transcribe_pitched(audio, stem="bass", others=[audio])  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="NaN"):
        transcribe_pitched(Audio(np.full((1, SR), np.nan, np.float32), SR), stem="bass")


def test_model_windowing_and_frame_times():
    rng = np.random.default_rng(10)
    n = int(4.3 * SR)
    pg = bp.run_model(0.1 * rng.standard_normal(n).astype(np.float32), skip_silent=False)
    assert pg.note.shape == (int(np.floor(n * 86 / SR)), 88) == pg.onset.shape
    assert pg.contour.shape == (pg.n_frames, 264)
    assert np.all((pg.note >= 0) & (pg.note <= 1))
    steps = np.diff(pg.times)
    assert np.all(steps > 0) and np.allclose(np.median(steps), bp.FFT_HOP / SR)
    assert pg.times[bp.KEPT_FRAMES] == pytest.approx(bp.WINDOW_HOP / SR)
    assert bp.get_session() is bp.get_session()  # created once per process


def _f1(ref_path: Path, notes) -> float:
    mir_eval = pytest.importorskip("mir_eval")
    pretty_midi = pytest.importorskip("pretty_midi")
    ref = [n for inst in pretty_midi.PrettyMIDI(str(ref_path)).instruments for n in inst.notes]
    ri = np.array([[n.start, n.end] for n in ref])
    rp = mir_eval.util.midi_to_hz(np.array([n.pitch for n in ref], float))
    ei = np.array([[n.start, n.end] for n in notes]).reshape(-1, 2)
    ep = mir_eval.util.midi_to_hz(np.array([n.pitch for n in notes], float))
    return mir_eval.transcription.precision_recall_f1_overlap(ri, rp, ei, ep, onset_tolerance=0.05, offset_ratio=None)[2]


@pytest.mark.skipif(not (DEVSET / "dev01").is_dir(), reason="shared devset not present")
@pytest.mark.parametrize("stem,minimum", [("vocals", 0.9), ("bass", 0.9), ("other", 0.75)])
def test_devset_true_stem(stem, minimum):
    sf = pytest.importorskip("soundfile")
    x, sr = sf.read(str(DEVSET / "dev01" / f"{stem}.flac"), dtype="float32", always_2d=True)
    track = transcribe_pitched(Audio(x.T, sr), stem=stem)
    assert _f1(DEVSET / "dev01" / f"{stem}.mid", track.notes) >= minimum


@pytest.mark.parametrize("stem", ["vocals", "other"])
def test_wide_vibrato_stays_one_note_but_a_played_trill_does_not(stem):
    rng = np.random.default_rng(11)
    y = tone(64, 0.3, 1.5, 2.2, vibrato_cents=100, rng=rng)  # +-1 semitone, 5.5 Hz
    assert [n.pitch for n in transcribe_pitched(Audio(y, SR), stem=stem).notes] == [64]
    trill = sum(tone(64 + 2 * (i % 2), 0.3 + 0.1 * i, 0.1, 2.0, amp=0.4, decay=0.2, rng=rng) for i in range(10))
    notes = transcribe_pitched(Audio(trill, SR), stem=stem).notes
    assert [n.pitch for n in notes] == [64, 66] * 5
    assert onsets_match(notes, [(64 + 2 * (i % 2), 0.3 + 0.1 * i) for i in range(10)], tol=0.04)


def test_glide_between_two_sung_notes_gives_two_notes():
    t = np.arange(int(2.5 * SR)) / SR
    midi = np.where(t < 1.0, 60.0, np.where(t < 1.15, 60 + 7 * (t - 1.0) / 0.15, 67.0))
    phase = 2 * np.pi * np.cumsum(hz(69) * 2 ** ((midi - 69) / 12 + 25 * np.sin(2 * np.pi * 5.5 * t) / 1200)) / SR
    y = 0.15 * sum(a * np.sin((h + 1) * phase) for h, a in enumerate((1, 0.5, 0.33, 0.25)))
    y *= np.clip((t - 0.3) / 0.02, 0, 1) * np.clip((2.2 - t) / 0.02, 0, 1)
    notes = transcribe_pitched(Audio(y.astype(np.float32), SR), stem="vocals").notes
    assert [n.pitch for n in notes] == [60, 67]
    assert abs(notes[0].start - 0.3) < 0.04 and 1.0 <= notes[1].start <= 1.2


def test_played_octave_leaps_in_a_bass_line_are_kept():
    rng = np.random.default_rng(14)
    line = [(36 + 12 * (i % 2), 0.2 + 0.25 * i) for i in range(8)]  # octave "disco" bass
    y = sum(tone(p, s, 0.22, 2.5, amp=0.5, decay=0.3, rng=rng) for p, s in line)
    notes = transcribe_pitched(Audio(y, SR), stem="bass").notes
    assert [n.pitch for n in notes] == [p for p, _ in line]
    assert onsets_match(notes, line, tol=0.04)


def test_real_unison_double_under_a_louder_stem_is_kept():
    rng = np.random.default_rng(15)
    # a piano-like chord tone in 'other' on the pitch the (much louder) voice is singing
    vocal = tone(67, 0.3, 1.6, 2.5, amp=0.6, vibrato_cents=30, rng=rng)
    other = sum(tone(p, 0.8, 0.9, 2.5, amp=0.12, decay=0.4, rng=rng) for p in (60, 64, 67))
    track = transcribe_pitched(Audio(other, SR), stem="other", others={"vocals": Audio(vocal, SR)})
    assert {60, 64, 67} <= {n.pitch for n in track.notes}


def test_band_leaking_into_a_separated_vocal_rest_is_dropped_quiet_sung_notes_are_kept():
    rng = np.random.default_rng(21)
    total = 4.0
    sung = tone(71, 0.3, 1.0, total, amp=0.5, vibrato_cents=30, rng=rng)  # B4, the loud phrase
    soft = tone(67, 3.0, 0.8, total, amp=0.12, vibrato_cents=30, rng=rng)  # G4, sung 12 dB softer
    other = sum(tone(p, 1.6, 1.0, total, amp=0.2, decay=2.0, rng=rng) for p in (52, 55, 76))
    # a mask separator's vocal stem: the voice, a noise floor, and where the voice rests the band at
    # half its level in 'other' (only 6 dB under it, too close for drop_bleed's 10 dB)
    floor = 0.002 * rng.standard_normal(sung.size).astype(np.float32)
    vocals = sung + soft + 0.5 * other + floor
    alone = transcribe_pitched(Audio(vocals, SR), stem="vocals")
    assert any(1.5 < n.start < 2.6 for n in alone.notes), "the leaked chord should be visible without others"
    track = transcribe_pitched(Audio(vocals, SR), stem="vocals", others={"other": Audio(other, SR)})
    assert not any(1.5 < n.start < 2.6 for n in track.notes), track.notes
    assert onsets_match(track.notes, [(71, 0.3), (67, 3.0)])


def test_octave_parts_of_one_note_join_at_the_pitch_of_the_body():
    from stemscribe.transcribe.pitched import DEFAULT_SETTINGS, _merge_same_pitch

    no_onsets = np.zeros((200, bp.N_NOTE_BINS), np.float32)
    # an attack read as the 2nd harmonic, then the longer body at the real (lower) pitch
    assert _merge_same_pitch([(0, 20, 43), (21, 100, 31)], no_onsets, DEFAULT_SETTINGS) == [(0, 100, 31)]
    # a decaying tone whose estimate drifts up an octave: the note keeps its first pitch
    assert _merge_same_pitch([(0, 80, 31), (81, 100, 43)], no_onsets, DEFAULT_SETTINGS) == [(0, 100, 31)]
    # ... however long the drifted part: a fading fundamental is still the note's pitch
    assert _merge_same_pitch([(0, 20, 31), (21, 100, 43)], no_onsets, DEFAULT_SETTINGS) == [(0, 100, 31)]
    # a played octave leap has an onset: two notes
    onsets = no_onsets.copy()
    onsets[21, 31 - bp.MIDI_OFFSET] = 0.9
    assert _merge_same_pitch([(0, 20, 43), (21, 100, 31)], onsets, DEFAULT_SETTINGS) == [(0, 20, 43), (21, 100, 31)]


def test_instrumental_lead_left_in_the_vocal_stem_is_no_voice_a_sung_line_under_the_band_is():
    rng = np.random.default_rng(33)
    total = 5.0
    melody = [(72, 0.3), (74, 1.3), (76, 2.3), (74, 3.3)]
    lead = sum(tone(p, t, 0.9, total, amp=0.4, vibrato_cents=20, rng=rng) for p, t in melody)
    band = sum(tone(p, 0.2, 4.6, total, amp=0.2, rng=rng) for p in (48, 55, 60, 64))
    floor = 0.001 * rng.standard_normal(lead.size).astype(np.float32)  # a separated stem's residue
    # an instrumental: the separator leaves the lead line in the vocal stem, 20 dB down
    leaked = Audio(0.1 * lead + floor, SR)
    assert transcribe_pitched(leaked, stem="vocals").notes, "the leaked line is visible without others"
    others = {"other": Audio(lead + band, SR)}
    assert transcribe_pitched(leaked, stem="vocals", others=others).notes == []
    # a voice singing that line 6 dB under the band keeps its notes
    sung = sum(tone(p, t, 0.9, total, amp=0.4, vibrato_cents=30, rng=rng) for p, t in melody)
    sung_db = 10 * np.log10(np.mean(sung[SR : 4 * SR] ** 2) / np.mean((2 * band)[SR : 4 * SR] ** 2))
    assert -7 < sung_db < -5
    track = transcribe_pitched(Audio(sung + floor, SR), stem="vocals", others={"other": Audio(2 * band, SR)})
    assert onsets_match(track.notes, melody), track.notes
    # ... and a clean vocal track (silent rests: nothing misplaced in it) keeps them however soft
    track = transcribe_pitched(Audio(0.1 * sung, SR), stem="vocals", others={"other": Audio(2 * band, SR)})
    assert onsets_match(track.notes, melody), track.notes


def test_the_accented_note_of_a_chord_gets_the_higher_velocity():
    # in a chord the stem's power is the same for every note; each note's own fundamental is not
    rng = np.random.default_rng(12)
    y = tone(60, 0.3, 1.5, 2.5, amp=0.03, rng=rng) + tone(64, 0.3, 1.5, 2.5, amp=0.03) + tone(67, 0.3, 1.5, 2.5, amp=0.15)
    notes = {n.pitch: n.velocity for n in transcribe_pitched(Audio(y, SR), stem="other").notes}
    assert set(notes) == {60, 64, 67}
    assert notes[67] >= max(notes[60], notes[64]) + 12  # 14 dB louder -> about 25 velocity steps
    # one note at a time the note's velocity is the stem's power, as before
    solo = transcribe_pitched(Audio(tone(67, 0.3, 1.5, 2.5, amp=0.15), SR), stem="vocals").notes
    assert len(solo) == 1 and 1 <= solo[0].velocity <= 127


def test_earlier_starts_moves_a_late_vocal_start_to_its_pitch_rise() -> None:
    from stemscribe.transcribe.pitched import SpectralFeatures, _earlier_starts

    n = 100
    power = np.full((n, bp.N_NOTE_BINS), 1e-8, np.float32)
    k = 69 - bp.MIDI_OFFSET
    power[20:60, k] = 1e-3  # the sung A4 rises at frame 20 (50 dB in one frame)...
    power[70:90, k + 2] = 1e-3  # ...and a B4 at 70
    feats = SpectralFeatures(np.zeros(n, np.float32), power, power.copy())
    # decoded 6 frames late: moved back to the rise (the middle of the first 2-frame difference
    # that spans it)
    out = _earlier_starts([(26, 60, 69), (72, 90, 71)], feats, rise_db=3.0, back=9)
    assert out == [(19, 60, 69), (69, 90, 71)]
    # a rise further back than `back` frames, a flat pitch, or the note before: the start stays
    assert _earlier_starts([(35, 60, 69)], feats, rise_db=3.0, back=9) == [(35, 60, 69)]
    assert _earlier_starts([(26, 60, 70)], feats, rise_db=3.0, back=9) == [(26, 60, 70)]
    assert _earlier_starts([(10, 21, 67), (26, 60, 69)], feats, rise_db=3.0, back=9)[1] == (21, 60, 69)
    assert _earlier_starts([(26, 60, 69)], feats, rise_db=3.0, back=0) == [(26, 60, 69)]


def test_voice_presence_drops_the_notes_of_stretches_where_nobody_sings() -> None:
    from stemscribe.transcribe import pitched as P

    fps, n = P._FPS, int(40 * P._FPS)
    zeros = np.zeros((n, bp.N_NOTE_BINS), np.float32)
    vocal_db = np.full(n, -45.0, np.float32)  # a separated stem: rests hold leakage, not silence
    notes = []
    for start_s, level in ((2, -35.0), (4.5, -35.0), (28, -28.0), (30.5, -28.0)):
        a = int(start_s * fps)
        vocal_db[a : a + int(2 * fps)] = level
        notes.append((a, a + int(2 * fps), 60))
    band = P.SpectralFeatures(np.full(n, -20.0, np.float32), zeros, zeros)
    vocals = P.SpectralFeatures(vocal_db, zeros, zeros)
    # each note's level against the band: -15 dB in the first stretch, -8 dB in the second (24 s
    # later, beyond the +-6 s the check judges together)
    levels = P.voice_presence(notes, vocals, [band])
    np.testing.assert_allclose(levels, [-15, -15, -8, -8], atol=1e-4)
    strict = dataclasses.replace(P.DEFAULT_SETTINGS, vocal_presence_db=-12.0)
    assert P.drop_absent_voice(notes, vocals, [band], strict) == notes[2:]
    assert P.drop_absent_voice(notes, vocals, [band]) == notes  # the package's -18 dB keeps both
    # a clean stem (silent rests) is a voice however soft: the check does not apply
    clean = P.SpectralFeatures(np.where(vocal_db > -45, vocal_db, -120.0).astype(np.float32), zeros, zeros)
    assert P.voice_presence(notes, clean, [band]) is None
    assert P.drop_absent_voice(notes, clean, [band], strict) == notes
    assert P.voice_presence(notes, vocals, []) is None
