"""Pick the inference softmax temperature on the held-out clips for a checkpoint.

    python training/tune_temperature.py training/checkpoints/best.pt [--set 0.6,0.8,1.0,1.25] [--level]

Prints the held-out scores (the criterion) and the devset's (logged only) per temperature; ship the
pick with ``training/export.py CKPT --temperature T``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--set", default="0.6,0.8,1.0,1.25")
    p.add_argument("--devset", type=Path, default=train.DEVSET)
    p.add_argument("--level", action="store_true",
                   help="score with the input level normalisation the package ships (export.py --level)")
    args = p.parse_args()
    torch.set_num_threads(1)
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    valid = train.Clips("valid")
    devset = train.load_devset(args.devset) if args.devset.is_dir() else []
    for t in (float(v) for v in args.set.split(",")):
        # a checkpoint trained with the level normalisation keeps its own settings (as export.py --level)
        level = {"level": dict(train.LEVEL_DEFAULTS)} if args.level and ckpt["config"].get("level") is None else {}
        net = train.LiteNet({**ckpt["config"], "temperature": t, **level})
        net.load_state_dict(ckpt["model"])
        held = {k: round(v, 3) for k, v in train.validate(net, valid).items()}
        dev = {k: round(v, 3) for k, v in train.validate(net, devset).items()} if devset else None
        print(t, "held-out", held, "devset", dev, flush=True)


if __name__ == "__main__":
    main()
