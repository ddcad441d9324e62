"""Notes from separated stems on real recordings, where no MIDI ground truth exists.

For each held-out MUSDB18 7 s clip (the 15 that training never sees, ``training/cache.py:
validation_names``), the true stems are transcribed (with each other as bleed references) and their
notes serve as the reference; the stems that ``lite`` separates from the mixture are transcribed the
same way and scored against them (mir_eval onset F1, 50 ms, as ``stemscribe eval``). It measures
what separation residue does to the notes on real music; the devset (``stemscribe eval
transcription --source separated``) measures it on rendered songs with exact MIDI.

    python benchmarks/transcription_real.py                       # mean onset F1 per pitched stem
    python benchmarks/transcription_real.py --json out.json       # also per clip

Reads ``../shared/data/musdb7s-train/*.stem.mp4`` (streams: mixture, drums, bass, other, vocals).
Clips whose reference stem has no notes are left out of that stem's mean.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MUSDB = ROOT.parent / "shared" / "data" / "musdb7s-train"
STEMS = ("drums", "bass", "other", "vocals")
PITCHED = ("vocals", "bass", "other")


def held_out(folder: Path) -> list[Path]:
    sys.path.insert(0, str(ROOT / "training"))
    from cache import validation_names

    files = {p.name[: -len(".stem.mp4")]: p for p in folder.glob("*.stem.mp4")}
    return [files[n] for n in validation_names(list(files))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=MUSDB)
    ap.add_argument("--model", default="lite")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from stemscribe import audio
    from stemscribe.evaluate import note_scores
    from stemscribe.separate import get_separator
    from stemscribe.transcribe.pitched import transcribe_stems

    sep = get_separator(args.model)
    rows = []
    for path in held_out(args.data):
        true = {s: audio.load(path, stream=i + 1) for i, s in enumerate(STEMS)}
        est = sep.separate(audio.load(path, stream=0))
        ref_tracks, est_tracks = transcribe_stems(true), transcribe_stems(est)
        row = {"clip": path.name, "n_ref": {}, "n_est": {}, "onset_f1": {}}
        for s in PITCHED:
            row["n_ref"][s], row["n_est"][s] = len(ref_tracks[s].notes), len(est_tracks[s].notes)
            if ref_tracks[s].notes:
                row["onset_f1"][s] = note_scores(ref_tracks[s], est_tracks[s])["onset"]["f1"]
        rows.append(row)
        print(f"{path.name[:40]:40s} " + " ".join(f"{s} {row['onset_f1'].get(s, float('nan')):.3f}" for s in PITCHED),
              flush=True)
    means = {s: float(np.mean([r["onset_f1"][s] for r in rows if s in r["onset_f1"]])) for s in PITCHED}
    counts = {s: sum(s in r["onset_f1"] for r in rows) for s in PITCHED}
    print(f"\nmodel {args.model}, {len(rows)} held-out clips: mean onset F1 of separated-stem notes against "
          "true-stem notes: " + ", ".join(f"{s} {means[s]:.3f} (n={counts[s]})" for s in PITCHED))
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "mean_onset_f1": means, "clips": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
