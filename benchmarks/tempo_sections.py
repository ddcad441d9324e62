"""Beats of songs that change tempo: the devset's mixtures, each a few times in a row (a medley
of sections at 87-138 BPM), and one devset song repeated (one tempo throughout).

Reports the sections found (``stemscribe.transcribe.tempo._tempo_sections``), the tracked beats'
F-measure (mir_eval, 70 ms) against the songs' beats, and that of the beats a MIDI file carries
when written as ``split`` writes it (one tempo) and as ``split --quantize`` writes it (a tempo map
when the beats drift, ``stemscribe.midi.time_map``).

    python benchmarks/tempo_sections.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

DEVSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "devset"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devset", type=Path, default=DEVSET)
    ap.add_argument("--repeat", type=int, default=3, help="times each song plays in a row")
    args = ap.parse_args()

    import mir_eval
    import pretty_midi
    import soundfile as sf

    from stemscribe.midi import write_midi
    from stemscribe.transcribe import tempo as T
    from stemscribe.types import Audio, Note, NoteTrack

    songs = sorted(p for p in args.devset.iterdir() if (p / "meta.json").is_file())
    parts, ref, t0, sr = [], [], 0.0, 44100
    for song in songs:
        x, sr = sf.read(song / "mixture.flac", dtype="float32", always_2d=True)
        bpm = float(json.loads((song / "meta.json").read_text())["tempo"])
        for _ in range(args.repeat):  # each copy starts on a downbeat
            ref.extend(t0 + np.arange(0.0, x.shape[0] / sr - 1e-6, 60.0 / bpm))
            t0 += x.shape[0] / sr
            parts.append(x)
    cases = {"medley": (np.concatenate(parts).T, np.asarray(ref))}
    x, sr = sf.read(songs[0] / "mixture.flac", dtype="float32", always_2d=True)
    bpm = float(json.loads((songs[0] / "meta.json").read_text())["tempo"])
    one = np.tile(x.T, (1, 5))
    cases["one song x5"] = (one, np.arange(0.0, one.shape[1] / sr - 1e-6, 60.0 / bpm))
    out = {}
    with tempfile.TemporaryDirectory() as td:
        for name, (audio, beats) in cases.items():
            t = time.process_time()
            grid = T.estimate_beats(Audio(audio, sr))
            cpu = time.process_time() - t
            mono = T.mono_at(Audio(audio, sr), T._SR)
            env, _, _ = T.onset_envelope(mono)
            fps = T._SR / T._HOP
            sections = T._tempo_sections(env, fps, T._estimate_tempo(env, fps))
            row = {"seconds": round(audio.shape[1] / sr, 1), "cpu_s": round(cpu, 2),
                   "sections": [(round(a / fps, 1), round(b / fps, 1), round(bpm, 2)) for a, b, bpm in sections],
                   "beat_f": round(float(mir_eval.beat.f_measure(beats, grid.beats)), 3)}
            for label, follow in (("file_one_tempo", False), ("file_quantize", True)):
                path = write_midi(Path(td) / "m.mid", [NoteTrack("x", [Note(60, 0.0, audio.shape[1] / sr)])], grid,
                                  follow_beats=follow)
                fb = np.asarray(pretty_midi.PrettyMIDI(str(path)).get_beats())
                # from 1 s on: a pickup bar's 64ths read as beats
                row[f"beat_f_{label}"] = round(float(mir_eval.beat.f_measure(beats[beats > 1.0], fb[fb > 1.0])), 3)
            out[name] = row
            print(name, json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
