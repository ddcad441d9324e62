"""Toms on real recordings, with and without the fill rule for separated drum stems.

The 15 held-out MUSDB clips have no drum labels. For each, this counts the toms transcribed from
the true drum stem and from lite's drum stem, the latter with every tom kept and with the rule of
``stemscribe.transcribe.drums._FILL_GAP_S`` (a tom in a separated stem needs another nearby), and
scores lite's drum notes against the true stem's transcription (pooled onset F1 over the classes,
50 ms). Both transcriptions get the song's other stems (true or lite's), as ``split`` does.

    python benchmarks/drums_real_toms.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MUSDB = ROOT.parent / "shared" / "data" / "musdb7s-train"


def main() -> None:
    sys.path.insert(0, str(ROOT / "training"))
    from cache import validation_names

    import stemscribe.transcribe.drums as drums
    from stemscribe.evaluate import drum_class, drum_scores, read_stem_mp4
    from stemscribe.separate import get_separator

    names = validation_names([p.name[: -len(".stem.mp4")] for p in MUSDB.glob("*.stem.mp4")])
    sep = get_separator("lite")
    gap = drums._FILL_GAP_S
    rows = []
    for name in names:
        st = read_stem_mp4(MUSDB / f"{name}.stem.mp4")
        out = sep.separate(st["mixture"])
        sep_others = {k: v for k, v in out.items() if k != "drums"}
        drums._FILL_GAP_S = None  # every tom kept
        truth = drums.transcribe_drums(st["drums"], others={k: st[k] for k in ("bass", "other", "vocals")})
        before = drums.transcribe_drums(out["drums"], others=sep_others)
        drums._FILL_GAP_S = gap
        after = drums.transcribe_drums(out["drums"], others=sep_others)

        def n_toms(track) -> int:
            return sum(drum_class(n.pitch) == "toms" for n in track.notes)

        rows.append((n_toms(truth), n_toms(before), n_toms(after),
                     drum_scores(truth, before)["all"]["f1"], drum_scores(truth, after)["all"]["f1"]))
        print(f"{name[:40]:40s} toms true {rows[-1][0]:2d}, lite every tom {rows[-1][1]:2d}, "
              f"lite fill rule {rows[-1][2]:2d}; F1 {rows[-1][3]:.3f} -> {rows[-1][4]:.3f}", flush=True)
    r = np.array(rows, dtype=float)
    print(f"toms in all clips: true stems {r[:, 0].sum():.0f}, lite every tom {r[:, 1].sum():.0f}, "
          f"lite fill rule {r[:, 2].sum():.0f}; mean F1 against the true stems' notes "
          f"{r[:, 3].mean():.3f} -> {r[:, 4].mean():.3f}")


if __name__ == "__main__":
    main()
