"""A labelled drum set rendered with fluidsynth, and per-class onset scores of our drum transcription.

    python benchmarks/drums_rendered.py render [--out /tmp/drumset] [--per-kit 4] [--soundfonts ...]
    python benchmarks/drums_rendered.py score [--data /tmp/drumset] [--soundfonts FluidR3_GM,...] [--json OUT]
    python benchmarks/drums_rendered.py devset [../shared/data/devset] [--json OUT]
    python benchmarks/drums_rendered.py speed [../shared/data/devset] [--minutes 3] [--repeats 3]
    python benchmarks/drums_rendered.py census [training/cache/musdb]

``--impl FILE`` (score, devset, speed, census) scores or times another copy of ``drums.py``, e.g. the one
before a change (``git show REV:src/stemscribe/transcribe/drums.py > FILE``).

``render`` writes, per soundfont and GM drum kit (program on MIDI channel 10), ``--per-kit`` random
patterns of about 10 s: ``<out>/<soundfont>/<kit>_<i>.{mid,flac}`` plus ``index.json`` (tempo, time
keeper, reverb).  Patterns keep time on closed hi-hat (42, 8ths or 16ths), open hi-hat (46),
pedal hi-hat (44), ride (51) or ride bell (53), with a backbeat of kick and snare, crashes (49, 57)
on phrase starts and tom fills (41-50, sometimes starting together with the snare), at 70-170 BPM, with per-clip and per-hit velocity
variation; about 40 % are rendered with fluidsynth's reverb.  The pattern generator is seeded by
clip, so a render is reproducible.  Nothing is written into the repository.

``score`` transcribes every clip (``stemscribe.transcribe.drums.transcribe_drums``) and scores it per
class with ``stemscribe.evaluate.drum_scores`` (mir_eval onset matching, 50 ms, the five classes of
``stemscribe.evaluate.DRUM_CLASSES``), pooling the match counts per soundfont.  ``devset`` does the
same on the true drum stems of a devset folder (``devNN/drums.flac`` + ``drums.mid``).

Tuning used FluidR3_GM and MuseScore_General_Full; sf_GMbank and the devset are held out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SR = 44100
SOUNDFONTS = {
    "FluidR3_GM": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "MuseScore_General_Full": "/usr/share/sounds/sf3/MuseScore_General_Full.sf3",
    "sf_GMbank": "/usr/share/sounds/sf2/sf_GMbank.sf2",
}
KITS = {0: "standard", 8: "room", 16: "power", 24: "electronic", 25: "tr808", 32: "jazz", 40: "brush"}
CLASSES = ("kick", "snare", "hihat", "toms", "cymbals")
TOMS = (50, 48, 47, 45, 43, 41)
#: Time keepers and how often each is drawn.
KEEPERS = {"closed8": 0.2, "closed16": 0.1, "open": 0.1, "pedal": 0.05, "ride": 0.3, "ride_bell": 0.1,
           "ride_jazz": 0.15}


def pattern(rng: np.random.Generator, seconds: float = 10.0) -> tuple[list[tuple[float, int, int]], dict]:
    """A random drum part: ``[(time s, GM pitch, velocity)]`` and its description."""
    keeper = str(rng.choice(list(KEEPERS), p=np.array(list(KEEPERS.values())) / sum(KEEPERS.values())))
    bpm = float(rng.uniform(70, 170)) if keeper != "closed16" else float(rng.uniform(70, 115))
    beat = 60.0 / bpm
    swing = 2 / 3 if keeper == "ride_jazz" else 0.5
    base = float(rng.uniform(70, 115))
    hits: list[tuple[float, int, int]] = []

    def hit(t: float, pitch: int, vel: float) -> None:
        if t < seconds - 0.3:
            hits.append((round(float(t), 4), pitch, int(np.clip(vel + rng.normal(0, 7), 25, 127))))

    n_beats = int((seconds - 0.6) / beat)
    n_bars = max(1, n_beats // 4)
    fill_bars = {b for b in range(1, n_bars) if b % 2 == 1 and rng.random() < 0.6} | {n_bars - 1}
    t0 = 0.3
    for i in range(n_bars * 4):
        t, pos, bar = t0 + i * beat, i % 4, i // 4
        in_fill = bar in fill_bars and pos >= 2
        if not in_fill:
            if keeper == "closed8":
                hit(t, 42, base * 0.9)
                hit(t + beat / 2, 42, base * 0.7)
            elif keeper == "closed16":
                for k in range(4):
                    hit(t + k * beat / 4, 42, base * (0.9 if k == 0 else 0.6))
            elif keeper == "open":
                hit(t, 42, base * 0.85)
                hit(t + beat / 2, 46, base * 0.8)
            elif keeper == "pedal":
                hit(t + beat / 2, 44, base * 0.8)
            elif keeper in ("ride", "ride_bell"):
                p = 51 if keeper == "ride" else 53
                hit(t, p, base * 0.9)
                if rng.random() < 0.8:
                    hit(t + beat / 2, p, base * 0.7)
            else:  # jazz: spang-a-lang on the ride, pedal hat on 2 and 4
                hit(t, 51, base * 0.85)
                if pos % 2 == 1:
                    hit(t + beat * swing, 51, base * 0.65)
                    hit(t, 44, base * 0.6)
        # backbeat (jazz: feathered kick, snare comping now and then)
        if keeper == "ride_jazz":
            if pos in (0, 2) and rng.random() < 0.5:
                hit(t, 36, base * 0.75)
            if rng.random() < 0.2:
                hit(t + beat * swing, 38, base * 0.7)
        elif not in_fill:
            if pos in (0, 2):
                hit(t, 36, base * 1.05)
                if rng.random() < 0.3:
                    hit(t + beat / 2, 36, base * 0.9)
            else:
                hit(t, 38, base * 1.05)
        if pos == 0 and (bar == 0 or (bar - 1) in fill_bars) and rng.random() < 0.7:
            hit(t, 49 if rng.random() < 0.6 else 57, base * 1.1)
            if keeper == "ride_jazz" or rng.random() < 0.5:
                hit(t, 36, base)
        if in_fill and pos == 2:
            # two beats of 8ths or 16ths over 2-4 toms, high to low
            step = beat / (4 if bpm < 120 and rng.random() < 0.6 else 2)
            toms = sorted(rng.choice(TOMS, size=int(rng.integers(2, 5)), replace=False), reverse=True)
            n = round(2 * beat / step)
            if rng.random() < 0.4:  # the fill starts on snare and tom together
                hit(t, 38, base)
            for k in range(n):
                tom = toms[min(len(toms) - 1, k * len(toms) // n)]
                hit(t + k * step, int(tom), base * float(rng.uniform(0.85, 1.15)))
    hits.sort()
    return hits, {"keeper": keeper, "bpm": round(bpm, 1), "seconds": seconds}


def write_midi(path: Path, hits: list[tuple[float, int, int]], kit: int) -> None:
    """Channel-10 MIDI at 960 ticks per second; ``kit`` is the drum-kit program change."""
    import mido

    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    track.append(mido.Message("program_change", channel=9, program=kit, time=0))
    events = sorted([(t, 1, p, v) for t, p, v in hits] + [(t + 0.1, 0, p, 0) for t, p, v in hits],
                    key=lambda e: (e[0], e[1]))
    now = 0
    for t, on, p, v in events:
        tick = round(t * 960)
        track.append(mido.Message("note_on" if on else "note_off", channel=9, note=p, velocity=v,
                                  time=tick - now))
        now = tick
    mid.save(str(path))


def render(out: Path, per_kit: int, only: list[str] | None = None) -> None:
    import soundfile as sf

    for s, (name, sf_path) in enumerate(SOUNDFONTS.items()):
        if only is not None and name not in only:
            continue
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        index = {}
        for kit, kit_name in KITS.items():
            for i in range(per_kit):
                rng = np.random.default_rng([s, kit, i])
                hits, desc = pattern(rng)
                reverb = bool(rng.random() < 0.4)
                stem = f"{kit_name}_{i}"
                write_midi(folder / f"{stem}.mid", hits, kit)
                with tempfile.TemporaryDirectory() as tmp:
                    raw = Path(tmp) / "x.raw"
                    cmd = ["fluidsynth", "-ni", "-q", "-g", "0.5", "-R", "1" if reverb else "0", "-C", "0",
                           "-r", str(SR), "-T", "raw", "-O", "float", "-o", "synth.dynamic-sample-loading=1",
                           "-F", str(raw), sf_path,
                           str(folder / f"{stem}.mid")]
                    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
                    x = np.fromfile(raw, dtype=np.float32).reshape(-1, 2)
                x = x[: int(desc["seconds"] * SR) + SR]
                sf.write(folder / f"{stem}.flac", x / max(1e-6, float(np.abs(x).max())) * 0.9, SR)
                index[stem] = {**desc, "kit": kit, "reverb": reverb, "n_hits": len(hits)}
        (folder / "index.json").write_text(json.dumps(index, indent=1))
        print(f"{name}: {len(index)} clips", file=sys.stderr)


def _ref_notes(mid: Path) -> list:
    import pretty_midi

    from stemscribe.types import Note

    pm = pretty_midi.PrettyMIDI(str(mid))
    return [Note(n.pitch, n.start, n.end, n.velocity) for ins in pm.instruments for n in ins.notes]


def _transcriber(impl: str | None):
    """``transcribe_drums`` from the package, or from another copy of ``drums.py`` (e.g. an older
    commit's, written out with ``git show REV:src/stemscribe/transcribe/drums.py > FILE``)."""
    if impl is None:
        from stemscribe.transcribe.drums import transcribe_drums

        return transcribe_drums
    import importlib.util

    spec = importlib.util.spec_from_file_location("drums_impl", impl)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.transcribe_drums


def score_clips(clips: list[tuple[Path, Path]], impl: str | None = None) -> dict:
    """Pooled per-class counts and F1 over ``[(audio, midi)]``, plus seconds spent transcribing."""
    import soundfile as sf

    from stemscribe.evaluate import drum_scores
    from stemscribe.types import Audio

    transcribe_drums = _transcriber(impl)

    counts = {c: np.zeros(3, dtype=int) for c in CLASSES}  # match, ref, est
    spent = audio_s = 0.0
    per_clip = {}
    for wav, mid in clips:
        y, sr = sf.read(wav, dtype="float32", always_2d=True)
        t0 = time.perf_counter()
        est = transcribe_drums(Audio(y.T, sr))
        spent += time.perf_counter() - t0
        audio_s += y.shape[0] / sr
        sc = drum_scores(_ref_notes(mid), est)
        per_clip[f"{wav.parent.name}/{wav.stem}"] = {c: round(v["f1"], 3) for c, v in sc["classes"].items()}
        for c, v in sc["classes"].items():
            counts[c] += (v["n_match"], v["n_ref"], v["n_est"])
    out = {}
    for c, (m, r, e) in counts.items():
        p, rec = (m / e if e else 0.0), (m / r if r else 0.0)
        out[c] = {"f1": round(2 * m / (r + e), 3) if r + e else 1.0, "precision": round(p, 3),
                  "recall": round(rec, 3), "n_ref": int(r), "n_est": int(e), "n_match": int(m)}
    return {"classes": out, "seconds": round(spent, 2), "audio_seconds": round(audio_s, 1), "clips": per_clip}


def speed(data: Path, minutes: float, repeats: int, impl: str | None = None) -> dict:
    """Fastest of ``repeats`` transcriptions of the devset drum stems concatenated to ``minutes``."""
    import soundfile as sf

    from stemscribe.types import Audio

    transcribe_drums = _transcriber(impl)
    stems = [sf.read(p / "drums.flac", dtype="float32", always_2d=True) for p in sorted(data.glob("dev*"))]
    sr = stems[0][1]
    x = np.concatenate([y for y, _ in stems])
    x = np.tile(x, (int(np.ceil(minutes * 60 * sr / x.shape[0])), 1))[: int(minutes * 60 * sr)]
    best, notes = np.inf, 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        notes = len(transcribe_drums(Audio(x.T, sr)).notes)
        best = min(best, time.perf_counter() - t0)
    return {"seconds": round(best, 3), "audio_seconds": round(x.shape[0] / sr, 1), "notes": notes}


def census(cache: Path, impl: str | None = None) -> dict:
    """Notes per GM pitch written for the real (unlabelled) MUSDB drum clips of ``cache``
    (``training/cache/musdb``: ``index.json`` + ``NNN.npy`` ``(5, 2, n)``, drums second), and in
    how many clips the ride outnumbers the hi-hats."""
    import collections

    from stemscribe.types import Audio

    transcribe_drums = _transcriber(impl)
    index = json.loads((cache / "index.json").read_text())
    totals: collections.Counter = collections.Counter()
    ride_led = 0
    for clip in index["clips"]:
        drums = np.asarray(np.load(cache / clip["file"], mmap_mode="r")[1])
        count = collections.Counter(n.pitch for n in transcribe_drums(Audio(drums, index["sr"])).notes)
        totals += count
        ride_led += count[51] > count[42] + count[44] + count[46]
    return {"clips": len(index["clips"]), "ride_led_clips": ride_led,
            "notes_per_pitch": {int(k): v for k, v in sorted(totals.items())}}


def _table(results: dict[str, dict]) -> str:
    lines = ["| set | " + " | ".join(CLASSES) + " |", "|---" * (len(CLASSES) + 1) + "|"]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{r['classes'][c]['f1']:.3f}" for c in CLASSES) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render")
    r.add_argument("--out", default="/tmp/drumset")
    r.add_argument("--per-kit", type=int, default=4)
    r.add_argument("--soundfonts", default=",".join(SOUNDFONTS), help="render only these")
    s = sub.add_parser("score")
    s.add_argument("--data", default="/tmp/drumset")
    s.add_argument("--soundfonts", default=",".join(SOUNDFONTS))
    s.add_argument("--keeper", default=None, help="only clips with this time keeper (e.g. ride)")
    s.add_argument("--json", default=None)
    s.add_argument("--impl", default=None, help="score the drums.py at this path instead of the package's")
    d = sub.add_parser("devset")
    d.add_argument("data", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared/data/devset"))
    d.add_argument("--json", default=None)
    d.add_argument("--impl", default=None, help="score the drums.py at this path instead of the package's")
    t = sub.add_parser("speed", help="seconds to transcribe the devset drum stems, one after another")
    t.add_argument("data", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared/data/devset"))
    t.add_argument("--minutes", type=float, default=3.0, help="repeat the stems to this length")
    t.add_argument("--repeats", type=int, default=3, help="report the fastest of this many runs")
    t.add_argument("--impl", default=None, help="time the drums.py at this path instead of the package's")
    c = sub.add_parser("census", help="what is written for the unlabelled MUSDB drum stems")
    c.add_argument("cache", nargs="?", default=str(Path(__file__).resolve().parents[1] / "training/cache/musdb"))
    c.add_argument("--impl", default=None, help="use the drums.py at this path instead of the package's")
    args = ap.parse_args()

    if args.cmd == "render":
        render(Path(args.out), args.per_kit, args.soundfonts.split(","))
        return 0
    if args.cmd == "census":
        print(json.dumps(census(Path(args.cache), args.impl)))
        return 0
    if args.cmd == "speed":
        print(json.dumps(speed(Path(args.data), args.minutes, args.repeats, args.impl)))
        return 0
    results = {}
    if args.cmd == "score":
        for name in args.soundfonts.split(","):
            folder = Path(args.data) / name
            index = json.loads((folder / "index.json").read_text())
            clips = [(folder / f"{k}.flac", folder / f"{k}.mid") for k, v in index.items()
                     if args.keeper is None or v["keeper"] == args.keeper]
            results[name] = score_clips(clips, args.impl)
    else:
        songs = sorted(p for p in Path(args.data).glob("dev*") if p.is_dir())
        results["devset"] = score_clips([(p / "drums.flac", p / "drums.mid") for p in songs], args.impl)
    print(_table(results))
    for name, res in results.items():
        print(f"{name}: {res['seconds']} s for {res['audio_seconds']} s of audio; "
              + ", ".join(f"{c} {v['n_match']}/{v['n_ref']} ref, {v['n_est']} est" for c, v in res["classes"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
