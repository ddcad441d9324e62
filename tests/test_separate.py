"""Separation: chunked overlap-add, and the demucs path with a tiny HTDemucs saved the way demucs saves.

The tiny model is built here (random weights), saved both as a demucs ``<sig>-<sha256[:8]>.th``
package beside a bag ``.yaml`` (the ``demucs --repo`` / torch-hub layout) and as a HuggingFace-style
``<sig>.safetensors``, and loaded through exactly the code path used for the real weights.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from stemscribe.errors import BadArgumentError, ModelUnavailableError
from stemscribe.separate import clear_cache, get_separator, resolve_model
from stemscribe.separate.chunking import chunk_spans, overlap_add
from stemscribe.types import STEM_NAMES, Audio

SIG = "0tiny001"


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """No real cache, no env folder, no downloads: every test sees only the folders it makes."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("STEMSCRIBE_MODEL_DIR", raising=False)
    monkeypatch.setenv("STEMSCRIBE_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the separator uses this many torch threads; CI boxes are shared
    clear_cache()
    yield
    clear_cache()


# ---------------------------------------------------------------------------------------------- chunking


@pytest.mark.parametrize("n,chunk,overlap", [(10, 20, 5), (100, 30, 10), (1000, 97, 13), (61, 30, 29), (31, 30, 0)])
def test_chunk_spans_cover_and_overlap(n, chunk, overlap):
    spans = chunk_spans(n, chunk, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == n
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        assert e0 - s1 == overlap and e1 > e0
    assert all(0 < e - s <= chunk for s, e in spans)
    lengths = [e - s for s, e in spans]
    assert max(lengths) - min(lengths) <= len(spans)  # balanced: no tiny last chunk
    assert len(spans) == (1 if n <= chunk else -(-(n - overlap) // (chunk - overlap)))


def test_chunk_spans_rejects_bad_layout():
    with pytest.raises(ValueError):
        chunk_spans(100, 10, 10)


@pytest.mark.parametrize("chunk,overlap,context", [(1000, 100, 0), (1000, 250, 300), (4410, 441, 50), (777, 1, 5)])
def test_overlap_add_reconstructs_identity_model(rng, chunk, overlap, context):
    x = rng.standard_normal((2, 10_007)).astype(np.float32)
    calls = []
    y = overlap_add(lambda b: b, x, chunk=chunk, overlap=overlap, context=context,
                    on_chunk=lambda d, t: calls.append((d, t)))
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.max(np.abs(y - x)) < 1e-6
    assert [d for d, _ in calls] == list(range(1, len(calls) + 1)) and calls[-1][0] == calls[-1][1]
    assert max(b - a for a, b in chunk_spans(x.shape[1], chunk, overlap)) <= chunk


def test_overlap_add_with_stems_axis_and_block_sizes(rng):
    """A 'model' returning (stems, C, m) = fixed gains per stem: result is exactly gain * x."""
    x = rng.standard_normal((2, 5000)).astype(np.float32)
    gains = np.array([0.1, 0.2, 0.3, 0.4], np.float32)[:, None, None]
    seen = []

    def model(block):
        seen.append(block.shape[-1])
        return gains * block[None]

    y = overlap_add(model, x, chunk=1200, overlap=200, context=100)
    assert y.shape == (4, 2, 5000)
    np.testing.assert_allclose(y, gains * x[None], atol=1e-6)
    assert max(seen) <= 1200 + 2 * 100  # bounded: never the whole signal at once


# ---------------------------------------------------------------------------------------------- tiny demucs


def _tiny_htdemucs(sources=STEM_NAMES, seed=0):
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    return HTDemucs(list(sources), channels=4, depth=3, t_layers=1, t_heads=1, nfft=512,
                    segment=Fraction(2, 1), dconv_comp=2, t_hidden_scale=1.0)


def save_th(model, folder: Path, sig: str = SIG) -> Path:
    """Save like demucs' ``serialize_model`` (half-precision state) + ``save_with_checksum``."""
    from demucs.states import get_state, save_with_checksum

    args, kwargs = model._init_args_kwargs
    folder.mkdir(parents=True, exist_ok=True)
    save_with_checksum({"klass": type(model), "args": args, "kwargs": kwargs,
                        "state": get_state(model, None, half=True), "training_args": {}}, folder / f"{sig}.th")
    return next(folder.glob(f"{sig}-*.th"))


def save_safetensors(model, folder: Path, sig: str = SIG) -> Path:
    """Save like demucs' HuggingFace export: tensors + klass/args/kwargs json in the metadata."""
    from safetensors.torch import save_file

    def enc(v):
        if isinstance(v, Fraction):
            return {"_type": "fraction", "numerator": v.numerator, "denominator": v.denominator}
        if isinstance(v, dict):
            return {k: enc(i) for k, i in v.items()}
        if isinstance(v, (list, tuple)):
            return [enc(i) for i in v]
        return v

    args, kwargs = model._init_args_kwargs
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sig}.safetensors"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"klass": f"{type(model).__module__}.{type(model).__name__}",
                                          "args": json.dumps(enc(list(args))), "kwargs": json.dumps(enc(kwargs))})
    return path


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("repo")
    save_th(_tiny_htdemucs(), folder)
    (folder / "htdemucs.yaml").write_text(f"models: ['{SIG}']\n")
    return folder


def _signal(rng, channels: int, seconds: float, sr: int) -> Audio:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal((channels, len(t)))
    return Audio(x.astype(np.float32), sr)


@pytest.mark.parametrize("channels,sr", [(2, 44100), (1, 22050), (6, 48000)])
def test_tiny_htdemucs_separates_through_the_real_loading_path(tiny_repo, rng, channels, sr):
    sep = get_separator("htdemucs", model_dir=tiny_repo)
    assert sep.name == "htdemucs" and sep.where == str(tiny_repo)
    x = _signal(rng, channels, 2.5, sr)
    events = []
    stems = sep.separate(x, progress=events.append)
    assert tuple(stems) == STEM_NAMES
    for s in stems.values():
        assert s.sr == sr and s.n_samples == x.n_samples
        assert s.channels == (1 if channels == 1 else 2)
        assert np.all(np.isfinite(s.samples))
    fr = [e["fraction"] for e in events]
    assert all(e["stage"] == "separate" for e in events)
    assert fr == sorted(fr) and fr[0] == 0.0 and fr[-1] == 1.0 and len(fr) >= 3


def test_long_input_is_chunked_with_monotonic_progress(tiny_repo, rng):
    from stemscribe.separate.demucs import DemucsSeparator

    sep = DemucsSeparator.load("htdemucs", tiny_repo, chunk_s=2.0, overlap_s=0.5, context_s=0.25)
    x = _signal(rng, 2, 7.0, 16000)
    events = []
    stems = sep.separate(x, progress=events.append)
    fr = [e["fraction"] for e in events]
    assert fr == sorted(fr) and fr[-1] == 1.0 and len(fr) > 5
    assert all(s.n_samples == x.n_samples for s in stems.values())
    # chunk seams must not leave clicks: no sample jump at a seam is larger than elsewhere
    d = np.abs(np.diff(stems["vocals"].samples[0]))
    assert d.max() < 20 * np.median(d) + 1e-4


def test_input_is_not_modified_and_silence_gives_silence(tiny_repo):
    sep = get_separator("htdemucs", model_dir=tiny_repo)
    x = Audio(np.zeros((2, 22050), np.float32), 22050)
    before = x.samples.copy()
    stems = sep.separate(x)
    np.testing.assert_array_equal(x.samples, before)
    assert max(float(np.max(np.abs(s.samples))) for s in stems.values()) < 1e-4


def test_safetensors_layout_loads_too(tmp_path, rng):
    save_safetensors(_tiny_htdemucs(seed=1), tmp_path / "st")
    (tmp_path / "st" / "htdemucs.yaml").write_text(f"models: ['{SIG}']\n")
    stems = get_separator("htdemucs", model_dir=tmp_path / "st").separate(_signal(rng, 2, 1.0, 44100))
    assert all(s.samples.shape == (2, 44100) for s in stems.values())


def test_separators_are_cached_per_name_and_folder(tiny_repo, tmp_path):
    a = get_separator("htdemucs", model_dir=tiny_repo)
    assert get_separator("htdemucs", model_dir=tiny_repo) is a
    other = tmp_path / "copy"
    other.mkdir()
    for f in tiny_repo.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    assert get_separator("htdemucs", model_dir=other) is not a


def test_six_source_model_folds_guitar_and_piano_into_other(tmp_path, rng):
    six = ("drums", "bass", "other", "vocals", "guitar", "piano")
    folder = tmp_path / "six"
    save_th(_tiny_htdemucs(six), folder, "0tiny6s0")
    (folder / "htdemucs_6s.yaml").write_text("models: ['0tiny6s0']\n")
    sep = get_separator("htdemucs_6s", model_dir=folder)
    assert sep.native_stems == six and sep.stems == STEM_NAMES
    est = rng.standard_normal((6, 2, 50)).astype(np.float32)
    folded = sep._fold(est.copy())
    np.testing.assert_allclose(folded[2], est[2] + est[4] + est[5], atol=1e-6)
    np.testing.assert_array_equal(folded[[0, 1, 3]], est[[0, 1, 3]])
    np.testing.assert_allclose(folded.sum(0), est.sum(0), rtol=1e-5, atol=1e-5)
    stems = sep.separate(_signal(rng, 2, 1.0, 44100))
    assert tuple(stems) == STEM_NAMES


# ---------------------------------------------------------------------------------------------- errors and defaults


def test_corrupt_checkpoint_is_model_unavailable(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / f"{SIG}.th").write_bytes(b"\x80\x02 definitely not a torch file" * 10)
    (folder / "htdemucs.yaml").write_text(f"models: ['{SIG}']\n")
    with pytest.raises(ModelUnavailableError, match="corrupt") as e:
        get_separator("htdemucs", model_dir=folder)
    assert "--model lite" in str(e.value) and "\n" not in str(e.value)


def test_checksum_mismatch_is_model_unavailable(tmp_path, tiny_repo):
    folder = tmp_path / "tampered"
    folder.mkdir()
    src = next(tiny_repo.glob("*.th"))
    data = bytearray(src.read_bytes())
    data[-100] ^= 0xFF  # flip bits inside the weights; the name still carries the old sha256 prefix
    (folder / src.name).write_bytes(bytes(data))
    (folder / "htdemucs.yaml").write_text(f"models: ['{SIG}']\n")
    with pytest.raises(ModelUnavailableError, match="checksum"):
        get_separator("htdemucs", model_dir=folder)


def test_bare_official_file_is_checked_against_the_published_checksum(tmp_path, tiny_repo):
    folder = tmp_path / "renamed"
    folder.mkdir()
    # a real-looking htdemucs file without the hash in its name: the published prefix (8726e21a) applies
    (folder / "955717e8.th").write_bytes(next(tiny_repo.glob("*.th")).read_bytes())
    with pytest.raises(ModelUnavailableError, match="checksum"):
        get_separator("htdemucs", model_dir=folder)


def test_cancel_from_progress_callback_stops_separation(tiny_repo, rng):
    from stemscribe.errors import Cancelled

    def cancel(event):
        if event["fraction"] > 0:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        get_separator("htdemucs", model_dir=tiny_repo).separate(_signal(rng, 2, 1.0, 44100), progress=cancel)


def test_missing_weights_say_what_to_do(tmp_path):
    with pytest.raises(ModelUnavailableError) as e:
        get_separator("htdemucs", model_dir=tmp_path / "empty")
    msg = str(e.value)
    assert "not found" in msg and "955717e8-8726e21a.th" in msg and "--model lite" in msg
    assert "https://" in msg and "\n" not in msg


def test_offline_machine_fails_fast_without_trying_demucs_download(tmp_path, monkeypatch):
    import socket

    import demucs.pretrained

    monkeypatch.delenv("STEMSCRIBE_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    def must_not_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(demucs.pretrained, "get_model", must_not_download)
    with pytest.raises(ModelUnavailableError, match="offline"):
        get_separator("htdemucs_ft", model_dir=tmp_path)


def test_online_users_get_demucs_download(monkeypatch, rng):
    """When nothing is found locally and downloads are allowed, demucs' own get_model(name) is used."""
    import socket

    import demucs.pretrained
    from demucs.apply import BagOfModels

    monkeypatch.delenv("STEMSCRIBE_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [("resolved",)])
    asked = []

    def fake_get_model(name, repo=None):
        asked.append((name, repo))
        return BagOfModels([_tiny_htdemucs()])

    monkeypatch.setattr(demucs.pretrained, "get_model", fake_get_model)
    sep = get_separator("htdemucs")
    assert asked == [("htdemucs", None)] and sep.where == "download"
    assert sep.separate(_signal(rng, 2, 0.5, 44100))["vocals"].n_samples == 22050


def test_unknown_model_lists_valid_names():
    with pytest.raises(BadArgumentError) as e:
        get_separator("spleeter")
    for name in ("htdemucs", "htdemucs_ft", "htdemucs_6s", "lite"):
        assert name in str(e.value)


def test_default_is_htdemucs_when_present_else_lite(tiny_repo, monkeypatch):
    name, notice = resolve_model(None, None)
    assert name == "lite" and "htdemucs" in notice and "\n" not in notice
    assert resolve_model("htdemucs", None) == ("htdemucs", None)
    monkeypatch.setenv("STEMSCRIBE_MODEL_DIR", str(tiny_repo))
    name, notice = resolve_model(None, None)
    assert name == "htdemucs" and str(tiny_repo) in notice and "lite" in notice
    sep = get_separator(None)
    assert sep.name == "htdemucs" and sep.notice == notice


@pytest.mark.slow
def test_full_size_htdemucs_architecture_round_trips_through_a_checkpoint(tmp_path, rng):
    """The released htdemucs architecture (27 M parameters, random weights), saved and loaded as a
    real ``.th`` file, separates 10 s at 48 kHz; about a minute of CPU."""
    from demucs.htdemucs import HTDemucs

    model = HTDemucs(list(STEM_NAMES), dconv_mode=3, segment=Fraction(39, 5))
    save_th(model, tmp_path / "full", "0full001")
    (tmp_path / "full" / "htdemucs.yaml").write_text("models: ['0full001']\n")
    sep = get_separator("htdemucs", model_dir=tmp_path / "full")
    stems = sep.separate(_signal(rng, 2, 10.0, 48000))
    assert all(s.samples.shape == (2, 480000) and np.all(np.isfinite(s.samples)) for s in stems.values())
