import mido
import numpy as np
import pytest

from stemscribe.errors import BadArgumentError, BadInputError
from stemscribe.midi import parse_grid, quantize, read_midi, write_midi
from stemscribe.types import BeatGrid, Note, NoteTrack


def _tracks():
    bass = NoteTrack("bass", [Note(40, 0.5, 0.9, 100), Note(43, 1.0, 1.4, 80)], program=33)
    drums = NoteTrack("drums", [Note(36, 0.5, 0.6, 110), Note(42, 0.75, 0.8, 60)], is_drum=True)
    return [bass, drums]


def test_write_read_round_trip_keeps_true_times_and_tempo(tmp_path):
    grid = BeatGrid(tempo=97.0, beats=np.arange(0, 4, 60 / 97))
    path = write_midi(tmp_path / "song.mid", _tracks(), grid)
    tracks, g = read_midi(path)
    assert abs(g.tempo - 97.0) < 0.01
    by_name = {t.name: t for t in tracks}
    assert by_name["bass"].program == 33 and not by_name["bass"].is_drum
    assert by_name["drums"].is_drum
    for ref, got in zip(_tracks()[0].notes, by_name["bass"].notes):
        assert got.pitch == ref.pitch and got.velocity == ref.velocity
        assert abs(got.start - ref.start) < 0.003 and abs(got.end - ref.end) < 0.003


def test_drums_on_channel_10_and_tempo_meta(tmp_path):
    write_midi(tmp_path / "d.mid", _tracks(), BeatGrid(tempo=140.0))
    mf = mido.MidiFile(tmp_path / "d.mid")
    tempos = [m.tempo for t in mf.tracks for m in t if m.type == "set_tempo"]
    assert tempos and abs(mido.tempo2bpm(tempos[0]) - 140.0) < 0.01
    drum_channels = {m.channel for m in mf.tracks[2] if m.type == "note_on"}
    assert drum_channels == {9}
    bass_channels = {m.channel for m in mf.tracks[1] if m.type == "note_on"}
    assert 9 not in bass_channels


def test_empty_track_writes_valid_file(tmp_path):
    write_midi(tmp_path / "e.mid", [NoteTrack("vocals")], None)
    tracks, grid = read_midi(tmp_path / "e.mid")
    assert grid.tempo == pytest.approx(120.0)
    assert sum(len(t) for t in tracks) == 0


def _note_ticks(path):
    """(onset tick, time-signature ticks, set_tempo count) of a written file's first note track."""
    mf = mido.MidiFile(path)
    tick, ons = 0, []
    for m in mf.tracks[1]:
        tick += m.time
        if m.type == "note_on":
            ons.append(tick)
    tempos = [m for m in mf.tracks[0] if m.type == "set_tempo"]
    return np.array(ons), len(tempos)


def test_quantize_snaps_to_the_files_grid_lines(tmp_path):
    grid = BeatGrid(tempo=120.0, beats=np.arange(0.1, 10, 0.5))  # beats start at 0.1 s
    track = NoteTrack("other", [Note(60, 0.1 + 0.13, 0.5), Note(62, 1.1 + 0.02, 1.3)])
    q = quantize(track, grid, "1/16")  # 1/16 = 0.125 s at 120 BPM
    # on the tracked beats' sixteenths: the pickup (one 16th, as a DAW's time signature can hold
    # it) gets its own tempo so that it lasts exactly up to the first beat
    assert q.notes[0].start == pytest.approx(0.1 + 0.125, abs=1e-6)
    assert q.notes[1].start == pytest.approx(1.1, abs=1e-6)
    assert q.notes[0].duration == pytest.approx(track.notes[0].duration, abs=1e-6)
    assert track.notes[0].start == pytest.approx(0.23)  # input untouched
    # exactly on the DAW's 1/16 lines, counted from the file's bar lines; the pickup's tempo, then 120
    path = write_midi(tmp_path / "q.mid", [q], grid, follow_beats=True)
    ons, n_tempos = _note_ticks(path)
    assert n_tempos == 2 and ons.tolist() == [240, 1080]  # the 1/16 pickup is 120 ticks
    tempos = [round(mido.tempo2bpm(m.tempo), 2) for m in mido.MidiFile(path).tracks[0] if m.type == "set_tempo"]
    assert tempos == [150.0, 120.0] and read_midi(path)[1].tempo == pytest.approx(120.0, abs=0.01)
    sigs = [(m.numerator, m.denominator) for m in mido.MidiFile(path).tracks[0] if m.type == "time_signature"]
    assert sigs == [(1, 16), (4, 4)]
    # unquantized files keep one tempo (note times exact at it in any program)
    assert _note_ticks(write_midi(tmp_path / "u.mid", [track], grid))[1] == 1


def test_quantize_follows_a_drifting_tempo_with_a_tempo_map(tmp_path):
    import pretty_midi

    # a band speeding up from 100 to 112 BPM over 60 beats, tracked with 10 ms of jitter
    rng = np.random.default_rng(1)
    periods = 60.0 / np.linspace(100, 112, 60)
    true_beats = 0.37 + np.concatenate([[0.0], np.cumsum(periods[:-1])])
    beats = true_beats + rng.normal(0, 0.01, len(true_beats))
    grid = BeatGrid(tempo=106.0, beats=beats, downbeats=beats[1::4])
    # notes played on the beats and on the eighths between, 15 ms early or late
    eighths = np.sort(np.concatenate([true_beats[:-1], (true_beats[:-1] + true_beats[1:]) / 2]))
    starts = eighths + rng.choice([-0.015, 0.015], len(eighths))
    track = NoteTrack("bass", [Note(40, t, t + 0.1) for t in starts])
    q = quantize(track, grid, "1/8")
    path = write_midi(tmp_path / "d.mid", [q], grid, follow_beats=True)
    ons, n_tempos = _note_ticks(path)
    assert n_tempos > 10  # a tempo map, not one tempo
    first_bar = int(np.cumsum([m.time for m in mido.MidiFile(path).tracks[0]])[
        [i for i, m in enumerate(mido.MidiFile(path).tracks[0]) if m.type == "time_signature"][-1]])
    assert np.all((ons - first_bar) % 240 == 0)  # on the file's eighths
    assert len(set(ons.tolist())) == len(ons)  # no two notes snapped to one line
    # ... which are where the notes were played: within 20 ms of the true eighths, read back
    pm = pretty_midi.PrettyMIDI(str(path))
    got = np.array([n.start for n in pm.instruments[0].notes])
    assert np.max(np.abs(got - eighths)) < 0.02
    # a reader sees the file's beats on the song's, and the tempo that holds for most of it
    file_beats = pm.get_beats()
    assert all(np.min(np.abs(file_beats - b)) < 0.02 for b in true_beats[:-1])
    assert 100 < read_midi(path)[1].tempo < 112
    # without follow_beats (or unquantized) the file keeps one tempo
    assert _note_ticks(write_midi(tmp_path / "c.mid", [track], grid))[1] == 1


def test_parse_grid():
    assert parse_grid("1/16") == pytest.approx(0.25)
    assert parse_grid("1/8t") == pytest.approx(0.5 * 2 / 3)
    for bad in ("1/7", "16", "quarter", "1/0"):
        with pytest.raises(BadArgumentError):
            parse_grid(bad)


def test_read_midi_rejects_non_midi(tmp_path):
    p = tmp_path / "x.mid"
    p.write_text("not midi")
    with pytest.raises(BadInputError):
        read_midi(p)
    with pytest.raises(BadInputError):
        read_midi(tmp_path / "missing.mid")


def _grid(first: float, tempo: float = 120.0, seconds: float = 12.0, downbeat_phase: int = 0) -> BeatGrid:
    period = 60.0 / tempo
    beats = np.arange(first, seconds, period)
    return BeatGrid(tempo=tempo, beats=beats, downbeats=beats[downbeat_phase::4])


def _song_tracks(seconds: float = 12.0):
    return [NoteTrack("bass", [Note(40, 0.31, 0.6, 100), Note(43, seconds - 1.0, seconds - 0.5, 90)], program=33)]


def test_pickup_bar_puts_file_bars_and_beats_on_the_songs(tmp_path):
    import pretty_midi

    from stemscribe.midi import pickup_ticks

    # the song's bars start at 0.3 s + 2 s k (120 BPM, 4/4): a pickup of 0.6 beat, 10 64ths (5/32)
    grid = _grid(0.3)
    assert pickup_ticks(grid) == 300
    path = write_midi(tmp_path / "p.mid", _song_tracks(), grid)
    pm = pretty_midi.PrettyMIDI(str(path))
    sigs = [(t.numerator, t.denominator, round(t.time, 4)) for t in pm.time_signature_changes]
    assert sigs == [(5, 32, 0.0), (4, 4, 0.3125)]
    # bars on the third beat: the part of a beat, then the two beats before the first bar line
    grid = _grid(0.3, downbeat_phase=2)
    pm = pretty_midi.PrettyMIDI(str(write_midi(tmp_path / "p2.mid", _song_tracks(), grid)))
    sigs = [(t.numerator, t.denominator, round(t.time, 4)) for t in pm.time_signature_changes]
    assert sigs == [(5, 32, 0.0), (2, 4, 0.3125), (4, 4, 1.3125)]
    beats = pm.get_beats()
    assert all(np.min(np.abs(beats - b)) <= 0.5 / 32 + 1e-6 for b in grid.beats[grid.beats < 10])
    assert len(pm.get_tempo_changes()[1]) == 1 and abs(pm.get_tempo_changes()[1][0] - 120.0) < 0.01
    bars = pm.get_downbeats()
    beats = pm.get_beats()
    # every tracked bar line and beat has a file bar line / beat within 1/32 of a beat
    tol = 0.5 / 32 + 1e-6
    assert all(np.min(np.abs(bars - d)) <= tol for d in grid.downbeats[grid.downbeats < 10])
    assert all(np.min(np.abs(beats - b)) <= tol for b in grid.beats[grid.beats < 10])
    # note times are untouched
    notes = pm.instruments[0].notes
    assert abs(notes[0].start - 0.31) < 0.002 and abs(notes[1].start - 11.0) < 0.002
    # read back: the song's meter, not the pickup's
    assert read_midi(path)[1].time_signature == (4, 4)


def test_pickup_follows_the_downbeats_and_skips_what_is_not_known(tmp_path):
    from stemscribe.midi import first_bar_line, pickup_ticks

    # downbeats on the third tracked beat: bars start at 0.3 + 2 * 0.5 s
    assert abs(first_bar_line(_grid(0.3, downbeat_phase=2)) - 1.3) < 1e-6
    assert pickup_ticks(_grid(0.3, downbeat_phase=2)) == 1260  # 2.6 beats, 42 64ths
    # bars already on 0 (within a 128th note), no beats, or beats that do not agree on a phase
    assert pickup_ticks(_grid(0.0)) == 0
    assert pickup_ticks(_grid(2.0)) == 0  # one whole bar in
    assert pickup_ticks(BeatGrid(tempo=120.0)) == 0
    rng = np.random.default_rng(0)
    assert pickup_ticks(BeatGrid(tempo=120.0, beats=np.sort(rng.uniform(0, 12, 24)))) == 0
    # no pickup: one 4/4 from tick 0, as before
    path = write_midi(tmp_path / "n.mid", _song_tracks(), _grid(0.0))
    sigs = [m for t in mido.MidiFile(path).tracks for m in t if m.type == "time_signature"]
    assert [(m.numerator, m.denominator, m.time) for m in sigs] == [(4, 4, 0)]


def test_pickup_is_robust_to_a_few_misplaced_beats():
    from stemscribe.midi import first_bar_line

    grid = _grid(0.3)
    beats = grid.beats.copy()
    beats[[3, 9, 17]] += 0.2  # three beats tracked late
    shaky = BeatGrid(tempo=120.0, beats=beats, downbeats=grid.downbeats)
    assert abs(first_bar_line(shaky) - 0.3) < 0.02


def test_misplaced_last_beats_neither_move_the_grid_nor_make_a_tempo_map(tmp_path):
    from stemscribe.midi import first_bar_line, time_map

    # 80 BPM from 0.012 s, the last three of ten tracked beats about 0.2 s early (what the tracker
    # does at the end of some clips): the file grid stays on the other seven
    period = 0.75
    beats = 0.012 + period * np.arange(10)
    beats[7:] -= np.array([0.18, 0.19, 0.26])
    grid = BeatGrid(tempo=80.0, beats=beats, downbeats=beats[::4])
    assert abs(first_bar_line(grid) - 0.012) < 0.005
    tmap = time_map(grid, follow_beats=True)
    assert len(tmap.times) <= 3  # the pickup's tempo and the song's, no map through the strays
    track = NoteTrack("bass", [Note(40, b + 0.01, b + 0.3) for b in 0.012 + period * np.arange(10)])
    q = quantize(track, grid, "1/16")
    # the bar line 12 ms in, under half a 16th: no pickup, the file's first bar line at 0 (the
    # note on it moves there) and its first 16th stretched to the song's second 16th line
    assert q.notes[0].start == 0.0
    assert np.allclose([n.start for n in q.notes[1:]], 0.012 + period * np.arange(1, 10), atol=0.003)


def test_quantized_files_use_time_signatures_every_daw_accepts(tmp_path):
    import pretty_midi

    # Ableton Live takes time-signature denominators up to 16: a quantized file's pickup is whole
    # 16ths at its own tempo, whatever the song's first bar line, with or without a tempo map
    rng = np.random.default_rng(3)
    for k, first in enumerate(np.concatenate([rng.uniform(0, 2.0, 12), [0.01, 0.06, 0.07, 1.99]])):
        drift = k % 2 == 1
        periods = 60.0 / (np.linspace(100, 112, 40) if drift else np.full(40, 100.0))
        beats = first + np.concatenate([[0.0], np.cumsum(periods[:-1])])
        grid = BeatGrid(tempo=106.0 if drift else 100.0, beats=beats, downbeats=beats[::4])
        track = NoteTrack("bass", [Note(40, b + 0.01, b + 0.2) for b in beats])
        path = write_midi(tmp_path / f"q{k}.mid", [quantize(track, grid, "1/16")], grid, follow_beats=True)
        conductor = mido.MidiFile(path).tracks[0]
        assert all(m.denominator <= 16 for m in conductor if m.type == "time_signature")
        bpm = [mido.tempo2bpm(m.tempo) for m in conductor if m.type == "set_tempo"]
        assert 2 / 3 * min(bpm[1:]) - 1e-6 <= bpm[0] <= 2 * max(bpm[1:]) + 1e-6
        # the file's bar lines on the song's from the second on (the first too unless it falls
        # within half a 16th of the start)
        bars = pretty_midi.PrettyMIDI(str(path)).get_downbeats()
        for d in grid.downbeats[1:-1]:
            assert np.min(np.abs(bars - d)) < 0.005
        if first % (4 * periods[0]) > 0.5 * periods[0] / 4:
            assert np.min(np.abs(bars - grid.downbeats[0])) < 0.005
