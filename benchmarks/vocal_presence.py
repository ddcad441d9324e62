"""Ghost vocal notes in instrumental music, and what the voice-presence check does about them.

A separated vocal stem of a song without singing still holds what the separator misplaced (a lead
instrument's line, mostly), and its notes used to come out as a vocal part. With the song's other
stems given, ``stemscribe.transcribe.pitched.drop_absent_voice`` drops the notes of stretches where
the vocal stem stays far under the rest of the band (``DecodeSettings.vocal_presence_db``).

For every song of the sets below, this separates (``lite``)

* the mixture: vocal notes are scored against the reference (mir_eval onset F1, 50 ms, as
  ``stemscribe eval``), on the songs whose reference has vocal notes;
* an instrumental remix of the true drums + bass + other stems: every vocal note is a ghost; it
  reports notes per second,

and transcribes the separated vocal stem with the check (default settings) and without it.

Sets: the devset and a labelled render (``training/render_data.py --labelled DIR``; reference:
``vocals.mid``), the 15 held-out MUSDB18 7 s clips and, with ``--train``, the 79 others (reference:
the notes of the true vocal stem, transcribed with the true other stems).

    python benchmarks/vocal_presence.py --rendered /tmp/reval [--train] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
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
    ap.add_argument("--train", action="store_true", help="also the 79 MUSDB clips that lite was trained on")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import pretty_midi

    from stemscribe import audio
    from stemscribe.evaluate import note_scores
    from stemscribe.separate import get_separator
    from stemscribe.transcribe import pitched as P
    from stemscribe.types import Audio, Note

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from transcription_real import MUSDB, held_out

    songs = []  # (set, name, reference notes or None, stems loader)
    for folder, name in ((args.devset, "devset"), (args.rendered, "rendered")):
        if folder is None:
            continue
        for d in sorted(p for p in folder.iterdir() if (p / "meta.json").is_file()):
            mid = d / "vocals.mid"
            ref = [] if not mid.is_file() else [Note(n.pitch, n.start, n.end, n.velocity)
                                                for n in pretty_midi.PrettyMIDI(str(mid)).instruments[0].notes]
            songs.append((name, d.name, ref, lambda d=d: {s: audio.load(d / f"{s}.flac") for s in STEMS}))
    musdb = args.musdb or MUSDB
    held = held_out(musdb)
    clips = [("real", p) for p in held]
    if args.train:
        clips += [("train", p) for p in sorted(musdb.glob("*.stem.mp4")) if p not in held]
    for set_name, path in clips:
        songs.append((set_name, path.name, None,
                      lambda path=path: {s: audio.load(path, stream=k + 1) for k, s in enumerate(STEMS)}))

    sep = get_separator("lite")
    settings = {"on": P.DEFAULT_SETTINGS, "off": dataclasses.replace(P.DEFAULT_SETTINGS, vocal_presence_db=-np.inf)}

    def vocal_notes(stems, s):
        return P.transcribe_pitched(stems["vocals"], stem="vocals", others={o: stems[o] for o in STEMS[:3]},
                                    settings=s).notes

    rows = []
    for set_name, name, ref, load in songs:
        true = load()
        if ref is None:
            ref = vocal_notes(true, P.DEFAULT_SETTINGS)
        sr = true["vocals"].sr
        row = {"set": set_name, "song": name, "seconds": true["vocals"].duration}
        if ref:
            stems = sep.separate(Audio(sum(true[s].samples for s in STEMS), sr))
            for label, s in settings.items():
                row[f"f1 check {label}"] = note_scores(ref, vocal_notes(stems, s))["onset"]["f1"]
        stems = sep.separate(Audio(sum(true[s].samples for s in STEMS[:3]), sr))
        for label, s in settings.items():
            row[f"ghost notes check {label}"] = len(vocal_notes(stems, s))
        rows.append(row)
        print(json.dumps(row), flush=True)

    print("\n| set | songs (with vocal notes) | vocal F1, check off | check on "
          "| instrumental remix: ghost notes/s, check off | check on |")
    print("|---|---:|---:|---:|---:|---:|")
    for set_name in dict.fromkeys(r["set"] for r in rows):
        rs = [r for r in rows if r["set"] == set_name]
        sung = [r for r in rs if "f1 check on" in r]
        seconds = sum(r["seconds"] for r in rs)
        print(f"| {set_name} | {len(rs)} ({len(sung)}) | {np.mean([r['f1 check off'] for r in sung]):.3f} | "
              f"{np.mean([r['f1 check on'] for r in sung]):.3f} | "
              f"{sum(r['ghost notes check off'] for r in rs) / seconds:.2f} | "
              f"{sum(r['ghost notes check on'] for r in rs) / seconds:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
