"""Train the ``lite`` separator on musdb7s-train with random cross-clip remixing.

Resumes automatically from ``<ckpt-dir>/last.pt``; checkpoints every ``--ckpt-every`` seconds
(model + optimizer + step + RNG + best score); validates on the held-out clips (whole clips,
SDR per stem) at every checkpoint, logs to ``<ckpt-dir>/valid.jsonl``; exports the best
model to ``<ckpt-dir>/best/`` and (with ``--export-package``) to the package.

    python training/cache.py            # once: decode the clips into training/cache/
    setsid nohup nice -n 0 python training/train.py --export-package > training/checkpoints/train.log 2>&1 &
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))


def _load_lite_net():
    """Import the network module by path: training must not need the package's other dependencies."""
    import importlib.util

    path = ROOT.parent / "src" / "stemscribe" / "separate" / "lite_net.py"
    spec = importlib.util.spec_from_file_location("lite_net", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["lite_net"] = module
    spec.loader.exec_module(module)
    return module


_net = _load_lite_net()
LiteNet, count_parameters, sdr = _net.LiteNet, _net.count_parameters, _net.sdr
LEVEL_DEFAULTS = _net.LEVEL_DEFAULTS

import export as export_mod
from drum_hits import OUT as DRUM_HITS
from drum_hits import DrumHits, add_fill
from render_data import room

CACHE = ROOT / "cache" / "musdb"
#: the synthetic devset beside the repository (scored at each checkpoint, logged only)
DEVSET = ROOT.parent.parent / "shared" / "data" / "devset"
STEMS = ("drums", "bass", "other", "vocals")


class Clips:
    """Memory-mapped cached clips: ``stem(i, s)`` is ``(2, n)`` for stem index ``s`` (drums, bass, other, vocals).

    The musdb cache stores ``(5, 2, n)`` float32 (mixture first); the rendered cache
    (``training/render_data.py``) stores ``(4, 2, n)`` float16 (stems only)."""

    def __init__(self, split: str | None, cache: Path = CACHE) -> None:
        self.cache = cache
        self.indexed = (cache / "index.json").exists()
        if self.indexed:
            index = json.loads((cache / "index.json").read_text())
        else:  # a rendered cache still being written: take the finished clips
            index = {"streams": ["drums"], "clips": [{"file": p.name} for p in sorted(cache.glob("[0-9]*[0-9].npy"))]}
        self.first = 1 if index.get("streams", [""])[0] == "mixture" else 0
        self.names, self.arrays = [], []
        self._rms: dict[tuple[int, int], float] = {}
        for clip in index["clips"]:
            if split is None or clip.get("split") == split:
                self.names.append(clip.get("name", clip["file"]))
                self.arrays.append(np.load(cache / clip["file"], mmap_mode="r"))

    def __len__(self) -> int:
        return len(self.arrays)

    def stem(self, i: int, s: int) -> np.ndarray:
        return self.arrays[i][s + self.first]

    def rms(self, i: int, s: int) -> float:
        """Root mean square of stem ``s`` of clip ``i`` over the whole clip (computed once)."""
        if (i, s) not in self._rms:
            self._rms[(i, s)] = float(np.sqrt(np.mean(np.square(self.stem(i, s), dtype=np.float64))))
        return self._rms[(i, s)]


def random_eq(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random two-band tilt EQ: one-pole split at 150 Hz-5 kHz, each band -6..+6 dB. ``x``: ``(2, n)``."""
    from scipy.signal import lfilter

    cutoff = 150 * (5000 / 150) ** rng.random()
    p = float(np.exp(-2 * np.pi * cutoff / 44100))
    low = lfilter([1 - p], [1, -p], x, axis=-1)
    g_low, g_high = 10 ** (rng.uniform(-6, 6, size=2) / 20)
    return (g_low * low + g_high * (x - low)).astype(np.float32)


def _segment(clips: Clips, i: int, s: int, start: int | None, need: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``need`` samples of stem ``s`` of clip ``i`` from ``start`` (random when None); returns (segment, start)."""
    clip = clips.stem(i, s)
    n = clip.shape[-1]
    if n <= need:
        seg = np.pad(np.asarray(clip, np.float32), ((0, 0), (0, need - n + 1)))
        return seg, 0
    if start is None or start + need > n:
        start = int(rng.integers(n - need))
    return np.asarray(clip[:, start : start + need], np.float32), start


def make_batch(clips: Clips, rng: np.random.Generator, batch: int, length: int,
               rendered: Clips | None = None, p_rendered: float = 0.0, p_reverb: float = 0.0,
               p_mono: float = 0.0, p_coherent: float = 0.25, hits: DrumHits | None = None,
               p_toms: float = 0.0, rendered_rms_db: float | None = None) -> np.ndarray:
    """Random remixes ``(batch, 4, 2, length)``: per stem a random clip, offset, gain, channel swap,
    polarity, varispeed, tilt EQ; with probability ``p_coherent`` all stems from one clip and offset
    (a real mix, as the held-out clips and users' songs are: same key, same beat).

    With probability ``p_rendered`` an example comes from a rendered POP909 clip instead (drums,
    bass and other from the same clip and offset, i.e. one arrangement), whose vocals are the
    rendered (formant-synthesised or GM voice) part half of the time and a real musdb vocal otherwise.

    With probability ``p_reverb`` a real stem is also convolved with a synthetic room (RT60 0.2-1.5 s,
    wet 0.1-0.4; the reverberant stem is the target, as a mixing engineer's reverb is part of a stem).

    With probability ``p_mono`` a whole example is made mono (both channels the mean of the two), as
    mono recordings are (a model with the side input must also handle a side signal of zero).

    With probability ``p_toms`` the drum stem also gets a tom fill or a few tom / kick hits from
    ``hits`` (``drum_hits.add_fill``): real and rendered songs hold few toms, and lite put them in its
    bass stem.

    ``rendered_rms_db``: each rendered stem is first scaled to this level (RMS over its whole clip,
    dBFS; before the random gain) instead of keeping the peak normalisation it was rendered with,
    which leaves the peaky drum stem about 7 dB under the others (real MUSDB stems: -23 dBFS median,
    drums about as loud as the rest)."""
    out = np.zeros((batch, 4, 2, length), np.float32)
    for b in range(batch):
        from_render = rendered is not None and len(rendered) and rng.random() < p_rendered
        coherent = from_render or rng.random() < p_coherent
        base = int(rng.integers(len(rendered) if from_render else len(clips)))
        start = None
        for s in range(4):
            source, i = (rendered, base) if from_render else (clips, base if coherent else int(rng.integers(len(clips))))
            if from_render and s == 3 and rng.random() < 0.5:
                source, i = clips, int(rng.integers(len(clips)))
            speed = 1.0 if coherent or rng.random() < 0.5 else float(rng.uniform(0.88, 1.12))
            need = math.ceil(length * speed) + 2
            seg, first = _segment(source, i, s, start if source is rendered or (coherent and not from_render) else None,
                                  need, rng)
            if source is rendered or (coherent and not from_render):
                start = first
            if speed != 1.0:
                pos = np.arange(length) * speed
                i0 = pos.astype(np.int64)
                frac = (pos - i0).astype(np.float32)
                seg = seg[:, i0] * (1 - frac) + seg[:, i0 + 1] * frac
            else:
                seg = seg[:, :length]
            if source is rendered and rendered_rms_db is not None:
                level = rendered.rms(i, s)
                if level > 1e-6:
                    seg = seg * np.float32(10 ** (rendered_rms_db / 20) / level)
            if s == 0 and hits is not None and p_toms > 0 and rng.random() < p_toms:
                seg = add_fill(seg, hits, rng)
            if rng.random() < 0.5:
                seg = random_eq(seg, rng)
            if source is clips and p_reverb > 0 and rng.random() < p_reverb:
                seg = room(seg, rng)
            gain = 10 ** (rng.uniform(-9, 3) / 20)
            if rng.random() < 0.5:
                gain = -gain
            if rng.random() < 0.5:
                seg = seg[::-1]
            if rng.random() < 0.05:
                gain = 0.0
            out[b, s] = seg * gain
        if p_mono > 0 and rng.random() < p_mono:
            out[b] = out[b].mean(axis=1, keepdims=True)
    return out


class RemixStream(torch.utils.data.IterableDataset):
    """Endless random batches for a DataLoader; each worker draws from its own seed."""

    def __init__(self, clips: Clips, seed: int, batch: int, length: int, rendered: Clips | None = None,
                 p_rendered: float = 0.0, p_reverb: float = 0.0, p_mono: float = 0.0, p_coherent: float = 0.25,
                 hits: DrumHits | None = None, p_toms: float = 0.0, rendered_rms_db: float | None = None) -> None:
        self.clips, self.seed, self.batch, self.length = clips, seed, batch, length
        self.hits, self.p_toms, self.rendered_rms_db = hits, p_toms, rendered_rms_db
        self.rendered, self.p_rendered, self.p_reverb, self.p_mono = rendered, p_rendered, p_reverb, p_mono
        self.p_coherent = p_coherent

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0, int(time.time())])
        for k in itertools.count():
            if self.rendered is not None and k % 200 == 199 and not self.rendered.indexed:
                self.rendered = Clips(None, self.rendered.cache)  # pick up clips rendered since
            yield torch.from_numpy(make_batch(self.clips, rng, self.batch, self.length, self.rendered, self.p_rendered,
                                              self.p_reverb, self.p_mono, self.p_coherent, self.hits, self.p_toms,
                                              self.rendered_rms_db))


def save_split(ckpt: dict, out: Path) -> None:
    """Write a checkpoint as three files of < 16 MiB each (model, Adam first and second moments)."""
    out.mkdir(parents=True, exist_ok=True)
    opt = ckpt["optimizer"]
    first = {k: {"exp_avg": v["exp_avg"], "step": v["step"]} for k, v in opt["state"].items()}
    second = {k: {"exp_avg_sq": v["exp_avg_sq"]} for k, v in opt["state"].items()}
    torch.save({k: v for k, v in ckpt.items() if k != "optimizer"} | {"param_groups": opt["param_groups"]}, out / "net.pt")
    torch.save(first, out / "adam1.pt")
    torch.save(second, out / "adam2.pt")


def load_split(src: Path) -> dict:
    """Inverse of :func:`save_split`."""
    ckpt = torch.load(src / "net.pt", map_location="cpu", weights_only=False)
    first = torch.load(src / "adam1.pt", map_location="cpu", weights_only=False)
    second = torch.load(src / "adam2.pt", map_location="cpu", weights_only=False)
    state = {k: {**first[k], **second[k]} for k in first}
    ckpt["optimizer"] = {"state": state, "param_groups": ckpt.pop("param_groups")}
    return ckpt


def load_exported(weights: Path) -> dict:
    """A training state (no optimizer) from exported ``lite.safetensors`` + ``lite.json``."""
    from safetensors.torch import load_file

    manifest = json.loads(weights.with_suffix(".json").read_text())
    model = {k: v.float() for k, v in load_file(str(weights)).items()}
    training = manifest.get("training", {})
    # the shipped softmax temperature is an inference setting tuned after training: train at 1
    config = {**manifest["config"], "temperature": 1.0}
    return {"config": config, "model": model, "step": int(training.get("step", 0)),
            "seconds": float(training.get("hours", 0.0)) * 3600,
            "best": float(manifest.get("validation_sdr_db", {}).get("avg", -1e9)),
            "data": manifest.get("data_history", export_mod.LEGACY_DATA)}


def loss_fn(net: LiteNet, stems: torch.Tensor, sdr_weight: float = 0.0,
            stem_weights: Sequence[float] | None = None) -> torch.Tensor:
    """L1 on complex stem STFTs + L1 on their magnitudes, relative to the mixture's level.

    ``stems``: ``(batch, 4, channels, n)``.  The mixture STFT is the sum of the stem STFTs (linearity),
    so only the stems are transformed.  ``sdr_weight`` > 0 adds ``-sdr_weight x`` the mean time-domain
    SDR (dB) of the stems, the quantity the model is judged by.  ``stem_weights`` (one per stem, in the
    model's stem order) weight both terms per stem; they are normalised to mean 1, so equal weights are
    the unweighted loss."""
    n_stems = stems.shape[1]
    w = torch.ones(n_stems, device=stems.device) if stem_weights is None else torch.as_tensor(
        stem_weights, dtype=stems.dtype, device=stems.device)
    if w.numel() != n_stems or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError(f"stem_weights needs {n_stems} non-negative weights, not all zero; got {list(w.tolist())}")
    w = w / w.mean()
    spec = net.stft(net.frame(stems))
    mix = spec.sum(1)
    y = net.separate_spec(mix, net.feature_gains(stems.sum(1)))
    target = spec[:, :, :, : y.shape[3]]
    scale = stems.sum(1).abs().mean(dim=(-2, -1)).clamp_min(1e-4).view(-1, 1, 1, 1, 1)
    yr, tr = torch.view_as_real(y), torch.view_as_real(target)
    diff = (yr - tr).abs().sum(-1)
    mag = ((yr.square().sum(-1) + 1e-10).sqrt() - (tr.square().sum(-1) + 1e-10).sqrt()).abs()
    spectral = (((diff + mag) / scale).mean(dim=(0, 2, 3, 4)) * w).mean() / 20
    if sdr_weight <= 0:
        return spectral
    # plus the metric itself: negative time-domain SDR per stem (silent stems: eps keeps it finite)
    est = net.istft(y, stems.shape[-1])
    eps = 1e-3 * stems.sum(1).square().sum(dim=(-2, -1)).view(-1, 1) + 1e-8
    num = stems.square().sum(dim=(-2, -1)) + eps
    den = (stems - est).square().sum(dim=(-2, -1)) + eps
    return spectral - sdr_weight * ((10 * torch.log10(num / den)).mean(0) * w).mean()


@torch.no_grad()
def init_input_stats(net: LiteNet, clips: Clips, rng: np.random.Generator, length: int, batches: int = 8) -> None:
    """Set the input normalisation to the per-bin mean / std of the compressed mixture magnitudes.

    Without it the all-positive features' mean dominates the encoder, its output hardly changes over
    time, and the network settles on time-invariant masks (seen in the first run)."""
    mean, scale = input_stats(net, clips, rng, length, batches)
    net.in_mean.copy_(mean)
    net.in_scale.copy_(scale)


@torch.no_grad()
def input_stats(net: LiteNet, clips: Clips, rng: np.random.Generator, length: int,
                batches: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and 1 / std of ``net.features`` over random training mixtures."""
    feats = []
    for _ in range(batches):
        stems = torch.from_numpy(make_batch(clips, rng, 4, length))
        mix = stems.sum(1)
        # with the input level normalisation when the model has it (feature_gains is None otherwise)
        f = net.features(net.stft(net.frame(mix)), net.feature_gains(mix))
        feats.append(f.reshape(-1, f.shape[-1]))
    x = torch.cat(feats)
    return x.mean(0), 1.0 / (x.std(0) + 1e-3)


@torch.no_grad()
def add_side_input(state: dict, clips: Clips, rng: np.random.Generator, length: int) -> dict:
    """Give a trained stereo model the side-signal input channel without changing what it computes.

    The new channel's encoder weights start at zero (so the output is unchanged until training
    moves them) and its normalisation comes from training mixtures."""
    config = {**state["config"], "side": True}
    net = LiteNet(config)
    mean, scale = input_stats(net, clips, rng, length)
    model = dict(state["model"])
    nf = model["in_mean"].numel()
    model["in_mean"] = torch.cat([model["in_mean"], mean[nf:]])
    model["in_scale"] = torch.cat([model["in_scale"], scale[nf:]])
    key = "fenc.0.weight" if config.get("arch") == "crn" else "enc.weight"
    w = model[key]
    extra = w.new_zeros(w.shape[0], 1, w.shape[2]) if w.dim() == 3 else w.new_zeros(w.shape[0], net.n_bins)
    model[key] = torch.cat([w, extra], dim=1)
    return {**state, "config": config, "model": model}


@torch.no_grad()
def add_refinement(state: dict, channels: int, seed: int) -> dict:
    """Give a trained crn model the full-resolution refinement, or widen the one it has, without
    changing what it computes.

    A new refinement's last layer starts at zero, so the output is the old model's until training
    moves it; its other layers start at PyTorch's default initialisation. Widening keeps the trained
    channels and adds fresh ones whose weights *into* the next layer start at zero, so they too
    change nothing until training moves them."""
    old = int(state["config"].get("refine", 0) or 0)
    if channels <= old:
        raise ValueError(f"the model already has a {old}-channel refinement; ask for more channels to widen it")
    config = {**state["config"], "refine": int(channels)}
    torch.manual_seed(seed)
    fresh = LiteNet(config).state_dict()
    model = dict(state["model"])
    model.update({k: v for k, v in fresh.items() if k.startswith("refine.")})
    if old:
        trained = state["model"]
        w0, w1, w2 = (model[f"refine.{i}.weight"].clone() for i in range(3))
        w0[:old] = trained["refine.0.weight"]  # all inputs -> the trained channels
        w1[:, old:] = 0.0  # the new channels feed nothing yet
        w1[:old, :old] = trained["refine.1.weight"]
        w2[:, old:] = 0.0
        w2[:, :old] = trained["refine.2.weight"]
        model.update({"refine.0.weight": w0, "refine.1.weight": w1, "refine.2.weight": w2,
                      "refine.0.bias": torch.cat([trained["refine.0.bias"], model["refine.0.bias"][old:]]),
                      "refine.1.bias": torch.cat([trained["refine.1.bias"], model["refine.1.bias"][old:]]),
                      "refine.2.bias": trained["refine.2.bias"].clone()})
    return {**state, "config": config, "model": model}


@torch.no_grad()
def add_refine_context(state: dict, frames: int) -> dict:
    """Let a trained crn model's refinement see ``frames`` past frames (and the look-ahead frame) of
    the full-resolution input features, or more past frames than it sees, without changing what it
    computes: new weights (all of them, or those of the added older frames) start at zero."""
    old = int(state["config"].get("refine_context", 0) or 0)
    if frames <= old:
        raise ValueError(f"the refinement already sees {old} past frames; ask for more to extend it")
    config = {**state["config"], "refine_context": int(frames)}
    if not config.get("refine"):
        raise ValueError("--add-refine-context needs a model with the full-resolution refinement (--add-refine)")
    fresh = LiteNet(config).state_dict()
    model = {**state["model"], **{k: v for k, v in fresh.items() if k.startswith("refine_time.")}}
    if old:  # the kernel's taps run from the oldest frame to the look-ahead frame: pad the old side
        w = state["model"]["refine_time.weight"]
        model["refine_time.weight"] = torch.cat([w.new_zeros(*w.shape[:2], frames - old, w.shape[3]), w], dim=2)
    return {**state, "config": config, "model": model}


@torch.no_grad()
def add_refine_harmonics(state: dict, ratios: list[float]) -> dict:
    """Let a trained crn model's refinement read the input features at ``ratios`` times each bin's
    frequency (``refine_harmonics``) without changing what it computes: the new weights start at zero."""
    config = {**state["config"], "refine_harmonics": [float(r) for r in ratios]}
    if not config.get("refine"):
        raise ValueError("--add-refine-harmonics needs a model with the full-resolution refinement (--add-refine)")
    if state["config"].get("refine_harmonics"):
        raise ValueError("the refinement already reads harmonics; start from a model without them")
    fresh = LiteNet(config).state_dict()
    model = {**state["model"], **{k: v for k, v in fresh.items() if k.startswith("refine_harm.")}}
    return {**state, "config": config, "model": model}


def _gru_index(old: int, new: int, layers: int) -> dict[str, tuple[torch.Tensor, ...]]:
    """Where each entry of a ``old``-unit GRU (and the decoder reading it) sits in a ``new``-unit
    one: per parameter name, the new index of each old index along each dimension."""
    rows = torch.cat([torch.arange(g * new, g * new + old) for g in range(3)])  # gates r, z, n
    units = torch.arange(old)
    index: dict[str, tuple[torch.Tensor, ...]] = {}
    for k in range(layers):
        index[f"gru.weight_hh_l{k}"] = (rows, units)
        index[f"gru.weight_ih_l{k}"] = (rows, units) if k else (rows, slice(None))
        index[f"gru.bias_ih_l{k}"] = (rows,)
        index[f"gru.bias_hh_l{k}"] = (rows,)
    return index


def _embed(old: torch.Tensor, like: torch.Tensor, index: tuple, fill: torch.Tensor | None = None) -> torch.Tensor:
    """``old`` placed at ``index`` in a tensor shaped like ``like`` (the rest from ``fill``, else zero)."""
    out = fill.clone() if fill is not None else like.new_zeros(like.shape)
    if len(index) == 1:
        out[index[0]] = old
    else:
        rows, cols = index
        out[rows.unsqueeze(1) if isinstance(cols, torch.Tensor) else rows, cols] = old
    return out


@torch.no_grad()
def add_gru_hidden(state: dict, units: int, seed: int) -> tuple[dict, dict[str, tuple]]:
    """Widen a trained model's recurrent layers to ``units`` without changing what it computes.

    The trained units keep their weights and ignore the new ones (zero weights from the new units'
    states and outputs into them); the new units start at PyTorch's default initialisation, reading
    the same inputs, and feed nothing yet (zero columns in the next layer and the decoder), so the
    output is the old model's until training moves them. Also returns the index map, so that the
    optimizer's moments of the trained entries can follow them."""
    config = dict(state["config"])
    h = int(config.get("hidden", 256))
    old = int(config.get("gru_hidden") or h)
    if units <= old:
        raise ValueError(f"the recurrent layers already have {old} units; ask for more to widen them")
    config["gru_hidden"] = int(units)
    torch.manual_seed(seed)
    fresh = LiteNet(config).state_dict()
    model = dict(state["model"])
    index = _gru_index(old, units, int(config.get("layers", 2)))
    for name, idx in index.items():
        fill = fresh[name].clone()
        if len(idx) == 2 and isinstance(idx[1], torch.Tensor):
            fill[idx[0]] = 0.0  # trained units: nothing from the new units' states / outputs
        model[name] = _embed(state["model"][name], fresh[name], idx, fill)
    # the decoder reads [gru, encoder]: the new units' columns start at zero
    index["dec.weight"] = (torch.arange(fresh["dec.weight"].shape[0]),
                           torch.cat([torch.arange(old), torch.arange(units, units + h)]))
    model["dec.weight"] = _embed(state["model"]["dec.weight"], fresh["dec.weight"], index["dec.weight"])
    return {**state, "config": config, "model": model}, index


def param_groups(net: LiteNet, first_lr_scale: float) -> list[dict]:
    """AdamW parameter groups, as ``(name, parameter)`` lists: the first encoder layer (where a new,
    zero-initialised input channel lives) and the full-resolution refinement (new, its output layer
    zero-initialised) may learn faster than the rest."""
    fast = ("refine.", "refine_time.", "refine_harm.")
    first = [(n, p) for n, p in net.named_parameters()
             if n in ("fenc.0.weight", "enc.weight" if net.arch == "dense" else "") or n.startswith(fast)]
    rest = [(n, p) for n, p in net.named_parameters() if all(p is not q for _, q in first)]
    if first_lr_scale == 1.0:  # one group, as checkpoints written before this option have
        return [{"params": list(net.named_parameters()), "scale": 1.0}]
    return [{"params": rest, "scale": 1.0}, {"params": first, "scale": first_lr_scale}]


def carry_optimizer(opt: torch.optim.Optimizer, groups: list[dict], old: dict, old_config: dict,
                    first_lr_scale: float, widened: dict[str, tuple] | None = None) -> int:
    """Copy AdamW moments from an optimizer state of the model ``old_config`` describes into ``opt``
    (built on ``groups`` of an extended model) for every parameter of the same name and shape; new
    parameters start fresh. Returns how many parameters carried their state."""
    old_groups = param_groups(LiteNet(old_config), first_lr_scale)
    old_names = [n for g in old_groups for n, _ in g["params"]]
    if len(old["param_groups"]) != len(old_groups) or len(old_names) != sum(len(g["params"]) for g in old["param_groups"]):
        return 0
    index = {n: i for g, og in zip(old["param_groups"], old_groups) for i, (n, _) in zip(g["params"], og["params"])}
    carried = 0
    for g in groups:
        for n, p in g["params"]:
            st = old["state"].get(index.get(n, -1))
            if st is not None and st["exp_avg"].shape == p.shape:
                opt.state[p] = {k: v.clone() if torch.is_tensor(v) else v for k, v in st.items()}
                carried += 1
            elif st is not None and widened and n in widened:  # the trained entries' moments, zero elsewhere
                opt.state[p] = {k: _embed(v, p, widened[n]) if k.startswith("exp_avg") else
                                (v.clone() if torch.is_tensor(v) else v) for k, v in st.items()}
                carried += 1
    return carried


@torch.no_grad()
def validate(net: LiteNet, clips: Clips | list[np.ndarray]) -> dict[str, float]:
    """Mean whole-clip SDR per stem on the held-out clips (input: the real mixture stream)."""
    net.eval()
    scores = {s: [] for s in STEMS}
    for arr in clips.arrays if isinstance(clips, Clips) else clips:
        a = torch.from_numpy(np.array(arr, np.float32)).to(next(net.parameters()).device)
        est = net(a[0][None])[0]
        for i, s in enumerate(STEMS):
            scores[s].append(float(sdr(a[i + 1], est[i])))
    net.train()
    res = {s: float(np.mean(v)) for s, v in scores.items()}
    res["avg"] = float(np.mean([res[s] for s in STEMS]))
    return res


def load_devset(folder: Path) -> list[np.ndarray]:
    """The devset songs as ``(5, 2, n)`` arrays (mixture, drums, bass, other, vocals); [] when absent."""
    import soundfile as sf

    songs = []
    for d in sorted(folder.glob("dev*")):
        streams = [sf.read(d / f"{s}.flac", dtype="float32", always_2d=True)[0].T for s in ("mixture", *STEMS)]
        n = min(x.shape[-1] for x in streams)
        songs.append(np.stack([x[:, :n] for x in streams]))
    return songs


def main() -> None:
    p = argparse.ArgumentParser(description="train the lite separator")
    p.add_argument("--ckpt-dir", type=Path, default=ROOT / "checkpoints")
    p.add_argument("--cache", type=Path, default=CACHE)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=6)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--lookahead", type=int, default=1)
    p.add_argument("--arch", default="dense", choices=("dense", "crn"))
    p.add_argument("--ckpt-every", type=float, default=300.0, help="seconds between checkpoints")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop after this long (0: never)")
    p.add_argument("--export-package", action="store_true", help="also export the best model into the package")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="data-loader processes (0: in the training process)")
    p.add_argument("--rendered", type=Path, default=ROOT / "cache" / "rendered",
                   help="rendered POP909 clips (training/render_data.py); with --p-rendered > 0 the "
                        "folder is watched and clips are picked up as they are rendered")
    p.add_argument("--p-rendered", type=float, default=0.5, help="share of examples drawn from the rendered clips")
    p.add_argument("--p-reverb", type=float, default=0.0, help="chance that a real stem gets a synthetic room reverb")
    p.add_argument("--devset", type=Path, default=DEVSET,
                   help="also score these songs at each checkpoint (logged only, never used to pick the best)")
    p.add_argument("--sdr-weight", type=float, default=0.0, help="weight of the -SDR (dB) term in the loss")
    p.add_argument("--p-coherent", type=float, default=0.25,
                   help="share of real examples whose four stems come from one clip and offset (a real mix)")
    p.add_argument("--p-mono", type=float, default=0.0, help="chance that an example is made mono")
    p.add_argument("--p-toms", type=float, default=0.0,
                   help="chance that an example's drum stem gets tom / kick one-shots (training/drum_hits.py renders them)")
    p.add_argument("--rendered-rms-db", type=float, default=None,
                   help="scale each rendered stem to this RMS level (dBFS, whole clip) before the random gain, "
                        "e.g. -23 (the MUSDB stems' median); default: as rendered (peak-normalised)")
    p.add_argument("--add-side", action="store_true",
                   help="give a stereo model without it the side-signal input channel (zero-initialised, so it "
                        "starts out computing the same as before)")
    p.add_argument("--add-refine", type=int, default=0, metavar="CHANNELS",
                   help="extend a trained crn model with the full-resolution refinement, or widen its refinement to this many "
                        "channels (output unchanged at first)")
    p.add_argument("--add-refine-context", type=int, default=0, metavar="FRAMES",
                   help="let the refinement also see this many past frames of the full-resolution input (new weights "
                        "start at zero, so the output is unchanged at first)")
    p.add_argument("--add-refine-harmonics", type=float, nargs="+", metavar="RATIO",
                   help="let the refinement read the input features at these multiples of each bin's frequency "
                        "(e.g. 0.25 0.333 0.5 0.667 1.5 2 3 4); the new weights start at zero")
    p.add_argument("--add-gru-hidden", type=int, default=0, metavar="UNITS",
                   help="widen a trained model's recurrent layers to this many units (the new units feed nothing "
                        "at first, so the output is unchanged; the trained entries keep their AdamW moments)")
    p.add_argument("--first-lr-scale", type=float, default=1.0,
                   help="learning-rate factor for the first encoder layer and the refinement (e.g. 10 with --add-side, --add-refine)")
    p.add_argument("--stem-weights", type=float, nargs=4, metavar=("DRUMS", "BASS", "OTHER", "VOCALS"),
                   help="weight of each stem in the loss (normalised to mean 1; default all equal)")
    p.add_argument("--keep-all", action="store_true", help="keep every checkpoint's weights in <ckpt-dir>/steps/")
    p.add_argument("--level", action="store_true",
                   help="train with the input level normalisation the package ships (LEVEL_DEFAULTS); "
                        "a checkpoint or package weights that have it keep it")
    p.add_argument("--anneal", action="store_true",
                   help="cosine-decay the learning rate to lr/10 over --max-minutes of this run")
    p.add_argument("--warmup", type=int, default=0, metavar="STEPS",
                   help="raise the learning rate linearly from 0 over the first STEPS steps of this run "
                        "(for a new optimizer, e.g. with --init-weights: its first AdamW steps move every "
                        "weight by about the full learning rate)")
    p.add_argument("--split-out", type=Path, help="also write each checkpoint as three < 16 MiB files here")
    p.add_argument("--init-split", type=Path, help="start from a split checkpoint when there is no last.pt")
    p.add_argument("--init-weights", type=Path,
                   help="start from exported weights (e.g. the package's lite.safetensors, manifest beside it) when "
                        "there is no last.pt: a fresh clone continues training from what was shipped (new optimizer)")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    args.ckpt_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    train, valid = Clips("train", args.cache), Clips("valid", args.cache)
    devset = load_devset(args.devset) if args.devset.exists() else []
    rendered = None
    if args.p_rendered > 0:  # a render that has not started yet: watch its folder from empty
        args.rendered.mkdir(parents=True, exist_ok=True)
        rendered = Clips(None, args.rendered)
    hits = None
    if args.p_toms > 0:
        if not DRUM_HITS.exists():
            sys.exit(f"--p-toms needs {DRUM_HITS}: run python training/drum_hits.py first")
        hits = DrumHits(DRUM_HITS)
    config = {"hidden": args.hidden, "lookahead": args.lookahead, "arch": args.arch}
    last = args.ckpt_dir / "last.pt"
    state = torch.load(last, map_location="cpu", weights_only=False) if last.exists() else None
    source = last
    if state is None and args.init_split:
        state, source = load_split(args.init_split), args.init_split
    fresh_opt = False
    old_state = None  # before an extension that keeps the optimizer's moments of the trained weights
    if state is None and args.init_weights:
        state, source = load_exported(args.init_weights), args.init_weights
        fresh_opt = True
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if state is not None and args.add_side and not state["config"].get("side"):
        state = add_side_input(state, train, np.random.default_rng(args.seed), int(args.seconds * 44100))
        fresh_opt = True  # the optimizer's moments have the old shapes
        print("added the side-signal input channel", flush=True)
    if state is not None and args.add_refine and args.add_refine != state["config"].get("refine"):
        had = state["config"].get("refine")
        state = add_refinement(state, args.add_refine, args.seed)
        fresh_opt = True  # the optimizer's moments have the old shapes
        print(f"{'widened' if had else 'added'} the full-resolution refinement ({had or 0} -> {args.add_refine} channels)",
              flush=True)
    if state is not None and args.add_refine_context and args.add_refine_context != state["config"].get("refine_context"):
        state = add_refine_context(state, args.add_refine_context)
        fresh_opt = True  # new parameters: the optimizer's state no longer matches
        print(f"the refinement now sees {args.add_refine_context} past frames", flush=True)
    if state is not None and args.add_refine_harmonics and not state["config"].get("refine_harmonics"):
        old_state = state
        state = add_refine_harmonics(state, args.add_refine_harmonics)
        fresh_opt = True
        print(f"the refinement now reads the features at {args.add_refine_harmonics} x each bin's frequency", flush=True)
    widened = None
    if state is not None and args.add_gru_hidden and args.add_gru_hidden != state["config"].get("gru_hidden"):
        old_state = old_state or state
        state, widened = add_gru_hidden(state, args.add_gru_hidden, args.seed)
        fresh_opt = True
        print(f"widened the recurrent layers to {args.add_gru_hidden} units", flush=True)
    if state is not None:
        config = state["config"]
    if args.level and config.get("level") is None:
        config = {**config, "level": dict(_net.LEVEL_DEFAULTS)}
        print(f"input level normalisation on: {config['level']}", flush=True)
    net = LiteNet(config).to(device)
    named = param_groups(net, args.first_lr_scale)
    opt = torch.optim.AdamW([{**g, "params": [p for _, p in g["params"]]} for g in named], lr=args.lr, weight_decay=1e-5)
    step, seconds, best = 0, 0.0, -1e9
    rng = np.random.default_rng(args.seed)
    data = state.get("data", export_mod.LEGACY_DATA) if state is not None else []
    settings = {"p_rendered": args.p_rendered if rendered is not None else 0.0, "p_reverb": args.p_reverb}
    if args.p_mono:
        settings["p_mono"] = args.p_mono
    if args.p_coherent != 0.25:
        settings["p_coherent"] = args.p_coherent
    if args.stem_weights:
        settings["stem_weights"] = list(args.stem_weights)
    if args.p_toms:
        settings["p_toms"] = args.p_toms
    if args.rendered_rms_db is not None:
        settings["rendered_rms_db"] = args.rendered_rms_db
    if not data or {k: data[-1].get(k, 0.0) for k in settings} != settings:
        data = data + [{"from_step": state["step"] if state is not None else 0, **settings}]
    if state is not None:
        net.load_state_dict(state["model"])
        if not fresh_opt:
            if len(state["optimizer"]["param_groups"]) != len(opt.param_groups):
                sys.exit(f"{source} was trained with{'out' if len(opt.param_groups) == 2 else ''} "
                         "--first-lr-scale: resume it with the same setting")
            opt.load_state_dict(state["optimizer"])
        elif old_state is not None and "optimizer" in old_state and not args.add_side and not args.add_refine:
            # an extension added parameters: the trained ones keep their AdamW moments
            n = carry_optimizer(opt, named, old_state["optimizer"], old_state["config"], args.first_lr_scale, widened)
            print(f"carried the optimizer state of {n} parameters", flush=True)
        step, seconds, best = state["step"], state["seconds"], state["best"]
        rng = np.random.default_rng([args.seed, step])
        print(f"resumed from {source} at step {step} ({seconds / 3600:.2f} h trained, best avg {best:.2f} dB)", flush=True)
    else:
        init_input_stats(net, train, rng, int(args.seconds * net.config["sr"]))
    for group in opt.param_groups:
        group["lr"] = args.lr * group.get("scale", 1.0)
    print(f"params {count_parameters(net)}, train {len(train)} clips, valid {len(valid)} clips, "
          f"rendered {len(rendered) if rendered is not None else 0} clips (p {args.p_rendered if rendered is not None else 0})", flush=True)
    length = int(args.seconds * net.config["sr"])
    t_start = time.time()
    first_step = step
    t_ckpt = time.time()
    run_loss = 0.0
    n_loss = 0
    batches = iter(torch.utils.data.DataLoader(RemixStream(train, args.seed + step, args.batch, length, rendered, args.p_rendered,
                                                                           args.p_reverb, args.p_mono, args.p_coherent,
                                                                           hits, args.p_toms, args.rendered_rms_db),
                                               batch_size=None,
                                               num_workers=args.workers, prefetch_factor=4 if args.workers else None))
    while True:
        t0 = time.time()
        if (args.anneal and args.max_minutes) or args.warmup:
            factor = 1.0
            if args.anneal and args.max_minutes:
                frac = min(1.0, (t0 - t_start) / (args.max_minutes * 60))
                factor = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))
            if args.warmup:  # a new optimizer's first steps are full-size in every direction
                factor *= min(1.0, (step - first_step + 1) / args.warmup)
            for group in opt.param_groups:
                group["lr"] = args.lr * group.get("scale", 1.0) * factor
        batch = next(batches).to(device, non_blocking=True)
        loss = loss_fn(net, batch, args.sdr_weight, args.stem_weights)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        step += 1
        seconds += time.time() - t0
        run_loss += float(loss.detach())
        n_loss += 1
        if step % 20 == 0:
            print(f"step {step} loss {run_loss / n_loss:.4f} ({(time.time() - t0):.2f} s/it)", flush=True)
            run_loss, n_loss = 0.0, 0
        done = args.max_minutes and time.time() - t_start > args.max_minutes * 60
        if time.time() - t_ckpt > args.ckpt_every or done:
            scores = validate(net, valid) if len(valid) else {}  # none held out (a packed train-only cache)
            if devset:
                scores["devset"] = validate(net, devset)
            scores.update({"step": step, "hours": seconds / 3600, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            with open(args.ckpt_dir / "valid.jsonl", "a") as f:
                f.write(json.dumps(scores) + "\n")
            print("valid", json.dumps(scores), flush=True)
            improved = "avg" in scores and scores["avg"] > best
            if improved:
                best = scores["avg"]
            sd = {k: v.cpu() for k, v in net.state_dict().items()}
            ckpt = {"config": net.config, "model": sd, "optimizer": opt.state_dict(), "step": step,
                    "seconds": seconds, "best": best, "scores": scores, "data": data}
            if args.keep_all:
                (args.ckpt_dir / "steps").mkdir(exist_ok=True)
                torch.save({"config": net.config, "model": sd, "step": step, "seconds": seconds, "scores": scores,
                            "data": data}, args.ckpt_dir / "steps" / f"step{step:06d}.pt")
            tmp = last.with_suffix(".tmp")
            torch.save(ckpt, tmp)
            os.replace(tmp, last)
            if args.split_out:
                save_split(ckpt, args.split_out)
            if improved:
                torch.save({"config": net.config, "model": sd, "step": step, "seconds": seconds, "scores": scores,
                            "data": data}, args.ckpt_dir / "best.tmp")
                os.replace(args.ckpt_dir / "best.tmp", args.ckpt_dir / "best.pt")
                export_mod.export(args.ckpt_dir / "best.pt", args.ckpt_dir / "best")
                if args.export_package:
                    weights = export_mod.export(args.ckpt_dir / "best.pt", export_mod.PACKAGE_DIR)
                    try:
                        export_mod.add_onnx(weights)
                    except ImportError as exc:  # training goes on; the package runs on PyTorch
                        print(f"export: {exc}", flush=True)
            t_ckpt = time.time()
        if done:
            break


if __name__ == "__main__":
    main()
