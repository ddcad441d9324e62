"""Bass notes an octave up: the model's posterior ratio against the spectral test.

``stemscribe.transcribe.pitched._fix_octaves_mono`` moves a bass note an octave down when the
model's posterior there is at least ``_BASS_OCTAVE_TIE`` of the note's own. Before, bass used the
voices' spectral test (the odd partial at +7 within 10 dB, the fundamental within 20 dB, and a
posterior ratio of at least 0.5). For every song of the sets below this separates the mixture with
``lite`` and transcribes the bass stem both ways (and the true bass stem of the devset and the
render both ways), and reports

* onset F1 (mir_eval, 50 ms) against the reference: the stem's MIDI for the devset and a labelled
  render (``training/render_data.py --labelled DIR``), the notes of the true bass stem for the
  MUSDB clips (transcribed with the current rule);
* of the lite notes before the check that start within 100 ms of a reference note of the same
  pitch class, how many sit at the reference's pitch or an octave above it, and how many of each
  the two rules move down.

    python benchmarks/bass_octave.py --rendered benchmarks/results/rendered-eval [--train] [--json OUT]
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

    add_arguments(ap, train=True)
    args = ap.parse_args()

    from stemscribe.evaluate import note_scores
    from stemscribe.separate import get_separator
    from stemscribe.transcribe import basic_pitch_onnx as bp
    from stemscribe.transcribe import pitched as P
    from stemscribe.types import Audio

    current = P._fix_octaves_mono

    def spectral(notes, pg, feats, pitch_range, *, weak_fundamental):
        """The rule before: the voices' spectral test, with the fundamental allowed 20 dB down."""
        if not weak_fundamental:
            return current(notes, pg, feats, pitch_range, weak_fundamental=False)
        out = []
        for a, b, p in notes:
            k = p - bp.MIDI_OFFSET
            if p - 12 >= pitch_range[0] and k - 12 >= 0:
                e_cur = max(P._band_power(feats, a, b, k), P._band_power(feats, a, b, k + 12))
                if (pg.note[a:b, k - 12].mean() >= 0.5 * pg.note[a:b, k].mean()
                        and P._band_power(feats, a, b, k + 7) >= 0.1 * e_cur
                        and P._band_power(feats, a, b, k - 12) >= 0.01 * e_cur):
                    out.append((a, b, p - 12))
                    continue
            out.append((a, b, p))
        return out

    def bass_notes(stems, rule):
        """The stem's bass notes with ``rule`` as the octave check; also (before, after, times) of that check."""
        seen = {}

        def fix(notes, pg, feats, pitch_range, *, weak_fundamental):
            after = rule(notes, pg, feats, pitch_range, weak_fundamental=weak_fundamental)
            seen.update(before=list(notes), after=after, times=pg.times)
            return after

        P._fix_octaves_mono = fix
        try:
            notes = P.transcribe_pitched(stems["bass"], stem="bass", others={o: stems[o] for o in STEMS if o != "bass"}).notes
        finally:
            P._fix_octaves_mono = current
        return notes, seen

    def moves(ref, seen):
        """[notes at the reference pitch, of them moved, notes an octave up, of them moved]."""
        out = [0, 0, 0, 0]
        for (a, _, p), (_, _, q) in zip(seen.get("before", []), seen.get("after", [])):
            t = seen["times"][a]
            near = [r for r in ref if r.pitch % 12 == p % 12 and abs(r.start - t) < 0.1]
            if near:
                d = p - min(near, key=lambda r: abs(r.start - t)).pitch
                if d in (0, 12):
                    i = 0 if d == 0 else 2
                    out[i] += 1
                    out[i + 1] += int(q != p)
        return out

    sep = get_separator("lite")
    rows = []
    for set_name, name, ref, load in songs("bass", devset=args.devset, rendered=args.rendered, musdb=args.musdb,
                                            train=args.train):
        true = load()
        if ref is None:
            ref = bass_notes(true, current)[0]
        if not ref:
            continue
        lite = sep.separate(Audio(sum(true[s].samples for s in STEMS), true["bass"].sr))
        row = {"set": set_name, "song": name}
        for rule_name, rule in (("spectral", spectral), ("posterior", current)):
            notes, seen = bass_notes(lite, rule)
            row[f"f1 lite {rule_name}"] = note_scores(ref, notes)["onset"]["f1"]
            row[f"moves {rule_name}"] = moves(ref, seen)
            if set_name not in ("real", "train"):  # there the reference is the true stem's own notes
                row[f"f1 true {rule_name}"] = note_scores(ref, bass_notes(true, rule)[0])["onset"]["f1"]
        rows.append(row)
        print(json.dumps(row), flush=True)

    print("| set | songs | lite F1: spectral | posterior | true F1: spectral | posterior "
          "| right / octave-up notes | moved by spectral | by posterior |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |")
    for set_name in dict.fromkeys(r["set"] for r in rows):
        rs = [r for r in rows if r["set"] == set_name]

        def mean(key, rs=rs):
            vals = [r[key] for r in rs if key in r]
            return f"{np.mean(vals):.3f}" if vals else "-"

        ms = {k: np.sum([r[f"moves {k}"] for r in rs], axis=0) for k in ("spectral", "posterior")}
        print(f"| {set_name} | {len(rs)} | {mean('f1 lite spectral')} | {mean('f1 lite posterior')} "
              f"| {mean('f1 true spectral')} | {mean('f1 true posterior')} | {ms['spectral'][0]} / {ms['spectral'][2]} "
              f"| {ms['spectral'][1]} right, {ms['spectral'][3]} up | {ms['posterior'][1]} right, {ms['posterior'][3]} up |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
