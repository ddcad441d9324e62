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


def test_quantize_snaps_to_sixteenths_of_tracked_beats():
    grid = BeatGrid(tempo=120.0, beats=np.arange(0.1, 10, 0.5))  # beats start at 0.1 s
    track = NoteTrack("other", [Note(60, 0.1 + 0.13, 0.5), Note(62, 1.1 + 0.02, 1.3)])
    q = quantize(track, grid, "1/16")  # 1/16 = 0.125 s at 120 BPM
    assert q.notes[0].start == pytest.approx(0.1 + 0.125, abs=1e-6)
    assert q.notes[1].start == pytest.approx(1.1, abs=1e-6)
    assert q.notes[0].duration == pytest.approx(track.notes[0].duration, abs=1e-6)
    assert track.notes[0].start == pytest.approx(0.23)  # input untouched


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
