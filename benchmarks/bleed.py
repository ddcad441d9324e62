"""Check the quality report's bleed estimate against ground truth.

    nice -n 15 python benchmarks/bleed.py                  # devset + MUSDB held-out + synthetic
    nice -n 15 python benchmarks/bleed.py --train          # also the MUSDB train part
    nice -n 15 python benchmarks/bleed.py --grid           # the (p, tile) choice, on the train part only
    python benchmarks/bleed.py --weights /path/lite.safetensors --json out.json

Data (read-only): ``../shared/data/devset`` (6 synthetic 12 s songs) and the decoded MUSDB18 7 s clips
``training/cache/musdb/NNN.npy`` with ``index.json`` naming the 15 ``valid`` (held-out) and 79
``train`` clips. Sets, each a list of (clip, stem) pairs:

``devset``, ``musdb-valid``, ``musdb-train``  the stems that ``lite`` separates from each mixture.
``synthetic-valid``, ``synthetic-train``      made from the *true* stems of the MUSDB clips: per clip
    one additive leak (stem i = s_i + g s_j, s_j untouched) and one mask-type leak (s_i + g s_j and
    (1 - g) s_j, the stems still sum to the mixture), g uniform in [0, 1], (i, j) random (seeded);
    every stem of the clip is scored (the untouched ones are clean).

Ground truths per (clip, stem): ``local`` = :func:`stemscribe.evaluate.local_interference_share` (the
one the estimate is checked against), ``global`` = :func:`stemscribe.evaluate.interference_share`
(the old whole-clip gain-only projection), and for ``lite`` only ``mask`` = the exact leak
``sum |M_i S_j|^2 / sum |M_i X|^2`` from the model's own masks and STFT (a check on ``local``).

``--grid`` scores the estimator for mask powers p in {0.5, 1, 2} and coherence tiles (5, 5), (5, 9),
(9, 9) (chance level of each simulated with white noise) on ``musdb-train`` + ``synthetic-train``:
that is where p = 0.5 and (5, 9) were chosen; every other number is on sets not used for a choice.
Prints Markdown tables; ``--json`` writes everything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEVSET = ROOT.parent / "shared" / "data" / "devset"
CACHE = ROOT / "training" / "cache" / "musdb"
STEMS = ("drums", "bass", "other", "vocals")


def clips(which: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``[(name, mixture (2, n), refs (4, 2, n))]`` at 44.1 kHz for ``devset`` or ``musdb-<split>``."""
    if which == "devset":
        from stemscribe.evaluate import load_dataset

        out = []
        for song in load_dataset(DEVSET):
            refs = song.load_stems()
            out.append((song.name, song.load_mixture().samples, np.stack([refs[s].samples for s in STEMS])))
        return out
    split = which.split("-", 1)[1]
    index = json.loads((CACHE / "index.json").read_text())
    out = []
    for clip in index["clips"]:
        if clip["split"] == split:
            a = np.load(CACHE / clip["file"])
            out.append((clip["file"][:-4], a[0], a[1:]))
    return out


def separate_lite(net: Any, mix: np.ndarray, refs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``lite`` stems ``(4, 2, n)`` and the exact mask-leak share per stem ``(4,)``."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(mix, dtype=np.float32))[None]
        y, spec = net.forward_spec(x)
        t = y.shape[3]
        est = net.istft(y, x.shape[-1])[0].numpy()
        mixture = spec[0, :, :t]
        sources = net.stft(net.frame(torch.from_numpy(refs.astype(np.float32))))[:, :, :t]
        masks = y[0].abs() / (mixture.abs()[None] + 1e-12)
        energy = (y[0].abs() ** 2).sum(dim=(1, 2, 3)).numpy()
        leak = np.array([float(((masks[i] * (mixture - sources[i])).abs() ** 2).sum()) for i in range(len(refs))])
    return est, np.where(energy > 0, leak / np.maximum(energy, 1e-30), np.nan)


def synthetic(refs: np.ndarray, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """One additive and one mask-type leak made from the true stems ``(4, 2, n)``."""
    out = []
    for kind in ("additive", "mask"):
        i, j = rng.choice(len(refs), 2, replace=False)
        g = float(rng.uniform(0.0, 1.0))
        est = refs.copy()
        est[i] = refs[i] + g * refs[j]
        if kind == "mask":
            est[j] = (1.0 - g) * refs[j]
        out.append((f"{kind} {STEMS[i]}<-{g:.2f} {STEMS[j]}", est))
    return out


def estimate(est: np.ndarray) -> np.ndarray:
    """The report's leaked-share estimate per stem, computed exactly as :func:`quality_report` does."""
    from stemscribe import report as rp
    from stemscribe.types import Audio

    b = rp.bleed_from_signals({s: rp._mono_at(Audio(e, 44100)) for s, e in zip(STEMS, est)})
    return np.array([sum(b[s].values()) for s in STEMS])


def chance_level(tile: tuple[int, int], seconds: float = 60.0) -> float:
    """Mean coherence of two independent white noises over ``tile`` in the report's STFT."""
    from scipy.ndimage import uniform_filter

    from stemscribe import report as rp

    rng = np.random.default_rng(0)
    n = int(seconds * rp.ANALYSIS_SR)
    za, zb = (rp._stft_frames(rng.standard_normal(n).astype(np.float32), 0, n // rp.HOP) for _ in range(2))
    cross = za * zb.conj()
    num = uniform_filter(cross.real, tile) ** 2 + uniform_filter(cross.imag, tile) ** 2
    coh = num / (uniform_filter(np.abs(za) ** 2, tile) * uniform_filter(np.abs(zb) ** 2, tile))
    return float(coh[tile[0]:-tile[0], tile[1]:-tile[1]].mean())


def score(rows: list[dict[str, Any]], key: str = "local") -> dict[str, Any]:
    from scipy.stats import pearsonr, spearmanr

    rows = [r for r in rows if np.isfinite(r[key]) and not r["silent"]]
    est = np.array([r["estimate"] for r in rows])
    gt = np.array([r[key] for r in rows])
    if len(rows) < 3 or np.std(est) == 0:
        return {"n": len(rows), "pearson": None, "spearman": None, "mae": None}
    return {"n": len(rows), "pearson": float(pearsonr(est, gt)[0]), "spearman": float(spearmanr(est, gt)[0]),
            "mae": float(np.mean(np.abs(est - gt))), "mean_truth": float(gt.mean()), "mean_estimate": float(est.mean())}


def _groups(rows: list[dict[str, Any]]) -> dict[str, Any]:
    groups = {s: [r for r in rows if r["set"] == s] for s in dict.fromkeys(r["set"] for r in rows)}
    groups["real held-out (devset + musdb-valid)"] = [r for r in rows if r["set"] in ("devset", "musdb-valid")]
    groups["all held-out"] = [r for r in rows if not r["set"].endswith("-train")]
    return {g: {"local": score(v), "global": score(v, "global"), "mask": score(v, "mask")} for g, v in groups.items() if v}


def _print_scores(scores: dict[str, Any]) -> None:
    def f(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f}"

    print("| set | n | Pearson r | Spearman rho | MAE | mean truth | mean estimate | r vs whole-clip truth |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for g, sc in scores.items():
        loc, glo = sc["local"], sc["global"]
        print(f"| {g} | {loc['n']} | {f(loc['pearson'])} | {f(loc['spearman'])} | {f(loc['mae'])} "
              f"| {f(loc.get('mean_truth'))} | {f(loc.get('mean_estimate'))} | {f(glo['pearson'])} |")


def grid(sep: Any, json_out: str | None) -> int:
    """Score (p, tile) variants on musdb-train + synthetic-train (the only data used for the choice)."""
    from stemscribe import evaluate as ev
    from stemscribe import report as rp

    cases = []
    rng = np.random.default_rng(0)
    for name, mix, refs in clips("musdb-train"):
        est, _ = separate_lite(sep.net, mix, refs)
        for dataset, e in [("musdb-train", est)] + [("synthetic-train", e) for _, e in synthetic(refs, rng)]:
            cases.append((dataset, e, ev.local_interference_share(refs, e)[0], [not np.any(r) for r in refs]))
    out = {}
    print("| p | tile | chance | set | n | Pearson r | Spearman rho | MAE |\n|---:|---|---:|---|---:|---:|---:|---:|")
    for p in (0.5, 1.0, 2.0):
        for tile in ((5, 5), (5, 9), (9, 9)):
            chance = chance_level(tile)
            rp.BLEED_MASK_POWER, rp.BLEED_TILE, rp.BLEED_CHANCE = p, tile, chance
            rows = [{"set": d, "local": float(t[k]), "estimate": float(g[k]), "silent": sil[k]}
                    for d, e, t, sil in cases for g in [estimate(e)] for k in range(4)]
            for d in ("musdb-train", "synthetic-train"):
                sc = score([r for r in rows if r["set"] == d])
                out[f"p={p} tile={tile} {d}"] = dict(sc, chance=chance)
                print(f"| {p} | {tile} | {chance:.3f} | {d} | {sc['n']} | {sc['pearson']:.2f} | {sc['spearman']:.2f} | {sc['mae']:.2f} |",
                      flush=True)
    if json_out:
        Path(json_out).write_text(json.dumps(out, indent=1))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="lite .safetensors (default: the package's)")
    ap.add_argument("--train", action="store_true", help="also score the MUSDB train clips")
    ap.add_argument("--grid", action="store_true", help="score (p, tile) variants on the train clips only")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from stemscribe import evaluate as ev
    from stemscribe import report as rp
    from stemscribe.separate.lite import load_lite

    sep = load_lite(weights=args.weights)
    if args.grid:
        return grid(sep, args.json)
    sets = ["devset", "musdb-valid"] + (["musdb-train"] if args.train else [])
    rows: list[dict[str, Any]] = []
    t0 = time.time()
    for which in sets:
        rng = np.random.default_rng(0 if which == "musdb-train" else 1)
        for name, mix, refs in clips(which):
            est, mask = separate_lite(sep.net, mix, refs)
            cases = [(which, "lite", est, mask)]
            if which != "devset":
                cases += [("synthetic-" + which.split("-")[1], label, e, np.full(4, np.nan)) for label, e in synthetic(refs, rng)]
            for dataset, label, e, m in cases:
                local, _ = ev.local_interference_share(refs, e)
                whole = ev.interference_share(refs, e)
                guess = estimate(e)
                for k, s in enumerate(STEMS):
                    rows.append({"set": dataset, "clip": name, "case": label, "stem": s, "silent": not np.any(refs[k]),
                                 "local": float(local[k]), "global": float(whole[k]), "mask": float(m[k]),
                                 "estimate": float(guess[k])})
        print(f"{which}: done ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    result: dict[str, Any] = {"model_version": sep.manifest.get("version"), "weights_sha256": sep.manifest.get("sha256"),
                              "settings": {"mask_power": rp.BLEED_MASK_POWER, "tile": list(rp.BLEED_TILE),
                                           "chance": rp.BLEED_CHANCE}}
    result["scores"] = _groups(rows)
    lite_rows = [r for r in rows if r["case"] == "lite" and np.isfinite(r["mask"])]
    if lite_rows:
        a = np.array([[r["local"], r["mask"], r["global"]] for r in lite_rows])
        result["ground_truth_check"] = {"n": len(a), "pearson_local_mask": float(np.corrcoef(a[:, 0], a[:, 1])[0, 1]),
                                        "mean_local": float(a[:, 0].mean()), "mean_mask": float(a[:, 1].mean()),
                                        "mean_global": float(a[:, 2].mean())}
    result["rows"] = rows
    _print_scores(result["scores"])
    if "ground_truth_check" in result:
        c = result["ground_truth_check"]
        print(f"\nlite, local vs exact mask leak: r = {c['pearson_local_mask']:.3f} (n = {c['n']}); means: local "
              f"{c['mean_local']:.3f}, mask {c['mean_mask']:.3f}, whole-clip {c['mean_global']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
