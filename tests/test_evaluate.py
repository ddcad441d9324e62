"""Metrics, dataset loaders and the eval runs/CLI on tiny synthetic datasets with known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stemscribe import evaluate as ev
from stemscribe.errors import BadArgumentError, BadInputError
from stemscribe.types import STEM_NAMES, Audio, Note, NoteTrack

SR = 8000


# ---------------------------------------------------------------- whole-clip SDR


def test_sdr_perfect_silent_and_scaled(rng):
    s = rng.standard_normal((2, SR)).astype(np.float32)
    assert ev.sdr(s, s) > 80.0
    assert ev.sdr(s, np.zeros_like(s)) == pytest.approx(0.0, abs=1e-6)
    # estimate = s / 2 -> error s / 2 -> 10 log10(4) dB
    assert ev.sdr(s, s / 2) == pytest.approx(10 * math.log10(4), abs=1e-3)
    noisy = s + 0.1 * rng.standard_normal(s.shape)
    assert ev.sdr(s, noisy) == pytest.approx(20.0, abs=0.3)


def test_sdr_silent_reference_convention():
    z = np.zeros((1, 100))
    assert ev.sdr(z, z) == 0.0
    assert ev.sdr(z, np.ones((1, 100))) < -60


def test_sdr_aligns_length_and_channels(rng):
    s = rng.standard_normal((2, 1000))
    assert ev.sdr(s, s[:, :990]) > 15  # missing tail counted as error, but small
    mono = rng.standard_normal(500)
    assert ev.sdr(np.stack([mono, mono]), mono) > 80


# ---------------------------------------------------------------- museval v4 framewise SDR


def test_framewise_sdr_frames_and_values(rng):
    n = int(3.5 * SR)  # 3 full one-second windows; the partial tail is dropped, as in museval
    ref = rng.standard_normal((2, 2, n))
    est = ref.copy()
    est[0] += 10 ** (-10 / 20) * rng.standard_normal((2, n))  # ~10 dB SDR
    f = ev.framewise_sdr(ref, est, sr=SR)
    assert f.shape == (2, 3)
    assert np.all(np.isinf(f[1]))  # perfect target
    np.testing.assert_allclose(f[0], 10.0, atol=0.3)
    assert ev.nanmedian(f[0]) == pytest.approx(10.0, abs=0.3)


def test_framewise_sdr_silent_frame_is_skipped_for_all_targets(rng):
    ref = rng.standard_normal((2, 1, 3 * SR))
    ref[1, :, SR : 2 * SR] = 0.0  # target 1 silent in frame 1
    est = ref + 0.1 * rng.standard_normal(ref.shape)
    f = ev.framewise_sdr(ref, est, sr=SR)
    assert np.isnan(f[:, 1]).all() and np.isfinite(f[:, [0, 2]]).all()
    est2 = est.copy()
    est2[0, :, 2 * SR :] = 0.0  # a silent estimate frame is skipped too
    assert np.isnan(ev.framewise_sdr(ref, est2, sr=SR)[:, 2]).all()


def test_interference_share_measures_bleed(rng):
    refs = rng.standard_normal((3, 2, 4 * SR))
    assert np.allclose(ev.interference_share(refs, refs), 0.0, atol=1e-9)
    est = refs.copy()
    est[0] = refs[0] + 0.5 * refs[1]  # a -6 dB copy of source 1 leaks into 0
    share = ev.interference_share(refs, est)
    assert share[0] == pytest.approx(0.25 / 1.25, abs=0.01) and share[1] == pytest.approx(0.0, abs=1e-9)
    est[2] = 0.0
    assert np.isnan(ev.interference_share(refs, est)[2])


def test_local_interference_share_follows_a_time_varying_leak(rng):
    refs = rng.standard_normal((3, 2, 4 * SR))
    share, pair = ev.local_interference_share(refs, refs)
    assert np.allclose(share, 0.0, atol=1e-6) and np.allclose(pair, 0.0, atol=1e-6)
    est = refs.copy()
    est[0] = refs[0] + 0.5 * refs[1]  # a steady -6 dB leak: both projections see it
    share, pair = ev.local_interference_share(refs, est)
    assert share[0] == pytest.approx(0.2, abs=0.02) and pair[0, 1] == pytest.approx(0.2, abs=0.02)
    assert pair[0, 2] < 0.01 and share[1] == pytest.approx(0.0, abs=1e-6)
    # a leak switched on and off (0.5 s each, random sign), as a mask does: no single gain
    # describes it, so the whole-clip projection misses most of it while the local one does not
    gate = np.repeat(rng.choice([-1.0, 1.0], 4)[:, None] * np.array([1.0, 0.0]), SR // 2)
    est[0] = refs[0] + gate * refs[1]
    truth = np.sum((gate * refs[1]) ** 2) / np.sum(est[0] ** 2)
    assert ev.local_interference_share(refs, est)[0][0] == pytest.approx(truth, abs=0.05)
    assert ev.interference_share(refs, est)[0] < truth / 2
    est[2] = 0.0
    assert np.isnan(ev.local_interference_share(refs, est)[0][2])
    with pytest.raises(BadInputError):
        ev.local_interference_share(refs, est[:2])


def test_framewise_sdr_short_clip_is_one_frame(rng):
    ref = rng.standard_normal((1, 1, SR // 2))
    assert ev.framewise_sdr(ref, ref / 2, sr=SR).shape == (1, 1)


# ---------------------------------------------------------------- note metrics


def _melody(n: int = 12, start: float = 0.5, step: float = 0.5) -> list[Note]:
    return [Note(60 + (3 * i) % 12, start + i * step, start + i * step + 0.4) for i in range(n)]


def test_note_scores_perfect_shifted_and_partial():
    ref = _melody()
    perfect = ev.note_scores(ref, ref)
    assert perfect["onset"]["f1"] == 1.0 and perfect["onset_offset"]["f1"] == 1.0
    near = [Note(n.pitch, n.start + 0.03, n.end + 0.03) for n in ref]  # inside 50 ms
    assert ev.note_scores(ref, near)["onset"]["f1"] == 1.0
    shifted = [Note(n.pitch, n.start + 0.1, n.end + 0.1) for n in ref]
    assert ev.note_scores(ref, shifted)["onset"]["f1"] == 0.0
    wrong_pitch = [Note(n.pitch + 1, n.start, n.end) for n in ref]
    assert ev.note_scores(ref, wrong_pitch)["onset"]["f1"] == 0.0
    half = ev.note_scores(ref, ref[::2])["onset"]
    assert half["precision"] == 1.0 and half["recall"] == pytest.approx(0.5)
    short = [Note(n.pitch, n.start, n.start + 0.1) for n in ref]  # right onsets, offsets far too early
    s = ev.note_scores(ref, short)
    assert s["onset"]["f1"] == 1.0 and s["onset_offset"]["f1"] == 0.0


def test_note_scores_empty_conventions():
    assert ev.note_scores([], [])["onset"]["f1"] == 1.0
    assert ev.note_scores(_melody(), [])["onset"]["f1"] == 0.0
    assert ev.note_scores([], _melody())["onset"]["precision"] == 0.0


def test_drum_classes_and_scores():
    assert ev.drum_class(36) == "kick" and ev.drum_class(38) == "snare"
    assert ev.drum_class(42) == ev.drum_class(46) == "hihat"
    assert ev.drum_class(49) == ev.drum_class(51) == "cymbals" and ev.drum_class(45) == "toms"
    assert ev.drum_class(56) is None  # cowbell: not scored
    kicks = [Note(36, t, t + 0.1) for t in np.arange(0, 4, 0.5)]
    snares = [Note(38, t, t + 0.1) for t in np.arange(0.25, 4, 0.5)]
    hats = [Note(42, t, t + 0.05) for t in np.arange(0, 4, 0.25)]
    ref = kicks + snares + hats
    perfect = ev.drum_scores(ref, ref)
    assert all(c["f1"] == 1.0 for c in perfect["classes"].values()) and perfect["all"]["f1"] == 1.0
    # snare hits labelled as toms: kick and hats stay perfect, snare and toms score 0
    est = kicks + [Note(45, n.start, n.end) for n in snares] + [Note(46, n.start, n.end) for n in hats]
    s = ev.drum_scores(ref, est)
    assert s["classes"]["kick"]["f1"] == 1.0 and s["classes"]["hihat"]["f1"] == 1.0
    assert s["classes"]["snare"]["f1"] == 0.0 and s["classes"]["toms"]["f1"] == 0.0
    assert 0.0 < s["all"]["f1"] < 1.0
    late = ev.drum_scores(ref, [Note(n.pitch, n.start + 0.08, n.end) for n in ref])
    assert late["all"]["f1"] == 0.0


# ---------------------------------------------------------------- datasets


def _write_song(root: Path, name: str, rng: np.random.Generator, seconds: float = 2.0, midi: bool = True) -> dict[str, np.ndarray]:
    from stemscribe.midi import write_midi

    d = root / name
    d.mkdir(parents=True)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    stems = {
        "drums": 0.3 * rng.standard_normal((2, n)) * (np.sin(2 * np.pi * 2 * t) > 0.9),
        "bass": np.stack([0.3 * np.sin(2 * np.pi * 55 * t)] * 2),
        "other": np.stack([0.2 * np.sin(2 * np.pi * 330 * t)] * 2),
        "vocals": np.stack([0.2 * np.sin(2 * np.pi * 440 * t) * (t > 0.5)] * 2),
    }
    for s, x in stems.items():
        sf.write(d / f"{s}.flac" if s != "bass" else d / f"{s}.wav", x.T.astype(np.float32), SR)
    sf.write(d / "mixture.wav", sum(stems.values()).T.astype(np.float32), SR)
    if midi:
        write_midi(d / "vocals.mid", [NoteTrack("vocals", _melody(3, 0.5, 0.5), program=52)])
        write_midi(d / "drums.mid", [NoteTrack("drums", [Note(36, 0.1, 0.2), Note(42, 0.6, 0.7)], is_drum=True)])
        (d / "meta.json").write_text(json.dumps({"tempo": 120.0}))
    return stems


@pytest.fixture
def tiny_dataset(tmp_path: Path, rng) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    root = tmp_path / "ds"
    truth = {name: _write_song(root, name, rng) for name in ("song_a", "song_b")}
    (root / "not_a_song").mkdir()
    return root, truth


def test_load_dataset_folder_layout(tiny_dataset):
    root, truth = tiny_dataset
    songs = ev.load_dataset(root)
    assert [s.name for s in songs] == ["song_a", "song_b"]
    song = songs[0]
    assert song.stems == STEM_NAMES and set(song.midi) == {"vocals", "drums"}
    assert song.meta["tempo"] == 120.0
    stems = song.load_stems()
    np.testing.assert_allclose(stems["bass"].samples, truth["song_a"]["bass"], atol=1e-4)
    assert song.load_mixture().sr == SR
    vocals = song.load_midi("vocals")
    assert [n.pitch for n in vocals.notes] == [n.pitch for n in _melody(3)]
    assert song.load_midi("drums").is_drum


def test_load_dataset_errors(tmp_path):
    with pytest.raises(BadInputError):
        ev.load_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no songs"):
        ev.load_dataset(tmp_path / "empty")


def _write_stem_mp4(path: Path, streams: list[np.ndarray], sr: int = 44100) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as out:
        outs = [out.add_stream("aac", rate=sr, layout="stereo") for _ in streams]
        for st, x in zip(outs, streams):
            pos = 0
            while pos < x.shape[1]:
                chunk = np.ascontiguousarray(x[:, pos : pos + 1024], dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate = sr
                frame.pts = pos
                for packet in st.encode(frame):
                    out.mux(packet)
                pos += 1024
            for packet in st.encode(None):
                out.mux(packet)


def test_stem_mp4_loader(tmp_path):
    sr = 44100
    t = np.arange(sr) / sr
    freqs = [220.0, 110.0, 330.0, 440.0]
    parts = [np.stack([0.2 * np.sin(2 * np.pi * f * t)] * 2) for f in freqs]
    _write_stem_mp4(tmp_path / "x.stem.mp4", [sum(parts)] + parts, sr)
    songs = ev.load_dataset(tmp_path)
    assert [(s.name, s.kind) for s in songs] == [("x", "stem.mp4")]
    stems = songs[0].load_stems()
    assert set(stems) == set(STEM_NAMES)
    for name, f in zip(("drums", "bass", "other", "vocals"), freqs):
        a = stems[name]
        assert a.sr == sr and a.channels == 2
        spec = np.abs(np.fft.rfft(a.samples[0]))
        assert abs(np.argmax(spec) * sr / a.n_samples - f) < 3  # the right stream, decoded
    assert songs[0].load_mixture().n_samples == stems["vocals"].n_samples


def test_real_musdb_clip_decodes(devset):
    clips = sorted((devset.parent / "musdb7s-train").glob("*.stem.mp4"))
    if not clips:
        pytest.skip("musdb7s-train not present")
    stems = ev.read_stem_mp4(clips[0])
    assert set(stems) == {"mixture", *STEM_NAMES}
    mix = stems["mixture"].samples
    total = sum(stems[s].samples for s in STEM_NAMES)
    # the MUSDB mixture is the sum of the stems (up to AAC coding)
    assert ev.sdr(mix, total) > 10


# ---------------------------------------------------------------- runs and CLI


class _Oracle:
    """A 'separator' that returns the reference stems (or silence) of the song it is given."""

    name = "oracle"

    def __init__(self, root: Path, silent: bool = False) -> None:
        self.songs = {s.name: s for s in ev.load_dataset(root)}
        self.silent = silent

    def separate(self, audio: Audio, *, progress=None) -> dict[str, Audio]:
        for song in self.songs.values():
            if np.allclose(song.load_mixture().samples, audio.samples):
                stems = song.load_stems()
                if self.silent:
                    return {k: Audio(np.zeros_like(v.samples), v.sr) for k, v in stems.items()}
                return stems
        raise AssertionError("unknown mixture")


def test_evaluate_separation_oracle_and_silent(tiny_dataset):
    root, _ = tiny_dataset
    good = ev.evaluate_separation(root, separator=_Oracle(root))
    assert good["model"] == "oracle" and len(good["songs"]) == 2
    for stem in STEM_NAMES:
        assert good["summary"][stem]["sdr_mean"] > 80
        assert math.isinf(good["summary"][stem]["museval_sdr"])
    bad = ev.evaluate_separation(root, separator=_Oracle(root, silent=True))
    for stem in STEM_NAMES:
        assert bad["summary"][stem]["sdr_mean"] == pytest.approx(0.0, abs=1e-6)
        assert math.isnan(bad["summary"][stem]["museval_sdr"])  # every frame has a silent estimate
    assert bad["rtf"]["separate"] >= 0 and "museval" in bad["conventions"]["museval_sdr"]
    # the no-ground-truth bleed estimate rides along, for checking the report against the truth
    assert all(0.0 <= v["report_bleed"] <= 1.0 for r in good["songs"] for v in r["stems"].values())
    check = good["report_check"]
    assert check["n"] == 8 and "local" in check["what"] and "whole-clip" in check["old_ground_truth"]["what"]
    assert all(v["local_interference_share"] == pytest.approx(0.0, abs=1e-4) for r in good["songs"] for v in r["stems"].values())
    assert "Spearman" in ev.results_markdown(good)


def test_evaluate_transcription_with_given_transcriber(tiny_dataset):
    root, _ = tiny_dataset
    songs = ev.load_dataset(root)

    def perfect(stem, audio, others):
        song = next(s for s in songs if s.load_stems()[stem].n_samples == audio.n_samples)
        return song.load_midi(stem)

    def late(stem, audio, others):
        t = perfect(stem, audio, others)
        return NoteTrack(t.name, [Note(n.pitch, n.start + 0.2, n.end + 0.2) for n in t.notes], is_drum=t.is_drum)

    r = ev.evaluate_transcription(root, transcriber=perfect)
    assert r["sources"] == ["true"]
    assert r["summary"]["true"]["vocals"]["onset"]["f1"] == 1.0
    assert r["summary"]["true"]["vocals"]["onset_offset"]["f1"] == 1.0
    assert r["summary"]["true"]["drums"]["kick"]["f1"] == 1.0
    assert set(r["summary"]["true"]) == {"vocals", "drums"}  # only stems with ground truth
    shifted = ev.evaluate_transcription(root, transcriber=late)
    assert shifted["summary"]["true"]["vocals"]["onset"]["f1"] < r["summary"]["true"]["vocals"]["onset"]["f1"]
    assert shifted["summary"]["true"]["drums"]["f1"] == 0.0
    assert r["songs"][0]["tempo"]["reference"] == 120.0
    assert r["report_check"]["n"] == 4 and "report_midi_score" in r["songs"][0]["results"]["true"]["vocals"]
    with pytest.raises(BadArgumentError):
        ev.evaluate_transcription(root, source="nope")


def test_eval_cli_writes_json_md_png(tiny_dataset, tmp_path, monkeypatch, capsys):
    import stemscribe.separate
    from stemscribe.cli import main

    root, _ = tiny_dataset
    monkeypatch.setattr(stemscribe.separate, "get_separator", lambda name=None, **kw: _Oracle(root))
    out = tmp_path / "results"
    assert main(["eval", "separation", str(root), "--out", str(out), "--quiet"]) == 0
    data = json.loads((out / "separation.json").read_text())
    assert data["task"] == "separation" and data["summary"]["vocals"]["sdr_mean"] > 80
    assert data["summary"]["vocals"]["museval_sdr"] is None  # +inf is written as null
    md = (out / "separation.md").read_text()
    assert "| vocals |" in md and "museval" in md
    for png in ("separation_sdr.png", "separation_rtf.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_eval_cli_bad_dataset(tmp_path, capsys):
    from stemscribe.cli import main

    assert main(["eval", "separation", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stemscribe: error:") and len(err.strip().splitlines()) == 1


def test_results_markdown_transcription_tables():
    results = {
        "task": "transcription", "sources": ["true", "separated"],
        "conventions": {"notes": "n", "drums": "d"},
        "summary": {
            k: {"vocals": {"onset": {"f1": 0.9}, "onset_offset": {"f1": 0.5}}, "drums": {"f1": 0.8, "kick": {"f1": 0.95}}}
            for k in ("true", "separated")
        },
        "tempo": {"mean_abs_error_bpm": 0.5, "within_2bpm": 1.0, "songs": 2},
        "rtf": {"tempo": 0.01},
    }
    md = ev.results_markdown(results)
    assert "| vocals | 0.900 | 0.500 | 0.900 | 0.500 |" in md
    assert "| kick | 0.950 | 0.950 |" in md


def test_key_score_and_meta_key():
    assert ev.key_score("A minor", "A minor") == 1.0
    assert ev.key_score("C major", "G major") == 0.5  # a fifth
    assert ev.key_score("A minor", "C major") == 0.3  # relative
    assert ev.key_score("A minor", "A major") == 0.2  # parallel
    assert ev.key_score("A minor", "D# major") == 0.0
    assert ev._meta_key({"key": 11, "minor": True}) == "B minor"  # the devset's form
    assert ev._meta_key({"key": 1, "minor": False}) == "C# major"
    assert ev._meta_key({"key": "Bb", "minor": True}) == "Bb minor"
    assert ev._meta_key({"key": "F# Major"}) == "F# major"
    assert ev._meta_key({"tempo": 120}) is None and ev._meta_key({"key": True}) is None


def test_evaluate_transcription_scores_the_key_when_meta_has_one(tiny_dataset):
    root, _ = tiny_dataset
    (root / "song_a" / "meta.json").write_text(json.dumps({"tempo": 120.0, "key": 9, "minor": False}))
    songs = ev.load_dataset(root)

    def perfect(stem, audio, others):
        return next(s for s in songs if s.load_stems()[stem].n_samples == audio.n_samples).load_midi(stem)

    r = ev.evaluate_transcription(root, transcriber=perfect)
    rows = {row["name"]: row for row in r["songs"]}
    assert "key" not in rows["song_b"]  # no key in its meta: not scored
    k = rows["song_a"]["key"]
    assert k["reference"] == "A major" and k["score"] in (0.0, 0.2, 0.3, 0.5, 1.0)
    assert r["key"]["songs"] == 1 and r["key"]["mirex_weighted"] == k["score"]
    assert "Key: correct on" in ev.results_markdown(r)


def test_to_jsonable_handles_numpy_and_nonfinite():
    obj = {"a": np.float32(1.5), "b": np.arange(3), "c": float("nan"), "d": float("inf"), "e": np.bool_(True)}
    assert json.loads(json.dumps(ev.to_jsonable(obj), allow_nan=False)) == {"a": 1.5, "b": [0, 1, 2], "c": None, "d": None, "e": True}


@pytest.mark.slow
def test_eval_transcription_cli_on_devset(devset, tmp_path):
    """The real transcribers on one devset song: every score present and in range."""
    from stemscribe.cli import main

    out = tmp_path / "r"
    assert main(["eval", "transcription", str(devset), "--limit", "1", "--out", str(out), "--quiet"]) == 0
    data = json.loads((out / "transcription.json").read_text())
    summary = data["summary"]["true"]
    for stem in ("vocals", "bass", "other"):
        assert 0.0 <= summary[stem]["onset"]["f1"] <= 1.0
        assert summary[stem]["onset_offset"]["f1"] <= summary[stem]["onset"]["f1"] + 1e-9
    assert 0.0 <= summary["drums"]["f1"] <= 1.0
    assert data["tempo"]["songs"] == 1 and (out / "transcription_f1.png").is_file()
    assert data["key"]["songs"] == 1 and data["songs"][0]["key"]["score"] == 1.0  # dev00: B minor
