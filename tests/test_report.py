"""The no-ground-truth quality report: loudness, silence, bleed and MIDI<->audio consistency."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stemscribe import report as rp
from stemscribe.types import Audio, BeatGrid, Note, NoteTrack

SR = 22050
DUR = 12.0
BEAT = 0.5  # 120 BPM, bars of 2 s


def _t(dur: float = DUR, sr: int = SR) -> np.ndarray:
    return np.arange(int(dur * sr)) / sr


def _render(notes: list[tuple[int, float, float]], sr: int = SR, dur: float = DUR) -> np.ndarray:
    """Harmonic tones with a short release (no clicks at note ends)."""
    t = _t(dur, sr)
    y = np.zeros_like(t)
    for pitch, s, e in notes:
        f = 440.0 * 2 ** ((pitch - 69) / 12)
        m = (t >= s) & (t < e)
        tt = t[m] - s
        env = np.exp(-tt / 1.0) * np.minimum(1.0, (e - s - tt) / 0.02)
        y[m] += sum(np.sin(2 * np.pi * h * f * tt) / h for h in range(1, 4)) * env
    return 0.2 * y


def _drums(rng: np.random.Generator, kicks: np.ndarray, snares: np.ndarray) -> np.ndarray:
    t = _t()
    y = np.zeros_like(t)
    for k in kicks:
        m = (t >= k) & (t < k + 0.2)
        tt = t[m] - k
        y[m] += np.sin(2 * np.pi * (50 + 80 * np.exp(-tt / 0.02)) * tt) * np.exp(-tt / 0.06)
    for k in snares:
        i, n = int(k * SR), int(0.15 * SR)
        n = min(n, len(y) - i)
        y[i : i + n] += 0.5 * rng.standard_normal(n) * np.exp(-np.arange(n) / SR / 0.04)
    return 0.5 * y


@pytest.fixture
def song(rng):
    bass = [(36 + [0, 5, 7, 3][i % 4], i * BEAT, i * BEAT + 0.45) for i in range(int(DUR / BEAT))]
    vocals = [(67 + [0, 2, 4, 5, 7, 5, 4, 2][i % 8], 0.25 + i * 1.0, 0.95 + i * 1.0) for i in range(int(DUR) - 1)]
    other = [(60 + p, i * 2.0, i * 2.0 + 1.9) for i in range(int(DUR / 2)) for p in (0, 4, 7)]
    kicks, snares = np.arange(0, DUR, 1.0), np.arange(0.5, DUR, 1.0)
    signals = {"drums": _drums(rng, kicks, snares), "bass": _render(bass), "other": 0.5 * _render(other), "vocals": _render(vocals)}
    stems = {k: Audio(np.stack([v, v]).astype(np.float32), SR) for k, v in signals.items()}
    tracks = {
        "bass": NoteTrack("bass", [Note(p, s, e) for p, s, e in bass]),
        "vocals": NoteTrack("vocals", [Note(p, s, e) for p, s, e in vocals]),
        "other": NoteTrack("other", [Note(p, s, e) for p, s, e in other]),
        "drums": NoteTrack("drums", [Note(36, k, k + 0.1) for k in kicks] + [Note(38, k, k + 0.1) for k in snares], is_drum=True),
    }
    grid = BeatGrid(120.0, np.arange(0, DUR, BEAT), np.arange(0, DUR, 4 * BEAT))
    return stems, tracks, grid


# ---------------------------------------------------------------- loudness and silence


@pytest.mark.parametrize("sr", [44100, 48000])
def test_loudness_full_scale_sine_is_minus_3_lufs(sr):
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS
    x = np.sin(2 * np.pi * 997 * _t(5.0, sr))
    assert rp.loudness_lufs(Audio(x, sr)) == pytest.approx(-3.01, abs=0.05)
    # -20 dB in amplitude -> -20 LU; two identical channels add 3 dB
    assert rp.loudness_lufs(Audio(0.1 * x, sr)) == pytest.approx(-23.01, abs=0.05)
    assert rp.loudness_lufs(Audio(np.stack([0.1 * x, 0.1 * x]), sr)) == pytest.approx(-20.0, abs=0.05)


def test_loudness_gating_and_silence():
    sr = 48000
    x = 0.1 * np.sin(2 * np.pi * 997 * _t(10.0, sr))
    x[: len(x) // 2] *= 1e-4  # -80 dB half: gated out, so the level is about that of the loud half
    # (ungated it would be 3 dB lower; the blocks straddling the step pull it down a little)
    assert rp.loudness_lufs(Audio(x, sr)) == pytest.approx(-23.01, abs=0.3)
    assert rp.loudness_lufs(Audio(np.zeros(sr * 2), sr)) is None
    assert rp.loudness_lufs(Audio(np.ones(100), sr)) is None  # shorter than one 400 ms block


@pytest.mark.parametrize("sr", [44100, 48000])
def test_k_weighting_in_ffmpeg_matches_scipy_and_the_fallback_too(sr, monkeypatch):
    from scipy.signal import sosfilt

    import av.error

    rng = np.random.default_rng(3)
    y = (0.3 * rng.standard_normal(int(2.5 * sr))).astype(np.float32)  # 2.5 s: pieces of 1 s + a rest
    ref = sosfilt(rp._k_weighting_sos(sr), y.astype(np.float64))
    got = np.concatenate(list(rp._k_weighted_chunks(y, sr)))
    assert got.shape == y.shape and got.dtype == np.float32
    # float32 recursion near the 38 Hz pole: a slow drift of 1e-4 of the peak, as sosfilt in float32
    assert np.max(np.abs(got - ref)) < 1e-3 * np.max(np.abs(ref))
    energy = lambda a: 10 * np.log10(np.mean(np.square(a, dtype=np.float64)))  # noqa: E731
    assert energy(got) == pytest.approx(energy(ref), abs=1e-3)  # dB
    # without FFmpeg's filter graph, the same sections run in scipy, piece by piece with their state

    def no_graph(*_a, **_k):
        raise av.error.FilterNotFoundError(-1, "biquad")

    monkeypatch.setattr(rp, "_biquad_graph", no_graph)
    fallback = np.concatenate(list(rp._k_weighted_chunks(y, sr)))
    assert np.max(np.abs(fallback - ref)) < 1e-3 * np.max(np.abs(ref))
    assert energy(fallback) == pytest.approx(energy(ref), abs=1e-3)


def test_step_energies_of_pieces_equal_those_of_the_whole_signal():
    rng = np.random.default_rng(4)
    y = rng.standard_normal(10_037).astype(np.float32)
    step, n_steps = 441, 10_037 // 441
    want = np.square(y[: n_steps * step].astype(np.float64)).reshape(n_steps, step).sum(axis=1)
    for cut in (100, 441, 1000, 5000, 20_000):
        got = rp._step_energies((y[i : i + cut] for i in range(0, y.size, cut)), step, n_steps)
        assert got == pytest.approx(want, rel=1e-5)


def test_silence_ratio():
    x = 0.3 * np.sin(2 * np.pi * 220 * _t(4.0))
    x[: len(x) // 4] = 0.0
    assert rp.silence_ratio(Audio(x, SR)) == pytest.approx(0.25, abs=0.03)
    assert rp.silence_ratio(Audio(np.zeros(SR), SR)) == 1.0
    assert rp.silence_ratio(Audio(x * 1e-3, SR)) == 1.0  # -60 dBFS is below the -50 dBFS threshold


# ---------------------------------------------------------------- bleed


def _bleed(stems: dict[str, Audio]) -> dict[str, dict]:
    return {k: v["bleed"] for k, v in rp.quality_report(stems, {}, BeatGrid(120.0))["stems"].items()}


def test_bleed_clean_stems_score_low(song):
    stems, _, _ = song
    for name, b in _bleed(stems).items():
        assert 0.0 <= b["estimate"] < 0.15, (name, b)
        assert b["estimate"] == pytest.approx(sum(b["from"].values()), abs=1e-3)


def test_bleed_tracks_a_leak_of_known_gain(song):
    from stemscribe.evaluate import local_interference_share

    stems, _, _ = song
    names = list(stems)
    refs = np.stack([stems[k].samples for k in names])
    clean = _bleed(stems)["other"]["from"]["vocals"]
    got, truth = [], []
    for gain in (0.1, 0.3, 0.6):
        leaky = dict(stems, other=Audio(stems["other"].samples + gain * stems["vocals"].samples, SR))
        b = _bleed(leaky)["other"]
        assert b["source"] == "vocals"
        got.append(b["estimate"])
        truth.append(local_interference_share(refs, np.stack([leaky[k].samples for k in names]))[0][names.index("other")])
    assert clean < got[0] < got[1] < got[2]
    np.testing.assert_allclose(got, truth, atol=0.15)


def test_bleed_copy_is_high_silence_is_zero(song):
    stems, _, _ = song
    b = _bleed(dict(stems, bass=stems["vocals"]))
    # an exact copy: either stem may be the owner, so each is judged half leaked
    assert b["bass"]["source"] == "vocals" and b["bass"]["estimate"] > 0.4
    assert b["vocals"]["source"] == "bass" and b["vocals"]["estimate"] > 0.4
    silent = Audio(np.zeros_like(stems["bass"].samples), SR)
    b = _bleed(dict(stems, bass=silent))
    assert b["bass"]["estimate"] == 0.0 and b["bass"]["source"] is None


def test_bleed_independent_noises_are_clean(rng):
    # two unrelated broadband sources in the same cells: incoherent, so no leak (chance removed)
    stems = {k: Audio(0.1 * rng.standard_normal((1, SR * 6)).astype(np.float32), SR) for k in ("drums", "other")}
    for b in _bleed(stems).values():
        assert b["estimate"] < 0.05, b


def test_bleed_blocks_match_one_pass(song, monkeypatch):
    stems, _, _ = song
    leaky = dict(stems, other=Audio(stems["other"].samples + 0.3 * stems["vocals"].samples, SR))
    monos = {k: rp._mono_at(v) for k, v in leaky.items()}
    whole = rp.bleed_from_signals(monos)
    monkeypatch.setattr(rp, "BLEED_BLOCK", 50)  # many blocks, each with its halo
    blocked = rp.bleed_from_signals(monos)
    for i in whole:
        for j in whole[i]:
            assert blocked[i][j] == pytest.approx(whole[i][j], abs=1e-4)
    # the report takes each stem's magnitude STFT from the same blocks: exactly _stft_mag's frames
    n = min(len(y) for y in monos.values()) - 123  # not a whole number of hops
    bleed, mags = rp._bleed_and_magnitudes({k: y[:n] for k, y in monos.items()})
    assert set(bleed) == set(monos) and all(len(b) == len(monos) - 1 for b in bleed.values())
    for k, y in monos.items():
        assert np.array_equal(mags[k], rp._stft_mag(y[:n]))


# ---------------------------------------------------------------- MIDI consistency


def test_matching_midi_scores_higher_than_shifted(song):
    stems, tracks, grid = song
    good = rp.quality_report(stems, tracks, grid)["stems"]
    # the stems are analysed on threads: any number of them gives the same report
    assert rp.quality_report(stems, tracks, grid, workers=1)["stems"] == good
    assert rp.quality_report(stems, tracks, grid, workers=3)["stems"] == good
    shifted = {
        k: NoteTrack(t.name, [Note(n.pitch + (0 if t.is_drum else 5), n.start + 0.25, n.end + 0.25) for n in t.notes], is_drum=t.is_drum)
        for k, t in tracks.items()
    }
    bad = rp.quality_report(stems, shifted, grid)["stems"]
    for name in stems:
        g, b = good[name]["midi"], bad[name]["midi"]
        assert g["score"] > 0.6, (name, g)
        assert b["score"] < g["score"] - 0.3, (name, g["score"], b["score"])
        assert len(b["flagged_bars"]) > len(g["flagged_bars"])


def test_flags_the_bars_where_midi_is_missing_or_extra(song):
    stems, tracks, grid = song
    # drop the vocal notes of bars 3-4 (4..8 s) and add bass notes past the end of the bass audio
    vocals = NoteTrack("vocals", [n for n in tracks["vocals"].notes if not 4.0 <= n.start < 8.0])
    bass_audio = stems["bass"].samples.copy()
    bass_audio[:, int(8.0 * SR):] = 0.0
    rep = rp.quality_report(dict(stems, bass=Audio(bass_audio, SR)), dict(tracks, vocals=vocals), grid)["stems"]
    flagged_v = {b["bar"]: b for b in rep["vocals"]["midi"]["flagged_bars"]}
    assert {3, 4} <= set(flagged_v) and flagged_v[3]["reason"] == "stem sounds but no notes"
    assert flagged_v[3]["start"] == pytest.approx(4.0) and flagged_v[3]["end"] == pytest.approx(6.0)
    flagged_b = {b["bar"]: b for b in rep["bass"]["midi"]["flagged_bars"]}
    assert {5, 6} <= set(flagged_b) and flagged_b[5]["reason"] == "notes where the stem is silent"
    assert not {1, 2} & set(flagged_b)


def test_report_is_json_and_has_every_field(song):
    stems, tracks, grid = song
    rep = rp.quality_report(stems, {k: v for k, v in tracks.items() if k != "other"}, grid)
    json.dumps(rep, allow_nan=False)
    assert set(rep["stems"]) == set(stems)
    for name, e in rep["stems"].items():
        assert -40 < e["loudness_lufs"] < 0
        assert -30 < e["peak_dbfs"] <= 0.5
        assert 0.0 <= e["silence_ratio"] <= 1.0
        assert set(e["bleed"]["from"]) == set(stems) - {name}
    assert rep["stems"]["other"]["midi"] is None  # no track given
    m = rep["stems"]["vocals"]["midi"]
    assert m["n_bars"] == 6 and m["similarity_kind"] == "chroma"
    assert rep["stems"]["drums"]["midi"]["similarity_kind"] == "band onset envelopes"


def test_report_on_silence_and_empty_midi():
    z = Audio(np.zeros((2, SR * 3), dtype=np.float32), SR)
    rep = rp.quality_report({"vocals": z, "bass": z}, {"vocals": NoteTrack("vocals"), "bass": NoteTrack("bass")}, BeatGrid(120.0))
    json.dumps(rep, allow_nan=False)
    v = rep["stems"]["vocals"]
    assert v["loudness_lufs"] is None and v["peak_dbfs"] is None and v["silence_ratio"] == 1.0
    assert v["bleed"]["estimate"] == 0.0
    assert v["midi"]["bars_checked"] == 0 and v["midi"]["flagged_bars"] == []


def test_bar_bounds_cover_the_song():
    grid = BeatGrid(120.0, np.arange(1.0, 9.0, 0.5), np.arange(1.0, 9.0, 2.0))
    bars = rp.bar_bounds(grid, 12.0)
    assert bars[0, 0] == 0.0 and bars[0, 1] == 1.0  # the pickup before the first downbeat
    assert bars[-1, 1] == 12.0 and np.all(np.diff(bars[:, 0]) > 0)
    np.testing.assert_allclose(bars[1:, 0], [1.0, 3.0, 5.0, 7.0, 9.0])  # continued past the grid
    no_beats = rp.bar_bounds(BeatGrid(60.0), 10.0)
    np.testing.assert_allclose(no_beats[:, 0], [0.0, 4.0, 8.0])


def test_match_onsets_is_a_maximum_matching_like_mir_eval():
    mir_eval = pytest.importorskip("mir_eval")
    rng = np.random.default_rng(7)
    for trial in range(300):
        ref = np.round(rng.uniform(0, 3, rng.integers(0, 25)), 3)
        found = ref[rng.random(ref.size) < 0.7]  # some detected, jittered by up to about the window
        est = np.round(np.concatenate([found + rng.normal(0, 0.05, found.size), rng.uniform(0, 3, rng.integers(0, 10))]), 3)
        rng.shuffle(est)
        pairs = rp.match_onsets(ref, est, 0.07)
        assert len({i for i, _ in pairs}) == len({j for _, j in pairs}) == len(pairs)
        assert all(abs(ref[i] - est[j]) <= 0.07 + 1e-9 for i, j in pairs)
        expect = len(mir_eval.util.match_events(ref, est, 0.07)) if ref.size and est.size else 0
        assert len(pairs) == expect, (trial, ref, est)


def test_a_note_grazing_a_bar_line_does_not_belong_to_the_bar_before():
    from stemscribe.report import _in_bar

    def in_bar(start: float, end: float, bar: tuple[float, float]) -> bool:
        (inside,) = _in_bar(np.array([start]), np.array([end]), *bar)
        return bool(inside)

    # bar [2.4, 4.8): a sung note that starts 40 ms before its end belongs to the next bar only
    assert not in_bar(4.76, 5.6, (2.4, 4.8))
    assert in_bar(4.76, 5.6, (4.8, 7.2))
    # a note that holds over the bar line for long enough counts in both; a short one inside counts
    assert in_bar(4.5, 5.6, (2.4, 4.8)) and in_bar(4.5, 5.6, (4.8, 7.2))
    assert in_bar(3.0, 3.06, (2.4, 4.8))
    assert not in_bar(1.0, 2.0, (2.4, 4.8))
    # many notes at once: one answer per note
    got = _in_bar(np.array([4.76, 4.5, 3.0, 1.0]), np.array([5.6, 5.6, 3.06, 2.0]), 2.4, 4.8)
    assert got.tolist() == [False, True, True, False]
