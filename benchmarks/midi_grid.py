"""Do the written MIDI files' beats and bars line up with the song's?

A DAW places a MIDI file's bars and beats from tick 0 at the file's tempo. A song that does not
start on a bar line (nearly every real one: a pickup, a breath, a cut-in excerpt) then sits off the
DAW's grid unless the file says where its bars fall (``stemscribe.midi.pickup_ticks``). For every
song of the sets below this cuts a random 0.05-3 s off the start of the mixture (three cuts per
song, seeded), tracks the beats of what is left (``estimate_beats``, as ``split`` does), writes a
MIDI file the way ``split`` does (with a pickup bar) and without one (the constant-tempo file from
0 that ``split`` wrote before), reads both back with pretty_midi and reports

* tracked beats: mir_eval's beat F-measure (70 ms) of ``estimate_beats`` against the reference;
* beats: of the reference beats, shifted by the cut, the share with a file beat within 50 ms;
* bars: the share of reference downbeats (in 4/4 songs) with a file bar line within 70 ms;
* quantize (``--quantize 1/16``): the song's true pitched notes (its ``bass``/``other``/``vocals``
  MIDI, shifted by the cut) snapped to 1/16 and written as ``split --quantize`` writes them, and as
  it did before 2026-12-06 (snapped to the tracked beats, one tempo): the share of onsets exactly
  on the file's 1/16 grid lines (counted from its bar lines), the median shift from the true onset,
  the onset F1 (50 ms) against the true notes after the round trip, and the share of cuts written
  with a tempo map.

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


def _tracked_quantize(track, grid, step_beats: float):
    """What ``quantize`` did before 2026-12-06: onsets snapped to ``step_beats`` subdivisions of
    the tracked beats (evenly between them, the global tempo beyond them)."""
    from stemscribe.types import Note, NoteTrack

    beat_len = 60.0 / max(grid.tempo, 1e-3)
    beats = np.asarray(grid.beats, dtype=float)
    if len(beats) < 2:
        beats = np.array([0.0, beat_len]) if len(beats) == 0 else np.array([beats[0], beats[0] + beat_len])
    t_max = max(n.end for n in track.notes) + 1.0
    n_before = int(np.ceil(beats[0] / beat_len)) + 1
    n_after = int(np.ceil(max(t_max - beats[-1], 0.0) / beat_len)) + 2
    ext = np.concatenate([beats[0] - beat_len * np.arange(n_before, 0, -1), beats,
                          beats[-1] + beat_len * np.arange(1, n_after + 1)])
    pos = np.interp(np.arange(0.0, len(ext) - 1 + 1e-9, step_beats), np.arange(len(ext)), ext)
    notes = [Note(n.pitch, max(float(pos[np.argmin(np.abs(pos - n.start))]), 0.0), 0.0, n.velocity) for n in track.notes]
    return NoteTrack(track.name, [Note(q.pitch, q.start, q.start + n.duration, q.velocity) for q, n in zip(notes, track.notes)])


def _on_grid(path: Path, step_ticks: int) -> tuple[np.ndarray, int]:
    """(for each note onset of a written file: on a grid line counted from the file's bar lines?,
    number of set_tempo events)."""
    import mido

    mf = mido.MidiFile(str(path))
    sigs, tick = [], 0
    for m in mf.tracks[0]:
        tick += m.time
        if m.type == "time_signature":
            sigs.append(tick)
    first_bar = sigs[-1] if sigs else 0
    ons = []
    for track in mf.tracks[1:]:
        tick = 0
        for m in track:
            tick += m.time
            if m.type == "note_on" and m.velocity > 0:
                ons.append(tick)
    n_tempos = sum(m.type == "set_tempo" for m in mf.tracks[0])
    return (np.asarray(ons) - first_bar) % step_ticks == 0, n_tempos


def score_quantize(song: Path, cut: float, dur: float, grid, tmp: Path) -> dict | None:
    """Quantize the song's true pitched notes (shifted by ``cut``) to 1/16 both ways; see the module doc."""
    import mir_eval
    import pretty_midi

    from stemscribe.midi import TICKS_PER_BEAT, quantize, read_midi, write_midi
    from stemscribe.types import Note, NoteTrack

    notes = []
    for stem in ("bass", "other", "vocals"):
        if (song / f"{stem}.mid").is_file():
            for inst in pretty_midi.PrettyMIDI(str(song / f"{stem}.mid")).instruments:
                notes += [Note(n.pitch, n.start - cut, n.end - cut, n.velocity) for n in inst.notes
                          if n.start - cut >= 0 and n.start - cut <= dur - 0.5]
    if not notes:
        return None
    track = NoteTrack("notes", sorted(notes, key=lambda n: n.start))
    ref_on = np.array([n.start for n in track.notes])
    ref = (np.stack([ref_on, ref_on + 0.1], axis=1), np.array([440.0 * 2 ** ((n.pitch - 69) / 12) for n in track.notes]))
    out = {}
    for name, q, follow in (("new", quantize(track, grid, "1/16"), True),
                            ("tracked", _tracked_quantize(track, grid, 0.25), False)):
        path = write_midi(tmp / f"q_{name}.mid", [q], grid, follow_beats=follow)
        on_grid, n_tempos = _on_grid(path, TICKS_PER_BEAT // 4)
        back = read_midi(path)[0][0].notes
        got = np.array([n.start for n in back])
        hz = np.array([440.0 * 2 ** ((n.pitch - 69) / 12) for n in back])
        f1 = mir_eval.transcription.precision_recall_f1_overlap(
            ref[0], ref[1], np.stack([got, got + 0.1], axis=1), hz, onset_tolerance=BEAT_TOL, offset_ratio=None)[2]
        out[name] = {"on_grid": float(on_grid.mean()), "shift_ms": float(np.median(np.abs(np.sort(got) - np.sort(ref_on))) * 1000),
                     "f1": float(f1), "tempo_map": n_tempos > 2}  # more than the pickup's and the song's
    return out


def score_cut(x: np.ndarray, sr: int, meta: dict, cut: float, tmp: Path, song: Path | None = None) -> dict:
    """Track the beats of ``x`` ``(n, channels)`` without its first ``cut`` seconds, write the MIDI
    both ways and score each file's beats and bar lines against the song's."""
    import pretty_midi

    from stemscribe.midi import _TimeMap, _tracks_to_midifile, time_map
    from stemscribe.transcribe.tempo import estimate_beats
    from stemscribe.types import Audio, Note, NoteTrack

    y = x[int(round(cut * sr)) :].T
    dur = y.shape[1] / sr
    grid = estimate_beats(Audio(y, sr))
    beats, bars = reference(meta, x.shape[0] / sr)
    ref_beats, ref_bars = (r[(r >= 0) & (r <= dur - 0.5)] for r in (beats - cut, bars - cut))
    # one note to the end, so that pretty_midi's beats and bar lines run through the song
    track = NoteTrack("drums", [Note(36, 0.0, dur + 1.0, 100)], 0, True)
    import mir_eval

    row = {"cut": round(cut, 3), "tempo": grid.tempo, "true_tempo": float(meta["tempo"]),
           "beat_f": float(mir_eval.beat.f_measure(ref_beats, np.asarray(grid.beats, dtype=float)))}
    written = time_map(grid)
    for name, tmap in (("pickup", written), ("none", _TimeMap(written.times, written.ticks, 0))):
        path = tmp / f"{name}.mid"
        _tracks_to_midifile([track], tmap, grid.time_signature).save(str(path))
        pm = pretty_midi.PrettyMIDI(str(path))
        row[name] = {"beats": hit_rate(ref_beats, np.asarray(pm.get_beats(), dtype=float), BEAT_TOL),
                     "bars": hit_rate(ref_bars, np.asarray(pm.get_downbeats(), dtype=float), BAR_TOL)}
    if song is not None:
        q = score_quantize(song, cut, dur, grid, tmp)
        if q is not None:
            row["quantize"] = q
    return row


def summarise(rows: list[dict]) -> dict:
    """Per set: cuts, cuts whose tempo is within 2 BPM, mean beat / bar hit rates both ways."""
    summary = {}
    for set_name in dict.fromkeys(r["set"] for r in rows):
        sel = [r for r in rows if r["set"] == set_name]
        summary[set_name] = {"cuts": len(sel), "tempo_right": sum(abs(r["tempo"] - r["true_tempo"]) <= 2.0 for r in sel),
                             "beat_f": round(float(np.mean([r["beat_f"] for r in sel])), 3)}
        for name in ("pickup", "none"):
            for what in ("beats", "bars"):
                vals = [r[name][what] for r in sel if np.isfinite(r[name][what])]
                if vals:
                    summary[set_name][f"{name}_{what}"] = round(float(np.mean(vals)), 3)
        for name in ("new", "tracked"):
            qs = [r["quantize"][name] for r in sel if "quantize" in r]
            for what in ("on_grid", "shift_ms", "f1", "tempo_map"):
                if qs:
                    summary[set_name][f"quantize_{name}_{what}"] = round(float(np.mean([q[what] for q in qs])), 3)
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
                           **score_cut(x, sr, meta, float(rng.uniform(0.05, 3.0)), Path(td), song)}
                    rows.append(row)
                    print(f"{set_name:8s} {song.name:10s} cut {row['cut']:5.2f} s  tempo {row['tempo']:6.1f} (true {row['true_tempo']:6.1f})"
                          f"  beats {row['pickup']['beats']:.2f} / {row['none']['beats']:.2f}"
                          f"  bars {row['pickup']['bars']:.2f} / {row['none']['bars']:.2f}"
                          + (f"  quantized on grid {row['quantize']['new']['on_grid']:.2f} / {row['quantize']['tracked']['on_grid']:.2f}"
                             f" F1 {row['quantize']['new']['f1']:.2f} / {row['quantize']['tracked']['f1']:.2f}"
                             f"{' tempo map' if row['quantize']['new']['tempo_map'] else ''}" if "quantize" in row else ""), flush=True)
    summary = summarise(rows)
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
