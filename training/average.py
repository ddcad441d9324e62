"""Average the weights of several checkpoints of one run (stochastic weight averaging, done after
the fact) and score the average on the held-out clips like ``train.py`` does.

Checkpoints come from ``train.py --keep-all`` (``<ckpt-dir>/steps/stepNNNNNN.pt``) or are any
``best.pt`` / ``last.pt`` of the same architecture.  The average is written as a checkpoint that
``export.py`` takes; the step recorded is the last one averaged.

    python training/average.py training/checkpoints/steps/step00{2,3}*.pt --out training/checkpoints/avg.pt
    python training/average.py --last 6 --out training/checkpoints/avg.pt     # the newest 6 in steps/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def average(paths: list[Path]) -> dict:
    """A checkpoint dict whose ``model`` is the element-wise mean of the given checkpoints' models."""
    import torch

    first = torch.load(paths[0], map_location="cpu", weights_only=False)
    total = {k: v.double().clone() for k, v in first["model"].items()}
    last, steps = first, [int(first["step"])]
    histories = [(paths[0], first.get("data"))]
    for p in paths[1:]:
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
        if ckpt["config"] != first["config"]:
            raise SystemExit(f"{p}: another architecture than {paths[0]}")
        for k, v in ckpt["model"].items():
            total[k] += v.double()
        steps.append(int(ckpt["step"]))
        histories.append((p, ckpt.get("data")))
        if ckpt["step"] > last["step"]:
            last = ckpt
    model = {k: (v / len(paths)).to(first["model"][k].dtype) for k, v in total.items()}
    out = {"config": first["config"], "model": model, "step": last["step"], "seconds": last["seconds"],
           "averaged": [str(p) for p in paths], "averaged_steps": sorted(steps)}
    if "data" in last:  # the data settings (export.py describes them)
        out["data"] = merge_histories(histories)
    return out


def merge_histories(histories: list[tuple[Path, list[dict] | None]]) -> list[dict]:
    """One data-settings history for an average of checkpoints.

    Checkpoints of one run share their history (the newest one's is kept). An average across runs
    that forked from one checkpoint (a "soup") keeps the shared entries once, then each run's own
    entries, labelled with the run's folder (``run``), so the manifest says what every part saw."""
    known = [(p, h) for p, h in histories if h]
    if not known:
        return []
    runs: dict[str, list[dict]] = {}  # per run folder its longest history (later checkpoints extend it)
    for p, h in known:
        run = p.parent.parent.name if p.parent.name == "steps" else p.parent.name
        if run not in runs or len(h) > len(runs[run]):
            runs[run] = h
    shared = []  # the entries every run has (for a single run: all of them)
    for entries in zip(*runs.values()):
        if any(e != entries[0] for e in entries):
            break
        shared.append(entries[0])
    merged = list(shared)
    for run, h in runs.items():
        merged += [{**e, "run": run} for e in h[len(shared):]]
    return merged


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", type=Path, nargs="*")
    p.add_argument("--last", type=int, default=0, help="average the newest N of <ckpt-dir>/steps/")
    p.add_argument("--ckpt-dir", type=Path, default=ROOT / "checkpoints")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--no-validate", action="store_true")
    args = p.parse_args()
    paths = list(args.checkpoints)
    if args.last:
        paths += sorted((args.ckpt_dir / "steps").glob("step*.pt"))[-args.last :]
    if not paths:
        raise SystemExit("no checkpoints given")
    import torch

    torch.set_num_threads(1)
    ckpt = average(paths)
    if not args.no_validate:
        import train

        net = train.LiteNet(ckpt["config"])
        net.load_state_dict(ckpt["model"])
        scores = train.validate(net, train.Clips("valid"))
        devset = train.load_devset(train.DEVSET)
        if devset:
            scores["devset"] = train.validate(net, devset)
        ckpt["scores"] = scores
        print(json.dumps(scores))
    tmp = args.out.with_suffix(".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(args.out)
    print(f"averaged {len(paths)} checkpoints (steps up to {ckpt['step']}) -> {args.out}")


if __name__ == "__main__":
    sys.exit(main())
