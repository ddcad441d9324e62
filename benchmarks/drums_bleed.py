"""Ghost drum hits from separation bleed, and what the drum bleed gate does about them.

The drum transcriber reads any attack in the drum stem as a hit, whatever its level. When a song
has no drums, a separated drum stem still holds the other instruments' attacks, so it used to
come out with about as many "hits" as a song with drums. With the song's other stems given
(``transcribe_drums(..., others=...)``, as ``stemscribe split`` does), hits far below the other
stems in their band are dropped (``stemscribe.transcribe.drums``, module notes, step 9).

For every song of three sets, this separates (``lite``)

* the mixture: drum hits are scored against the reference (pooled onset F1 over the five
  drum classes, 50 ms, ``stemscribe.evaluate.drum_scores``);
* a drumless remix of the true bass + other + vocals stems: every hit is a ghost; it reports
  hits per second,

and transcribes the separated drum stem with and without the other stems.

Sets: the devset and a labelled render (``training/render_data.py --labelled DIR``; reference:
``drums.mid``), and the 15 held-out MUSDB18 7 s clips (reference: the true drum stem's
transcription, with the true other stems).

    python benchmarks/drums_bleed.py --rendered /tmp/reval [--devset DIR] [--musdb DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from song_sets import STEMS, add_arguments, print_table, songs

    add_arguments(ap)
    args = ap.parse_args()

    from stemscribe.evaluate import drum_scores
    from stemscribe.separate import get_separator
    from stemscribe.transcribe.drums import transcribe_drums
    from stemscribe.types import Audio

    sep = get_separator("lite")
    rows = []
    for set_name, name, ref, load in songs("drums", devset=args.devset, rendered=args.rendered, musdb=args.musdb):
        true = load()
        if ref is None:
            ref = transcribe_drums(true["drums"], others={s: true[s] for s in STEMS[1:]}).notes
        sr = true["drums"].sr
        mixture = Audio(sum(true[s].samples for s in STEMS), sr)
        drumless = Audio(sum(true[s].samples for s in STEMS[1:]), sr)
        row = {"set": set_name, "song": name, "seconds": mixture.duration}
        for label, mix in (("mixture", mixture), ("drumless", drumless)):
            stems = sep.separate(mix)
            rest = {s: stems[s] for s in STEMS[1:]}
            for gate, others in (("off", None), ("on", rest)):
                est = transcribe_drums(stems["drums"], others=others).notes
                if label == "drumless":
                    row[f"ghost hits gate {gate}"] = len(est)
                elif ref:
                    row[f"f1 gate {gate}"] = drum_scores(ref, est)["all"]["f1"]
        rows.append(row)
        print(json.dumps(row), flush=True)

    print_table(rows, "f1 gate", "ghost hits gate",
                "| set | songs (with drums) | drum F1, gate off | gate on | drumless remix: ghost hits/s, gate off | gate on |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
