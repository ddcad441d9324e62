"""How well note velocities follow the reference's: stem power vs each note's own fundamental.

For every song of the devset and a labelled render (``training/render_data.py --labelled DIR``)
that has the stem, this transcribes the true stem (or, with ``--lite``, the stem that ``lite``
separates from the mixture), matches its notes to the reference MIDI (mir_eval, onset within 50 ms
and pitch within 50 cents, offsets ignored) and reports, as a mean over the songs with at least 5
matched notes of varying velocity,

* the Spearman rank correlation of the matched notes' velocities with the reference's, for the
  level that ``stemscribe.transcribe.pitched._note_levels_db`` gives with ``per_note=False`` (the
  stem's power over the note) and ``per_note=True`` (its median plus each note's own fundamental's
  deviation), the two ways velocities are made;
* the standard deviation of the velocities within a song (reference, and ours both ways).

    python benchmarks/velocity.py --rendered benchmarks/results/rendered-eval [--stem other] [--lite]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from song_sets import STEMS, add_arguments, songs

    add_arguments(ap)
    ap.add_argument("--stem", default="other", choices=("vocals", "bass", "other"))
    ap.add_argument("--lite", action="store_true", help="transcribe lite's stems of the mixture, not the true stems")
    args = ap.parse_args()

    import mir_eval
    from scipy.stats import spearmanr

    from stemscribe.evaluate import _note_arrays
    from stemscribe.separate import get_separator
    from stemscribe.transcribe import pitched as P
    from stemscribe.types import Audio

    # keep both levels of the notes that the transcriber builds
    seen: dict[str, np.ndarray] = {}
    to_notes = P._to_notes

    def spy(notes, feats, times, *, per_note=False):
        ordered = sorted(notes)
        seen["stem"] = P._note_levels_db(ordered, feats, per_note=False)
        seen["per_note"] = P._note_levels_db(ordered, feats, per_note=True)
        return to_notes(notes, feats, times, per_note=per_note)

    P._to_notes = spy
    sep = get_separator("lite") if args.lite else None
    rows = []
    for set_name, name, ref, load in songs(args.stem, devset=args.devset, rendered=args.rendered, musdb=None):
        if not ref:
            continue  # also skips the MUSDB clips: no reference velocities
        stems = load()
        if sep is not None:
            stems = sep.separate(Audio(sum(stems[s].samples for s in STEMS), stems[args.stem].sr))
        notes = P.transcribe_pitched(stems[args.stem], stem=args.stem,
                                     others={o: stems[o] for o in STEMS if o != args.stem}).notes
        if len(notes) < 5:
            continue
        # the intervals and Hz that stemscribe.evaluate.note_scores matches, offsets ignored
        matched = mir_eval.transcription.match_notes(*_note_arrays(ref), *_note_arrays(notes), offset_ratio=None)
        ref_vel = np.array([ref[i].velocity for i, _ in matched])
        if len(matched) < 5 or ref_vel.std() == 0:
            continue
        row = {"set": set_name, "song": name, "matched": len(matched), "std reference": float(ref_vel.std())}
        for way in ("stem", "per_note"):
            vel = np.clip(np.round(127 + 2.4 * seen[way]), 1, 127)
            row[f"rho {way}"] = float(spearmanr(ref_vel, vel[[j for _, j in matched]])[0])
            row[f"std {way}"] = float(vel.std())
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(f"{args.stem}, {'lite' if sep else 'true'} stems, {len(rows)} songs:")
    for key in ("rho stem", "rho per_note", "std reference", "std stem", "std per_note"):
        print(f"  {key}: {np.mean([r[key] for r in rows]):.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
