"""Export a training checkpoint to the shipped format: ``lite.safetensors`` (float16 weights) +
``lite.json`` (config, sha256, scores, training time, licence notes) + the network's steps as
ONNX graphs for ONNX Runtime (``lite.encode.onnx``, ``lite.recur.onnx``, ``lite.masks.onnx``,
built from the float16 weights just written; needs ``pip install onnx``).

    python training/export.py training/checkpoints/best.pt [--out src/stemscribe/data/models] [--temperature T] [--level]
    python training/export.py --onnx-only src/stemscribe/data/models/lite.safetensors  # graphs for existing weights

``--temperature`` sets the inference softmax temperature in the shipped config (pick it with
``training/tune_temperature.py`` on the held-out clips); ``validation_sdr_db`` stays the
checkpoint's own validation, which ran at temperature 1 like all training.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PACKAGE_DIR = ROOT.parent / "src" / "stemscribe" / "data" / "models"

LICENCE = (
    "Weights trained on excerpts of MUSDB18 (research / non-commercial use only; see "
    "https://sigsep.github.io/datasets/musdb.html). The weights inherit that restriction: "
    "do not use them commercially. Code: same licence as stemscribe."
)


# Data settings of the lineage of checkpoints written before train.py recorded them: musdb only up to
# step 531, then a quarter of the examples from POP909 renders (runs crn-c and crn-d).
LEGACY_DATA = [{"from_step": 0, "p_rendered": 0.0, "p_reverb": 0.0},
               {"from_step": 531, "p_rendered": 0.25, "p_reverb": 0.0}]


def describe_data(history: list[dict]) -> str:
    """The manifest's one-line data description from a checkpoint's data-settings history."""
    text = "musdb7s-train: 79 MUSDB18 7-second clips (15 held out for validation)"
    rendered = [h["from_step"] for h in history if h.get("p_rendered", 0) > 0]
    if rendered:
        text += (f"; since step {rendered[0]} also 8 s clips rendered from POP909 MIDI (MIT) with GM soundfonts "
                 "(FluidR3_GM, MuseScore_General: MIT; sf_GMbank: public domain)")
    reverb = [h["from_step"] for h in history if h.get("p_reverb", 0) > 0]
    if reverb:
        text += f"; since step {reverb[0]} real stems also with synthetic-room reverb"
    return text


def _level_defaults() -> dict:
    """The input level normalisation of ``stemscribe.separate.lite_net`` (imported from the source tree)."""
    import train

    return train.LEVEL_DEFAULTS


def export(ckpt_path: Path, out_dir: Path, temperature: float | None = None, level: bool = False) -> Path:
    """Write ``out_dir/lite.safetensors`` and ``out_dir/lite.json`` atomically; returns the weights path."""
    import torch
    from safetensors.torch import save_file

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    history = [h for h in ckpt.get("data", LEGACY_DATA) if h["from_step"] < ckpt["step"]]
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in ckpt["model"].items()}
    weights = out_dir / "lite.safetensors"
    tmp = out_dir / "lite.safetensors.tmp"
    # one metadata entry only: safetensors writes its metadata map in a per-process random order, so
    # two entries made the bytes (and the sha256) of one checkpoint's export differ between runs
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    manifest = {
        "name": "lite",
        "version": int(ckpt["step"]),
        "file": "lite.safetensors",
        "sha256": digest,
        "bytes": tmp.stat().st_size,
        "dtype": "float16",
        "config": {**ckpt["config"], **({"temperature": float(temperature)} if temperature is not None else {}),
                   **({"level": dict(_level_defaults())} if level and ckpt["config"].get("level") is None else {})},
        "parameters": int(sum(v.numel() for v in tensors.values())),
        "training": {"step": int(ckpt["step"]), "hours": round(float(ckpt["seconds"]) / 3600, 3),
                     **({"averaged_steps": ckpt["averaged_steps"]} if "averaged_steps" in ckpt else {})},
        "validation_sdr_db": {k: round(v, 3) for k, v in ckpt.get("scores", {}).items() if isinstance(v, float) and k != "hours"},
        "licence": LICENCE,
        "data": describe_data(history),
        "data_history": history,
    }
    tmp.chmod(0o644)
    os.replace(tmp, weights)
    _publish(out_dir / "lite.json", (json.dumps(manifest, indent=1) + "\n").encode())
    return weights


def _publish(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling, so ``path`` is never half-written."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    os.replace(tmp, path)


def add_onnx(weights: Path) -> dict:
    """Export the ONNX graphs of the float16 ``weights`` beside them and register them (file, sha256)
    in the manifest; returns the manifest's ``onnx`` entry."""
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        raise ImportError("exporting the ONNX graphs needs the onnx package: pip install onnx (or pip install '.[test]')")
    sys.path.insert(0, str(ROOT.parent / "src"))
    from stemscribe.separate.lite import load_lite
    from stemscribe.separate.lite_onnx import export_onnx

    net = load_lite(weights=weights, engine="torch").net
    graphs = export_onnx(net)
    entry = {}
    for name, data in graphs.items():
        path = weights.parent / f"{weights.stem}.{name}.onnx"
        _publish(path, data)
        entry[name] = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    mpath = weights.with_suffix(".json")
    manifest = json.loads(mpath.read_text())
    manifest["onnx"] = entry
    _publish(mpath, (json.dumps(manifest, indent=1) + "\n").encode())
    return entry


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path, nargs="?")
    p.add_argument("--onnx-only", type=Path, metavar="WEIGHTS",
                   help="only (re)build the ONNX graphs of existing lite.safetensors weights")
    p.add_argument("--out", type=Path, default=PACKAGE_DIR)
    p.add_argument("--temperature", type=float, default=None, help="inference softmax temperature to ship")
    p.add_argument("--level", action="store_true",
                   help="ship the input level normalisation (LEVEL_DEFAULTS in lite_net.py) with a checkpoint trained without it")
    args = p.parse_args()
    if args.onnx_only is not None:
        try:
            print(json.dumps(add_onnx(args.onnx_only), indent=1))
        except ImportError as exc:
            p.error(str(exc))
        return 0
    if args.checkpoint is None:
        p.error("give a checkpoint (or --onnx-only WEIGHTS)")
    if args.temperature is not None and not 0.25 <= args.temperature <= 4:
        p.error(f"--temperature {args.temperature}: expected a value between 0.25 and 4 (1 = as trained)")
    weights = export(args.checkpoint, args.out, args.temperature, args.level)
    try:
        add_onnx(weights)
    except ImportError as exc:  # the weights are usable without the graphs (on PyTorch)
        print(f"export: {exc}; {weights} will run on PyTorch only", file=sys.stderr)
        return 1
    print(weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
