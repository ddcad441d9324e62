"""stemscribe.dsp reproduces librosa's STFT and mel filters (the split path no longer imports librosa)."""

from __future__ import annotations

import numpy as np
import pytest

from stemscribe import dsp


@pytest.mark.parametrize(("n", "n_fft", "hop", "center"), [(66167, 1024, 256, True), (5000, 2048, 512, True),
                                                          (9000, 2048, 512, False), (40963, 4096, 1024, True)])
def test_stft_matches_librosa(n, n_fft, hop, center):
    librosa = pytest.importorskip("librosa")
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    want = librosa.stft(x, n_fft=n_fft, hop_length=hop, center=center)
    got = dsp.stft(x, n_fft=n_fft, hop_length=hop, center=center)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.max(np.abs(got - want)) <= 1e-6 * np.max(np.abs(want))


@pytest.mark.parametrize("kw", [dict(sr=22050, n_fft=1024, n_mels=64, fmax=11025),
                                dict(sr=22050, n_fft=2048, n_mels=40, fmin=30.0, fmax=10000.0, norm=None),
                                dict(sr=44100, n_fft=4096, n_mels=128)])
def test_mel_filters_and_frequencies_match_librosa(kw):
    librosa = pytest.importorskip("librosa")
    np.testing.assert_allclose(dsp.mel_filters(**kw), librosa.filters.mel(**kw), atol=1e-7)
    fmin, fmax = kw.get("fmin", 0.0), kw.get("fmax", kw["sr"] / 2)
    np.testing.assert_allclose(dsp.mel_frequencies(kw["n_mels"], fmin=fmin, fmax=fmax),
                               librosa.mel_frequencies(n_mels=kw["n_mels"], fmin=fmin, fmax=fmax), rtol=1e-12)


def test_stft_refuses_what_it_cannot_frame():
    with pytest.raises(ValueError, match="mono"):
        dsp.stft(np.zeros((2, 4096)), n_fft=1024)
    with pytest.raises(ValueError, match="shorter"):
        dsp.stft(np.zeros(100), n_fft=1024, center=False)
    with pytest.raises(ValueError, match="norm"):
        dsp.mel_filters(sr=22050, n_fft=1024, norm="area")


def test_split_path_does_not_import_librosa():
    """librosa's import compiles numba kernels (20+ s once per install): tempo, key and drums avoid it."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from stemscribe.types import Audio; "
            "from stemscribe.transcribe.tempo import estimate_beats; from stemscribe.transcribe.key import estimate_key; "
            "from stemscribe.transcribe.drums import transcribe_drums; "
            "t = np.arange(44100 * 3) / 44100; a = Audio((0.3 * np.sin(2 * np.pi * 220 * t) * (t % 0.5 < 0.1)).astype(np.float32), 44100); "
            "estimate_beats(a); estimate_key(a); transcribe_drums(a); "
            "print(any(m.split('.')[0] == 'librosa' for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_window_percentile_over_neighbouring_events():
    from stemscribe.dsp import window_percentile

    times = np.array([5.0, 0.0, 1.0, 10.0])  # any order
    values = np.array([3.0, 1.0, 2.0, 7.0])
    out = window_percentile(times, values, 1.0, 50)
    assert out.tolist() == [3.0, 1.5, 1.5, 7.0]  # 5 and 10 stand alone; 0 and 1 see each other
    assert window_percentile(times, values, 100.0, 100).tolist() == [7.0] * 4
