"""Do the written MIDI files' beats and bars line up with the song's?

A DAW places a MIDI file's bars and beats from tick 0 at the file's tempo. A song that does not
start on a bar line (nearly every real one: a pickup, a breath, a cut-in excerpt) then sits off the
DAW's grid unless the file says where its bars fall (``stemscribe.midi.pickup_ticks``). For every
song of the sets below this cuts a random 0.05-3 s off the start of the mixture (three cuts per
song, seeded), tracks the beats of what is left (``estimate_beats``, as ``split`` does), writes a
MIDI file the way ``split`` does (with a pickup bar) and without one (the constant-tempo file from
0 that ``split`` wrote before), reads both back with pretty_midi and reports

* beats: of the reference beats, shifted by the cut, the share with a file beat within 50 ms;
* bars: the share of reference downbeats (in 4/4 songs) with a file bar line within 70 ms.

The reference: a labelled render's ``meta.json`` carries POP909's annotated beats and downbeats
(``training/render_data.py --labelled``, or ``--annotate`` for a set rendered before); a devset
song starts on a downbeat in 4/4 at its ``tempo``.

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


def reference(meta: dict, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """True beats and bar lines (s) of a song: annotated in a labelled render's meta (no bar lines
    unless it is in 4/4), else (the devset) from 0 at the tempo, a bar every 4 beats."""
    if "beats" in meta:
        bars = meta["downbeats"] if meta.get("beats_per_bar") == 4 else []
        return np.asarray(meta["beats"], dtype=float), np.asarray(bars, dtype=float)
    beats = np.arange(0.0, seconds, 60.0 / float(meta["tempo"]))
    return beats, beats[::4]


def score_cut(x: np.ndarray, sr: int, meta: dict, cut: float, tmp: Path) -> dict:
    """Track the beats of ``x`` ``(n, channels)`` without its first ``cut`` seconds, write the MIDI
    both ways and score each file's beats and bar lines against the song's."""
    import pretty_midi

    from stemscribe.midi import _tracks_to_midifile, pickup_ticks
    from stemscribe.transcribe.tempo import estimate_beats
    from stemscribe.types import Audio, Note, NoteTrack

    y = x[int(round(cut * sr)) :].T
    dur = y.shape[1] / sr
    grid = estimate_beats(Audio(y, sr))
    beats, bars = reference(meta, x.shape[0] / sr)
    ref_beats, ref_bars = (r[(r >= 0) & (r <= dur - 0.5)] for r in (beats - cut, bars - cut))
    # one note to the end, so that pretty_midi's beats and bar lines run through the song
    track = NoteTrack("drums", [Note(36, 0.0, dur + 1.0, 100)], 0, True)
    row = {"cut": round(cut, 3), "tempo": grid.tempo, "true_tempo": float(meta["tempo"])}
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
                meta = json.loads((song / "meta.json").read_text())
                x, sr = sf.read(song / "mixture.flac", dtype="float32", always_2d=True)
                for _ in range(args.cuts):
                    row = {"set": set_name, "song": song.name,
                           **score_cut(x, sr, meta, float(rng.uniform(0.05, 3.0)), Path(td))}
                    rows.append(row)
                    print(f"{set_name:8s} {song.name:10s} cut {row['cut']:5.2f} s  tempo {row['tempo']:6.1f} (true {row['true_tempo']:6.1f})"
                          f"  beats {row['pickup']['beats']:.2f} / {row['none']['beats']:.2f}"
                          f"  bars {row['pickup']['bars']:.2f} / {row['none']['bars']:.2f}", flush=True)
    summary = summarise(rows)
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
