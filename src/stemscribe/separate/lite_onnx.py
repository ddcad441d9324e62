"""The ``lite`` network's three per-block steps on ONNX Runtime: the engine for live blocks.

A live block holds only 2-4 STFT frames, and on so few frames PyTorch spends more time per
operator than it computes.  ONNX Runtime runs the same steps (:class:`~.lite_net.TorchEngine`'s
``encode``; ``recur``: temporal convolution and GRU; ``masks``: decoder, full-resolution head and
softmax) in about half the time there.  The state of a stream stays in
:class:`~.lite_net.LiteStream`, so both engines give the same output to float rounding.

The graphs are exported from the package's own weights by ``training/export.py``
(:func:`export_onnx`, which needs ``torch.onnx`` and the ``onnx`` package), with float16
initializers holding exactly the numbers of the float16 safetensors, and registered with their
sha256 in the weights' manifest (``"onnx"``).  At run time only onnxruntime is needed.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

__all__ = ["GRAPHS", "OnnxEngine", "export_onnx"]

#: the steps, in the order a block runs them; file ``lite.<name>.onnx`` each
GRAPHS = ("encode", "recur", "masks")
_OPSET = 17


def _modules(net: Any) -> dict[str, tuple[Any, tuple, list[str], list[str], dict]]:
    """The wrapper module, example inputs, input / output names and dynamic axes of each graph."""
    import torch
    from torch import nn

    class Encode(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, spec: torch.Tensor, gains: torch.Tensor | None = None) -> torch.Tensor:
            return self.net.encode_ri(spec, gains)

    class Recur(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, ebuf: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # the convolution module itself (TorchEngine's unfolded product does not export with a
            # dynamic frame count); the same numbers
            conv = torch.relu(self.net.conv(ebuf.transpose(1, 2))).transpose(1, 2)
            return self.net.gru(conv, hidden)

    class Masks(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, g: torch.Tensor, e: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
            return self.net.masks(g, e, ctx)

    t = 3  # example frames; every frame axis is dynamic
    with torch.no_grad():
        x = torch.randn(1, net.channels, (t + net.lookahead - 1) * net.hop + net.n_fft)
        spec = torch.view_as_real(net.stft(x)).contiguous()
        gains = torch.ones(1, t + net.lookahead)
        e = net.encode_ri(spec, gains if net.level else None)
    enc_in = (spec, gains) if net.level else (spec,)
    enc_names = ["spec", "gains"] if net.level else ["spec"]
    ebuf = torch.zeros(1, t + net.kernel - 1, net.hidden)
    hidden = torch.zeros(int(net.config["layers"]), 1, net.gru_hidden)
    g = torch.zeros(1, t, net.gru_hidden)
    skip = e[:, :t].contiguous()
    masks_in: tuple = (g, skip)
    masks_names = ["g", "e"]
    if net.refine_context:
        masks_in += (torch.zeros(t, net.n_refine, net.crn_bins),)
        masks_names.append("ctx")
    frames = {"spec": {2: "frames"}, "gains": {1: "frames"}, "e": {1: "frames"}}
    return {
        "encode": (Encode(), enc_in, enc_names, ["e"], frames),
        "recur": (Recur(), (ebuf, hidden), ["ebuf", "hidden"], ["g", "hidden_out"],
                  {"ebuf": {1: "frames"}, "g": {1: "out_frames"}}),
        "masks": (Masks(), masks_in, masks_names, ["masks"],
                  {"g": {1: "frames"}, "e": {1: "frames"}, "ctx": {0: "frames"}, "masks": {3: "frames"}}),
    }


def export_onnx(net: Any) -> dict[str, bytes]:
    """Export ``net`` (a :class:`~.lite_net.LiteNet` in eval mode) as ``{graph: ONNX bytes}``.

    Needs the ``onnx`` package (a development dependency: ``training/export.py`` runs this).
    Weights that float16 holds exactly are stored as float16 and cast back when the session
    starts, so the graphs are half the size and compute with the very numbers of the float16
    safetensors."""
    import torch

    out = {}
    for name, (module, args, inputs, outputs, axes) in _modules(net).items():
        buf = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(module.eval(), args, buf, dynamo=False, input_names=inputs, output_names=outputs,
                              dynamic_axes={k: v for k, v in axes.items() if k in inputs + outputs},
                              opset_version=_OPSET, do_constant_folding=False)
        out[name] = _half_initializers(buf.getvalue())
    return out


def _half_initializers(model: bytes) -> bytes:
    """Store every float32 initializer that float16 represents exactly as float16 plus a Cast."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load_from_string(model)
    graph = m.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        a = numpy_helper.to_array(init)
        if a.size < 16:
            continue
        with np.errstate(over="ignore"):
            h = a.astype(np.float16)
        if not np.array_equal(h.astype(np.float32), a):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(h, name + "__f16"))
        casts.append(helper.make_node("Cast", [name + "__f16"], [name], to=TensorProto.FLOAT))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(m)
    return m.SerializeToString()


class OnnxEngine:
    """:class:`~.lite_net.TorchEngine`'s methods on ONNX Runtime sessions of one thread each.

    ``graphs``: ``{name: ONNX bytes}`` for every name in :data:`GRAPHS` (from :func:`export_onnx`
    of the same weights).  Sessions may run in two threads at once (the offline pipeline does)."""

    def __init__(self, net: Any, graphs: dict[str, bytes]) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        self.net = net
        self._sessions = {name: ort.InferenceSession(graphs[name], opts, providers=["CPUExecutionProvider"])
                          for name in GRAPHS}
        self._inputs = {name: [i.name for i in s.get_inputs()] for name, s in self._sessions.items()}
        self._zero_state = np.zeros((int(net.config["layers"]), 1, net.gru_hidden), dtype=np.float32)

    @staticmethod
    def _np(x: Any) -> np.ndarray:
        return np.ascontiguousarray(x.numpy())

    def encode(self, spec: Any, gains: Any) -> Any:
        import torch

        feeds = {"spec": self._np(torch.view_as_real(spec))}
        if "gains" in self._inputs["encode"]:
            feeds["gains"] = self._np(gains)
        return torch.from_numpy(self._sessions["encode"].run(None, feeds)[0])

    def recur(self, ebuf: Any, hidden: Any) -> tuple[Any, Any]:
        import torch

        state = self._zero_state if hidden is None else self._np(hidden)
        g, h = self._sessions["recur"].run(None, {"ebuf": self._np(ebuf), "hidden": state})
        return torch.from_numpy(g), torch.from_numpy(h)

    def masks(self, g: Any, e: Any, ctx_term: Any) -> Any:
        import torch

        feeds = {"g": self._np(g), "e": self._np(e)}
        if "ctx" in self._inputs["masks"]:
            if ctx_term is None:
                raise ValueError("this model's refinement needs the context of the frames around: pass ctx_term")
            feeds["ctx"] = self._np(ctx_term)
        return torch.from_numpy(self._sessions["masks"].run(None, feeds)[0])
