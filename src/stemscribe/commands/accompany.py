"""``stemscribe accompany INPUT --out DIR``: a backing band for a solo vocal or a melody MIDI file."""

from __future__ import annotations

import argparse

_STYLES = ("pop", "rock", "ballad", "funk", "electronic")  # mirrors stemscribe.accompany.STYLE_NAMES


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "accompany",
        help="arrange and render a backing track for a solo vocal or melody",
        description="Find the key, tempo and chords of a sung melody (or melody MIDI), write bass, drums, "
        "chords and comping in a style, and mix them under the untouched vocal. Writes melody.mid, "
        "arrangement.mid, backing.wav, song.wav and report.json into DIR.",
    )
    p.add_argument("input", metavar="INPUT", help="solo vocal / melody recording, or a melody .mid file")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    p.add_argument("--style", default="pop", metavar="STYLE", help=f"one of {', '.join(_STYLES)} (default pop)")
    p.add_argument("--key", default="auto", metavar="KEY", help="auto (default) or a key, e.g. 'A minor', 'Eb'")
    p.add_argument("--tempo", default="auto", metavar="BPM",
                   help="auto (default: follow the singer, tempo may drift) or a fixed BPM")
    p.add_argument("--seed", default=0, type=int, help="random seed for fills and humanising (default 0)")
    p.add_argument("--renderer", default="auto", choices=("auto", "soundfont", "builtin"),
                   help="backing synthesis: packaged GM SoundFont (auto/soundfont) or the built-in synth")
    return p


def run(args: argparse.Namespace) -> int:
    from ..accompany.pipeline import accompany
    from ._progress import StageBars

    bars = StageBars("accompany ")
    try:
        res = accompany(args.input, out_dir=args.out, style=args.style, key=args.key, tempo=args.tempo,
                        seed=args.seed, renderer=args.renderer, progress=bars)
    finally:
        bars.close()
    n_chords = len({c[2] for c in res.chords})
    print(f"{args.input} -> {res.out_dir}  [{res.key}, {res.tempo:.1f} BPM, {len(res.chords)} chord changes "
          f"({n_chords} distinct), style {res.report['style']}]")
    return 0
