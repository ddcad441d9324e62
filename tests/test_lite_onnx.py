"""The lite network on ONNX Runtime: the shipped graphs match the shipped weights, exported graphs
of small networks (built here) stream like PyTorch, and bad graphs give typed errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from test_lite import _streamed
from test_live import _signal

from stemscribe.errors import ModelUnavailableError
from stemscribe.types import Audio

SR = 44100


def test_package_runs_on_onnxruntime_with_the_torch_output():
    from stemscribe.separate.lite import MODEL_DIR, lite_info, load_lite
    from stemscribe.separate.lite_onnx import OnnxEngine

    info = lite_info()
    assert info["available"] and info["engine"] == "onnxruntime"
    assert sum((MODEL_DIR / f).stat().st_size for f in info["sha256"]) <= 25_000_000
    auto, onnx, torch_ = load_lite(), load_lite(engine="onnx"), load_lite(engine="torch")
    # by default streams run on ONNX Runtime, whole files on PyTorch (the faster engine for each)
    assert isinstance(auto.engine, OnnxEngine) and auto.offline_engine is None
    assert isinstance(onnx.engine, OnnxEngine) and onnx.offline_engine is onnx.engine
    assert torch_.engine is None and torch_.offline_engine is None
    mix = _signal(3.0, 0)
    a, b = onnx.separate(Audio(mix, SR)), torch_.separate(Audio(mix, SR))
    for stem in a:
        # the graphs hold the very float16 weights: the stems differ by float rounding only
        assert np.max(np.abs(a[stem].samples - b[stem].samples)) < 1e-4, stem
        assert np.sum((a[stem].samples - b[stem].samples) ** 2) < 1e-9 * np.sum(mix**2), stem
    # small blocks on ONNX Runtime (given the level, as a whole file is) against the whole file on PyTorch
    import torch

    live = _streamed(onnx.net, torch.from_numpy(mix), np.random.default_rng(1), onnx.engine,
                     onnx.input_level(mix)).numpy()
    whole = np.stack([b[s].samples for s in onnx.stems])
    assert live.shape == whole.shape
    assert np.max(np.abs(live - whole)) < 1e-4


@pytest.mark.parametrize("cfg", [
    {"arch": "crn", "hidden": 32, "crn_channels": [4, 4, 8, 8], "side": True, "refine": 4, "refine_context": 3,
     "refine_harmonics": [0.5, 2.0], "level": {}, "temperature": 1.2, "gru_hidden": 48},
    {"arch": "dense", "hidden": 16, "channels": 1},
])
def test_exported_graphs_stream_like_the_network(cfg):
    pytest.importorskip("onnx")
    import torch

    from stemscribe.separate.lite_net import LiteNet
    from stemscribe.separate.lite_onnx import OnnxEngine, export_onnx

    torch.manual_seed(0)
    net = LiteNet(cfg).eval()
    with torch.no_grad():  # trained weights are not the zero-initialised extensions
        for name, p in net.named_parameters():
            if name.startswith(("refine", "in_scale")) or name.endswith("weight"):
                p.add_(torch.randn_like(p) * 0.1)
    engine = OnnxEngine(net, export_onnx(net))
    rng = np.random.default_rng(3)
    x = torch.from_numpy((rng.standard_normal((net.channels, 20000)) * 0.1).astype(np.float32))
    with torch.no_grad():
        ref = net(x[None])[0] if not net.level else None
    onnx_out = _streamed(net, x, rng, engine)
    torch_out = _streamed(net, x, np.random.default_rng(3), None)
    assert onnx_out.shape == torch_out.shape == (net.n_stems, net.channels, 20000)
    assert torch.max(torch.abs(onnx_out - torch_out)) < 1e-4
    assert torch.max(torch.abs(onnx_out.sum(0) - x)) < 1e-4  # softmax masks: the stems add up
    if ref is not None:  # no level window: the stream equals the one-pass forward
        assert torch.max(torch.abs(onnx_out - ref)) < 1e-4


def test_missing_or_corrupt_graphs_raise_model_unavailable(tmp_path):
    from stemscribe.separate.lite import MODEL_DIR, load_lite

    for f in MODEL_DIR.iterdir():
        if f.suffix in (".json", ".safetensors", ".onnx"):
            shutil.copy(f, tmp_path / f.name)
    weights = tmp_path / "lite.safetensors"
    graph = tmp_path / "lite.masks.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ModelUnavailableError, match="sha256"):
        load_lite(weights=weights)
    assert load_lite(weights=weights, engine="torch").engine is None  # PyTorch does not read the graphs
    # bytes that match their sha256 but are no graph: the sessions are made on first use, and fail typed
    import hashlib

    manifest = json.loads((tmp_path / "lite.json").read_text())
    graph.write_bytes(b"not an onnx graph")
    manifest["onnx"]["masks"]["sha256"] = hashlib.sha256(b"not an onnx graph").hexdigest()
    (tmp_path / "lite.json").write_text(json.dumps(manifest))
    lazy = load_lite(weights=weights)
    assert lazy.engine_name == "onnxruntime"
    with pytest.raises(ModelUnavailableError, match="onnxruntime"):
        lazy.stream()
    graph.unlink()
    with pytest.raises(ModelUnavailableError, match="missing"):
        load_lite(weights=weights)
    # weights exported without graphs: PyTorch, unless ONNX Runtime is asked for
    manifest = json.loads((tmp_path / "lite.json").read_text())
    del manifest["onnx"]
    (tmp_path / "lite.json").write_text(json.dumps(manifest))
    assert load_lite(weights=weights).engine is None
    with pytest.raises(ModelUnavailableError, match="ONNX"):
        load_lite(weights=weights, engine="onnx")
    with pytest.raises(ValueError, match="engine"):
        load_lite(weights=weights, engine="tensorflow")


def test_separator_takes_stems_and_rate_from_its_network():
    from stemscribe.separate.lite import LiteSeparator
    from stemscribe.separate.lite_net import LiteNet

    sep = LiteSeparator(LiteNet({"hidden": 8, "stems": ["voice", "band"], "sr": 22050}), {})
    assert sep.stems == ("voice", "band") and sep.sr == 22050
    assert sep.engine is None and sep.offline_engine is None and sep.engine_name == "torch"
