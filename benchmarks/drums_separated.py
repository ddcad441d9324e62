"""Drum transcription on true vs ``lite`` drum stems, per class, and where each class's energy went.

For every song of a labelled folder (the devset, or a render from ``training/render_data.py
--labelled DIR``), this separates the mixture with ``lite`` and transcribes the drum stem, true and
separated (with the song's other stems given, as ``stemscribe split`` does), then reports per class
(``stemscribe.evaluate.DRUM_CLASSES``) the pooled onset precision / recall / F1 (50 ms).

It also reports, at the reference hits of each class, the median level of the band where that
class's body sounds (toms 60-300 Hz, kick 30-150 Hz, snare 150-1000 Hz; 150 ms after the hit, dB
of the periodogram's band sum) in the true drum stem, in lite's drum stem and in lite's bass and
other stems: a class whose energy lite puts into another stem cannot be transcribed from the drums.

    python benchmarks/drums_separated.py ../shared/data/devset benchmarks/results/rendered-eval [--json OUT]
        [--weights lite.safetensors]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

STEMS = ("drums", "bass", "other", "vocals")
BANDS = {"kick": (30.0, 150.0), "snare": (150.0, 1000.0), "toms": (60.0, 300.0)}


def band_db(x: np.ndarray, sr: int, t: float, lo: float, hi: float, dur: float = 0.15) -> float:
    """Level (dB) of the ``lo``..``hi`` Hz band of mono ``x`` over ``dur`` s from ``t``."""
    from scipy.signal import periodogram

    a = int(t * sr)
    seg = x[a : a + int(dur * sr)]
    if seg.size < 256:
        return float("nan")
    f, p = periodogram(seg, sr)
    return float(10 * np.log10(p[(f >= lo) & (f < hi)].sum() + 1e-12))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--weights", type=Path, help="other lite weights (a .safetensors with its .json beside it)")
    args = ap.parse_args()

    from stemscribe import audio
    from stemscribe.evaluate import _prf, drum_class, drum_scores
    from stemscribe.midi import read_midi
    from stemscribe.separate import get_separator
    from stemscribe.transcribe.drums import transcribe_drums
    from stemscribe.types import Audio

    if args.weights:
        from stemscribe.separate.lite import load_lite

        sep = load_lite(weights=args.weights)
    else:
        sep = get_separator("lite")
    out = {}
    for folder in args.folders:
        counts = {"true": defaultdict(lambda: [0, 0, 0]), "lite": defaultdict(lambda: [0, 0, 0])}
        levels = defaultdict(list)
        songs = sorted(d for d in folder.iterdir() if (d / "drums.mid").is_file())
        for d in songs:
            true = {s: audio.load(d / f"{s}.flac") for s in STEMS}
            lite = sep.separate(Audio(sum(true[s].samples for s in STEMS), true["drums"].sr))
            tracks, _ = read_midi(d / "drums.mid")
            ref = [n for t in tracks for n in t.notes]
            for name, stems in (("true", true), ("lite", lite)):
                est = transcribe_drums(stems["drums"], others={o: stems[o] for o in STEMS[1:]})
                for cls, v in drum_scores(ref, est)["classes"].items():
                    c = counts[name][cls]
                    c[0] += v["n_match"]
                    c[1] += v["n_ref"]
                    c[2] += v["n_est"]
            sr = true["drums"].sr
            mono = {"true drums": true["drums"].mono(), **{f"lite {s}": lite[s].mono() for s in ("drums", "bass", "other")}}
            for n in ref:
                cls = drum_class(n.pitch)
                if cls in BANDS:
                    levels[cls].append([band_db(x, sr, n.start, *BANDS[cls]) for x in mono.values()])
        res = {"songs": len(songs), "scores": {}, "band_db": {}}
        for name, per in counts.items():
            res["scores"][name] = {cls: _prf(*c) for cls, c in per.items()}
        print(f"{folder} ({len(songs)} songs): onset F1 (precision / recall), pooled")
        print("| class | hits | true stems | lite stems |\n| --- | ---: | --- | --- |")
        for cls in res["scores"]["true"]:
            t, s = res["scores"]["true"][cls], res["scores"]["lite"].get(cls, _prf(0, 0, 0))
            print(f"| {cls} | {t['n_ref']} | {t['f1']:.3f} ({t['precision']:.2f} / {t['recall']:.2f}) "
                  f"| {s['f1']:.3f} ({s['precision']:.2f} / {s['recall']:.2f}) |")
        print("median band level at the reference hits (dB): " + " / ".join(mono))
        for cls, rows in levels.items():
            med = np.nanmedian(np.array(rows), axis=0)
            res["band_db"][cls] = dict(zip(mono, med.tolist()))
            lo, hi = BANDS[cls]
            print(f"  {cls} ({len(rows)} hits, {lo:.0f}-{hi:.0f} Hz): " + " / ".join(f"{v:.1f}" for v in med))
        out[str(folder)] = res
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
