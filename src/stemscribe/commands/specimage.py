"""``stemscribe specimage encode AUDIO --out PNG`` / ``decode PNG --out AUDIO``: spectrogram images."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "specimage",
        help="audio <-> spectrogram PNG (log magnitude + phase)",
        description="Encode audio as a spectrogram image (log magnitude and phase in the colour channels, "
        "STFT settings in the PNG metadata) or decode such an image back to audio.",
    )
    ops = p.add_subparsers(dest="op", metavar="OP", required=True)
    enc = ops.add_parser("encode", help="audio file -> PNG")
    enc.add_argument("audio", metavar="AUDIO")
    enc.add_argument("--out", "-o", required=True, metavar="PNG")
    enc.add_argument("--bits", type=int, default=16, choices=(8, 16), help="bits per channel (default 16)")
    enc.add_argument("--split", action="store_true",
                     help="8-bit only: code the magnitude on 16 bits split over two channels (R high, B low)")
    enc.add_argument("--n-fft", type=int, default=1024, help="STFT size (default 1024)")
    enc.add_argument("--hop", type=int, default=256, help="STFT hop (default 256)")
    enc.add_argument("--range-db", type=float, default=None,
                     help="magnitude range below the peak (default 80 for plain 8-bit, 160 otherwise)")
    dec = ops.add_parser("decode", help="PNG -> audio file")
    dec.add_argument("png", metavar="PNG")
    dec.add_argument("--out", "-o", required=True, metavar="AUDIO", help="audio file to write (.wav, .flac)")
    return p


def run(args: argparse.Namespace) -> int:
    from .. import specimage

    if args.op == "encode":
        from ..audio import load

        audio = load(args.audio)
        img = specimage.encode(audio, bits=args.bits, split=args.split, n_fft=args.n_fft, hop=args.hop,
                               range_db=args.range_db)
        specimage.write_png(args.out, img)
        back = specimage.decode(img)
        snr = specimage.snr_db(audio.samples, back.samples)
        h, w, _ = img.pixels.shape
        print(f"{args.audio} -> {args.out}  [{w}x{h}, {img.meta['bits']}-bit {img.meta['mode']}, round trip {snr:.1f} dB SNR]")
    else:
        from ..audio import write

        audio = specimage.decode(specimage.read_png(args.png))
        write(args.out, audio)
        print(f"{args.png} -> {args.out}  [{audio.channels} ch, {audio.sr} Hz, {audio.duration:.2f} s]")
    return 0
