"""``stemscribe split INPUT... --out DIR``: stems + per-stem MIDI + report for each input."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "split",
        help="split songs into stems and per-stem MIDI",
        description="Split each INPUT into drums, bass, other and vocals audio, a MIDI file per stem, "
        "a combined MIDI file with the song's tempo, and report.json, under DIR/<input name>/ "
        "(inputs of one run that share a name get their folder's name in front: DIR/dev00-mixture/).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio or video files (wav, flac, mp3, ogg, m4a, mp4...)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    p.add_argument("--model", "-m", default=None, help="separation model (see `stemscribe models`); "
                   "default: htdemucs if its weights are present, else the embedded lite model")
    p.add_argument("--model-dir", default=None, metavar="DIR",
                   help="folder with model weights (also: STEMSCRIBE_MODEL_DIR)")
    p.add_argument("--stems", default=None, metavar="LIST", help="comma-separated stems to write, e.g. vocals,bass")
    p.add_argument("--no-midi", action="store_true", help="write audio stems only")
    p.add_argument("--format", default="wav", choices=("wav", "flac", "mp3"), help="stem audio format")
    p.add_argument("--quantize", default=None, metavar="GRID", help="snap MIDI onsets to a grid, e.g. 1/16")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    from ..errors import StemscribeError
    from ..pipeline import output_names, split, validate_stems
    from . import tempo_text
    from ._progress import StageBars

    from ..separate import resolve_model

    stems = validate_stems(args.stems)  # bad options fail once, before any work
    resolve_model(args.model, model_dir=args.model_dir)
    if args.quantize:
        from ..midi import parse_grid

        parse_grid(args.quantize)
    failed = 0
    codes: set[int] = set()  # the failed inputs' exit codes (errors.py)
    notice_shown = False
    for path, name in zip(args.inputs, output_names(args.inputs)):
        bars = StageBars(prefix=f"{path[-16:]}: " if len(args.inputs) > 1 else "", enabled=None if not args.quiet else False)
        try:
            result = split(path, out_dir=args.out, model=args.model, stems=stems, midi=not args.no_midi,
                           format=args.format, quantize=args.quantize, model_dir=args.model_dir, name=name, progress=bars)
        except StemscribeError as exc:
            bars.close()
            if args.debug:
                raise
            print(f"stemscribe: error: {path}: {exc}", file=sys.stderr)
            failed += 1
            codes.add(exc.exit_code)
            continue
        bars.close()
        for note in result.input_notes:
            print(f"stemscribe: note: {path}: {note}", file=sys.stderr)
        if result.notice and not notice_shown:
            print(f"stemscribe: {result.notice}", file=sys.stderr)
            notice_shown = True
        r = result.report
        counts = ", ".join(f"{s} {n}" for s, n in r["note_counts"].items())
        tempo = tempo_text(r["tempo_bpm"], len(r["beats"]))
        print(f"{path} -> {result.out_dir}  [{r['model']}, {tempo}, {r['key'] or 'key unknown'}"
              + (f", notes: {counts}" if counts else "") + "]")
    if failed:
        if len(args.inputs) > 1:
            print(f"stemscribe: {failed} of {len(args.inputs)} inputs failed", file=sys.stderr)
        # the error's own code (2 bad input, 3 model, 4 output...), as every other command exits,
        # when the failures agree; 1 when they differ
        return codes.pop() if len(codes) == 1 else 1
    return 0
