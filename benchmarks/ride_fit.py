"""Fit the ride-versus-hi-hat weights of the drum transcriber on true *and* separated drum stems.

``stemscribe.transcribe.drums`` tells a ride from a closed hi-hat by a linear score of four
measurements per short metal hit (partial persistence, ln -15 dB decay, ln -25 dB decay, high-band
rise / 10), median-filtered over neighbouring hits. This script records those measurements for every
such hit of labelled songs (devset layout: ``mixture.flac``, ``drums.flac``, ``drums.mid``), on the
true drum stem and on the one ``lite`` separates from the mixture, labels each hit by the nearest
reference ride (51/53/59) or hi-hat (42/44/46) within 50 ms, fits a class-balanced logistic
regression on the ``--fit`` sets and reports per-hit accuracy (after the neighbour median) on every set
for the weights in the package and for the fitted ones.

    python training/render_data.py --labelled /tmp/rendered-fit --count 60 --seed 8
    python training/render_data.py --labelled /tmp/rendered-eval --count 40 --seed 7
    python benchmarks/ride_fit.py --fit /tmp/rendered-fit --test /tmp/rendered-eval ../shared/data/devset

Needs scikit-learn (``pip install scikit-learn``). Measurements are cached under
``--cache``, one folder per lite weights (named by their sha256).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

RIDE, HAT = {51, 53, 59}, {42, 44, 46}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", type=Path, nargs="+", required=True)
    ap.add_argument("--test", type=Path, nargs="*", default=[])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/stemscribe-ride-fit"))
    args = ap.parse_args()

    import pretty_midi
    from numpy.lib.stride_tricks import sliding_window_view
    from sklearn.linear_model import LogisticRegression

    from stemscribe import audio
    from stemscribe.separate import get_separator
    from stemscribe.transcribe import drums as D

    seen: list[tuple[np.ndarray, np.ndarray]] = []
    package_scores = D._ride_scores

    def recording(x, high, frames, decay, rise_db):
        long_decay = np.array([D._decay_time(high, int(f), drop_db=25.0, limit_s=2.5) for f in frames])
        feats = np.stack([D._partial_persistence(x, frames), np.log(decay + 0.01), np.log(long_decay + 0.01),
                          np.minimum(rise_db, 40.0) / 10], axis=1)
        seen.append((frames / D._FPS, feats.reshape(-1, 4)))
        return package_scores(x, high, frames, decay, rise_db)

    D._ride_scores = recording
    sep = get_separator("lite")
    # one cache folder per lite weights (their sha256), so new weights never meet old stems' cache
    cache = args.cache / str(sep.manifest.get("sha256", "unknown"))[:12]
    cache.mkdir(parents=True, exist_ok=True)

    def song(d: Path) -> dict:
        f = cache / f"{d.parent.name}_{d.name}.pkl"
        if f.exists():
            return pickle.loads(f.read_bytes())
        ref = [n for n in pretty_midi.PrettyMIDI(str(d / "drums.mid")).instruments[0].notes if n.pitch in RIDE | HAT]
        out = {}
        for src, stem in (("true", audio.load(d / "drums.flac")), ("separated", sep.separate(audio.load(d / "mixture.flac"))["drums"])):
            seen.clear()
            D.transcribe_drums(stem)
            t = np.concatenate([s[0] for s in seen]) if seen else np.zeros(0)
            X = np.concatenate([s[1] for s in seen]) if seen else np.zeros((0, 4))
            y = np.full(t.size, -1)
            for i, ti in enumerate(t):
                near = [n for n in ref if abs(n.start - ti) <= 0.05]
                if near:
                    y[i] = int(min(near, key=lambda n: abs(n.start - ti)).pitch in RIDE)
            out[src] = (X, y)
        f.write_bytes(pickle.dumps(out))
        return out

    def songs(folder: Path) -> list[dict]:
        return [song(d) for d in sorted(folder.iterdir()) if (d / "drums.mid").is_file()]

    fit = [s for folder in args.fit for s in songs(folder)]
    X = np.concatenate([s[src][0][s[src][1] >= 0] for s in fit for src in s])
    y = np.concatenate([s[src][1][s[src][1] >= 0] for s in fit for src in s])
    model = LogisticRegression(class_weight="balanced", max_iter=1000).fit(X, y)
    fitted = (*np.round(model.coef_[0], 2), round(float(model.intercept_[0]), 2))
    print(f"fitted on {y.size} hits ({int(y.sum())} rides): _RIDE_WEIGHTS = {tuple(float(w) for w in fitted)}")

    def accuracy(group: list[dict], src: str, w) -> str:
        right = total = 0
        for s in group:
            feats, labels = s[src]
            if not labels.size:
                continue
            score = feats @ np.array(w[:4]) + w[4]
            k = D._RIDE_NEIGHBOURS
            median = np.nanmedian(sliding_window_view(np.pad(score, k, constant_values=np.nan), 2 * k + 1), axis=1)
            keep = labels >= 0
            right += int(((median[keep] > 0) == (labels[keep] == 1)).sum())
            total += int(keep.sum())
        return f"{right / max(total, 1):.3f} ({total} hits)"

    print("\n| set | stems | package weights | fitted weights |\n|---|---|---:|---:|")
    for folder in [*args.fit, *args.test]:
        group = songs(folder)
        for src in ("true", "separated"):
            print(f"| {folder.name}{' (fit)' if folder in args.fit else ''} | {src} | "
                  f"{accuracy(group, src, D._RIDE_WEIGHTS)} | {accuracy(group, src, fitted)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
