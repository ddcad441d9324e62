"""``stemscribe live INPUT|- --out DIR``: separate a stream block by block (vocals + karaoke)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "live",
        help="separate a stream live into vocals and instrumental (karaoke)",
        description="Separate INPUT block by block with the embedded lite model (latency about 60 ms plus one "
        "block), writing DIR/vocals.wav and DIR/instrumental.wav as it goes, and DIR/report.json with the "
        "measured latency, real-time factor and where someone sings. INPUT is a file (played as a stream) or "
        "'-' for stdin: a WAV stream, or headerless PCM with --raw. Output is 44.1 kHz 16-bit. "
        "Ctrl-C stops and keeps what was separated so far. Sound-card input is not built in: pipe a "
        "recorder into stdin, e.g. `arecord -f S16_LE -r 44100 -c 2 -t raw | stemscribe live - --raw --out DIR`.",
    )
    p.add_argument("input", metavar="INPUT", help="audio/video file, or '-' for stdin")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    p.add_argument("--block-ms", type=float, default=30.0, metavar="N",
                   help="block length in milliseconds (default 30: latency about 90 ms; shorter blocks cost more CPU)")
    p.add_argument("--raw", action="store_true", help="stdin is headerless interleaved PCM (see --rate etc.)")
    p.add_argument("--rate", type=int, default=44100, help="raw stdin sample rate; must be 44100 (default)")
    p.add_argument("--channels", type=int, default=2, choices=(1, 2), help="raw stdin channels (default 2)")
    p.add_argument("--sample-format", default="s16le", choices=("s16le", "s32le", "f32le"),
                   help="raw stdin sample format (default s16le)")
    p.add_argument("--realtime", action="store_true",
                   help="for a file: feed blocks at the pace of real time, as a sound card would")
    p.add_argument("--all-stems", action="store_true", help="also write drums.wav, bass.wav, other.wav")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    return p


def run(args: argparse.Namespace) -> int:
    from ..errors import BadArgumentError
    from ..live import SR, file_blocks, read_wav_header, run_live, stdin_blocks
    from ._progress import StageBars

    if not 1.0 <= args.block_ms <= 1000.0:
        raise BadArgumentError(f"--block-ms must be between 1 and 1000, got {args.block_ms:g}")
    block = max(1, round(args.block_ms * SR / 1000))
    duration = None
    if args.input == "-":
        stream = sys.stdin.buffer
        if args.raw:
            rate, channels, fmt = args.rate, args.channels, args.sample_format
        else:
            rate, channels, fmt = read_wav_header(stream)
        if rate != SR:
            raise BadArgumentError(f"stdin audio is {rate} Hz; live mode takes 44100 Hz (resample upstream, "
                                   f"e.g. `ffmpeg -i IN -ar 44100 -f wav -`)")
        if channels not in (1, 2):
            raise BadArgumentError(f"stdin audio has {channels} channels; live mode takes mono or stereo")
        blocks = stdin_blocks(stream, block, channels=channels, sample_format=fmt)
        name = "<stdin>"
    else:
        if args.raw:
            raise BadArgumentError("--raw applies to stdin ('-') only")
        blocks, channels, duration = file_blocks(args.input, block, realtime=args.realtime)
        name = args.input
    bars = StageBars(enabled=None if not args.quiet else False)
    try:
        report = run_live(blocks, out_dir=args.out, channels=channels, block=block, all_stems=args.all_stems,
                          input_name=name, progress=bars, duration=duration)
    finally:
        bars.close()
    if not args.quiet:
        sung = sum(s["end"] - s["start"] for s in report["vocal_activity"])
        lat = report["latency_ms"]
        print(f"{name} -> {args.out}  [{report['duration_s']:.1f} s, latency {lat['measured_max']:.0f} ms max "
              f"(model {lat['model']:.0f} ms + block), {report['real_time_factor']:.3f} x real time, "
              f"vocals in {len(report['vocal_activity'])} passages / {sung:.1f} s"
              + (", interrupted" if report["interrupted"] else "") + "]")
    return 0
