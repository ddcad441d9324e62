"""Regenerate docs/benchmarks.md: speed, memory and accuracy of stemscribe, side by side with the
tools a user would otherwise use (vanilla basic-pitch's CLI, the demucs CLI).

    nice -n 10 python benchmarks/run.py                 # every step, then the doc
    python benchmarks/run.py --steps transcription,docs # some steps (results of others are reused)

Steps (each writes JSON under benchmarks/results/, which git ignores; ``docs`` reads them all):

``inputs``         a 3-minute stereo 44.1 kHz test file: the devset mixtures then MUSDB 7 s clip
                   mixtures, concatenated; and a 10-minute file looping it.
``speed``          ``benchmarks/stages.py`` on the 3-minute file (time per stage, peak RSS), and
                   ``stemscribe split`` on the 10-minute file (total time, peak RSS).
``live``           ``benchmarks/live_speed.py`` on devset dev01: live mode's real-time factor and latency
                   with 30 and 40 ms blocks, PyTorch and ONNX Runtime alternating in one process.
``separation``     ``stemscribe eval separation DEVSET --model lite``.
``transcription``  ``stemscribe eval transcription DEVSET --source both --model lite``.
``transcription_rendered``  a labelled set of 40 POP909 songs rendered by ``training/render_data.py
                   --labelled`` (seed 7; needs Debian's fluidsynth, its GM soundfonts and the extracted
                   POP909, else skipped), then ``stemscribe eval transcription`` on it, true and separated.
``basic_pitch``    vanilla basic-pitch 0.4.0 (its own CLI, default settings, ONNX backend, in the
                   throwaway venv /work/bpvenv, created when missing) on the same true and separated
                   stems, scored exactly like stemscribe.
``demucs``         the demucs CLI (``python -m demucs``) and ``stemscribe split --model htdemucs`` on the
                   first minute of the 3-minute file (HTDemucs on 2 shared cores takes several times
                   real time), both with the same *untrained* full-size HTDemucs checkpoint (the real
                   weights cannot be downloaded here): speed only.
``docs``           write docs/benchmarks.md from the results.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
DATA = ROOT.parent / "shared" / "data"
DEVSET = DATA / "devset"
MUSDB = DATA / "musdb7s-train"
BP_VENV = Path(os.environ.get("STEMSCRIBE_BP_VENV", "/work/bpvenv"))
BP_PACKAGES = ["onnxruntime", "librosa", "resampy<0.4.3", "pretty_midi", "mir_eval", "scipy", "scikit-learn", "numpy"]
STEPS = ("inputs", "speed", "live", "separation", "transcription", "transcription_real", "transcription_rendered", "midi_grid",
         "basic_pitch", "demucs", "docs")
RENDERED = RESULTS / "rendered-eval"  # training/render_data.py --labelled RENDERED --count 40 --seed 7
PY = sys.executable
PITCHED = ("vocals", "bass", "other")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def measure(cmd: list[str], *, env: dict[str, str] | None = None, log_name: str | None = None) -> dict[str, Any]:
    """Run ``cmd``; return wall seconds, CPU seconds (user+sys, all threads) and the child's peak RSS."""
    log("$ " + " ".join(cmd))
    out = open(RESULTS / f"{log_name}.log", "w") if log_name else subprocess.DEVNULL
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if log_name:
        out.close()
    return {"cmd": " ".join(cmd), "rc": proc.returncode, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
            "peak_rss_mb": ru.ru_maxrss / 1024.0}


def provenance() -> dict[str, Any]:
    """What was measured: the repository commit (and whether src/ had local changes) and the lite weights."""
    def git(*args: str) -> str:
        r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    lite = ROOT / "src" / "stemscribe" / "data" / "models" / "lite.json"
    manifest = json.loads(lite.read_text()) if lite.is_file() else {}
    return {"commit": git("rev-parse", "--short", "HEAD"), "src_modified": bool(git("status", "--porcelain", "--", "src")),
            "lite_version": manifest.get("version"), "lite_temperature": manifest.get("config", {}).get("temperature", 1.0),
            "lite_sha256": str(manifest.get("sha256", ""))[:12],
            "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average_1min": round(os.getloadavg()[0], 2)}


def save(name: str, data: Any) -> None:
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2))


def load(name: str) -> Any:
    p = RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


# ------------------------------------------------------------------------------------------ steps


def step_inputs() -> None:
    import numpy as np
    import soundfile as sf

    from stemscribe.audio import load as load_audio
    from stemscribe.evaluate import read_stem_mp4

    sr, want = 44100, 180 * 44100
    parts, names = [], []
    for d in sorted(DEVSET.glob("dev*")):
        parts.append(load_audio(d / "mixture.flac").samples)
        names.append(f"devset/{d.name}")
    for clip in sorted(MUSDB.glob("*.stem.mp4")):
        if sum(p.shape[1] for p in parts) >= want:
            break
        a = read_stem_mp4(clip, streams=("mixture",))["mixture"]
        if a.sr == sr and a.channels == 2:
            parts.append(a.samples)
            names.append(f"musdb7s/{clip.name}")
    x = np.concatenate(parts, axis=1)[:, :want]
    inputs = RESULTS / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    sf.write(inputs / "long_3min.wav", x.T, sr, subtype="PCM_16")
    sf.write(inputs / "long_10min.wav", np.tile(x, (1, 4))[:, : 600 * sr].T, sr, subtype="PCM_16")
    sf.write(inputs / "long_1min.wav", x[:, : 60 * sr].T, sr, subtype="PCM_16")
    save("inputs", {"3min": str(inputs / "long_3min.wav"), "10min": str(inputs / "long_10min.wav"),
                    "1min": str(inputs / "long_1min.wav"), "sources": names, "seconds": [x.shape[1] / sr, 600.0, 60.0]})


@functools.cache
def warm_up() -> None:
    """One untimed split first (once per run): it fills the OS file cache and Python's bytecode caches,
    which no later run pays for. (Until 2026-12-03 the first split after an install also compiled
    librosa's numba kernels, about 20 s; the split path no longer imports librosa.)"""
    out = RESULTS / "warm_up"
    shutil.rmtree(out, ignore_errors=True)
    measure([PY, "-m", "stemscribe", "split", str(DEVSET / "dev00" / "mixture.flac"), "--out", str(out),
             "--model", "lite", "-q"], log_name="warm_up")


def step_speed() -> None:
    warm_up()
    inp = load("inputs")
    out = RESULTS / "stages_3min.json"
    run = measure([PY, "benchmarks/stages.py", inp["3min"], "--model", "lite", "--json", str(out)], log_name="stages_3min")
    res = {"stages_3min": json.loads(out.read_text()) if out.is_file() else None, "stages_3min_run": run}
    split_out = RESULTS / "split_10min"
    shutil.rmtree(split_out, ignore_errors=True)
    run10 = measure([PY, "-m", "stemscribe", "split", inp["10min"], "--out", str(split_out), "--model", "lite", "-q"],
                    log_name="split_10min")
    rep = split_out / "long_10min" / "report.json"
    res["split_10min"] = run10
    res["split_10min_report"] = json.loads(rep.read_text()) if rep.is_file() else None
    if res["split_10min_report"]:
        res["split_10min_report"].pop("beats", None)
    save("speed", res)


def step_live() -> None:
    out = RESULTS / "live.json"
    run = measure([PY, "benchmarks/live_speed.py", str(DEVSET / "dev01" / "mixture.flac"), "--blocks-ms", "30,40",
                   "--repeats", "3", "--json", str(out)], log_name="live")
    save("live", {**(json.loads(out.read_text()) if out.is_file() and run["rc"] == 0 else {}), "run": run})


def step_separation() -> None:
    run = measure([PY, "-m", "stemscribe", "eval", "separation", str(DEVSET), "--model", "lite",
                   "--out", str(RESULTS / "eval"), "-q"], log_name="eval_separation")
    save("separation_run", run)


def step_transcription() -> None:
    run = measure([PY, "-m", "stemscribe", "eval", "transcription", str(DEVSET), "--source", "both",
                   "--model", "lite", "--out", str(RESULTS / "eval"), "-q"], log_name="eval_transcription")
    save("transcription_run", run)


def step_transcription_real() -> None:
    """Separated-stem notes against true-stem notes on the held-out real MUSDB clips (no MIDI exists)."""
    run = measure([PY, str(ROOT / "benchmarks" / "transcription_real.py"), "--json",
                   str(RESULTS / "transcription_real.json")], log_name="transcription_real")
    save("transcription_real_run", run)


def step_transcription_rendered() -> None:
    """Notes and drum hits on 40 rendered POP909 songs with exact MIDI (more songs than the devset)."""
    metas = list(RENDERED.glob("*/meta.json"))
    if metas and not any("key" in json.loads(m.read_text()) for m in metas):
        shutil.rmtree(RENDERED)  # rendered before meta.json carried the key: render again (same audio)
    if not (RENDERED / "r07_0039" / "meta.json").is_file():
        if shutil.which("fluidsynth") is None:
            log("fluidsynth not found (apt-get install fluidsynth fluid-soundfont-gm): skipping the rendered set")
            return
        render = measure([PY, str(ROOT / "training" / "render_data.py"), "--labelled", str(RENDERED), "--count", "40",
                          "--seed", "7", "--jobs", "1"], log_name="render_rendered_eval")
        if render["rc"] != 0:
            raise RuntimeError(f"rendering the labelled set failed (see {RESULTS / 'render_rendered_eval.log'})")
    run = measure([PY, "-m", "stemscribe", "eval", "transcription", str(RENDERED), "--source", "both", "--model", "lite",
                   "--out", str(RESULTS / "eval_rendered"), "-q"], log_name="eval_transcription_rendered")
    save("transcription_rendered_run", run)


def step_midi_grid() -> None:
    """Do the MIDI files' beats and bars line up with the song's when it does not start on a bar line?"""
    cmd = [PY, str(ROOT / "benchmarks" / "midi_grid.py"), "--json", str(RESULTS / "midi_grid.json")]
    if (RENDERED / "r07_0039" / "meta.json").is_file():
        cmd += ["--rendered", str(RENDERED)]
    run = measure(cmd, log_name="midi_grid")
    if run["rc"] != 0:
        raise RuntimeError(f"midi_grid.py failed (see {RESULTS / 'midi_grid.log'})")


def ensure_bp_venv() -> Path:
    """The throwaway basic-pitch venv (no TensorFlow: basic-pitch runs its bundled ONNX model)."""
    exe = BP_VENV / "bin" / "basic-pitch"
    if exe.is_file():
        return exe
    log(f"creating {BP_VENV} for vanilla basic-pitch")
    subprocess.run(["python3", "-m", "venv", str(BP_VENV)], check=True)
    pip = str(BP_VENV / "bin" / "pip")
    subprocess.run([pip, "install", "-q", "--no-deps", "basic-pitch==0.4.0"], check=True)
    subprocess.run([pip, "install", "-q", *BP_PACKAGES], check=True)
    return exe


def step_basic_pitch() -> None:
    from stemscribe import audio as audio_io
    from stemscribe.evaluate import load_dataset, note_scores
    from stemscribe.midi import read_midi
    from stemscribe.separate import get_separator
    from stemscribe.types import NoteTrack

    exe = ensure_bp_venv()
    songs = [s for s in load_dataset(DEVSET) if s.midi]
    sep_dir = RESULTS / "separated"
    separator = get_separator("lite")
    for song in songs:  # the same separated audio that `eval transcription --source separated` scores
        d = sep_dir / song.name
        d.mkdir(parents=True, exist_ok=True)
        stems = separator.separate(song.load_mixture())
        for s in PITCHED:
            audio_io.write(d / f"{s}.wav", stems[s])
    env = dict(os.environ, OMP_NUM_THREADS="2")
    rows: dict[str, Any] = {"true": {}, "separated": {}}
    runs = []
    for kind in ("true", "separated"):
        for song in songs:
            files = [song._file(s) if kind == "true" else sep_dir / song.name / f"{s}.wav" for s in PITCHED if s in song.midi]
            out = RESULTS / "basic_pitch" / kind / song.name
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            runs.append(measure([str(exe), str(out), *map(str, files)], env=env, log_name=f"bp_{kind}_{song.name}"))
            rows[kind][song.name] = {}
            for f in files:
                stem = f.stem
                tracks, _ = read_midi(out / f"{stem}_basic_pitch.mid")
                est = NoteTrack(stem, [n for t in tracks for n in t.notes])
                rows[kind][song.name][stem] = note_scores(song.load_midi(stem), est)
    summary: dict[str, Any] = {}
    for kind, per_song in rows.items():
        summary[kind] = {}
        for stem in PITCHED:
            vals = [v[stem] for v in per_song.values() if stem in v]
            if vals:
                summary[kind][stem] = {k: sum(v[k]["f1"] for v in vals) / len(vals) for k in ("onset", "onset_offset")}
    save("basic_pitch", {"songs": rows, "summary": summary, "runs": runs,
                         "command": f"{exe} OUTDIR <song>/vocals.flac <song>/bass.flac <song>/other.flac"})


def _make_untrained_htdemucs(folder: Path) -> dict[str, Any]:
    """Save a randomly initialised HTDemucs with htdemucs' architecture the way demucs saves models."""
    from fractions import Fraction

    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import get_state, save_with_checksum

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.th"):
        old.unlink()
    torch.manual_seed(0)
    model = HTDemucs(["drums", "bass", "other", "vocals"], segment=Fraction(39, 5))  # demucs' htdemucs config
    args, kwargs = model._init_args_kwargs
    sig = "0b0e0b0e"
    save_with_checksum({"klass": HTDemucs, "args": args, "kwargs": kwargs,
                        "state": get_state(model, None, half=False), "training_args": {}}, folder / f"{sig}.th")
    (folder / "htdemucs.yaml").write_text(f"models: ['{sig}']\n")
    return {"params_millions": sum(p.numel() for p in model.parameters()) / 1e6, "file": str(next(folder.glob("*.th")))}


def step_demucs() -> None:
    warm_up()
    inp = load("inputs")
    clip = inp["1min"]
    repo = RESULTS / "htdemucs_untrained"
    info = _make_untrained_htdemucs(repo)
    env = dict(os.environ)
    res: dict[str, Any] = {"checkpoint": info}
    out = RESULTS / "demucs_cli"
    shutil.rmtree(out, ignore_errors=True)
    res["demucs_cli"] = measure([PY, "-m", "demucs", "--repo", str(repo), "-n", "htdemucs", "-d", "cpu",
                                 "-o", str(out), clip], env=env, log_name="demucs_cli")
    out2 = RESULTS / "stemscribe_htdemucs"
    shutil.rmtree(out2, ignore_errors=True)
    res["stemscribe_htdemucs"] = measure([PY, "-m", "stemscribe", "split", clip, "--out", str(out2),
                                          "--model", "htdemucs", "--model-dir", str(repo), "--no-midi", "-q"],
                                         env=env, log_name="stemscribe_htdemucs")
    out3 = RESULTS / "stemscribe_lite"
    shutil.rmtree(out3, ignore_errors=True)
    res["stemscribe_lite"] = measure([PY, "-m", "stemscribe", "split", clip, "--out", str(out3),
                                      "--model", "lite", "--no-midi", "-q"], env=env, log_name="stemscribe_lite")
    res["seconds"] = 60.0
    save("demucs", res)


# ------------------------------------------------------------------------------------------ doc


def f(v: Any, d: int = 3) -> str:
    if v is None:
        return "–"
    try:
        return f"{float(v):.{d}f}"
    except (TypeError, ValueError):
        return str(v)


def _symbolic_key_scores(folder: Path) -> tuple[float, float]:
    """(share correct, mean MIREX weighted score) of key finding on the exact MIDI notes of the
    labelled songs in ``folder`` that have a key: what the key profiles can do without audio."""
    import numpy as np
    import pretty_midi

    from stemscribe.evaluate import _meta_key, key_score
    from stemscribe.transcribe.key import key_of_profile

    scores = []
    for meta_file in sorted(folder.glob("*/meta.json")):
        ref = _meta_key(json.loads(meta_file.read_text()))
        if ref is None:
            continue
        hist = np.zeros(12)
        for mid in meta_file.parent.glob("*.mid"):
            if mid.stem != "drums":
                for n in pretty_midi.PrettyMIDI(str(mid)).instruments[0].notes:
                    hist[n.pitch % 12] += n.end - n.start
        scores.append(key_score(ref, key_of_profile(hist)))
    return (float(np.mean([x == 1.0 for x in scores])), float(np.mean(scores))) if scores else (float("nan"),) * 2


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import torch

    return (f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}, numpy {numpy.__version__}; load average at doc time "
            f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")


def _targets(speed: Any, tr: Any, bp: Any) -> list[str]:
    """The issue's targets, each with the measured value and met / not met."""
    rows = []

    def row(what: str, value: float | None, ok: bool | None) -> None:
        rows.append(f"| {what} | {f(value)} | {'met' if ok else ('not met' if ok is not None else '–')} |")

    if tr:
        t = tr["summary"].get("true", {})
        bps = (bp or {}).get("summary", {}).get("true", {})
        for stem, goal in (("vocals", 0.90), ("bass", 0.90), ("other", 0.75)):
            v = t.get(stem, {}).get("onset", {}).get("f1")
            row(f"{stem} onset F1 (true stems) >= {goal}", v, None if v is None else v >= goal)
            if stem in bps and v is not None:
                d = v - bps[stem]["onset"]
                row(f"{stem}: >= 0.10 above vanilla basic-pitch (difference)", d, d >= 0.10)
        for cls in ("kick", "snare", "hihat"):
            for kind, key in (("pooled over songs", "f1_pooled"), ("mean of songs", "f1")):
                v = t.get("drums", {}).get(cls, {}).get(key)
                row(f"drums {cls} onset F1 (true stems, {kind}) >= 0.85", v, None if v is None else v >= 0.85)
    if speed and speed.get("stages_3min"):
        st = speed["stages_3min"]
        post = [k for k in st["seconds"] if k.startswith(("tempo", "transcribe", "midi_write"))]
        w = sum(st["rtf"][k] for k in post)
        c = sum(st["cpu_rtf"][k] for k in post)
        row("after separation: CPU RTF <= 0.15 (bounds the wall RTF on an idle machine)", c, c <= 0.15)
        row("after separation: wall RTF <= 0.15 (see the load average below)", w, w <= 0.15)
        rc, rw = st["cpu_rtf"].get("report"), st["rtf"].get("report")
        row("quality report: CPU RTF <= 0.02", rc, None if rc is None else rc <= 0.02)
        row("quality report: wall RTF <= 0.02 (see the load average below)", rw, None if rw is None else rw <= 0.02)
    live = load("live")
    if live and live.get("runs"):
        import statistics

        for key, r in live["runs"].items():
            if key.startswith("onnxruntime 30 "):
                v = statistics.median(r["rtf"])
                row("live mode, default 30 ms blocks: x real time <= 0.25", v, v <= 0.25)
                lat = max(r["latency_ms"])
                row("live mode: latency <= 100 ms (ms)", lat, lat <= 100)
    if speed and speed.get("split_10min"):
        m = speed["split_10min"]["peak_rss_mb"] / 1024
        row("10-minute stereo file: peak memory < 4 GB (GB)", m, m < 4 and speed["split_10min"]["rc"] == 0)
    if not rows:
        return []
    return ["## Targets", "", "| target | measured | |", "|---|---:|---|", *rows, ""]


def write_docs() -> str:
    inputs, speed, dem = load("inputs"), load("speed"), load("demucs")
    sep = json.loads((RESULTS / "eval" / "separation.json").read_text()) if (RESULTS / "eval" / "separation.json").is_file() else None
    tr = json.loads((RESULTS / "eval" / "transcription.json").read_text()) if (RESULTS / "eval" / "transcription.json").is_file() else None
    bp = load("basic_pitch")
    missing = []
    L = ["# Benchmarks", "",
         "Generated by `python benchmarks/run.py` (all steps) on "
         f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: {machine()}.", "",
         "**Reading the times:** each table gives wall-clock time and CPU time (user + system, all threads). "
         "On a busy machine wall time includes waits for a core, and CPU RTF is then an upper bound for the "
         "idle-machine wall RTF; 'What was measured' at the end records each step's commit, model weights and "
         "the load average when it started. The steps of this file ran on "
         "an otherwise idle machine (no other job running; a background training job, when there is one, is paused with SIGSTOP for the run). Speeds differ between machines of this kind"
         + (f" (the demucs CLI on `long_1min.wav` took 30 s wall on 2026-11-21's machine, {dem['demucs_cli']['wall_s']:.0f} s "
            "in this run)" if dem and dem.get("demucs_cli") else "")
         + ", so compare rows of one run with each other, and read a target missed by a small margin with that in mind.", ""]

    L += ["## 1. Speed and memory", ""]
    if speed and speed.get("stages_3min"):
        st = speed["stages_3min"]
        dur = st["duration"]
        L += [f"Input: `benchmarks/results/inputs/long_3min.wav`, {dur:.0f} s stereo 44.1 kHz "
              f"({len(inputs['sources'])} clips: the 6 devset mixtures, then MUSDB 7 s clip mixtures, concatenated). "
              "Command: `python benchmarks/stages.py benchmarks/results/inputs/long_3min.wav --model lite` "
              "(one process; each stage timed on its own).", "",
              "| stage | wall s | wall RTF | CPU s | CPU RTF |", "|---|---:|---:|---:|---:|"]
        for k in st["seconds"]:
            L.append(f"| {k} | {f(st['seconds'][k], 2)} | {f(st['rtf'][k], 4)} | {f(st['cpu_seconds'][k], 2)} | {f(st['cpu_rtf'][k], 4)} |")
        post = [k for k in st["seconds"] if k.startswith(("tempo", "transcribe", "midi_write"))]
        wall_post = sum(st["rtf"][k] for k in post)
        cpu_post = sum(st["cpu_rtf"][k] for k in post)
        L += ["", f"Everything after separation that the target counts (tempo + key, transcription of the 4 stems, "
              f"MIDI writing): **wall RTF {wall_post:.3f}, CPU RTF {cpu_post:.3f}** (target <= 0.15 x real time on 2 cores). "
              f"The quality report adds {f(st['rtf'].get('report'), 4)} (wall) / {f(st['cpu_rtf'].get('report'), 4)} (CPU) "
              "(target <= 0.02).", "",
              f"Peak resident memory of that process: **{st['peak_rss_mb']:.0f} MB**.", ""]
    else:
        missing.append("stage timings on the 3-minute input")
    if speed and speed.get("split_10min"):
        r = speed["split_10min"]
        rep = speed.get("split_10min_report") or {}
        L += [f"10-minute stereo file (`long_10min.wav`, the 3-minute file looped): "
              f"`python -m stemscribe split benchmarks/results/inputs/long_10min.wav --out benchmarks/results/split_10min --model lite -q` "
              f"— exit {r['rc']}, wall {r['wall_s']:.0f} s, CPU {r['cpu_s']:.0f} s, **peak RSS {r['peak_rss_mb']:.0f} MB** "
              "(target < 4 GB; measured with `os.wait4` on the child).", ""]
        if rep.get("seconds_per_stage"):
            L += ["Per stage (from its report.json, wall s): " + ", ".join(f"{k} {v:.1f}" for k, v in rep["seconds_per_stage"].items()), ""]
    else:
        missing.append("the 10-minute run")

    live = load("live")
    if live and live.get("runs"):
        import statistics

        L += ["Live mode (`stemscribe live FILE`: vocals and instrumental written as it goes), devset `dev01/mixture.flac` "
              "(12 s) played as a stream as fast as it goes, one torch thread: "
              "`python benchmarks/live_speed.py ../shared/data/devset/dev01/mixture.flac --blocks-ms 30,40 --repeats 3` "
              "(the engines alternate, so both see the machine in the same state; 30 ms is the CLI's default block).", "",
              "| engine, block | x real time: median (range of 3) | latency (ms) |", "|---|---:|---:|"]
        for key, r in live["runs"].items():
            L.append(f"| {key} | {statistics.median(r['rtf']):.3f} ({min(r['rtf']):.3f}-{max(r['rtf']):.3f}) | "
                     f"{max(r['latency_ms']):.0f} |")
        L += ["", "`stemscribe live` uses ONNX Runtime when the package has the model's graphs (it does); "
              "whole-file separation keeps PyTorch, faster there.", ""]
    else:
        missing.append("live mode speed")

    L += ["## 2. Transcription accuracy on the devset", ""]
    if tr:
        L += ["`python -m stemscribe eval transcription ../shared/data/devset --source both --model lite --out benchmarks/results/eval`",
              "", f"Metrics: {tr['conventions']['notes']}. Scores are means over the "
              f"{len(tr['songs'])} devset songs (12 s each). 'separated' = stems from the embedded `lite` model "
              "(htdemucs weights are not available offline).", ""]
        bps = (bp or {}).get("summary", {})
        L += ["| stem | stemscribe true: onset F1 | basic-pitch true: onset F1 | stemscribe true: +offset F1 | basic-pitch true: +offset F1 "
              "| stemscribe separated: onset F1 | basic-pitch separated: onset F1 | stemscribe separated: +offset F1 | basic-pitch separated: +offset F1 |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in PITCHED:
            cells = []
            for kind in ("true", "separated"):
                ours = tr["summary"].get(kind, {}).get(s)
                theirs = bps.get(kind, {}).get(s)
                cells += [f(ours["onset"]["f1"]) if ours else "–", f(theirs["onset"]) if theirs else "–"]
                cells += [f(ours["onset_offset"]["f1"]) if ours else "–", f(theirs["onset_offset"]) if theirs else "–"]
            L.append(f"| {s} | " + " | ".join(cells) + " |")
        L += ["", "Targets (true stems): onset F1 vocals >= 0.90, bass >= 0.90, other >= 0.75, and >= 0.10 above vanilla basic-pitch.", ""]
        real = load("transcription_real")
        if real:
            n = len(real["clips"])
            L += [f"Real recordings (no MIDI exists for them): `python benchmarks/transcription_real.py` transcribes the true stems "
                  f"of the {n} held-out MUSDB18 clips and the `{real['model']}` stems separated from their mixtures, and scores "
                  "the latter against the former (onset F1, 50 ms): "
                  + ", ".join(f"{s} {f(real['mean_onset_f1'][s])}" for s in PITCHED)
                  + ". Low, and the honest picture of notes from `lite` stems on real music: most of the loss is separation residue.", ""]
        if bp:
            L += [f"Vanilla basic-pitch: version 0.4.0, its own CLI with default settings (`{bp['command']}`), ONNX backend "
                  f"(installed with `pip install --no-deps basic-pitch==0.4.0` plus {' '.join(BP_PACKAGES)}; no TensorFlow), "
                  "on the same files; its MIDI scored with the same code (`stemscribe.evaluate.note_scores`).", ""]
        else:
            missing.append("vanilla basic-pitch")
        L += ["### Drums: onset F1 per class (50 ms)", "",
              "Pooled: one F1 from all songs' hits together (mir_eval style); mean: the mean of per-song F1s, where a song "
              "with hits of a class we wrongly report while its reference has none of that class scores 0.", "",
              "| class | true stems, pooled | true stems, mean of songs | separated stems, pooled | separated stems, mean of songs |",
              "|---|---:|---:|---:|---:|"]
        for cls in ("kick", "snare", "hihat", "toms", "cymbals"):
            vals = [tr["summary"].get(k, {}).get("drums", {}).get(cls) for k in ("true", "separated")]
            cells = []
            for v in vals:
                cells += [f(v.get("f1_pooled")), f(v["f1"]) + f" ({v['songs']} songs)"] if v else ["–", "–"]
            L.append(f"| {cls} | " + " | ".join(cells) + " |")
        L.append("| all classes (pooled per song) | " + " | ".join(f(tr["summary"].get(k, {}).get("drums", {}).get("f1")) + " | " for k in ("true", "separated")) + " |")
        L += ["", "Target: kick, snare, hi-hat each >= 0.85 on true stems. Vanilla basic-pitch has no drum mode, so there is nothing to compare with.", ""]
    rpath = RESULTS / "eval_rendered" / "transcription.json"
    rendered = json.loads(rpath.read_text()) if rpath.is_file() else None
    if rendered:
        kinds: dict[str, int] = {}
        for meta in RENDERED.glob("*/meta.json"):
            kind = json.loads(meta.read_text()).get("vocals", "?")
            kinds[kind] = kinds.get(kind, 0) + 1
        L += [f"### Rendered songs: {len(rendered['songs'])} POP909 clips with exact MIDI", "",
              "`python training/render_data.py --labelled benchmarks/results/rendered-eval --count 40 --seed 7` then "
              "`python -m stemscribe eval transcription benchmarks/results/rendered-eval --source both --model lite` "
              "(the `transcription_rendered` step). Each clip is 8 s of a POP909 song, tempo x0.85-1.2, transposed, "
              "with a generated drum part and bass line, the piano (and often bridge) track on random GM programs, and "
              f"the melody sung by a formant voice ({kinds.get('sung', 0)} songs), a GM voice patch "
              f"({kinds.get('gm voice', 0)}) or an instrument ({kinds.get('instrumental', 0)}, no vocals); "
              "random soundfont per stem (FluidR3, MuseScore General, sf_GMbank), some with room reverb. The "
              "piano part often doubles the melody. Training renders the same way (another seed, 10 % of examples; songs may "
              "recur), "
              "so separated scores here are a little optimistic.", "",
              "| stem | true: onset F1 | true: +offset F1 | separated: onset F1 | separated: +offset F1 |", "|---|---:|---:|---:|---:|"]
        for s in PITCHED:
            cells = []
            for kind in ("true", "separated"):
                v = rendered["summary"].get(kind, {}).get(s)
                cells += [f(v["onset"]["f1"]), f(v["onset_offset"]["f1"])] if v else ["–", "–"]
            L.append(f"| {s} | " + " | ".join(cells) + " |")
        L.append("| drums, all classes (pooled per song) | " + " | ".join(
            f(rendered["summary"].get(k, {}).get("drums", {}).get("f1")) + " | –" for k in ("true", "separated")) + " |")
        tempo = rendered.get("tempo", {})
        if tempo:
            pairs = [(x["tempo"]["reference"], x["tempo"]["estimate"]) for x in rendered["songs"] if x.get("tempo")]
            misses = [(r, e) for r, e in pairs if abs(e - r) > 2]
            doubled = [r for r, e in misses if abs(e - 2 * r) <= 2]
            L += ["", f"Tempo from the mixture: within 2 BPM on {f(tempo.get('within_2bpm'))} of {tempo.get('songs')} songs; "
                  f"{len(doubled)} of the {len(misses)} misses are within 2 BPM of twice the annotated tempo"
                  + (f" (annotated {min(doubled):.0f}-{max(doubled):.0f} BPM: slow ballads whose eighth-note hi-hats "
                     "suggest the double tempo)" if doubled else "") + ".", ""]
        key = rendered.get("key", {})
        if key.get("songs"):
            ceiling = _symbolic_key_scores(RENDERED)
            L += [f"Key from the mixture (`stemscribe.transcribe.key`; POP909's annotation, transposed with the clip, "
                  f"on the {key['songs']} songs that keep one key): correct on {f(key['correct'], 2)}, MIREX weighted "
                  f"score {f(key['mirex_weighted'])} (1 correct, 0.5 a fifth off, 0.3 relative, 0.2 parallel). "
                  "An 8 s excerpt often does not settle the song's key: the same profiles on the clip's exact notes "
                  f"(duration-weighted pitch classes of its MIDI) are correct on {f(ceiling[0], 2)}, weighted "
                  f"{f(ceiling[1])}. The devset's 12 s songs, which cycle one progression from the tonic, are easy "
                  "in comparison (below).", ""]

        t = tr["tempo"]
        errs = ", ".join(f"{r['name']} {f(r['tempo']['estimate'], 2)} vs {f(r['tempo']['reference'], 1)}" for r in tr["songs"])
        L += ["### Tempo and key", "", f"Estimated from the mixture vs meta.json: mean absolute error **{f(t['mean_abs_error_bpm'], 2)} BPM**, "
              f"within 2 BPM on {f(t['within_2bpm'], 2)} of {t['songs']} songs ({errs}).", ""]
        key = tr.get("key", {})
        if key.get("songs"):
            L += [f"Key from the mixture vs meta.json: correct on {f(key['correct'], 2)} of {key['songs']} songs "
                  f"(MIREX weighted score {f(key['mirex_weighted'])}).", ""]
        L += ["Transcription speed inside the eval run (RTF, wall): " + ", ".join(f"{k} {v:.3f}" for k, v in tr["rtf"].items()), ""]
    else:
        missing.append("transcription accuracy")
    grid = (load("midi_grid") or {}).get("summary")
    if grid:
        L += ["### Bars and beats of the MIDI files", "",
              "`python benchmarks/midi_grid.py --rendered benchmarks/results/rendered-eval` (the `midi_grid` step): each song "
              "loses a random 0.05-3 s from its start (3 cuts per song, seed 0), so that it no longer starts on a bar line, "
              "as real songs and excerpts rarely do; the beats of the rest are tracked and the MIDI file written as `split` "
              "writes it (a pickup bar, `stemscribe.midi.pickup_ticks`) and as a constant-tempo file from 0 (what `split` "
              "wrote before 2026-12-06). Share of the true beats with a file beat within 50 ms and of the true bar lines "
              "with a file bar line within 70 ms, as pretty_midi and a DAW that reads the file's meter place them. The truth: "
              "the devset's songs start on a downbeat in 4/4 at their tempo; the rendered songs' meta.json carries POP909's "
              "annotated beats and downbeats (`training/render_data.py --annotate DIR` adds them to a set rendered before; "
              "bar lines scored on the 4/4 songs only). Downbeats are the beat phase where kicks land and the harmony and bass "
              "change (since 2026-12-06; before, the strongest onsets: bar lines 0.736 devset, 0.629 rendered with the pickup). "
              "Since the fourth session of 2026-12-06 the bar phase leaves out the beats more than an eighth of a beat "
              "off the others' circular mean, the tempo of a song with 16 beats or more is the line through its beats, "
              "and the tracker's last beats, which it used to squeeze towards a late onset, continue the beat grid "
              "(same cuts, before / after these: rendered tracked-beat F-measure 0.857 / 0.889, file beats 0.930 / 0.972, "
              "bar lines 0.677 / 0.673; devset F-measure 0.977 both, file beats and bar lines 1.000 both):", "",
              "| set | cuts | tempo within 2 BPM | tracked beats F | beats: pickup bar | beats: from 0 | bars: pickup bar | bars: from 0 |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, g in grid.items():
            L.append(f"| {name} | {g['cuts']} | {g['tempo_right']} | {f(g.get('beat_f'))} | {f(g.get('pickup_beats'))} | "
                     f"{f(g.get('none_beats'))} | {f(g.get('pickup_bars'))} | {f(g.get('none_bars'))} |")
        L += ["", "Beats missed with the pickup bar are the beat tracker's (a tempo read double, or beats on the off-beats); "
              "bar lines missed are downbeats put on the wrong beat of the bar.", ""]
        if any("quantize_new_on_grid" in g for g in grid.values()):
            L += ["**Quantized MIDI** (`split --quantize 1/16`; same cuts): the song's true pitched notes (bass, other, "
                  "vocals MIDI, shifted by the cut) snapped to 1/16 and written as `split --quantize` writes them (since the "
                  "fourth session of 2026-12-06: onto the file's own grid lines, the pickup's first part at its own tempo so "
                  "that the file's bar lines fall exactly on the tracked ones (since the fifth "
                  "session of 2026-12-06 a pickup of whole 16ths, which every DAW's time signature can hold, the "
                  "first 16th at its own tempo; before, 64ths), and a tempo map through the smoothed tracked beats when "
                  "they stray over 25 ms from one tempo for 8 beats in a row), and as it did before (snapped to the tracked "
                  "beats' sixteenths, written at one tempo): share of onsets exactly on a 1/16 line of the file counted from "
                  "its bar lines (what a DAW's grid shows), median shift from the true onset, onset F1 (50 ms, pitch) of the "
                  "notes read back against the true notes, share of cuts written with a tempo map.", "",
                  "| set | on the grid: now | before | median shift ms: now | before | onset F1: now | before | tempo map |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
            for name, g in grid.items():
                if "quantize_new_on_grid" in g:
                    L.append(f"| {name} | {f(g['quantize_new_on_grid'])} | {f(g['quantize_tracked_on_grid'])} | "
                             f"{g['quantize_new_shift_ms']:.1f} | {g['quantize_tracked_shift_ms']:.1f} | "
                             f"{f(g['quantize_new_f1'])} | {f(g['quantize_tracked_f1'])} | {f(g['quantize_new_tempo_map'])} |")
            L += ["", "The POP909 songs are human performances: their notes sit off any grid by a few ms to tens of ms, "
                  "so the shift is not zero even on a perfect grid. With the 64th pickups of the fourth session of "
                  "2026-12-06 the onset F1 was 1.000 (devset) and 0.982 (rendered): a pickup of whole 16ths cannot put a "
                  "grid line on a song's 16th line that falls within half a 16th of the file's start, so a note there "
                  "moves onto the file's first line (0 s); that costs 0.4 % (devset) and 0.6 % (rendered) of the notes.", ""]

    L += ["## 3. Separation", ""]
    if sep:
        L += ["`python -m stemscribe eval separation ../shared/data/devset --model lite --out benchmarks/results/eval`", "",
              f"- SDR: {sep['conventions']['sdr']}", f"- museval: {sep['conventions']['museval_sdr']}. "
              "Our implementation matches the museval package (0.4.1) to 4e-15 dB on every frame of the devset "
              "(`benchmarks/crosscheck_museval.py`, run in a throwaway venv: museval pulls in pandas, musdb and "
              "stempeg and needs an `np.float` shim on NumPy 2, so it is not a dependency).", "",
              "- interference share: the share of a separated stem's energy that is the other true stems, by a "
              "least-squares gain-only projection on the references (`stemscribe.evaluate.interference_share`).", "",
              "| stem | SDR mean (dB) | SDR median (dB) | museval SDR (dB) | interference share |", "|---|---:|---:|---:|---:|"]
        for s, v in sep["summary"].items():
            L.append(f"| {s} | {f(v['sdr_mean'], 2)} | {f(v['sdr_median'], 2)} | {f(v['museval_sdr'], 2)} | {f(v.get('interference_share_mean'), 3)} |")
        L += ["", f"Separation RTF in this run (wall): {f(sep['rtf'].get('separate'), 3)}.", ""]
    else:
        missing.append("separation SDR")
    if dem:
        d = dem["seconds"]
        L += ["### Side by side with the demucs CLI (speed only)", "",
              "The real htdemucs weights cannot be downloaded here, so both tools run the **same untrained** "
              f"HTDemucs checkpoint ({dem['checkpoint']['params_millions']:.1f} M parameters: demucs' `HTDemucs` defaults, "
              "4 levels, 48 channels, 5 cross-domain transformer layers, nfft 4096, 7.8 s segments — the released "
              "htdemucs may differ in details), saved the way demucs saves models and listed in a `htdemucs.yaml` bag, "
              "on `long_1min.wav` (the first 60 s of the 3-minute file; to keep the run short). "
              "The outputs are noise: this compares speed and memory, not quality.", "",
              "| command | exit | wall s | wall RTF | CPU s | CPU RTF | peak RSS MB |", "|---|---:|---:|---:|---:|---:|---:|"]
        for key, label in (("demucs_cli", "`python -m demucs --repo R -n htdemucs -d cpu -o OUT long_1min.wav`"),
                           ("stemscribe_htdemucs", "`stemscribe split long_1min.wav --model htdemucs --model-dir R --no-midi`"),
                           ("stemscribe_lite", "`stemscribe split long_1min.wav --model lite --no-midi`")):
            r = dem.get(key)
            if r:
                L.append(f"| {label} | {r['rc']} | {r['wall_s']:.0f} | {r['wall_s'] / d:.2f} | {r['cpu_s']:.0f} | {r['cpu_s'] / d:.2f} | {r['peak_rss_mb']:.0f} |")
        L += ["", "`R` = `benchmarks/results/htdemucs_untrained` (made by `benchmarks/run.py --steps demucs`). "
              "Each row is the whole command in a fresh process (Python start-up, imports, model load, decoding, "
              "separation, writing four WAV stems); the stemscribe rows also estimate tempo and key and write "
              "report.json with the quality report. One untimed `stemscribe split` of a devset song runs "
              "before the timed commands (file and bytecode caches). The split path no longer imports librosa, "
              "whose numba kernels used to cost the first run after an install about 20 s (first split of "
              "examples/demo.flac with an empty numba cache: 36 s before, 8.6 s after).", ""]
    else:
        missing.append("demucs CLI comparison")
    L += ["## 4. The quality report (no ground truth)", ""]
    checks = [(name, r["report_check"]) for name, r in (("separation", sep), ("transcription", tr)) if r and r.get("report_check")]
    if checks:
        L += ["`report.json[\"quality\"]` estimates, per stem, bleed and MIDI<->audio consistency without ground truth. "
              "To see whether those estimates mean something, the eval runs compute them next to the true scores:", ""]
        for name, c in checks:
            r = c["pearson"]
            strength = "–" if r is None else ("weak" if abs(r) < 0.4 else "moderate" if abs(r) < 0.7 else "strong")
            extra = f", Spearman {f(c['spearman'], 2)}" if c.get("spearman") is not None else ""
            L.append(f"- {name}: {c['what']}: **r = {f(r, 2)}** ({strength}{extra}; n = {c['n']}).")
            old = c.get("old_ground_truth")
            if old:
                L.append(f"  Against the older {old['what']}: r = {f(old['pearson'], 2)}.")
        L += ["", "Known limits: the bleed estimate (see `docs/bleed.md`, where it is also checked on the held-out "
              "MUSDB clips) reads about half of a known leak added to clean stems (on `lite`'s own stems its mean is "
              "close to the truth's, 0.39 against 0.41 on the real held-out clips), and parts that are coherent in the real recording "
              "(doubled lines, shared reverb, microphone spill) read as a little bleed even in perfect stems; the "
              "consistency score is pulled down by note changes that legato lines do not show as onsets in the "
              "audio. Treat the numbers and the per-bar flags as pointers to listen to, not as verdicts.", ""]
    if speed and speed.get("stages_3min"):
        st = speed["stages_3min"]
        L += [f"Its cost on the 3-minute input: {f(st['seconds'].get('report'), 2)} s wall, {f(st['cpu_seconds'].get('report'), 2)} s CPU "
              f"(RTF {f(st['rtf'].get('report'), 4)} / {f(st['cpu_rtf'].get('report'), 4)}; target <= 0.02).", ""]
    q = ((speed or {}).get("split_10min_report") or {}).get("quality", {}).get("stems", {})
    if q:
        L += ["What it says about the `lite` separation of the 10-minute file (`report.json[\"quality\"]`):", "",
              "| stem | loudness LUFS | silence ratio | bleed estimate (worst source) | MIDI consistency | flagged bars |",
              "|---|---:|---:|---|---:|---:|"]
        for stem, v in q.items():
            m = v.get("midi") or {}
            L.append(f"| {stem} | {f(v['loudness_lufs'], 1)} | {f(v['silence_ratio'], 2)} | {f(v['bleed']['estimate'], 2)} "
                     f"({v['bleed']['source']}) | {f(m.get('score'), 2)} | {len(m.get('flagged_bars', []))} of {m.get('n_bars', '–')} |")
        L.append("")
    L += _targets(speed, tr, bp)
    L += ["## Reproduce", "",
          "On a fresh machine the rendered set (`transcription_rendered`, `midi_grid`) needs Debian's fluidsynth and the "
          "three General MIDI soundfonts the generator draws from (`apt-get install fluidsynth fluid-soundfont-gm "
          "musescore-general-soundfont csound-soundfont`; with fewer installed it renders other songs) and POP909 "
          "extracted beside the repository (`mkdir -p ../pop909 && tar -xJf ../shared/data/pop909.tar.xz -C ../pop909`); "
          "the `basic_pitch` step makes its own virtual environment from PyPI. Without fluidsynth the rendered set is skipped.", "",
          "```", "source /work/venv/bin/activate", "python benchmarks/run.py                       # all steps (about 12 minutes on an idle 2-core machine)",
          "python benchmarks/run.py --steps docs            # rewrite this file from benchmarks/results/",
          "/tmp/musevalvenv/bin/python benchmarks/crosscheck_museval.py ../shared/data/devset", "```", ""]
    prov = [(step, load(f"provenance_{step}")) for step in STEPS if step not in ("docs", "inputs")]
    L += ["## What was measured", "",
          "| step | started | commit | local changes in src/ | lite weights (version, sha256, temperature) | load average at start |",
          "|---|---|---|---|---|---:|"]
    for step, p in prov:
        if p:
            L.append(f"| {step} | {p['time']} | {p['commit']} | {'yes' if p['src_modified'] else 'no'} | "
                     f"{p['lite_version']}, {p['lite_sha256']}, {p.get('lite_temperature', 'not recorded')} | {p.get('load_average_1min', 'not recorded')} |")
        else:
            L.append(f"| {step} | not recorded | | | | |")
    L.append("")
    if missing:
        L += ["## Not measured in this run", "", *[f"- {m}" for m in missing], ""]
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(L))
    return str(DOC)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, from: {', '.join(STEPS)}")
    args = ap.parse_args()
    steps = [s for s in args.steps.split(",") if s]
    unknown = set(steps) - set(STEPS)
    if unknown:
        ap.error(f"unknown steps: {', '.join(sorted(unknown))}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not DEVSET.is_dir():
        ap.error(f"{DEVSET} not found: the benchmarks need ../shared/data beside the repository")
    failed = []
    for step in STEPS:
        if step not in steps:
            continue
        log(f"step {step}")
        t0 = time.perf_counter()
        if step != "docs":
            save(f"provenance_{step}", provenance())
        try:
            if step == "docs":
                log(f"wrote {write_docs()}")
            else:
                globals()[f"step_{step}"]()
        except Exception as exc:  # one broken step must not lose the others' results
            log(f"step {step} failed: {type(exc).__name__}: {exc}")
            failed.append(step)
        log(f"step {step} done in {time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
