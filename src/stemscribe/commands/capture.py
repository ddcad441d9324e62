"""``stemscribe capture RECORDING --out DIR [--stem other|bass|vocals]``: a sampler instrument from a recording."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "capture",
        help="turn a recording of an instrument into a playable SFZ sampler instrument",
        description="Transcribe a recording of one instrument, cut its clean notes (onset to end of release), keep "
        "the best take per pitch and velocity layer, loop sustained sounds and write an SFZ instrument with WAV "
        "samples to DIR. Play it with 'stemscribe render MIDI --instrument DIR' or load DIR/*.sfz in any SFZ sampler.",
    )
    p.add_argument("recording", metavar="RECORDING", help="audio of one instrument (a separated stem works)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="folder to write (an earlier capture there is replaced; any other non-empty folder is refused)")
    p.add_argument("--stem", default="other", choices=("other", "bass", "vocals"),
                   help="what the recording is, for the transcription (default other; bass and vocals are monophonic)")
    p.add_argument("--midi", default=None, metavar="FILE.mid",
                   help="use these notes (e.g. the recording's known MIDI) instead of transcribing")
    p.add_argument("--max-shift", type=int, default=4, metavar="SEMITONES",
                   help="cover keys up to this far from a sampled pitch by pitch-shifting it (default 4)")
    p.add_argument("--layers", type=int, default=3, help="velocity layers at most (default 3)")
    p.add_argument("--no-chords", dest="chords", action="store_false",
                   help="use only notes played alone (default: pitches only heard in chords are taken out of them)")
    p.add_argument("--retune", action="store_true",
                   help="tune every sample to A440 equal temperament (default: keep the recording's tuning)")
    p.add_argument("--name", default=None, help="instrument name (default: the recording's file name)")
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..audio import load
    from ..capture import capture_instrument, write_instrument
    from ..errors import BadArgumentError, BadInputError

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BadArgumentError(f"--out {out} is a file; give a folder name")
    if not 0 <= args.max_shift <= 12:
        raise BadArgumentError(f"--max-shift must be 0..12 semitones, got {args.max_shift}")
    if not 1 <= args.layers <= 8:
        raise BadArgumentError(f"--layers must be 1..8, got {args.layers}")
    audio = load(args.recording)
    notes = None
    if args.midi:
        from ..midi import read_midi

        tracks, _ = read_midi(args.midi)
        notes = [n for t in tracks if not t.is_drum for n in t.notes]
        if not notes:
            raise BadInputError(f"{args.midi} has no pitched notes")
    name = args.name or Path(args.recording).stem
    cap = capture_instrument(audio, stem=args.stem, notes=notes, max_shift=args.max_shift, layers=args.layers,
                             chords=args.chords, retune=args.retune, name=name)
    sfz = write_instrument(cap, out, comment=f"captured by stemscribe from {Path(args.recording).name}")
    s = cap.stats
    lo, hi = s["key_range"]
    print(f"{args.recording} -> {sfz}  [{s['kept_takes']} samples from {s['clean_takes']} clean + {s['chord_takes']} chord takes of {s['notes_found']} notes; "
          f"keys {lo}..{hi}, {len(s['velocity_layers'])} velocity layer(s), {s['looped_takes']} looped]")
    return 0
