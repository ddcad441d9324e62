"""Measure, on real sung recordings, how well the backing's beats meet the vocal's note onsets,
and the spectrogram-image round-trip SNR per mode.

    python training/harmony/eval_backing.py --musdb ../shared/data/musdb7s-train --n 40

For each MUSDB clip (its ``vocals`` stream, decoded with PyAV) that passes the singing check:
the notes come from the vocal transcriber and the beats from ``accompany.beats.track_beats``
(what ``stemscribe accompany`` plays to). Reported: the fraction of note onsets within 70 ms of
a beat or an eighth-note subdivision, for

- ``tracked``: the drifting grid the backing follows;
- ``fixed``: a fixed-tempo grid at the clip's median tracked tempo, best phase (the baseline);
- ``chance``: the expected fraction for onsets at random positions (2 * 0.14 s / beat period);

against two sets of onsets: the transcribed note onsets (what the tracker saw) and, as an
independent check, librosa's onset detector on the vocal audio.

Reference: the clip's real band. ``stemscribe.transcribe.tempo.estimate_beats`` on the clip's
*mixture* gives the beats the original musicians played; we report how the vocal's onsets line
up with those (``band``: what a real accompaniment scores on this measure) and the beat F-measure
(mir_eval, 70 ms) of our vocal-only beats against them, at the same metrical level or the best of
double/half tempo.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from stemscribe import specimage
from stemscribe.accompany.beats import audio_envelope, track_beats
from stemscribe.accompany.pipeline import onset_alignment
from stemscribe.accompany.voice import analyse_voice, check_singing, vocal_notes
from stemscribe.audio import load
from stemscribe.errors import BadInputError


def main() -> None:
    import librosa

    ap = argparse.ArgumentParser()
    ap.add_argument("--musdb", type=Path, default=Path(__file__).resolve().parents[3] / "shared/data/musdb7s-train")
    ap.add_argument("--n", type=int, default=40, help="clips to try (sorted by name)")
    ap.add_argument("--spec-n", type=int, default=10, help="clips for the spectrogram-image SNR")
    ap.add_argument("--results", type=Path, default=None)
    ap.add_argument("--audio-weight", type=float, default=1.5, help="weight of the vocal's own onset strength")
    ap.add_argument("--skip", type=int, default=0, help="skip this many clips first")
    args = ap.parse_args()
    files = sorted(args.musdb.glob("*.stem.mp4"))[args.skip: args.skip + args.n]
    rows, skipped = [], {}
    snr = {"8": [], "8split": [], "16": []}
    for k, f in enumerate(files):
        vocal = load(f, stream=4)
        if k < args.spec_n:
            for name, kw in (("8", {"bits": 8}), ("8split", {"bits": 8, "split": True}), ("16", {"bits": 16})):
                back = specimage.decode(specimage.encode(vocal, **kw))
                snr[name].append(specimage.snr_db(vocal.samples, back.samples))
        va = analyse_voice(vocal, transcribe=False)
        try:
            check_singing(vocal, va, f.name, check_notes=False)
        except BadInputError as exc:
            skipped[f.name] = str(exc).split(" (")[0].split(": ", 1)[-1][:60]
            continue
        notes = vocal_notes(vocal, va)
        if len(notes) < 4:
            skipped[f.name] = f"only {len(notes)} notes"
            continue
        aenv = audio_envelope(vocal.mono(), vocal.sr) if args.audio_weight > 0 else None
        grid = track_beats(notes, vocal.duration, audio_env=aenv, audio_weight=args.audio_weight)
        period = float(np.median(np.diff(grid.beats)))
        fixed = track_beats(notes, vocal.duration, tempo=60.0 / period)
        onsets = np.array([n.start for n in notes])
        y = vocal.mono()
        det = librosa.onset.onset_detect(y=y, sr=vocal.sr, units="time", backtrack=False)
        import mir_eval

        from stemscribe.transcribe.tempo import estimate_beats

        band = estimate_beats(load(f, stream=0)).beats
        ref = mir_eval.beat.trim_beats(np.asarray(band, float), min_beat_time=0.0)
        est = grid.beats[(grid.beats >= 0) & (grid.beats <= vocal.duration)]
        half = est[::2]
        double = np.sort(np.concatenate([est, (est[1:] + est[:-1]) / 2]))
        f_same = mir_eval.beat.f_measure(ref, est) if len(ref) > 1 else float("nan")
        f_any = max(f_same, *(mir_eval.beat.f_measure(ref, e) for e in (half, double))) if len(ref) > 1 else float("nan")
        rows.append({
            "band": onset_alignment(onsets, band) if len(band) > 1 else float("nan"),
            "beat_f_same_level": f_same, "beat_f_any_level": f_any,
            "clip": f.name, "notes": len(notes), "tempo": round(60.0 / period, 1),
            "tracked": onset_alignment(onsets, grid.beats), "fixed": onset_alignment(onsets, fixed.beats),
            "chance": min(2 * 0.14 / period, 1.0),
            "tracked_audio_onsets": onset_alignment(det, grid.beats) if len(det) else float("nan"),
            "fixed_audio_onsets": onset_alignment(det, fixed.beats) if len(det) else float("nan"),
        })
        r = rows[-1]
        print(f"{f.name[:40]:40s} notes {r['notes']:3d} tempo {r['tempo']:6.1f}  tracked {r['tracked']:.2f} "
              f"fixed {r['fixed']:.2f} chance {r['chance']:.2f} | audio onsets: tracked "
              f"{r['tracked_audio_onsets']:.2f} fixed {r['fixed_audio_onsets']:.2f} | band {r['band']:.2f} "
              f"F {r['beat_f_same_level']:.2f}/{r['beat_f_any_level']:.2f}", flush=True)
    summary = {key: float(np.nanmean([r[key] for r in rows])) for key in
               ("tracked", "fixed", "chance", "tracked_audio_onsets", "fixed_audio_onsets", "band",
                "beat_f_same_level", "beat_f_any_level")}
    summary["clips_measured"] = len(rows)
    summary["clips_skipped"] = skipped
    summary["specimage_snr_db"] = {k: {"mean": float(np.mean(v)), "min": float(np.min(v))} for k, v in snr.items() if v}
    print(json.dumps(summary, indent=1))
    if args.results:
        args.results.write_text(json.dumps({"summary": summary, "clips": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
