"""The README's quick start runs as written (its `stemscribe split` line, on the shipped demo song)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import mido

from stemscribe.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_split() -> list[str]:
    text = (ROOT / "README.md").read_text()
    lines = [ln.strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S) for ln in block.splitlines()]
    split = [ln for ln in lines if ln.startswith("stemscribe split ")]
    assert split, "the README's quick start has no `stemscribe split` command"
    return shlex.split(split[0])[1:]


def test_readme_quick_start_split(tmp_path, monkeypatch):
    argv = _quick_start_split()
    out_index = argv.index("--out") + 1
    argv[out_index] = str(tmp_path / argv[out_index])
    argv = [str(ROOT / a) if a.endswith((".flac", ".wav", ".mp3")) else a for a in argv]
    monkeypatch.chdir(ROOT)
    assert main(argv + ["-q"]) == 0
    song = tmp_path / "stems" / "demo"
    report = json.loads((song / "report.json").read_text())
    assert abs(report["tempo_bpm"] - 110.0) < 2.0  # the demo is made at 110 BPM
    assert report["key"] == "A minor"
    # every part of the demo is played, so every part gets notes: the voice-presence check once emptied
    # the vocal part when new lite weights left the demo's voice a little quieter under the band
    assert all(report["note_counts"][stem] > 0 for stem in ("drums", "bass", "other", "vocals")), report["note_counts"]
    assert len(mido.MidiFile(song / "demo.mid").tracks) == 5
    # the MIDI's bar lines fall on the report's downbeats (every fourth tracked beat), within 1/32 beat
    # plus the tracker's jitter around the file's constant tempo (its last beat may stray further)
    import numpy as np
    import pretty_midi

    beats, downbeats = np.array(report["beats"]), np.array(report["downbeats"])
    assert len(downbeats) >= 2 and np.all(np.isin(downbeats, beats))
    assert set(np.diff(np.flatnonzero(np.isin(beats, downbeats)))) == {4}
    bars = pretty_midi.PrettyMIDI(str(song / "demo.mid")).get_downbeats()
    tol = 60.0 / report["tempo_bpm"] / 32 + 0.012
    near = [np.min(np.abs(bars - d)) <= tol for d in downbeats[downbeats < bars[-1]]]
    assert sum(near) >= len(near) - 1, near
