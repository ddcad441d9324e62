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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEVSET = ROOT.parent / "shared" / "data" / "devset"
STEMS = ("drums", "bass", "other", "vocals")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rendered", type=Path, help="labelled render (training/render_data.py --labelled)")
    ap.add_argument("--devset", type=Path, default=DEVSET)
    ap.add_argument("--musdb", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import pretty_midi

    from stemscribe import audio
    from stemscribe.evaluate import drum_scores
    from stemscribe.separate import get_separator
    from stemscribe.transcribe.drums import transcribe_drums
    from stemscribe.types import Audio, Note

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from transcription_real import MUSDB, held_out

    songs = []  # (set, name, reference notes or None, stems loader)
    for folder, name in ((args.devset, "devset"), (args.rendered, "rendered")):
        if folder is None:
            continue
        for d in sorted(p for p in folder.iterdir() if (p / "drums.mid").is_file()):
            ref = [Note(n.pitch, n.start, n.end, n.velocity)
                   for n in pretty_midi.PrettyMIDI(str(d / "drums.mid")).instruments[0].notes]
            songs.append((name, d.name, ref, lambda d=d: {s: audio.load(d / f"{s}.flac") for s in STEMS}))
    for path in held_out(args.musdb or MUSDB):
        songs.append(("real", path.name, None,
                      lambda path=path: {s: audio.load(path, stream=k + 1) for k, s in enumerate(STEMS)}))

    sep = get_separator("lite")
    rows = []
    for set_name, name, ref, load in songs:
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
                if label == "mixture":
                    row[f"f1 gate {gate}"] = drum_scores(ref, est)["all"]["f1"]
                else:
                    row[f"ghost hits gate {gate}"] = len(est)
        rows.append(row)
        print(json.dumps(row), flush=True)

    print("\n| set | songs | drum F1, gate off | drum F1, gate on | drumless: ghost hits/s, gate off | gate on |")
    print("|---|---:|---:|---:|---:|---:|")
    for set_name in dict.fromkeys(r["set"] for r in rows):
        rs = [r for r in rows if r["set"] == set_name]
        seconds = sum(r["seconds"] for r in rs)
        print(f"| {set_name} | {len(rs)} | {np.mean([r['f1 gate off'] for r in rs]):.3f} | "
              f"{np.mean([r['f1 gate on'] for r in rs]):.3f} | "
              f"{sum(r['ghost hits gate off'] for r in rs) / seconds:.2f} | "
              f"{sum(r['ghost hits gate on'] for r in rs) / seconds:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
