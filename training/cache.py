"""Decode the musdb7s-train ``.stem.mp4`` clips into float32 numpy arrays under ``training/cache/``.

Each clip becomes ``cache/musdb/<index>.npy`` of shape ``(5, 2, n)`` holding the streams in the
MUSDB order mixture, drums, bass, other, vocals at 44.1 kHz.  ``cache/musdb/index.json`` lists the
clips and the train/validation split: the validation set is a fixed, deterministic choice of
``N_VALID`` clips from the name-sorted list (every ``len // N_VALID``-th name), so every session
and every machine holds out the same clips.

    python training/cache.py [--data ../shared/data/musdb7s-train]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "musdb7s-train"
CACHE = ROOT / "cache" / "musdb"
STREAMS = ("mixture", "drums", "bass", "other", "vocals")
N_VALID = 15
SR = 44100


def validation_names(names: list[str], n_valid: int = N_VALID) -> list[str]:
    """The held-out clips: every ``len(names) // n_valid``-th of the sorted names."""
    names = sorted(names)
    step = max(1, len(names) // n_valid)
    return [names[i * step] for i in range(min(n_valid, len(names)))]


def decode_stems(path: Path) -> np.ndarray:
    """Decode every audio stream of ``path``; returns ``(streams, 2, n)`` float32 at 44.1 kHz."""
    import av

    out = []
    with av.open(str(path)) as container:
        n_streams = len(container.streams.audio)
    for index in range(n_streams):
        with av.open(str(path)) as container:
            stream = container.streams.audio[index]
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SR)
            chunks = []
            for frame in container.decode(stream):
                for rf in resampler.resample(frame):
                    chunks.append(rf.to_ndarray())
            for rf in resampler.resample(None):
                chunks.append(rf.to_ndarray())
            out.append(np.concatenate(chunks, axis=1).astype(np.float32))
    n = min(x.shape[1] for x in out)
    return np.stack([x[:, :n] for x in out])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=CACHE)
    args = parser.parse_args()
    files = sorted(args.data.glob("*.stem.mp4"))
    if not files:
        raise SystemExit(f"no .stem.mp4 files in {args.data}")
    names = [f.name[: -len(".stem.mp4")] for f in files]
    valid = set(validation_names(names))
    args.out.mkdir(parents=True, exist_ok=True)
    clips = []
    for i, (f, name) in enumerate(zip(files, names)):
        target = args.out / f"{i:03d}.npy"
        if not target.exists():
            arr = decode_stems(f)
            tmp = target.with_suffix(".tmp.npy")
            np.save(tmp, arr)
            tmp.rename(target)
        clips.append({"name": name, "file": target.name, "split": "valid" if name in valid else "train"})
    (args.out / "index.json").write_text(json.dumps({"sr": SR, "streams": STREAMS, "clips": clips}, indent=1))
    print(f"{len(clips)} clips cached in {args.out} ({len(valid)} held out for validation)")


if __name__ == "__main__":
    main()
