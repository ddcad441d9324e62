"""Live mode's speed on each engine: PyTorch against ONNX Runtime, alternating in one process.

    python benchmarks/live_speed.py [FILE] [--blocks-ms 30,40] [--repeats 3] [--json OUT]

Runs ``stemscribe.live.run_live`` (what ``stemscribe live FILE`` runs: vocals and instrumental
written as WAV, the report, one torch thread) on FILE played as a stream as fast as it goes, once
per engine, block size and repeat, in alternation so that both engines see the machine in the same
state.  Prints the real-time factor (processing time / audio duration) and the latency.  Measure on
an idle machine: another busy process on a 2-core machine moves these numbers by 10-30 %.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

DEFAULT = ROOT.parent / "shared" / "data" / "devset" / "dev01" / "mixture.flac"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file", nargs="?", type=Path, default=DEFAULT)
    p.add_argument("--blocks-ms", default="30", help="comma-separated block lengths in ms (default 30, the CLI's)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    from stemscribe.live import SR, file_blocks, run_live
    from stemscribe.separate.lite import load_lite

    seps = {"torch": load_lite(engine="torch"), "onnxruntime": load_lite(engine="onnx")}
    rows: dict[str, dict[str, list]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for ms in [float(v) for v in args.blocks_ms.split(",")]:
                block = round(ms * SR / 1000)
                for name, sep in seps.items():
                    blocks, channels, _ = file_blocks(args.file, block)
                    rep = run_live(blocks, out_dir=tmp, channels=channels, block=block, separator=sep)
                    row = rows.setdefault(f"{name} {ms:g} ms", {"rtf": [], "latency_ms": []})
                    row["rtf"].append(rep["real_time_factor"])
                    row["latency_ms"].append(rep["latency_ms"]["measured_max"])
    print(f"{args.file}: x real time (median, range) and latency, {args.repeats} alternating runs")
    for key, row in rows.items():
        r = row["rtf"]
        print(f"  {key:22s} {statistics.median(r):.3f}  ({min(r):.3f}-{max(r):.3f})  latency {max(row['latency_ms']):.0f} ms")
    if args.json:
        args.json.write_text(json.dumps({"file": str(args.file), "runs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
