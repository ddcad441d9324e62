"""``stemscribe roll MIDI --out ROLL.npz`` and ``stemscribe roll ROLL.npz --out MIDI``: 88-key piano rolls."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "roll",
        help="MIDI to an 88-key piano roll (.npz) and back",
        description="Convert a MIDI file to an 88-key piano roll at 250 frames/s (onset roll with velocities "
        "in [0, 1] plus a frame roll; see docs/timbre.md for the array layout), or a roll back to MIDI. "
        "The direction follows the input: .npz in -> MIDI out, anything else -> .npz out.",
    )
    p.add_argument("input", metavar="MIDI|ROLL.npz", help="MIDI file, or a .npz roll to turn back into MIDI")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="roll (.npz) or MIDI (.mid) to write")
    return p


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ..errors import BadArgumentError
    from ..roll import midi_to_roll_file, roll_file_to_midi

    src, out = Path(args.input), Path(args.out)
    if src.suffix.lower() == ".npz":
        if out.suffix.lower() not in (".mid", ".midi"):
            raise BadArgumentError(f"--out {out}: a roll turns into MIDI; give a .mid file name")
        path, track = roll_file_to_midi(src, out)
        print(f"{src} -> {path}  [{len(track)} notes]")
        return 0
    if out.suffix.lower() != ".npz":
        raise BadArgumentError(f"--out {out}: a MIDI turns into a piano roll; give a .npz file name")
    path, roll, dropped = midi_to_roll_file(src, out)
    if dropped:
        print(f"stemscribe: note: left out {dropped} note(s) outside the 88 keys A0..C8", file=sys.stderr)
    print(f"{src} -> {path}  [{roll.n_frames} frames x 88 keys at {roll.fps} fps, "
          f"{int((roll.onsets > 0).sum())} onsets]")
    return 0
