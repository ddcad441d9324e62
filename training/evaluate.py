"""Score the lite model against classic baselines on the held-out musdb7s-train clips and the devset.

SDR = 10 log10(|s|^2 / |s - s_hat|^2) over the whole clip (both channels), averaged over clips.
Baselines: HPSS percussive part for drums, REPET-SIM (nearest-neighbour median filter soft mask,
as in librosa's vocal-separation example) for vocals, mixture / 4 for bass and other.

    python training/evaluate.py                      # shipped weights, both sets, model + baseline
    python training/evaluate.py --weights training/checkpoints/best/lite.safetensors --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
sys.path.insert(0, str(REPO / "src"))
STEMS = ("drums", "bass", "other", "vocals")
DEVSET = REPO.parent / "shared" / "data" / "devset"
CACHE = ROOT / "cache" / "musdb"


def sdr(ref: np.ndarray, est: np.ndarray, eps: float = 1e-8) -> float:
    """Whole-clip SDR in dB of ``est`` against ``ref`` (both ``(channels, n)``)."""
    return float(10 * np.log10((np.sum(ref**2) + eps) / (np.sum((ref - est) ** 2) + eps)))


def baseline(mix: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """Classic estimates ``{stem: (channels, n)}`` for a mixture ``(channels, n)``."""
    import librosa

    n = mix.shape[-1]
    out = {s: np.zeros_like(mix) for s in STEMS}
    for c in range(mix.shape[0]):
        spec = librosa.stft(mix[c], n_fft=2048, hop_length=512)
        mag = np.abs(spec)
        _, perc = librosa.decompose.hpss(mag, kernel_size=31, mask=True)
        out["drums"][c] = librosa.istft(spec * perc, hop_length=512, length=n)
        # REPET-SIM: the repeating background is the median of similar frames (>= 2 s apart is
        # impossible in 7 s clips, so 1 s as in librosa's example scaled to the clip)
        width = int(librosa.time_to_frames(1.0, sr=sr, hop_length=512))
        background = librosa.decompose.nn_filter(mag, aggregate=np.median, metric="cosine", width=width)
        background = np.minimum(mag, background)
        vocal_mask = librosa.util.softmask(mag - background, 10 * background, power=2)
        out["vocals"][c] = librosa.istft(spec * vocal_mask, hop_length=512, length=n)
    out["bass"] = mix / 4
    out["other"] = mix / 4
    return out


def musdb_valid() -> list[tuple[str, np.ndarray, dict[str, np.ndarray], int]]:
    index = json.loads((CACHE / "index.json").read_text())
    clips = []
    for clip in index["clips"]:
        if clip["split"] == "valid":
            arr = np.load(CACHE / clip["file"])
            clips.append((clip["name"], arr[0], {s: arr[i + 1] for i, s in enumerate(STEMS)}, 44100))
    return clips


def devset() -> list[tuple[str, np.ndarray, dict[str, np.ndarray], int]]:
    import soundfile as sf

    clips = []
    for d in sorted(DEVSET.glob("dev*")):
        mix, sr = sf.read(d / "mixture.flac", dtype="float32", always_2d=True)
        stems = {s: sf.read(d / f"{s}.flac", dtype="float32", always_2d=True)[0].T for s in STEMS}
        clips.append((d.name, mix.T, stems, sr))
    return clips


#: The reference for vocal activity: where the *true* vocals hold at least this share of the
#: mixture's energy (fixed, so the score stays comparable when the live detector's threshold is
#: recalibrated; it was the detector's own threshold until 2026-12-05).
REFERENCE_THRESHOLD = 0.25


def _active(vocals: np.ndarray, mix: np.ndarray, sr: int, threshold: float | None = None) -> np.ndarray:
    """Per-0.1 s vocal activity as ``stemscribe live`` reports it (before smoothing); ``threshold``
    overrides the live detector's."""
    from stemscribe.live import VocalActivity

    act = VocalActivity(sr=sr) if threshold is None else VocalActivity(sr=sr, threshold=threshold)
    act.add(vocals, mix)
    act.finish()
    return np.array([r >= act.threshold and lv > act.floor_db for r, lv in zip(act.ratios, act.levels_db)])


def score(clips, separate) -> tuple[dict[str, float], float]:
    """Mean SDR per stem (+ ``avg``), vocal-activity frame accuracy, and the CPU time over ``clips``.

    ``out["clips"]`` keeps each clip's SDR per stem (name -> stem -> dB), for looking at where a
    model gains or loses.
    """
    res = {s: [] for s in STEMS}
    acc = []
    took = 0.0
    names = []
    for name, mix, refs, sr in clips:
        names.append(name)
        t = time.process_time()
        est = separate(mix, sr)
        took += time.process_time() - t
        for s in STEMS:
            res[s].append(sdr(refs[s], est[s]))
        acc.append(float(np.mean(_active(est["vocals"], mix, sr) == _active(refs["vocals"], mix, sr, REFERENCE_THRESHOLD))))
    out = {s: round(float(np.mean(v)), 2) for s, v in res.items()}
    out["avg"] = round(float(np.mean([out[s] for s in STEMS])), 2)
    out["vocal_activity_accuracy"] = round(float(np.mean(acc)), 3)
    out["clips"] = {n: {s: round(float(res[s][i]), 2) for s in STEMS} for i, n in enumerate(names)}
    return out, took


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=None, help="a lite.safetensors (manifest beside it); default: the package's")
    p.add_argument("--sets", default="musdb-valid,devset")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--gain-db", type=float, default=0.0,
                   help="play every clip this much louder (references too): e.g. 9.5 for a mastered song's level")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    from stemscribe.separate.lite import load_lite
    from stemscribe.types import Audio

    sep = load_lite(weights=args.weights)

    def model(mix: np.ndarray, sr: int) -> dict[str, np.ndarray]:
        return {k: v.samples for k, v in sep.separate(Audio(mix, sr)).items()}

    report = {"weights": str(args.weights or "package"), "manifest_version": sep.manifest.get("version"),
              **({"gain_db": args.gain_db} if args.gain_db else {})}
    for name in args.sets.split(","):
        clips = {"musdb-valid": musdb_valid, "devset": devset}[name]()
        if args.gain_db:
            g = 10 ** (args.gain_db / 20)
            clips = [(n, m * g, {s: r * g for s, r in refs.items()}, sr) for n, m, refs, sr in clips]
        seconds = sum(m.shape[-1] / sr for _, m, _, sr in clips)
        m, took = score(clips, model)
        report[name] = {"clips": len(clips), "model": m, "model_cpu_rtf": round(took / seconds, 4)}
        print(f"{name} ({len(clips)} clips)  model    " + "  ".join(f"{s} {m[s]:6.2f}" for s in (*STEMS, "avg"))
              + f"   vocal activity {m['vocal_activity_accuracy']:.3f}   cpu x{took / seconds:.3f} real time")
        if not args.no_baseline:
            b, _ = score(clips, baseline)
            report[name]["baseline"] = b
            print(f"{name} ({len(clips)} clips)  baseline " + "  ".join(f"{s} {b[s]:6.2f}" for s in (*STEMS, "avg"))
                  + f"   vocal activity {b['vocal_activity_accuracy']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
