"""``stemscribe transcribe AUDIO --stem STEM --out FILE.mid``: one stem's audio to MIDI."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "transcribe",
        help="transcribe one stem's audio to MIDI",
        description="Transcribe a single stem recording to a MIDI file carrying the recording's tempo.",
    )
    p.add_argument("audio", metavar="AUDIO", help="audio file of one stem")
    p.add_argument("--stem", default="auto", choices=("vocals", "bass", "drums", "other", "auto"),
                   help="what the recording is; auto guesses (default)")
    p.add_argument("--out", "-o", required=True, metavar="FILE.mid", help="MIDI file to write")
    p.add_argument("--quantize", default=None, metavar="GRID", help="snap onsets to a grid, e.g. 1/16")
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..audio import load
    from ..errors import OutputError
    from ..midi import parse_grid, write_midi
    from ..pipeline import transcribe
    from ..transcribe.tempo import estimate_beats
    from . import tempo_text

    if args.quantize:
        parse_grid(args.quantize)
    out = Path(args.out)
    if out.is_dir():
        raise OutputError(f"--out {out} is a folder; give a file name such as {out / 'notes.mid'}")
    if not out.parent.exists():
        raise OutputError(f"output folder {out.parent} does not exist")
    audio = load(args.audio)
    grid = estimate_beats(audio)
    track = transcribe(audio, stem=args.stem, quantize=args.quantize, grid=grid)
    try:
        write_midi(out, [track], grid, follow_beats=bool(args.quantize))
    except PermissionError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror}") from None
    print(f"{args.audio} -> {out}  [{track.name}, {len(track)} notes, {tempo_text(grid.tempo, len(grid.beats))}]")
    return 0
