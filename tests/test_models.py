"""The model registry: names, checksums, where weights are looked for, offline availability, the CLI table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stemscribe import models
from stemscribe.errors import BadArgumentError

HT_FILE = "955717e8-8726e21a.th"  # htdemucs' file as published in demucs' remote/files.txt


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("STEMSCRIBE_MODEL_DIR", raising=False)
    monkeypatch.setenv("STEMSCRIBE_OFFLINE", "1")


def by_name(**kw) -> dict[str, models.ModelInfo]:
    return {i.name: i for i in models.list_models(**kw)}


def test_registry_lists_every_model_with_its_facts():
    infos = by_name()
    assert list(infos) == ["htdemucs", "htdemucs_ft", "htdemucs_6s", "lite"]
    ht = infos["htdemucs"]
    assert ht.files == (HT_FILE,) and ht.sha256 == {HT_FILE: "8726e21a"}
    assert ht.urls == ("https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/" + HT_FILE,)
    assert ht.sr == 44100 and ht.stems == ("drums", "bass", "other", "vocals") and "MIT" in ht.licence
    assert len(infos["htdemucs_ft"].files) == 4
    assert infos["htdemucs_6s"].native_stems[-2:] == ("guitar", "piano")
    assert infos["htdemucs_6s"].stems == ht.stems
    for i in infos.values():
        assert i.description and i.how_to_get


def test_nothing_is_available_in_empty_caches():
    infos = by_name()
    for name in models.DEMUCS_MODELS:
        assert not infos[name].available_offline and infos[name].location is None
        assert "--model lite" in infos[name].how_to_get


def test_torch_hub_cache_layout_is_found(tmp_path):
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / HT_FILE).write_bytes(b"x" * 1234)
    infos = by_name()
    assert infos["htdemucs"].available_offline and infos["htdemucs"].location == ckpt
    assert infos["htdemucs"].size_bytes == 1234
    assert not infos["htdemucs_ft"].available_offline  # needs all four of its files


def test_huggingface_cache_layout_is_found(tmp_path):
    repo = tmp_path / "hf" / "hub" / "models--adefossez--HTDemucs"
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "htdemucs.yaml").write_text("models: ['955717e8']\n")
    (snap / "955717e8.safetensors").write_bytes(b"y" * 10)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    loc = models.locate_demucs("htdemucs")
    assert loc is not None and loc.kind == "hf-cache" and loc.folder == snap
    assert loc.files == (snap / "955717e8.safetensors",)


def test_model_dir_beats_env_beats_cache(tmp_path, monkeypatch):
    dirs = {}
    for kind in ("arg", "env", "cache"):
        d = tmp_path / kind if kind != "cache" else tmp_path / "torch" / "hub" / "checkpoints"
        d.mkdir(parents=True)
        (d / HT_FILE).write_bytes(b"z")
        dirs[kind] = d
    monkeypatch.setenv("STEMSCRIBE_MODEL_DIR", str(dirs["env"]))
    assert models.locate_demucs("htdemucs", dirs["arg"]).folder == dirs["arg"]
    assert models.locate_demucs("htdemucs").folder == dirs["env"]
    monkeypatch.delenv("STEMSCRIBE_MODEL_DIR")
    assert models.locate_demucs("htdemucs").kind == "torch-hub"
    assert [k for k, _ in models.search_dirs(dirs["arg"])] == ["model-dir", "torch-hub"]


def test_custom_bag_yaml_in_model_dir(tmp_path):
    (tmp_path / "htdemucs.yaml").write_text("models: ['mine0001']\n")
    assert models.locate_demucs("htdemucs", tmp_path) is None  # the yaml alone is not a model
    (tmp_path / "mine0001-0123abcd.th").write_bytes(b"w")
    loc = models.locate_demucs("htdemucs", tmp_path)
    assert loc.signatures == ("mine0001",) and loc.bag_yaml == tmp_path / "htdemucs.yaml"


def test_downloads_allowed_follows_env(monkeypatch):
    assert not models.downloads_allowed()
    monkeypatch.delenv("STEMSCRIBE_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert models.downloads_allowed()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not models.downloads_allowed()


def test_unknown_name():
    with pytest.raises(BadArgumentError, match="htdemucs_ft"):
        models.get_info("mdx_extra")


def test_list_models_does_not_import_torch():
    code = "import sys, stemscribe.models as m; m.list_models(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_models_command_prints_a_table(tmp_path, capsys):
    from stemscribe.cli import main

    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / HT_FILE).write_bytes(b"x" * 2_000_000)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line and line.split()[0] in models.MODEL_NAMES}
    assert set(rows) == set(models.MODEL_NAMES)
    assert " yes " in rows["htdemucs"] and "2.0 MB" in rows["htdemucs"]
    assert " no " in rows["htdemucs_ft"]
    assert "checkpoints" in out and "HuggingFace cache" in out  # where weights are looked for
    assert main(["models", "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == list(models.MODEL_NAMES)
    assert data[0]["available_offline"] is True
