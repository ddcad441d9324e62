"""Do the written MIDI files' beats and bars line up with the song's?

A DAW places a MIDI file's bars and beats from tick 0 at the file's tempo. A song that does not
start on a bar line (nearly every real one: a pickup, a breath, a cut-in excerpt) then sits off the
DAW's grid unless the file says where its bars fall (``stemscribe.midi.pickup_ticks``). For every
song of the sets below this cuts a random 0.05-3 s off the start of the mixture (three cuts per
song, seeded), tracks the beats of what is left (``estimate_beats``, as ``split`` does), writes a
MIDI file the way ``split`` does (with a pickup bar) and without one (the constant-tempo file from
0 that ``split`` wrote before), reads both back with pretty_midi and reports

* beats: of the reference beats (the song's tempo from its ``meta.json``, beats from its first
  sample, shifted by the cut), the share with a file beat within 50 ms;
* bars (devset only, whose songs start on a downbeat in 4/4): the share of reference downbeats with
  a file bar line within 70 ms.

    python benchmarks/midi_grid.py --rendered benchmarks/results/rendered-eval [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEVSET = ROOT.parent / "shared" / "data" / "devset"
BEAT_TOL = 0.05
BAR_TOL = 0.07


def hit_rate(ref: np.ndarray, est: np.ndarray, tol: float) -> float:
    """Share of ``ref`` times with an ``est`` time within ``tol`` seconds (nan when ``ref`` is empty)."""
    if len(ref) == 0:
        return float("nan")
    if len(est) == 0:
        return 0.0
    return float(np.mean(np.min(np.abs(ref[:, None] - est[None, :]), axis=1) <= tol))


def score_cut(x: np.ndarray, sr: int, tempo: float, cut: float, bars: bool, tmp: Path) -> dict:
    """Track the beats of ``x`` ``(n, channels)`` without its first ``cut`` seconds, write the MIDI
    both ways and score each file's beats (and bar lines when ``bars``) against the true grid."""
    import pretty_midi

    from stemscribe.midi import _tracks_to_midifile, pickup_ticks
    from stemscribe.transcribe.tempo import estimate_beats
    from stemscribe.types import Audio, Note, NoteTrack

    y = x[int(round(cut * sr)) :].T
    dur = y.shape[1] / sr
    grid = estimate_beats(Audio(y, sr))
    period = 60.0 / tempo
    k = np.arange(int(np.ceil(cut / period)), int((cut + dur - 0.5) / period) + 1)
    ref_beats = k * period - cut
    ref_bars = ref_beats[k % 4 == 0] if bars else np.zeros(0)
    # one note to the end, so that pretty_midi's beats and bar lines run through the song
    track = NoteTrack("drums", [Note(36, 0.0, dur + 1.0, 100)], 0, True)
    row = {"cut": round(cut, 3), "tempo": grid.tempo, "true_tempo": tempo}
    for name, pickup in (("pickup", pickup_ticks(grid)), ("none", 0)):
        path = tmp / f"{name}.mid"
        _tracks_to_midifile([track], grid.tempo, grid.time_signature, pickup).save(str(path))
        pm = pretty_midi.PrettyMIDI(str(path))
        row[name] = {"beats": hit_rate(ref_beats, np.asarray(pm.get_beats(), dtype=float), BEAT_TOL),
                     "bars": hit_rate(ref_bars, np.asarray(pm.get_downbeats(), dtype=float), BAR_TOL)}
    return row


def summarise(rows: list[dict]) -> dict:
    """Per set: cuts, cuts whose tempo is within 2 BPM, mean beat / bar hit rates both ways."""
    summary = {}
    for set_name in dict.fromkeys(r["set"] for r in rows):
        sel = [r for r in rows if r["set"] == set_name]
        summary[set_name] = {"cuts": len(sel), "tempo_right": sum(abs(r["tempo"] - r["true_tempo"]) <= 2.0 for r in sel)}
        for name in ("pickup", "none"):
            for what in ("beats", "bars"):
                vals = [r[name][what] for r in sel if np.isfinite(r[name][what])]
                if vals:
                    summary[set_name][f"{name}_{what}"] = round(float(np.mean(vals)), 3)
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rendered", type=Path, help="labelled render (training/render_data.py --labelled)")
    ap.add_argument("--devset", type=Path, default=DEVSET)
    ap.add_argument("--json", type=Path, help="also write every cut's row here")
    ap.add_argument("--cuts", type=int, default=3, help="random cuts per song")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import soundfile as sf

    rng = np.random.default_rng(args.seed)
    rows = []
    sets = [(f, name) for f, name in ((args.devset, "devset"), (args.rendered, "rendered")) if f is not None]
    with tempfile.TemporaryDirectory() as td:
        for folder, set_name in sets:
            for song in sorted(p for p in folder.iterdir() if (p / "meta.json").is_file()):
                tempo = float(json.loads((song / "meta.json").read_text())["tempo"])
                x, sr = sf.read(song / "mixture.flac", dtype="float32", always_2d=True)
                for _ in range(args.cuts):
                    row = {"set": set_name, "song": song.name,
                           **score_cut(x, sr, tempo, float(rng.uniform(0.05, 3.0)), set_name == "devset", Path(td))}
                    rows.append(row)
                    print(f"{set_name:8s} {song.name:10s} cut {row['cut']:5.2f} s  tempo {row['tempo']:6.1f} (true {tempo:6.1f})"
                          f"  beats {row['pickup']['beats']:.2f} / {row['none']['beats']:.2f}"
                          f"  bars {row['pickup']['bars']:.2f} / {row['none']['bars']:.2f}", flush=True)
    summary = summarise(rows)
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
