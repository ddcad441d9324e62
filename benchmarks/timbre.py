"""Timbre capture benchmark: is a captured instrument closer to the real sound than General MIDI?

For each case: capture an instrument from the first part of a recording, render the MIDI of the last
part with it and with the packaged General MIDI SoundFont (the track's own GM program), and compare
each render with the real last part by log-mel spectral distance (mean absolute difference in dB of
128-band log-mel spectrograms, 2048/512 STFT at 44.1 kHz, each render scaled to the reference's RMS first,
80 dB floor, averaged over the frames where either signal is within 60 dB of the loudest bin). Improvement = 1 - captured / GM.

Cases (data under ../shared/data, skipped when absent):
  devNN-bass / devNN-other   devset true stems with their ground-truth MIDI
  pop909-piano               pop909 song 001 MELODY track 0-120 s, rendered as the "real" recording by
                             FluidSynth with FluidR3_GM's grand piano (development stand-in for a piano stem;
                             needs the `fluidsynth` program and /usr/share/sounds/sf2/FluidR3_GM.sf2)
  devNN-sep-other/bass       the stem separated by stemscribe ("lite" model) from the devset mixture;
                             the instrument is captured from the separated first part and compared with
                             the separated last part (what the user has) and the true last part

Notes used for capture: the ground-truth MIDI ("gt") and stemscribe's own transcription ("tr").

  musdb-bass / musdb-other   real recordings: MUSDB18 7 s clips (musdb7s-train, research licence), in
                             alphabetical order until 8 have rendered;
                             no MIDI there, so the last third's notes are stemscribe's transcription
                             (the same notes for both renders) and only "tr" capture is possible
  fluidsynth-check           not a capture case: our SF2 player vs FluidSynth on FluidR3_GM, devset MIDI

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/timbre.py [--cases dev01-bass,pop909-piano] [--out docs/timbre_results.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FLUID_GM = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SR = 44100


def log_mel(y: np.ndarray, sr: int = SR) -> np.ndarray:
    """128-band log-mel spectrogram in dB ``(128, frames)`` of a mono signal."""
    import librosa

    S = librosa.feature.melspectrogram(y=y.astype(np.float32), sr=sr, n_fft=2048, hop_length=512, n_mels=128, fmax=16000)
    return 10 * np.log10(S + 1e-10)


def distance(ref: np.ndarray, est: np.ndarray) -> float:
    """Log-mel distance (dB) between mono ``ref`` and ``est`` after matching ``est``'s RMS to ``ref``."""
    n = len(ref)
    est = np.pad(est, (0, max(n - len(est), 0)))[:n]
    r_ref, r_est = np.sqrt(np.mean(ref**2)), np.sqrt(np.mean(est**2))
    est = est * (r_ref / r_est) if r_est > 0 else est
    A, B = log_mel(ref), log_mel(est)
    top = max(A.max(), B.max())
    A, B = np.maximum(A, top - 80), np.maximum(B, top - 80)
    # frames where either signal sounds (within 60 dB of the loudest bin); silence would dilute the mean
    active = (A.max(axis=0) > top - 60) | (B.max(axis=0) > top - 60)
    return float(np.mean(np.abs(A[:, active] - B[:, active])))


def split_notes(track, t_split: float, t_end: float):
    from stemscribe.types import Note, NoteTrack

    first = [n for n in track.notes if n.end <= t_split]
    last = [Note(n.pitch, n.start - t_split, min(n.end, t_end) - t_split, n.velocity)
            for n in track.notes if t_split <= n.start < t_end]
    return first, NoteTrack(track.name, last, track.program, track.is_drum)


def run_case(name: str, audio, track, stem: str, t_split: float, references: dict, modes=("gt", "tr"),
             extra: dict | None = None) -> list[dict]:
    """Capture from ``audio[:t_split]``, render the notes after it, compare with each reference."""
    from stemscribe.capture import capture_instrument
    from stemscribe.errors import StemscribeError
    from stemscribe.render import render_midi
    from stemscribe.types import Audio

    sr = audio.sr
    n_split = int(t_split * sr)
    first_audio = Audio(audio.samples[:, :n_split], sr)
    first_notes, last_track = split_notes(track, t_split, audio.duration)
    t0 = time.time()
    gm = render_midi([last_track], sr=sr).mono()
    rows = []
    for mode in modes:
        t0 = time.time()
        try:
            cap = capture_instrument(first_audio, stem=stem, notes=first_notes if mode == "gt" else None)
            t_cap = time.time() - t0
            capd = render_midi([last_track], sr=sr, instrument=cap.instrument, reach=12).mono()
        except StemscribeError as exc:
            rows.append({"case": name, "notes": mode, "error": str(exc)})
            continue
        for ref_name, ref in references.items():
            ref = ref[n_split:]
            d_gm, d_cap = distance(ref, gm), distance(ref, capd)
            rows.append({
                "case": name, "notes": mode, "reference": ref_name,
                "gm_db": round(d_gm, 2), "captured_db": round(d_cap, 2),
                "improvement": round(1 - d_cap / d_gm, 3),
                "kept_takes": cap.stats["kept_takes"], "clean_takes": cap.stats["clean_takes"], "chord_takes": cap.stats["chord_takes"],
                "notes_found": cap.stats["notes_found"], "looped": cap.stats["looped_takes"],
                "layers": len(cap.stats["velocity_layers"]), "render_notes": len(last_track.notes),
                "capture_s": round(t_cap, 1), **(extra or {}),
            })
    return rows


def devset_case(song: str, stem: str, separated: bool = False) -> list[dict]:
    from stemscribe.audio import load
    from stemscribe.midi import read_midi

    d = DATA / "devset" / song
    true = load(d / f"{stem}.flac", sr=SR)
    tracks, _ = read_midi(d / f"{stem}.mid")
    track = tracks[0]
    t_split = true.duration * 2 / 3
    if not separated:
        return run_case(f"{song}-{stem}", true, track, stem, t_split, {"true": true.mono()})
    from stemscribe.separate import get_separator

    mix = load(d / "mixture.flac", sr=SR)
    stems = get_separator("lite").separate(mix)
    sep = stems[stem]
    n = int(t_split * SR)
    floor = {"separated_vs_true_db": round(distance(true.mono()[n:], sep.mono()[n:]), 2)}
    return run_case(f"{song}-sep-{stem}", sep, track, stem, t_split, {"separated": sep.mono(), "true": true.mono()}, extra=floor)


def pop909_case(song: str = "001", t0: float = 0.0, t1: float = 120.0) -> list[dict]:
    import pretty_midi
    import soundfile as sf

    from stemscribe.types import Audio, Note, NoteTrack

    if shutil.which("fluidsynth") is None or not FLUID_GM.is_file():
        return [{"case": f"pop909-{song}-piano", "error": "needs fluidsynth and FluidR3_GM.sf2"}]
    tmp = Path(tempfile.mkdtemp())
    try:
        src = tmp / "pop909"
        if not (src / song).exists():
            subprocess.run(["tar", "xJf", str(DATA / "pop909.tar.xz"), "-C", str(tmp), f"pop909/{song}/{song}.mid"], check=True)
        pm = pretty_midi.PrettyMIDI(str(src / song / f"{song}.mid"))
        mel = next(i for i in pm.instruments if i.name == "MELODY")
        out = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(program=0, name="piano")
        notes = [Note(n.pitch, n.start - t0, n.end - t0, n.velocity) for n in mel.notes if t0 <= n.start and n.end <= t1]
        inst.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start, n.end) for n in notes]
        out.instruments.append(inst)
        out.write(str(tmp / "mel.mid"))
        subprocess.run(["fluidsynth", "-ni", "-g", "0.8", "-r", str(SR), "-F", str(tmp / "mel.wav"), str(FLUID_GM), str(tmp / "mel.mid")],
                       check=True, capture_output=True)
        y, sr = sf.read(str(tmp / "mel.wav"), dtype="float32", always_2d=True)
        y = y[: int((t1 - t0) * sr)]
        audio = Audio(y.T, sr)
        track = NoteTrack("piano", notes, 0, False)
        return run_case(f"pop909-{song}-piano", audio, track, "other", audio.duration * 2 / 3, {"true": audio.mono()})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def musdb_case(stem: str, n_clips: int = 8) -> list[dict]:
    """Real recordings: MUSDB18 7 s clips (no ground-truth MIDI). Capture from the first 2/3 of the
    stem with stemscribe's transcription; the notes rendered are stemscribe's transcription of the last
    third (the same notes for both renders); compare with the real last third. Clips are taken in
    alphabetical order (skipping silent stems and last thirds with < 3 notes) until ``n_clips`` have
    rendered; the ones that fail with a StemscribeError are reported as errors."""
    from stemscribe.audio import load
    from stemscribe.midi import GM_PROGRAMS
    from stemscribe.transcribe.pitched import transcribe_pitched
    from stemscribe.types import Audio, NoteTrack

    index = {"bass": 2, "other": 3}[stem]
    clips = sorted((DATA / "musdb7s-train").glob("*.stem.mp4"))
    rows = []
    for clip in clips:
        if len([r for r in rows if "improvement" in r]) >= n_clips:
            break
        audio = load(clip, sr=SR, stream=index)
        if np.sqrt(np.mean(audio.samples**2)) < 0.01:
            continue  # (nearly) silent stem
        n = int(audio.n_samples * 2 / 3)
        last = Audio(audio.samples[:, n:], SR)
        notes = transcribe_pitched(last, stem=stem).notes
        if len(notes) < 3:
            continue
        track = NoteTrack(stem, [type(x)(x.pitch, x.start + n / SR, x.end + n / SR, x.velocity) for x in notes],
                          GM_PROGRAMS[stem])
        name = f"musdb-{stem}-{clip.name.split('.stem')[0][:28]}"
        got = run_case(name, audio, track, stem, n / SR, {"true": audio.mono()}, modes=("tr",))
        rows.extend(got)
    return rows


def fluidsynth_check() -> list[dict]:
    """Our SF2 player vs FluidSynth on the same SoundFont (FluidR3_GM) and MIDI: log-mel distance.

    For scale, also the packaged GM font vs FluidSynth+FluidR3 (a different SoundFont).
    """
    import soundfile as sf

    from stemscribe.render import render_midi

    if shutil.which("fluidsynth") is None or not FLUID_GM.is_file():
        return [{"case": "fluidsynth-check", "error": "needs fluidsynth and FluidR3_GM.sf2"}]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for song in sorted(p.name for p in (DATA / "devset").iterdir()):
            for stem in ("bass", "other"):
                mid = DATA / "devset" / song / f"{stem}.mid"
                if not mid.is_file():
                    continue
                wav = Path(tmp) / "fs.wav"
                subprocess.run(["fluidsynth", "-ni", "-g", "0.8", "-R", "0", "-C", "0", "-r", str(SR), "-F", str(wav),
                                str(FLUID_GM), str(mid)], check=True, capture_output=True)
                ref = sf.read(str(wav), dtype="float32", always_2d=True)[0].mean(axis=1)
                ours = render_midi(mid, sr=SR, soundfont=FLUID_GM).mono()
                packaged = render_midi(mid, sr=SR).mono()
                rows.append({"case": f"fluidsynth-check-{song}-{stem}",
                             "ours_vs_fluidsynth_db": round(distance(ref, ours), 2),
                             "packaged_gm_vs_fluidsynth_db": round(distance(ref, packaged), 2)})
    return rows


CASES = {
    "pop909-piano": lambda: pop909_case(),
    **{f"dev0{i}-bass": (lambda i=i: devset_case(f"dev0{i}", "bass")) for i in range(6)},
    **{f"dev0{i}-other": (lambda i=i: devset_case(f"dev0{i}", "other")) for i in range(6)},
    "dev01-sep-bass": lambda: devset_case("dev01", "bass", separated=True),
    "dev02-sep-other": lambda: devset_case("dev02", "other", separated=True),
    "musdb-bass": lambda: musdb_case("bass"),
    "musdb-other": lambda: musdb_case("other"),
    "fluidsynth-check": fluidsynth_check,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"no data at {DATA}", file=sys.stderr)
        return 1
    rows = []
    for name in args.cases.split(","):
        t = time.time()
        got = CASES[name]()
        rows.extend(got)
        for r in got:
            print(json.dumps(r), flush=True)
        print(f"# {name}: {time.time() - t:.0f} s", file=sys.stderr, flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
