"""The song sets that the ghost-note benchmarks (``drums_bleed.py``, ``vocal_presence.py``) walk.

``songs(stem, ...)`` lists ``(set, name, reference, load)`` per song: the devset and a labelled
render (``training/render_data.py --labelled DIR``), whose reference is the stem's MIDI (an empty
list when the song has none of that stem), and the held-out MUSDB18 7 s clips (and with ``train``
the 79 others), whose reference is ``None`` (no MIDI exists: the caller transcribes the true stem).
``load()`` returns the four true stems as :class:`stemscribe.types.Audio`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEVSET = ROOT.parent / "shared" / "data" / "devset"
STEMS = ("drums", "bass", "other", "vocals")


def add_arguments(ap, *, train: bool = False) -> None:
    """The options that pick the sets: ``--rendered``, ``--devset``, ``--musdb`` (and with ``train``
    ``--train``), plus ``--json``."""
    ap.add_argument("--rendered", type=Path, help="labelled render (training/render_data.py --labelled)")
    ap.add_argument("--devset", type=Path, default=DEVSET)
    ap.add_argument("--musdb", type=Path, help="folder of MUSDB18 .stem.mp4 clips (default: ../shared/data/musdb7s-train)")
    ap.add_argument("--json", type=Path, help="also write every song's row here")
    if train:
        ap.add_argument("--train", action="store_true", help="also the 79 MUSDB clips that lite was trained on")


def songs(stem: str, *, devset: Path | None = DEVSET, rendered: Path | None = None, musdb: Path | None = None,
          train: bool = False) -> list[tuple]:
    import pretty_midi

    from stemscribe import audio
    from stemscribe.types import Note

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from transcription_real import MUSDB, held_out

    out = []
    for folder, set_name in ((devset, "devset"), (rendered, "rendered")):
        if folder is None:
            continue
        for d in sorted(p for p in folder.iterdir() if (p / "meta.json").is_file()):
            mid = d / f"{stem}.mid"
            ref = [] if not mid.is_file() else [Note(n.pitch, n.start, n.end, n.velocity)
                                                for n in pretty_midi.PrettyMIDI(str(mid)).instruments[0].notes]
            out.append((set_name, d.name, ref, lambda d=d: {s: audio.load(d / f"{s}.flac") for s in STEMS}))
    musdb = musdb or MUSDB
    held = held_out(musdb)
    clips = [("real", p) for p in held]
    if train:
        clips += [("train", p) for p in sorted(musdb.glob("*.stem.mp4")) if p not in held]
    for set_name, path in clips:
        out.append((set_name, path.name, None,
                    lambda path=path: {s: audio.load(path, stream=k + 1) for k, s in enumerate(STEMS)}))
    return out


def print_table(rows: list[dict], f1: str, ghosts: str, header: str) -> None:
    """Per set: songs (with a reference), mean ``"{f1} off"``/``"{f1} on"`` over the songs that have
    them, ``"{ghosts} off"``/``"{ghosts} on"`` summed per second of audio, and how many songs come out
    with none at all (off -> on), as a markdown table; ``header`` names the first five columns."""
    import numpy as np

    print(f"\n{header} songs left empty, off -> on |\n|---|---:|---:|---:|---:|---:|---:|")
    for set_name in dict.fromkeys(r["set"] for r in rows):
        rs = [r for r in rows if r["set"] == set_name]
        scored = [r for r in rs if f"{f1} on" in r]
        seconds = sum(r["seconds"] for r in rs)
        empty = [sum(r[f"{ghosts} {k}"] == 0 for r in rs) for k in ("off", "on")]
        print(f"| {set_name} | {len(rs)} ({len(scored)}) | {np.mean([r[f'{f1} off'] for r in scored]):.3f} | "
              f"{np.mean([r[f'{f1} on'] for r in scored]):.3f} | "
              f"{sum(r[f'{ghosts} off'] for r in rs) / seconds:.2f} | {sum(r[f'{ghosts} on'] for r in rs) / seconds:.2f} | "
              f"{empty[0]} -> {empty[1]} |")
