"""Merge several ``train_seq.py`` outputs into one ensemble file (keys prefixed m0_, m1_, ...).

    python training/harmony/merge_seq.py a.npz b.npz --out src/stemscribe/data/harmony/seq.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    arrays = {}
    for i, path in enumerate(args.inputs):
        with np.load(path) as z:
            arrays.update({f"m{i}_{k}": z[k].astype(np.float16) for k in z.files})  # half size, same chords
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out}: {len(args.inputs)} models")


if __name__ == "__main__":
    main()
