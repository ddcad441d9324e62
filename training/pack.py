"""Pack the decoded cache as Ogg Vorbis files (``training/cache/pack/``, ~48 MB) to carry it to a
machine without PyAV (a lent GPU), and unpack it there into ``training/cache/`` with soundfile.

    python training/pack.py pack                # here: cache/musdb/*.npy -> cache/pack/*.ogg + index.json
    python training/pack.py pack --train-only   # the 79 training clips alone (39 MB: the repository
                                                # and the pack must travel in 64 MiB; scores come back here)
    python training/pack.py unpack              # there: pack -> cache/musdb/*.npy (lossy: Vorbis q~0.5)
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / "cache" / "musdb"
PACK = ROOT / "cache" / "pack"


def pack(train_only: bool = False) -> None:
    import soundfile as sf

    if PACK.exists():
        shutil.rmtree(PACK)
    PACK.mkdir()
    index = json.loads((CACHE / "index.json").read_text())
    if train_only:
        index["clips"] = [c for c in index["clips"] if c["split"] != "valid"]
    for clip in index["clips"]:
        arr = np.load(CACHE / clip["file"])
        streams = range(5) if clip["split"] == "valid" else range(1, 5)
        for s in streams:
            sf.write(PACK / f"{clip['file'][:-4]}_{s}.ogg", arr[s].T, 44100, format="OGG", subtype="VORBIS",
                     compression_level=0.45)
    (PACK / "index.json").write_text(json.dumps(index, indent=1))


def unpack() -> None:
    import soundfile as sf

    CACHE.mkdir(parents=True, exist_ok=True)
    index = json.loads((PACK / "index.json").read_text())
    for clip in index["clips"]:
        parts = {}
        for s in range(5):
            f = PACK / f"{clip['file'][:-4]}_{s}.ogg"
            if f.exists():
                parts[s] = sf.read(f, dtype="float32")[0].T
        n = min(p.shape[1] for p in parts.values())
        arr = np.zeros((5, 2, n), np.float32)
        for s, p in parts.items():
            arr[s] = p[:, :n]
        if 0 not in parts:
            arr[0] = arr[1:].sum(0)
        np.save(CACHE / clip["file"], arr)
    shutil.copy(PACK / "index.json", CACHE / "index.json")


if __name__ == "__main__":
    if sys.argv[1:2] == ["pack"]:
        pack(train_only="--train-only" in sys.argv[2:])
    elif sys.argv[1:2] == ["unpack"]:
        unpack()
    else:
        sys.exit("usage: python training/pack.py pack [--train-only] | unpack")
