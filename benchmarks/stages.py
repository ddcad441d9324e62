"""Time every stage of a split on one input and report the process's peak memory, as JSON.

    python benchmarks/stages.py INPUT [--model lite] [--model-dir DIR] [--json OUT]

Stages, each timed on its own (wall clock and process CPU time, all threads, in seconds):
``load`` (decode), ``model_load``, ``separate``, ``tempo`` (beats + key from the mixture),
``transcribe_drums`` and ``transcribe_pitched`` (vocals, bass and other in one pass, with bleed
checks, as ``split`` does), ``report`` (quality report), ``midi_write`` (four stem files + the
combined file), ``audio_write`` (four WAV stems). ``peak_rss_mb`` is this process's
``ru_maxrss``. Run it in a fresh process per measurement so the peak belongs to one input.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("--model", default="lite")
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--json", default=None, help="write the result here (default: stdout)")
    ap.add_argument("--no-transcribe", action="store_true", help="load + separate only")
    args = ap.parse_args()

    from stemscribe import audio as audio_io
    from stemscribe.midi import write_midi
    from stemscribe.pipeline import _transcribe_one
    from stemscribe.report import quality_report
    from stemscribe.separate import get_separator
    from stemscribe.transcribe.key import estimate_key
    from stemscribe.transcribe.pitched import transcribe_stems
    from stemscribe.transcribe.tempo import estimate_beats

    sec: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def timed(name, fn, *a, **kw):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(*a, **kw)
        sec[name] = time.perf_counter() - t0
        cpu[name] = time.process_time() - c0
        return out

    audio = timed("load", audio_io.load, args.input)
    sep = timed("model_load", get_separator, args.model, model_dir=args.model_dir)
    stems = timed("separate", sep.separate, audio)
    result = {"input": args.input, "model": args.model, "duration": audio.duration, "sr": audio.sr,
              "channels": audio.channels}
    if not args.no_transcribe:
        grid = timed("tempo", lambda: (estimate_beats(audio), estimate_key(audio)))[0]
        # as pipeline.split does it: drums checked for bleed against the other stems, the pitched
        # stems in one pass (each stem analysed once and checked for bleed against all the others)
        tracks = {"drums": timed("transcribe_drums", _transcribe_one, stems["drums"], "drums",
                                 {o: a for o, a in stems.items() if o != "drums"}, None)}
        tracks.update(timed("transcribe_pitched", transcribe_stems, stems))
        timed("report", quality_report, stems, tracks, grid)
        with tempfile.TemporaryDirectory() as tmp:
            def write_all():
                for s, t in tracks.items():
                    write_midi(Path(tmp) / f"{s}.mid", [t], grid)
                write_midi(Path(tmp) / "all.mid", list(tracks.values()), grid)

            timed("midi_write", write_all)
            timed("audio_write", lambda: [audio_io.write(Path(tmp) / f"{s}.wav", a) for s, a in stems.items()])
        result["tempo_bpm"] = float(grid.tempo)
        result["note_counts"] = {s: len(t) for s, t in tracks.items()}
    result["seconds"] = sec
    result["cpu_seconds"] = cpu
    result["rtf"] = {k: v / audio.duration for k, v in sec.items()}
    result["cpu_rtf"] = {k: v / audio.duration for k, v in cpu.items()}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    text = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
