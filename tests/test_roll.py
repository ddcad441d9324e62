"""Piano rolls: MIDI -> npz -> MIDI round trip, array layout, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stemscribe.cli import main
from stemscribe.errors import BadInputError
from stemscribe.midi import read_midi, write_midi
from stemscribe.roll import FPS, LOWEST_PITCH, load_roll, roll_to_track, tracks_to_roll
from stemscribe.types import Note, NoteTrack


def _random_notes(rng: np.random.Generator, n: int = 120) -> list[Note]:
    notes = []
    free_at = np.zeros(128)
    t = 0.0
    for _ in range(n):
        t += float(rng.uniform(0.0, 0.15))
        pitch = int(rng.integers(21, 109))
        start = max(t, free_at[pitch] + 0.012)
        end = start + float(rng.uniform(0.02, 1.5))
        free_at[pitch] = end
        notes.append(Note(pitch, start, end, int(rng.integers(1, 128))))
    return notes


def test_roll_round_trip_within_4ms(tmp_path: Path, rng: np.random.Generator) -> None:
    notes = _random_notes(rng)
    # a drum track and a note outside the 88 keys are left out of the roll
    tracks = [NoteTrack("keys", notes, 4), NoteTrack("drums", [Note(36, 0.1, 0.2, 100)], 0, True),
              NoteTrack("high", [Note(120, 0.3, 0.5, 90)], 80)]
    src = write_midi(tmp_path / "in.mid", tracks)
    assert main(["roll", str(src), "--out", str(tmp_path / "r.npz")]) == 0
    assert main(["roll", str(tmp_path / "r.npz"), "--out", str(tmp_path / "back.mid")]) == 0
    back, _ = read_midi(tmp_path / "back.mid")
    got = sorted((n for t in back for n in t.notes), key=lambda n: (n.pitch, n.start))
    want = sorted(notes, key=lambda n: (n.pitch, n.start))
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.pitch == b.pitch and a.velocity == b.velocity
        assert abs(a.start - b.start) <= 0.004
        assert abs(a.end - b.end) <= 0.004
    assert back[0].program == 4


def test_roll_layout(tmp_path: Path) -> None:
    notes = [Note(21, 0.0, 0.5, 127), Note(108, 1.0, 1.004, 64), Note(60, 0.25, 0.75, 1)]
    roll, dropped = tracks_to_roll([NoteTrack("p", notes)])
    assert dropped == 0
    assert roll.onsets.shape == roll.frames.shape == (int(round(1.004 * FPS)) + 1, 88)
    assert roll.onsets.dtype == np.float32 and roll.frames.dtype == np.uint8
    assert roll.onsets[0, 0] == pytest.approx(1.0)
    assert roll.onsets[250, 108 - LOWEST_PITCH] == pytest.approx(64 / 127)
    assert roll.frames[:125, 0].all() and not roll.frames[125, 0]
    assert roll.frames[62:188, 60 - LOWEST_PITCH].all() and roll.frames[:62, 60 - LOWEST_PITCH].sum() == 0
    from stemscribe.roll import save_roll

    path = save_roll(tmp_path / "x.npz", roll)
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) >= {"onsets", "frames", "fps", "lowest_pitch", "layout"}
        assert int(z["fps"]) == 250 and int(z["lowest_pitch"]) == 21
    again = roll_to_track(load_roll(path))
    assert [(n.pitch, n.velocity) for n in again.notes] == [(21, 127), (60, 1), (108, 64)]


def test_repeated_key_splits_on_onset() -> None:
    notes = [Note(60, 0.0, 0.5, 80), Note(60, 0.5, 1.0, 90)]
    roll, _ = tracks_to_roll([NoteTrack("p", notes)])
    back = roll_to_track(roll).notes
    assert [(n.start, n.end, n.velocity) for n in back] == [(0.0, 0.5, 80), (0.5, 1.0, 90)]


def test_empty_midi_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = write_midi(tmp_path / "empty.mid", [NoteTrack("x", [])])
    out = tmp_path / "r.npz"
    assert main(["roll", str(src), "--out", str(out)]) == 2
    assert "no pitched notes" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == [src]
    with pytest.raises(BadInputError):
        tracks_to_roll([NoteTrack("d", [Note(36, 0, 1)], is_drum=True)])


def test_broken_roll_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    assert main(["roll", str(bad), "--out", str(tmp_path / "x.mid")]) == 2
    assert "not a readable .npz" in capsys.readouterr().err
    np.savez(tmp_path / "shape.npz", onsets=np.zeros((10, 12), np.float32), frames=np.zeros((10, 12), np.uint8))
    with pytest.raises(BadInputError, match=r"\(n_frames, 88\)"):
        load_roll(tmp_path / "shape.npz")
    assert not (tmp_path / "x.mid").exists()
