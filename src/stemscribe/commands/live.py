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
        "measured latency, real-time factor and where someone sings. INPUT is a file (played as a stream), "
        "'-' for stdin (a WAV stream, or headerless PCM with --raw; any sample rate, resampled as it comes), "
        "or leave INPUT out and give --device to record from the sound card. Output is 44.1 kHz 16-bit. "
        "Ctrl-C stops and keeps what was separated so far.",
    )
    p.add_argument("input", metavar="INPUT", nargs="?", help="audio/video file, or '-' for stdin")
    p.add_argument("--out", "-o", metavar="DIR", help="output folder (required unless --list-devices)")
    p.add_argument("--device", "-d", metavar="NAME", nargs="?", const="default",
                   help="record from a sound card input: 'default', an index or part of a name from --list-devices")
    p.add_argument("--list-devices", action="store_true", help="list the sound card inputs and exit")
    p.add_argument("--audio-backend", default="auto", metavar="NAME",
                   help="sound card back end: auto (default), alsa, pulseaudio, jack, coreaudio, wasapi, ..., "
                        "or null (silence, for testing)")
    p.add_argument("--seconds", type=float, metavar="S", help="with --device: stop after S seconds (default: Ctrl-C)")
    p.add_argument("--block-ms", type=float, default=None, metavar="N",
                   help="block length in milliseconds (default 30: latency about 90 ms; 20 when stdin is resampled, "
                        "to stay under 100 ms with the resampler's hold; shorter blocks cost more CPU)")
    p.add_argument("--raw", action="store_true", help="stdin is headerless interleaved PCM (see --rate etc.)")
    p.add_argument("--rate", type=int, default=44100, help="raw stdin sample rate (default 44100; others are resampled)")
    p.add_argument("--channels", type=int, default=2, choices=(1, 2), help="raw stdin channels (default 2)")
    p.add_argument("--sample-format", default="s16le", choices=("s16le", "s32le", "f32le"),
                   help="raw stdin sample format (default s16le)")
    p.add_argument("--realtime", action="store_true",
                   help="for a file: feed blocks at the pace of real time, as a sound card would")
    p.add_argument("--all-stems", action="store_true", help="also write drums.wav, bass.wav, other.wav")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    return p


DEFAULT_BLOCK_MS = 30.0
RESAMPLED_BLOCK_MS = 20.0


def _samples(ms: float, rate: int) -> int:
    """A block of ``ms`` milliseconds at ``rate``, in samples (at least one)."""
    return max(1, round(ms * rate / 1000))


def run(args: argparse.Namespace) -> int:
    from ..errors import BadArgumentError
    from ..live import SR, device_blocks, file_blocks, list_devices, read_wav_header, resampled_blocks, run_live, stdin_blocks
    from ._progress import StageBars

    if args.list_devices:
        found = list_devices(backend=args.audio_backend)
        if not found:
            print("no sound card inputs found")
        for d in found:
            print(f"{d['index']}: {d['name']}  [{d['backend']}]")
        return 0
    if args.out is None:
        raise BadArgumentError("--out DIR is required")
    if (args.input is None) == (args.device is None):
        raise BadArgumentError("give either INPUT (a file or '-') or --device, not both" if args.input
                               else "give INPUT (a file or '-' for stdin) or --device to record from the sound card")
    if args.seconds is not None and (args.device is None or args.seconds <= 0):
        raise BadArgumentError("--seconds takes a positive number and applies to --device only")
    if args.block_ms is not None and not 1.0 <= args.block_ms <= 1000.0:
        raise BadArgumentError(f"--block-ms must be between 1 and 1000, got {args.block_ms:g}")
    block_ms = DEFAULT_BLOCK_MS if args.block_ms is None else args.block_ms
    block = _samples(block_ms, SR)
    duration = None
    input_latency = 0.0
    source = None
    input_notes: list[str] = []  # what was repaired in a file input (NaN samples...)
    if args.device is not None:
        if args.raw or args.realtime:
            raise BadArgumentError("--raw and --realtime do not apply to --device")
        channels = args.channels
        blocks, source = device_blocks(args.device, block, channels=channels, backend=args.audio_backend,
                                       seconds=args.seconds)
        duration = args.seconds
        name = f"device: {source.name}"
    elif args.input == "-":
        stream = sys.stdin.buffer
        if args.raw:
            rate, channels, fmt = args.rate, args.channels, args.sample_format
        else:
            rate, channels, fmt = read_wav_header(stream)
        if channels not in (1, 2):
            raise BadArgumentError(f"stdin audio has {channels} channels; live mode takes mono or stereo")
        if rate != SR and args.block_ms is None:
            # the resampler holds about 10 ms: shorter blocks keep the total under 100 ms
            block_ms = RESAMPLED_BLOCK_MS
            block = _samples(block_ms, SR)
        # read blocks of the same duration at the stream's own rate, then resample to the model's
        blocks, input_latency = resampled_blocks(
            stdin_blocks(stream, _samples(block_ms, rate), channels=channels, sample_format=fmt), rate, channels)
        name = "<stdin>" if rate == SR else f"<stdin, {rate} Hz>"
    else:
        if args.raw:
            raise BadArgumentError("--raw applies to stdin ('-') only")
        blocks, channels, duration = file_blocks(args.input, block, realtime=args.realtime, notes=input_notes)
        name = args.input
        for note in input_notes:
            print(f"stemscribe: note: {name}: {note}", file=sys.stderr)
    bars = StageBars(enabled=None if not args.quiet else False)
    try:
        report = run_live(blocks, out_dir=args.out, channels=channels, block=block, all_stems=args.all_stems,
                          input_name=name, progress=bars, duration=duration, input_latency_ms=input_latency,
                          source=source, input_notes=input_notes)
    finally:
        bars.close()
    if not args.quiet:
        sung = sum(s["end"] - s["start"] for s in report["vocal_activity"])
        lat = report["latency_ms"]
        print(f"{name} -> {args.out}  [{report['duration_s']:.1f} s, latency {lat['measured_max']:.0f} ms max "
              f"(model {lat['model']:.0f} ms + block), {report['real_time_factor']:.3f} x real time, "
              f"vocals in {len(report['vocal_activity'])} passages / {sung:.1f} s"
              + (", interrupted" if report["interrupted"] else "")
              + (f", {report['device']['dropped_s']:.1f} s of input dropped (separation fell behind)"
                 if report.get("device", {}).get("dropped_s") else "") + "]")
    return 0
