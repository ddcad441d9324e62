"""``stemscribe render MIDI --out AUDIO [--soundfont FILE | --instrument DIR]``: hear a MIDI file."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "render",
        help="render a MIDI file to audio (General MIDI SoundFont or a captured instrument)",
        description="Render a MIDI file to audio. Each track plays its General MIDI program (drums on channel 10) "
        "from the packaged General MIDI SoundFont or --soundfont; with --instrument, pitched tracks play a "
        "captured SFZ instrument (see 'stemscribe capture'). The tempo map and sustain pedal are followed.",
    )
    p.add_argument("midi", metavar="MIDI", help="MIDI file to render")
    p.add_argument("--out", "-o", required=True, metavar="AUDIO", help="audio file to write (.wav, .flac, .ogg, .mp3)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--soundfont", metavar="FILE.sf2", default=None,
                   help="SF2 SoundFont to use instead of the packaged General MIDI one")
    g.add_argument("--instrument", metavar="DIR", default=None,
                   help="folder (or .sfz file) of a captured instrument to play the pitched tracks with")
    p.add_argument("--sr", type=int, default=44100, help="sample rate of the output (default 44100)")
    p.add_argument("--reach", type=int, default=7, metavar="SEMITONES",
                   help="with --instrument: how far past its sampled keys a note may be pitch-shifted (default 7)")
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..audio import write
    from ..errors import BadArgumentError
    from ..render import render_midi

    if not 8000 <= args.sr <= 192000:
        raise BadArgumentError(f"--sr must be 8000..192000 Hz, got {args.sr}")
    if args.reach < 0:
        raise BadArgumentError(f"--reach must be >= 0, got {args.reach}")
    out = Path(args.out)
    if out.is_dir():
        raise BadArgumentError(f"--out {out} is a folder; give a file name such as {out / 'render.wav'}")
    audio = render_midi(args.midi, sr=args.sr, soundfont=args.soundfont, instrument=args.instrument, reach=args.reach)
    subtype = "PCM_16" if out.suffix.lower() in (".wav", ".wave") else None
    write(out, audio, subtype=subtype)
    what = f"instrument {args.instrument}" if args.instrument else f"SoundFont {Path(args.soundfont).name if args.soundfont else 'General MIDI (packaged)'}"
    print(f"{args.midi} -> {out}  [{audio.duration:.1f} s, {what}]")
    return 0
