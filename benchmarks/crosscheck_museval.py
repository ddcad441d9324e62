"""Check stemscribe.evaluate.framewise_sdr against the museval package (BSSEval v4) itself.

museval pulls in pandas, musdb and stempeg, and its metrics use ``np.float`` (removed in NumPy
1.24), so it is not a stemscribe dependency. Run this in a throwaway venv::

    python3 -m venv /tmp/musevalvenv && /tmp/musevalvenv/bin/pip install museval
    /tmp/musevalvenv/bin/python benchmarks/crosscheck_museval.py [DEVSET]

It scores a noisy and a smeared estimate of every devset song (or synthetic signals when no
DEVSET is given) with both implementations and prints the largest difference per frame (dB).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
np.float = float  # museval 0.4.1 still uses the alias removed in NumPy 1.24
# museval imports musdb -> stempeg, which refuses to import without an ffmpeg binary; the metrics
# need neither, so stand in an empty module
sys.modules.setdefault("musdb", types.ModuleType("musdb"))

import museval

from stemscribe.evaluate import framewise_sdr, nanmedian


def songs(devset: Path | None):
    rng = np.random.default_rng(0)
    if devset is None:
        for k in range(3):
            yield f"synthetic{k}", rng.standard_normal((4, 2, 44100 * 6)) * 0.1, 44100
        return
    import soundfile as sf

    for d in sorted(devset.glob("dev*")):
        refs = [sf.read(d / f"{s}.flac", dtype="float64", always_2d=True) for s in ("drums", "bass", "other", "vocals")]
        yield d.name, np.stack([r[0].T for r in refs]), refs[0][1]


def main() -> int:
    devset = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    rng = np.random.default_rng(1)
    worst = 0.0
    for name, ref, sr in songs(devset):
        smear = np.stack([np.apply_along_axis(lambda x: np.convolve(x, [0.6, 0.3, 0.1], "same"), -1, r) for r in ref])
        for kind, est in (("noisy", ref + 0.05 * rng.standard_normal(ref.shape)), ("smeared", smear + 0.5 * ref[::-1])):
            ours = framewise_sdr(ref, est, sr=sr)
            sdr, _, _, _ = museval.evaluate(np.moveaxis(ref, 1, 2), np.moveaxis(est, 1, 2), win=sr, hop=sr, mode="v4")
            both = np.isfinite(ours) & np.isfinite(sdr)
            assert np.array_equal(np.isnan(ours), np.isnan(sdr)), "NaN frames differ"
            diff = float(np.max(np.abs(ours[both] - sdr[both]))) if both.any() else 0.0
            worst = max(worst, diff)
            med = [f"{nanmedian(o):.3f}/{nanmedian(m):.3f}" for o, m in zip(ours, sdr)]
            print(f"{name} {kind}: frames {ours.shape[1]}, max |diff| {diff:.2e} dB, medians ours/museval {med}")
    print(f"largest difference: {worst:.2e} dB")
    return 0 if worst < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
