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

    python benchmarks/vocal_presence.py --rendered /tmp/reval [--train] [--json OUT] [--presence-db -18 -21]

``--presence-db`` also scores the check at other levels than the package's
(``DecodeSettings.vocal_presence_db``), one more column pair each. ``--empty-levels`` also reports,
per song, the level at which the check would empty its vocal part (the largest of
``stemscribe.transcribe.pitched.voice_presence`` over its notes): the lowest for songs with singing,
the share of instrumental remixes still holding notes at each level, and the README demo's
(``examples/demo.flac``). Re-run it when new ``lite`` weights ship: the level follows the separator.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from song_sets import STEMS, add_arguments, print_table, songs

    add_arguments(ap, train=True)
    ap.add_argument("--presence-db", type=float, nargs="+", default=[], metavar="DB",
                    help="also score the check at these levels (dB under the other stems)")
    ap.add_argument("--empty-levels", action="store_true",
                    help="also report the level at which the check empties each song's vocal part")
    args = ap.parse_args()

    from stemscribe.evaluate import note_scores
    from stemscribe.separate import get_separator
    from stemscribe.transcribe import pitched as P
    from stemscribe.types import Audio

    sep = get_separator("lite")
    settings = {"on": P.DEFAULT_SETTINGS, "off": dataclasses.replace(P.DEFAULT_SETTINGS, vocal_presence_db=-np.inf)}
    settings.update({f"at {db:g}": dataclasses.replace(P.DEFAULT_SETTINGS, vocal_presence_db=db) for db in args.presence_db})

    seen: list[float] = []  # the levels voice_presence returned during the last call of vocal_notes
    voice_presence = P.voice_presence

    def recording(*a, **k):  # drop_absent_voice looks voice_presence up in its module at each call
        levels = voice_presence(*a, **k)
        seen.append(np.inf if levels is None else float(levels.max()))
        return levels

    P.voice_presence = recording

    def vocal_notes(stems, s):
        seen.clear()
        return P.transcribe_pitched(stems["vocals"], stem="vocals", others={o: stems[o] for o in STEMS[:3]},
                                    settings=s).notes

    def empty_level(notes) -> float | None:
        """Right after ``notes = vocal_notes(stems, settings["off"])``: the level above which the check
        leaves no vocal note (None: no notes before the check)."""
        return (seen[-1] if seen else np.inf) if notes else None

    rows = []
    for set_name, name, ref, load in songs("vocals", devset=args.devset, rendered=args.rendered, musdb=args.musdb,
                                            train=args.train):
        true = load()
        if ref is None:
            ref = vocal_notes(true, P.DEFAULT_SETTINGS)
        sr = true["vocals"].sr
        row = {"set": set_name, "song": name, "seconds": true["vocals"].duration}
        if ref:
            stems = sep.separate(Audio(sum(true[s].samples for s in STEMS), sr))
            for label, s in settings.items():
                notes = vocal_notes(stems, s)
                row[f"f1 check {label}"] = note_scores(ref, notes)["onset"]["f1"]
                if label == "off" and args.empty_levels:
                    row["empty level"] = empty_level(notes)
        stems = sep.separate(Audio(sum(true[s].samples for s in STEMS[:3]), sr))
        for label, s in settings.items():
            notes = vocal_notes(stems, s)
            row[f"ghost notes check {label}"] = len(notes)
            if label == "off" and args.empty_levels:
                row["empty level instrumental"] = empty_level(notes)
        rows.append(row)
        print(json.dumps(row), flush=True)

    print_table(rows, "f1 check", "ghost notes check",
                "| set | songs (with vocal notes) | vocal F1, check off | check on "
                "| instrumental remix: ghost notes/s, check off | check on |")
    for db in args.presence_db:
        # this level's columns become the table's "on" (the package's level is left out)
        renamed = [{k.replace(f" at {db:g}", " on"): v for k, v in r.items() if not k.endswith(" on")} for r in rows]
        print_table(renamed, "f1 check", "ghost notes check",
                    f"| set (check at {db:g} dB) | songs (with vocal notes) | vocal F1, check off | check on "
                    "| instrumental remix: ghost notes/s, check off | check on |")
    if args.empty_levels:
        from stemscribe import audio

        demo = empty_level(vocal_notes(sep.separate(audio.load(ROOT / "examples" / "demo.flac")), settings["off"]))
        print_empty_levels(rows, [P.DEFAULT_SETTINGS.vocal_presence_db, *args.presence_db], demo)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def print_empty_levels(rows: list[dict], levels: list[float], demo: float | None) -> None:
    """The songs with singing nearest to being emptied, and the instrumentals that keep ghost notes."""
    sung = sorted((r["empty level"], r["set"], r["song"]) for r in rows if r.get("empty level") is not None)
    print("\nlevel that empties the vocal part, lowest songs with singing: "
          + ", ".join(f"{v:.1f} dB ({s}: {n})" for v, s, n in sung[:5]))
    print(f"examples/demo.flac: {demo:.1f} dB" if demo is not None else "examples/demo.flac: no vocal notes")
    print("\n| set | instrumentals | " + " | ".join(f"keeping notes at {v:g} dB" for v in levels) + " |")
    print("|---|---:|" + "---:|" * len(levels))
    for set_name in dict.fromkeys(r["set"] for r in rows):
        inst = [r["empty level instrumental"] for r in rows if r["set"] == set_name]
        cells = [f"{np.mean([x is not None and x >= v for x in inst]):.2f}" for v in levels]
        print(f"| {set_name} | {len(inst)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
