"""Lone toms in separated drum stems: drum onset F1 per class for several fill gaps.

In a separated drum stem (``transcribe_drums(..., others=...)``, as ``stemscribe split`` calls it)
a tom needs another tom within ``stemscribe.transcribe.drums._FILL_GAP_S`` seconds. This separates
every song of the labelled folders with ``lite`` (cached in ``--cache``), transcribes the drum stem
with the gap off (every tom kept) and at each ``--gaps`` value, and prints the pooled onset F1
(50 ms) per class (``stemscribe.evaluate.DRUM_CLASSES``) with the toms' reference / estimated /
matched counts; ``--true`` also scores the true drum stems (with the true other stems given).

    python benchmarks/drums_fill_gap.py /work/rendered-tune --gaps 0.2 0.3 0.4 0.6
    python benchmarks/drums_fill_gap.py ../shared/data/devset benchmarks/results/rendered-eval --true
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help="labelled song folders (the devset layout)")
    ap.add_argument("--gaps", type=float, nargs="+", default=[0.3, 0.6])
    ap.add_argument("--true", action="store_true", help="also score the true drum stems")
    ap.add_argument("--cache", default="/tmp/stemscribe-sepcache", help="separated stems, per song")
    args = ap.parse_args()

    import stemscribe.transcribe.drums as drums
    from stemscribe.evaluate import drum_scores, load_dataset
    from stemscribe.separate import get_separator

    sep = get_separator("lite")
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    songs = []
    for root in args.folders:
        for song in load_dataset(root):
            f = cache / f"{Path(root).name}-{song.name}.pkl"
            if f.exists():
                stems = pickle.loads(f.read_bytes())
            else:
                stems = sep.separate(song.load_mixture())
                f.write_bytes(pickle.dumps(stems))
            songs.append((song, stems))

    default_gap = drums._FILL_GAP_S
    for gap in ["off", *args.gaps]:
        drums._FILL_GAP_S = None if gap == "off" else gap
        for source in ["separated", "true"] if args.true else ["separated"]:
            tot: dict[str, list[int]] = {}
            for song, sep_stems in songs:
                stems = sep_stems if source == "separated" else song.load_stems()
                est = drums.transcribe_drums(stems["drums"], others={k: v for k, v in stems.items() if k != "drums"})
                scores = drum_scores(song.load_midi("drums"), est)
                for cls, v in [*scores["classes"].items(), ("all", scores["all"])]:
                    t = tot.setdefault(cls, [0, 0, 0])
                    t[0] += v["n_ref"]
                    t[1] += v["n_est"]
                    t[2] += v["n_match"]
            f1 = {c: round(2 * m / (r + e), 3) if r + e else None for c, (r, e, m) in tot.items()}
            print(f"gap {gap} {source}: F1 {f1}; toms ref/est/match {tot.get('toms')}", flush=True)
    drums._FILL_GAP_S = default_gap


if __name__ == "__main__":
    main()
