"""Sweep the vocal bleed gate (:func:`stemscribe.transcribe.pitched.drop_vocal_bleed`) on three sets.

The gate drops quiet vocal notes whose fundamental another stem shares: on separated stems those are
mostly ghosts of the band in the voice's rests, but a melody doubled by an instrument (common in
pop arrangements) also shares its fundamental. Each set is scored on the true stems and on the
stems ``lite`` separates from the mixture (mir_eval onset F1, 50 ms, as ``stemscribe eval``):

* ``devset``: ``../shared/data/devset`` (6 rendered songs, exact MIDI);
* ``rendered``: a labelled POP909 render (``python training/render_data.py --labelled DIR --count 40
  --seed 7``; the melody is often doubled by the piano part), exact MIDI;
* ``real``: the 15 held-out MUSDB18 clips; the reference is the *ungated* transcription of the true
  vocal stem (no MIDI exists; true stems carry no band in the voice's rests).

    python benchmarks/vocal_gate.py --rendered /tmp/rendered-eval [--json out.json]

The decoded notes (everything before the gate) are computed once per stem and cached under
``--cache`` (default ``/tmp/stemscribe-vocal-gate``), one folder per lite weights (named by their
sha256); each gate setting then only re-runs the gate. The voice-presence check that runs after
the gate in the package (:func:`stemscribe.transcribe.pitched.drop_absent_voice`) is left out, so
the gate is judged alone; ``benchmarks/vocal_presence.py`` measures that check.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEVSET = ROOT.parent / "shared" / "data" / "devset"
MUSDB = ROOT.parent / "shared" / "data" / "musdb7s-train"
STEMS = ("drums", "bass", "other", "vocals")
GATES = (-9.0, -12.0, -15.0, -20.0)
RATIOS = (-15.0, -10.0, -5.0, 0.0, 5.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rendered", type=Path, required=True, help="labelled render (training/render_data.py --labelled)")
    ap.add_argument("--devset", type=Path, default=DEVSET)
    ap.add_argument("--musdb", type=Path, default=MUSDB)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/stemscribe-vocal-gate"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import pretty_midi

    from stemscribe import audio
    from stemscribe.evaluate import note_scores
    from stemscribe.separate import get_separator
    from stemscribe.transcribe import basic_pitch_onnx as bp
    from stemscribe.transcribe import pitched as P
    from stemscribe.types import Note, NoteTrack

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from transcription_real import held_out

    sep = get_separator("lite")
    # one cache folder per lite weights (their sha256), so new weights never meet old stems' cache
    cache = args.cache / str(sep.manifest.get("sha256", "unknown"))[:12]
    cache.mkdir(parents=True, exist_ok=True)

    def cached(key: str, make):
        f = cache / f"{key}.pkl"
        if not f.exists():
            f.write_bytes(pickle.dumps(make()))
        return pickle.loads(f.read_bytes())

    def decoded(stems) -> tuple:
        """The vocal notes before the gate, the stem's features, the other stems' features, frame times."""
        s = P.DEFAULT_SETTINGS
        y = P._prepare(stems["vocals"], "vocals")
        times = bp.frame_times(bp.n_output_frames(y.size))
        feats = P.SpectralFeatures.compute(y, times)
        pg = bp.run_model(y, stem="vocals")
        notes = P.decode_mono(pg, feats, P.MONO_RANGES["vocals"], s, weak_fundamental=False, sounding=s.vocals_sounding,
                              enter=s.vocals_enter)
        others = [P.SpectralFeatures.compute(P._prepare(stems[o], o), times) for o in STEMS if o != "vocals"]
        return P.drop_quiet(notes, feats, s), feats, others, pg.times

    def track(notes, feats, times) -> NoteTrack:
        return NoteTrack(name="vocals", notes=P._to_notes(notes, feats, times), program=53)

    songs = []  # (set, key, reference track, true stems loader, mixture loader)
    for folder, name in ((args.devset, "devset"), (args.rendered, "rendered")):
        for d in sorted(p for p in folder.iterdir() if (p / "vocals.mid").is_file()):
            ref = [Note(n.pitch, n.start, n.end, n.velocity)
                   for n in pretty_midi.PrettyMIDI(str(d / "vocals.mid")).instruments[0].notes]
            songs.append((name, f"{name}_{d.name}", NoteTrack(name="vocals", notes=ref, program=53),
                          lambda d=d: {s: audio.load(d / f"{s}.flac") for s in STEMS},
                          lambda d=d: audio.load(d / "mixture.flac")))
    for i, path in enumerate(held_out(args.musdb)):
        def true(path=path):
            return {s: audio.load(path, stream=k + 1) for k, s in enumerate(STEMS)}

        notes, feats, _, times = cached(f"real{i:02d}_true", lambda true=true: decoded(true()))
        songs.append(("real", f"real{i:02d}", track(notes, feats, times), true,
                      lambda path=path: audio.load(path, stream=0)))

    settings = {"off": None, **{f"gate {g:g} dB, ratio {r:g} dB": (g, r) for g in GATES for r in RATIOS}}
    scores: dict[str, dict[str, list[float]]] = {v: {} for v in settings}
    for set_name, key, ref, true, mixture in songs:
        for source, stems in (("true", true), ("separated", lambda mixture=mixture: sep.separate(mixture()))):
            notes, feats, others, times = cached(f"{key}_{source}", lambda stems=stems: decoded(stems()))
            for v, gr in settings.items():
                kept = notes if gr is None else P.drop_vocal_bleed(
                    notes, feats, others,
                    dataclasses.replace(P.DEFAULT_SETTINGS, vocal_gate_db=gr[0], vocal_gate_ratio_db=gr[1]))
                f1 = note_scores(ref, track(kept, feats, times))["onset"]["f1"]
                scores[v].setdefault(f"{set_name}/{source}", []).append(f1)
        print(key, flush=True)
    means = {v: {k: float(np.mean(x)) for k, x in cols.items()} for v, cols in scores.items()}
    cols = list(next(iter(means.values())))
    print("\n| setting | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols))
    for v, row in means.items():
        print(f"| {v} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + " |")
    if args.json:
        args.json.write_text(json.dumps(means, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
