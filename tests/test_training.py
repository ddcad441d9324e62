"""Training helpers that shape what the shipped manifest says (training code lives outside the package)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TRAINING = Path(__file__).resolve().parents[1] / "training"


def _training_module(name: str):
    """Import ``training/<name>.py`` (training code lives outside the package)."""
    import importlib

    sys.path.insert(0, str(TRAINING))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(TRAINING))


@pytest.fixture(scope="module")
def average():
    return _training_module("average")


BASE = [{"from_step": 0, "p_rendered": 0.0, "p_reverb": 0.0}, {"from_step": 1986, "p_rendered": 0.1, "p_reverb": 0.3}]


def test_one_run_keeps_its_newest_history(average):
    newer = BASE + [{"from_step": 7000, "p_rendered": 0.2, "p_reverb": 0.3}]
    merged = average.merge_histories([(Path("ck/run-a/steps/step006800.pt"), BASE),
                                      (Path("ck/run-a/steps/step007200.pt"), newer)])
    assert merged == newer


def test_a_soup_of_forked_runs_lists_each_runs_settings(average):
    a = BASE + [{"from_step": 6506, "p_rendered": 0.1, "p_reverb": 0.3, "p_coherent": 0.5}]
    b = BASE + [{"from_step": 6506, "p_rendered": 0.4, "p_reverb": 0.3}]
    merged = average.merge_histories([(Path("ck/run-a/steps/step007051.pt"), a),
                                      (Path("ck/run-b/steps/step007263.pt"), b),
                                      (Path("ck/run-a/steps/step007322.pt"), a)])
    assert merged[:2] == BASE  # the shared lineage once
    assert merged[2:] == [{**a[2], "run": "run-a"}, {**b[2], "run": "run-b"}]


def test_checkpoints_without_history_give_none(average):
    assert average.merge_histories([(Path("best.pt"), None)]) == []


@pytest.fixture(scope="module")
def train():
    """``training/train.py``, with torch on one thread as training runs (``--threads 1``): on two
    threads a convolution's partial sums may be split differently from one process to the next, so
    comparing two networks' outputs to 1e-6 failed in about one run of eight (4.9e-6 apart)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield _training_module("train")
    torch.set_num_threads(old)


def test_widening_the_refinement_keeps_what_the_model_computes_and_trains_the_new_channels(train):
    import numpy as np
    import torch

    from stemscribe.separate.lite_net import LiteNet

    cfg = {"arch": "crn", "hidden": 32, "crn_channels": [4, 4, 8, 8], "refine": 4}
    torch.manual_seed(0)
    narrow = LiteNet(cfg).eval()
    with torch.no_grad():
        narrow.refine[-1].weight.normal_(0.0, 0.5)  # a trained refinement is not zero
    state = {"config": cfg, "model": narrow.state_dict(), "step": 10}
    widened = train.add_refinement(state, 10, seed=3)
    assert widened["config"]["refine"] == 10 and state["config"]["refine"] == 4
    wide = LiteNet(widened["config"]).eval()
    wide.load_state_dict(widened["model"])
    x = torch.from_numpy((np.random.default_rng(1).standard_normal((1, 2, 22050)) * 0.1).astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(narrow(x), wide(x), atol=1e-6)
    wide.train()
    wide(x).square().mean().backward()
    assert float(wide.refine[-1].weight.grad[:, 4:].abs().max()) > 0  # the new channels learn
    with pytest.raises(ValueError, match="already has a 4-channel"):
        train.add_refinement(state, 4, seed=3)


def test_refinement_context_starts_as_the_model_it_extends_and_learns(train):
    # --add-refine-context: the refinement also sees past frames (and the look-ahead frame) of the
    # full-resolution input. Added to a trained model it changes nothing until its weights move; they
    # get a gradient; a longer context keeps what the shorter one computed (live == offline for the
    # context: tests/test_lite.py)
    import numpy as np
    import torch

    from stemscribe.separate.lite_net import LiteNet

    cfg = {"arch": "crn", "hidden": 32, "crn_channels": [4, 4, 8, 8], "refine": 4, "side": True}
    torch.manual_seed(0)
    base = LiteNet(cfg).eval()
    with torch.no_grad():
        base.refine[-1].weight.normal_(0.0, 0.5)  # a trained refinement is not zero
    state = {"config": cfg, "model": base.state_dict(), "step": 10}
    ext = train.add_refine_context(state, 3)
    assert ext["config"]["refine_context"] == 3 and "refine_context" not in state["config"]
    net = LiteNet(ext["config"]).eval()
    net.load_state_dict(ext["model"])
    rng = np.random.default_rng(2)
    x = torch.from_numpy((rng.standard_normal((1, 2, 22050)) * 0.1).astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(base(x), net(x), atol=1e-6)
    net.train()
    net(x).square().mean().backward()
    assert float(net.refine_time.weight.grad.abs().max()) > 0  # the new weights learn
    net.eval()
    with torch.no_grad():
        net.refine_time.weight.normal_(0.0, 0.3)
        offline = net(x)[0]
        assert not torch.allclose(offline, base(x)[0], atol=1e-3)  # the context is used
    # more past frames for a model that already sees some: the trained taps keep their frames
    longer = train.add_refine_context({**ext, "model": net.state_dict()}, 5)
    net5 = LiteNet(longer["config"]).eval()
    net5.load_state_dict(longer["model"])
    with torch.no_grad():
        assert torch.allclose(net5(x)[0], offline, atol=1e-6)
    with pytest.raises(ValueError, match="already sees 5"):
        train.add_refine_context(longer, 4)
    with pytest.raises(ValueError, match="refinement"):
        train.add_refine_context({"config": {"arch": "crn"}, "model": {}}, 2)


def _one_step_state(train, cfg: dict, seed: int):
    """A small crn model after one AdamW step (``--first-lr-scale 10`` groups): the state dict a
    checkpoint holds, the model, its named groups and optimizer, and the input it was stepped on."""
    import numpy as np
    import torch

    from stemscribe.separate.lite_net import LiteNet

    torch.manual_seed(0)
    base = LiteNet(cfg)
    named = train.param_groups(base, 10.0)
    opt = torch.optim.AdamW([{**g, "params": [p for _, p in g["params"]]} for g in named], lr=1e-3)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy((rng.standard_normal((1, 2, 22050)) * 0.1).astype(np.float32))
    base(x).square().mean().backward()
    opt.step()
    state = {"config": cfg, "model": base.state_dict(), "optimizer": opt.state_dict(), "step": 1}
    return state, base, named, opt, x


def test_harmonic_input_extends_a_trained_model_and_keeps_its_optimizer_moments(train):
    # --add-refine-harmonics: the new weights start at zero (same output), get a gradient, and the
    # trained weights keep their AdamW moments (a fresh optimizer's first steps cost a fine-tune)
    import torch

    from stemscribe.separate.lite_net import LiteNet

    cfg = {"arch": "crn", "hidden": 32, "crn_channels": [4, 4, 8, 8], "refine": 4, "refine_context": 2, "side": True}
    state, base, named, opt, x = _one_step_state(train, cfg, seed=4)
    ext = train.add_refine_harmonics(state, [0.5, 2.0])
    assert ext["config"]["refine_harmonics"] == [0.5, 2.0] and "refine_harmonics" not in cfg
    net = LiteNet(ext["config"])
    net.load_state_dict(ext["model"])
    with torch.no_grad():
        assert torch.allclose(base.eval()(x), net.eval()(x), atol=1e-6)
    named2 = train.param_groups(net, 10.0)
    assert named2[1]["params"][-1][0] == "refine_harm.weight"  # learns at the faster rate
    opt2 = torch.optim.AdamW([{**g, "params": [p for _, p in g["params"]]} for g in named2], lr=1e-3)
    n_old = sum(1 for _ in base.parameters())
    assert train.carry_optimizer(opt2, named2, state["optimizer"], cfg, 10.0) == n_old
    old_moments = dict(zip((n for g in named for n, _ in g["params"]), (opt.state[p]["exp_avg"] for g in named for _, p in g["params"])))
    for g in named2:
        for n, p in g["params"]:
            if n in old_moments:
                assert torch.equal(opt2.state[p]["exp_avg"], old_moments[n])
            else:
                assert p not in opt2.state
    net.train()
    net(x).square().mean().backward()
    assert float(net.refine_harm.weight.grad.abs().max()) > 0
    with pytest.raises(ValueError, match="already reads"):
        train.add_refine_harmonics(ext, [3.0])
    with pytest.raises(ValueError, match="refinement"):
        train.add_refine_harmonics({"config": {"arch": "crn"}, "model": {}}, [2.0])


def test_wider_recurrent_layers_keep_what_the_model_computes_and_its_optimizer_moments(train):
    # --add-gru-hidden: the trained units ignore the new ones and the new ones feed nothing yet (same
    # output, live == offline still), the new units' outgoing weights get a gradient, and the trained
    # entries keep their AdamW moments in their new places
    import torch

    from stemscribe.separate.lite_net import LiteNet, LiteStream

    cfg = {"arch": "crn", "hidden": 32, "crn_channels": [4, 4, 8, 8], "refine": 4, "refine_context": 2, "side": True}
    state, base, named, opt, x = _one_step_state(train, cfg, seed=5)
    ext, index = train.add_gru_hidden(state, 48, seed=1)
    assert ext["config"]["gru_hidden"] == 48 and "gru_hidden" not in cfg
    net = LiteNet(ext["config"])
    net.load_state_dict(ext["model"])
    assert net.gru.hidden_size == 48 and net.dec.in_features == 48 + 32
    with torch.no_grad():
        ref = net.eval()(x)
        assert torch.allclose(base.eval()(x), ref, atol=1e-6)
        stream = LiteStream(net)
        parts = [stream.push(x[0, :, i : i + 1000]) for i in range(0, x.shape[-1], 1000)] + [stream.flush()]
        assert torch.allclose(torch.cat(parts, dim=-1), ref[0], atol=1e-5)
    named2 = train.param_groups(net, 10.0)
    opt2 = torch.optim.AdamW([{**g, "params": [p for _, p in g["params"]]} for g in named2], lr=1e-3)
    assert train.carry_optimizer(opt2, named2, state["optimizer"], cfg, 10.0, index) == sum(1 for _ in base.parameters())
    old = {n: opt.state[p]["exp_avg"] for g in named for n, p in g["params"]}
    new = {n: opt2.state[p]["exp_avg"] for g in named2 for n, p in g["params"]}
    rows = torch.cat([torch.arange(g * 48, g * 48 + 32) for g in range(3)])
    assert torch.equal(new["gru.weight_hh_l1"][rows][:, :32], old["gru.weight_hh_l1"])
    assert float(new["gru.weight_hh_l1"][:, 32:].abs().max()) == 0.0  # the new units' entries start fresh
    assert torch.equal(new["dec.weight"][:, :32], old["dec.weight"][:, :32])
    assert torch.equal(new["dec.weight"][:, 48:], old["dec.weight"][:, 32:])
    net.train()
    net(x).square().mean().backward()
    assert float(net.dec.weight.grad[:, 32:48].abs().max()) > 0
    with pytest.raises(ValueError, match="already have"):
        train.add_gru_hidden(ext, 40, seed=1)


def test_render_data_reads_pop909_keys(tmp_path):
    """The labelled render's key comes from POP909's key_audio.txt (one region or several)."""
    import pretty_midi

    render_data = _training_module("render_data")
    song = tmp_path / "001"
    song.mkdir()
    pm = pretty_midi.PrettyMIDI()
    melody = pretty_midi.Instrument(0, name="MELODY")
    melody.notes.append(pretty_midi.Note(80, 66, 0.0, 0.5))
    pm.instruments.append(melody)
    pm.write(str(song / "001.mid"))
    (song / "beat_midi.txt").write_text("0.0 1 1\n0.5 1 0\n1.0 1 0\n")
    (song / "chord_midi.txt").write_text("0.0 1.0 Gb:maj\n")
    (song / "key_audio.txt").write_text("2.67\t191.98\tGb:maj\n")
    assert render_data.load_song(song)["keys"] == [(6, False)]
    (song / "key_audio.txt").write_text("0.0\t50.0\tC#:min\n50.0\t90.0\tE:maj\n")
    assert render_data.load_song(song)["keys"] == [(1, True), (4, False)]
    (song / "key_audio.txt").unlink()
    assert render_data.load_song(song)["keys"] == []


def test_training_loss_and_export_with_the_input_level_normalisation(train, tmp_path):
    # a model that normalises its input level trains on level-normalised features (the loss passes
    # the mixture's gains), so a louder copy of a batch gives the same loss; export --level ships it
    import json

    import numpy as np
    import torch

    from stemscribe.separate.lite_net import LEVEL_DEFAULTS, LiteNet

    export = _training_module("export")
    cfg = {"arch": "crn", "hidden": 32, "crn_channels": [4, 4, 8, 8]}
    torch.manual_seed(0)
    net = LiteNet({**cfg, "level": {}})
    stems = torch.from_numpy((np.random.default_rng(2).standard_normal((2, 4, 2, 22050)) * 0.05).astype(np.float32))
    with torch.no_grad():
        quiet, loud = train.loss_fn(net, stems, 0.1), train.loss_fn(net, 8 * stems, 0.1)
    assert float(quiet) == pytest.approx(float(loud), rel=1e-3, abs=1e-4)
    plain = LiteNet(cfg)
    with torch.no_grad():
        assert abs(float(train.loss_fn(plain, stems, 0.1)) - float(train.loss_fn(plain, 8 * stems, 0.1))) > 1e-3
    with pytest.raises(ValueError, match="feature_gains"):
        net.separate_spec(net.stft(net.frame(stems.sum(1))))
    ckpt = tmp_path / "c.pt"
    torch.save({"config": cfg, "model": plain.state_dict(), "step": 5, "seconds": 1.0}, ckpt)
    weights = export.export(ckpt, tmp_path / "out", temperature=1.2, level=True)
    config = json.loads((tmp_path / "out" / "lite.json").read_text())["config"]
    assert config["level"] == LEVEL_DEFAULTS and config["temperature"] == 1.2
    # the ONNX graphs of the exported float16 weights, registered in the manifest and loadable
    pytest.importorskip("onnx")
    from stemscribe.separate.lite import load_lite
    from stemscribe.separate.lite_onnx import OnnxEngine

    entry = export.add_onnx(weights)
    assert sorted(entry) == ["encode", "masks", "recur"]
    assert json.loads((tmp_path / "out" / "lite.json").read_text())["onnx"] == entry
    assert all((tmp_path / "out" / e["file"]).is_file() for e in entry.values())
    assert isinstance(load_lite(weights=weights, engine="onnx").engine, OnnxEngine)


def test_tom_fills_add_decaying_shells_at_the_drum_stems_level(tmp_path):
    """``drum_hits.add_fill`` (the --p-toms augmentation) adds hits from the rendered one-shots, each at
    most 1.1 x the drum stem's own peak level (a fill's overlapping tails at most four of them), and
    0.1 x full scale stands in for the level of a silent stem."""
    import numpy as np

    drum_hits = _training_module("drum_hits")
    sr, n = drum_hits.SR, int(1.5 * drum_hits.SR)
    t = np.arange(n) / sr
    pitches = list(drum_hits.TOMS) + list(drum_hits.KICKS)
    shells = [np.exp(-t * 8) * np.sin(2 * np.pi * (60 + 20 * k) * t) for k in range(len(pitches))]
    hits = np.stack([np.stack([s, s]) for s in shells]).astype(np.float16)
    path = tmp_path / "hits.npz"
    np.savez(path, hits=hits, pitch=np.array(pitches), kit=np.zeros(len(pitches), int), soundfont=np.zeros(len(pitches), int))
    loaded = drum_hits.DrumHits(path)
    rng = np.random.default_rng(3)
    seg = (0.2 * rng.standard_normal((2, 3 * sr))).astype(np.float32)
    changed = 0
    for _ in range(20):
        out = drum_hits.add_fill(seg, loaded, rng)
        added = out - seg
        assert out.shape == seg.shape
        peak = np.percentile(np.abs(seg), 99.9)
        assert np.abs(added).max() <= 1.1 * peak * 4 + 1e-6  # overlapping hits of a fill can add up
        changed += bool(np.abs(added).max() > 0)
    assert changed >= 15  # hits starting before the segment may end before it; most calls add something
    silent = drum_hits.add_fill(np.zeros((2, 3 * sr), np.float32), loaded, np.random.default_rng(0))
    assert 0 < np.abs(silent).max() <= 0.11 * 4


def test_rendered_stems_can_be_brought_to_one_rms_level(tmp_path):
    """``make_batch(..., rendered_rms_db=L)`` (``--rendered-rms-db``) scales each rendered stem to RMS
    level L over its clip before the random gain (-9..+3 dB, or 0 for 5 % of stems), instead of its
    peak normalisation; a silent stem stays silent."""
    import numpy as np

    train = _training_module("train")
    sr, n = 44100, 44100 * 3
    rng = np.random.default_rng(0)
    clip = np.zeros((4, 2, n), np.float16)
    clip[0] = (0.9 * (rng.random((2, n)) < 0.0003)).astype(np.float16)  # sparse clicks: peaky, -36 dBFS RMS
    clip[1] = (0.5 * np.sin(2 * np.pi * 55 * np.arange(n) / sr)).astype(np.float16)
    clip[2] = (0.1 * rng.standard_normal((2, n))).astype(np.float16)  # stem 3 (vocals) silent
    (tmp_path / "rendered").mkdir()
    np.save(tmp_path / "rendered" / "0000.npy", clip)
    rendered = train.Clips(None, tmp_path / "rendered")
    musdb = np.zeros((5, 2, n), np.float32)
    musdb[1:] = 0.05 * rng.standard_normal((4, 2, n))
    (tmp_path / "musdb").mkdir()
    np.save(tmp_path / "musdb" / "a.npy", musdb)
    (tmp_path / "musdb" / "index.json").write_text(
        '{"streams": ["mixture", "drums", "bass", "other", "vocals"], "clips": [{"file": "a.npy", "name": "a", "split": "train"}]}')
    clips = train.Clips("train", tmp_path / "musdb")
    length = sr
    target = 10 ** (-23 / 20)
    levels = {0: [], 1: [], 2: []}
    for _ in range(40):
        b = train.make_batch(clips, rng, 1, length, rendered, 1.0, rendered_rms_db=-23.0)[0]
        for s in levels:
            rms = float(np.sqrt(np.mean(b[s] ** 2)))
            if rms > 0:
                levels[s].append(20 * np.log10(rms / target))
    # the steady stems come out at -23 dBFS plus the random gain (and EQ: +-6 dB at most)
    for s in (1, 2):
        assert -16 < min(levels[s]) and max(levels[s]) < 10 and abs(np.median(levels[s]) + 3) < 4
    # the clicks too, on average over their clip (a 1 s segment holds a share of them)
    assert abs(np.median(levels[0]) + 3) < 7
    # without the option the click stem keeps its (quiet) peak-normalised level
    plain = [float(np.sqrt(np.mean(train.make_batch(clips, rng, 1, length, rendered, 1.0)[0][0] ** 2))) for _ in range(20)]
    assert np.median(20 * np.log10(np.maximum(plain, 1e-9) / target)) < np.median(levels[0]) - 10
    assert rendered.rms(0, 3) == 0.0


def test_a_train_only_pack_unpacks_and_trains_without_held_out_clips(train, tmp_path, monkeypatch):
    """The lent-GPU path (training/device_run.sh): pack the training clips alone, unpack them where
    there is no PyAV, train, checkpoint and split the checkpoint with no held-out clips to score."""
    import json

    import numpy as np
    import torch

    pack = _training_module("pack")
    rng = np.random.default_rng(0)
    cache, packed, unpacked = tmp_path / "musdb", tmp_path / "pack", tmp_path / "unpacked"
    cache.mkdir()
    clips = []
    for i, split in enumerate(("train", "train", "valid")):
        t = np.arange(44100) / 44100
        f0 = rng.uniform(80, 800, size=(4, 2, 1))  # tones: what a perceptual codec keeps well
        stems = (0.1 * np.sin(2 * np.pi * f0 * t) + 0.05 * np.sin(2 * np.pi * 2.5 * f0 * t)).astype(np.float32)
        np.save(cache / f"{i:03d}.npy", np.concatenate([stems.sum(0, keepdims=True), stems]))
        clips.append({"name": f"clip {i}", "file": f"{i:03d}.npy", "split": split})
    (cache / "index.json").write_text(json.dumps({"sr": 44100, "streams": ["mixture", "drums", "bass", "other", "vocals"],
                                                  "clips": clips}))
    monkeypatch.setattr(pack, "CACHE", cache)
    monkeypatch.setattr(pack, "PACK", packed)
    pack.pack(train_only=True)
    assert sorted(p.name for p in packed.glob("*.ogg")) == [f"{i:03d}_{s}.ogg" for i in (0, 1) for s in (1, 2, 3, 4)]
    monkeypatch.setattr(pack, "CACHE", unpacked)
    pack.unpack()
    index = json.loads((unpacked / "index.json").read_text())
    assert [c["split"] for c in index["clips"]] == ["train", "train"]
    back = np.load(unpacked / "000.npy")
    want = np.load(cache / "000.npy")
    n = min(back.shape[-1], want.shape[-1])
    assert back.shape[:2] == (5, 2) and abs(back.shape[-1] - 44100) < 2048
    assert np.allclose(back[0], back[1:].sum(0), atol=1e-6)  # the mixture is rebuilt from the stems
    snr = 10 * np.log10(np.sum(want[1:, :, :n] ** 2) / np.sum((want[1:, :, :n] - back[1:, :, :n]) ** 2))
    assert snr > 20  # lossy (Vorbis), but the same signals

    ckpt = tmp_path / "ck"
    monkeypatch.setattr(sys, "argv", ["train.py", "--ckpt-dir", str(ckpt), "--cache", str(unpacked), "--arch", "crn",
                                      "--batch", "1", "--seconds", "0.5", "--max-minutes", "0.001", "--keep-all",
                                      "--devset", str(tmp_path / "no-devset"), "--split-out", str(tmp_path / "split")])
    train.main()
    last = torch.load(ckpt / "last.pt", map_location="cpu", weights_only=False)
    assert last["step"] >= 1 and "avg" not in last["scores"]  # trained, and nothing was scored
    assert not (ckpt / "best.pt").exists()
    assert len(list((ckpt / "steps").glob("step*.pt"))) == 1
    assert sorted(p.name for p in (tmp_path / "split").iterdir()) == ["adam1.pt", "adam2.pt", "net.pt"]
