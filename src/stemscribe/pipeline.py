"""The main job: a song in, stems + per-stem MIDI + report out.

``split()`` strings the stages together (audio.load -> separate -> tempo/key -> transcribe per stem
-> midi -> report) and is what the CLI, the web app and the Python API call. Progress events are
``{"stage": "load"|"separate"|"tempo"|"transcribe"|"report"|"write", "fraction": 0..1}`` plus
``"stem"`` during transcription. A callback may raise :class:`stemscribe.errors.Cancelled`.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from . import __version__
from .dsp import stft
from .errors import BadArgumentError
from .types import STEM_NAMES, Audio, BeatGrid, NoteTrack, Progress, report_progress

AUDIO_FORMATS = ("wav", "flac", "mp3")
TRANSCRIBE_STEMS = ("vocals", "bass", "drums", "other", "auto")


@dataclass
class SplitResult:
    """What :func:`split` wrote. Paths point into ``out_dir``."""

    input: Path
    out_dir: Path
    model: str
    stems: dict[str, Path] = field(default_factory=dict)
    midi: dict[str, Path] = field(default_factory=dict)
    combined_midi: Path | None = None
    report_path: Path | None = None
    report: dict[str, Any] = field(default_factory=dict)
    notice: str | None = None
    #: what was repaired in the input (e.g. NaN samples), as sentences; also in the report
    input_notes: list[str] = field(default_factory=list)


def validate_stems(stems: Sequence[str] | str | None) -> tuple[str, ...]:
    """Normalise a stem selection (``None`` = all; ``"vocals,bass"`` or a list)."""
    if stems is None:
        return STEM_NAMES
    if isinstance(stems, str):
        stems = [s for s in stems.replace(" ", "").split(",") if s]
    out = []
    for s in stems:
        if s not in STEM_NAMES:
            raise BadArgumentError(f"unknown stem {s!r}: choose from {', '.join(STEM_NAMES)}")
        if s not in out:
            out.append(s)
    if not out:
        raise BadArgumentError(f"no stems selected: choose from {', '.join(STEM_NAMES)}")
    return tuple(s for s in STEM_NAMES if s in out)


def _validate_format(fmt: str) -> str:
    fmt = fmt.lower().lstrip(".")
    if fmt not in AUDIO_FORMATS:
        raise BadArgumentError(f"unknown audio format {fmt!r}: choose from {', '.join(AUDIO_FORMATS)}")
    return fmt


def output_name(path: Path) -> str:
    """The song folder's name: the file name without its extension (``x.stem.mp4`` -> ``x``)."""
    name = path.stem
    if name.lower().endswith(".stem"):
        name = name[: -len(".stem")]
    return name or "song"


def output_names(paths: Sequence[str | Path]) -> list[str]:
    """Song folder names for inputs split in one run, distinct so that no song overwrites another's.

    Each is :func:`output_name`; where two inputs share it (``dev00/mixture.flac`` and
    ``dev01/mixture.flac``), their parent folder's name goes in front (``dev00-mixture``), and a name
    still taken gets ``-2``, ``-3``... (the same file given twice, ``song.mp3`` beside ``song.wav``)."""
    paths = [Path(p) for p in paths]
    plain = [output_name(p) for p in paths]
    names, taken = [], set()
    for path, name in zip(paths, plain):
        if plain.count(name) > 1 and path.resolve().parent.name:
            name = f"{path.resolve().parent.name}-{name}"
        unique, k = name, 2
        while unique in taken:
            unique, k = f"{name}-{k}", k + 1
        taken.add(unique)
        names.append(unique)
    return names


def combined_midi_name(name: str) -> str:
    """``<name>.mid``, or ``<name>_all.mid`` when ``name`` would collide with a stem's MIDI file."""
    return f"{name}_all.mid" if name in STEM_NAMES else f"{name}.mid"


def _as_audio(source: str | Path | Audio) -> tuple[Audio, Path | None]:
    from . import audio as audio_io

    if isinstance(source, Audio):
        return source, None
    path = Path(source)
    return audio_io.load(path), path


def separate(
    source: str | Path | Audio,
    *,
    model: str | None = None,
    model_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Audio]:
    """Separate ``source`` into ``{stem: Audio}`` (input rate and length) with ``model``."""
    from .separate import get_separator

    audio, _ = _as_audio(source)
    return get_separator(model, model_dir=model_dir).separate(audio, progress=progress)


def _guess_stem(audio: Audio) -> str:
    """Pick the transcriber for an unlabelled recording: drums, bass, vocals (one line) or other.

    Percussive energy share (HPSS) decides drums; otherwise a quick polyphonic pass decides by
    register (median pitch below E3 -> bass) and polyphony (mostly one note at a time -> vocals).
    """
    import librosa

    from .transcribe.pitched import transcribe_pitched
    from .transcribe.tempo import mono_at

    y = mono_at(audio, min(audio.sr, 22050))
    if not np.any(np.abs(y) > 1e-4):
        return "other"
    spec = np.abs(stft(y, n_fft=2048, hop_length=512))
    harm, perc = librosa.decompose.hpss(spec)
    if perc.sum() > 1.5 * harm.sum():
        return "drums"
    track = transcribe_pitched(audio, stem="other")
    if not track.notes:
        return "other"
    pitches = np.array([n.pitch for n in track.notes])
    if np.median(pitches) < 52:
        return "bass"
    starts = np.array([n.start for n in track.notes])
    ends = np.array([n.end for n in track.notes])
    grid = np.arange(starts.min(), ends.max(), 0.05)
    active = ((grid[:, None] >= starts) & (grid[:, None] < ends)).sum(axis=1)
    sounding = active[active > 0]
    if len(sounding) and np.mean(sounding <= 1) > 0.8:
        return "vocals"
    return "other"


def _transcribe_one(
    audio: Audio, stem: str, others: Mapping[str, Audio] | None, progress: Progress | None
) -> NoteTrack:
    if stem == "drums":
        from .transcribe.drums import transcribe_drums

        track = transcribe_drums(audio, others=others, progress=progress)
    else:
        from .transcribe.pitched import transcribe_pitched

        track = transcribe_pitched(audio, stem=stem, others=others, progress=progress)
    track.name = stem
    return track


def _transcribe_separated(
    separated: Mapping[str, Audio], wanted: Sequence[str], timer: "_Timer", progress: Progress | None
) -> dict[str, NoteTrack]:
    """Transcribe the ``wanted`` stems of a separation, each checked for bleed against all stems."""
    from .transcribe.pitched import transcribe_stems

    pitched = [s for s in wanted if s != "drums"]
    tracks: dict[str, NoteTrack] = {}
    if "drums" in wanted:
        report_progress(progress, "transcribe", 0.0, stem="drums")
        with timer("transcribe_drums"):
            tracks["drums"] = _transcribe_one(separated["drums"], "drums",
                                              {o: a for o, a in separated.items() if o != "drums"}, None)
    if pitched:
        done = 1 if "drums" in wanted else 0
        total = len(wanted)

        def sub(event: Mapping[str, Any]) -> None:
            report_progress(progress, "transcribe", (done + float(event.get("fraction", 0.0)) * len(pitched)) / total,
                            stem=",".join(pitched))

        with timer("transcribe_pitched"):
            if len(pitched) == len([s for s in separated if s != "drums"]):
                # every pitched stem: analyse each once (same notes as one call per stem)
                found = transcribe_stems(separated, progress=sub)
            else:
                found = {s: _transcribe_one(separated[s], s, {o: a for o, a in separated.items() if o != s}, None)
                         for s in pitched}
        for s in pitched:
            track = found[s]
            track.name = s
            tracks[s] = track
    return {s: tracks[s] for s in wanted}


def transcribe(
    source: str | Path | Audio,
    *,
    stem: str = "auto",
    others: Mapping[str, Audio] | None = None,
    quantize: str | None = None,
    grid: BeatGrid | None = None,
    progress: Progress | None = None,
) -> NoteTrack:
    """Transcribe one stem's audio to a :class:`NoteTrack`.

    ``stem`` picks the method: ``"vocals"``/``"bass"`` (one note at a time, in range), ``"other"``
    (polyphonic), ``"drums"`` (General MIDI drum notes) or ``"auto"`` (guessed from the audio).
    ``others`` are the song's other separated stems, used to drop notes that are bleed.
    """
    if stem not in TRANSCRIBE_STEMS:
        raise BadArgumentError(f"unknown stem {stem!r}: choose from {', '.join(TRANSCRIBE_STEMS)}")
    audio, _ = _as_audio(source)
    if stem == "auto":
        stem = _guess_stem(audio)
    track = _transcribe_one(audio, stem, others, progress)
    if quantize:
        if grid is None:
            from .transcribe.tempo import estimate_beats

            grid = estimate_beats(audio)
        from .midi import quantize as quantize_track

        track = quantize_track(track, grid, quantize)
    return track


class _Timer:
    """Wall time per stage, for the report: ``with timer("load"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - t0, 4)


def split(
    source: str | Path | Audio,
    *,
    out_dir: str | Path,
    model: str | None = None,
    stems: Sequence[str] | str | None = None,
    midi: bool = True,
    format: str = "wav",
    quantize: str | None = None,
    model_dir: str | Path | None = None,
    name: str | None = None,
    progress: Progress | None = None,
) -> SplitResult:
    """Split a song into stems and per-stem MIDI, written to ``out_dir/<name>/``.

    Parameters
    ----------
    source : path or Audio
        Any audio (or video) file, or an :class:`Audio` (then give ``name``).
    out_dir : path
        Parent folder; the song's folder ``<name>`` is built under a temporary name and renamed
        into place at the end, so it is never half-written.
    model : str, optional
        Separation model (``"htdemucs"``, ``"htdemucs_ft"``, ``"htdemucs_6s"``, ``"lite"``); default:
        htdemucs when its weights are present, else the embedded ``lite`` model.
    stems : list of str, optional
        Stems to write (default all four). All four are still separated, for the bleed check.
    midi : bool
        Write ``<stem>.mid`` and the combined ``<name>.mid``.
    format : {"wav", "flac", "mp3"}
    quantize : str, optional
        Snap MIDI onsets to this grid (``"1/16"``...) of the files' bars and beats, which then
        follow the song's tempo with a tempo map when it drifts (:func:`stemscribe.midi.time_map`).
        Default: true times, one tempo.
    progress : callable, optional
        Receives ``{"stage", "fraction"[, "stem"]}`` events.
    """
    from . import audio as audio_io
    from .atomic import atomic_dir, ensure_dir
    from .separate import resolve_model, get_separator

    wanted = validate_stems(stems)
    fmt = _validate_format(format)
    if quantize:
        from .midi import parse_grid

        parse_grid(quantize)
    out_dir = Path(out_dir)
    if isinstance(source, Audio):
        src_path = None
        if not name:
            raise BadArgumentError("give name= when splitting an Audio array (it names the output folder)")
    else:
        src_path = Path(source)
        name = name or output_name(src_path)
    model_name, notice = resolve_model(model, model_dir=model_dir)
    ensure_dir(out_dir)  # fail before minutes of work when the folder cannot be written

    timer = _Timer()
    report_progress(progress, "load", 0.0)
    with timer("load"):
        input_notes: list[str] = []
        if isinstance(source, Audio):
            samples = audio_io.finite_samples(source.samples, input_notes)
            audio = source if samples is source.samples else Audio(samples, source.sr)
        else:
            audio = audio_io.load(src_path, notes=input_notes)
    report_progress(progress, "load", 1.0)

    with timer("separate"):
        separator = get_separator(model_name, model_dir=model_dir)
        report_progress(progress, "separate", 0.0)
        separated = separator.separate(audio, progress=progress)
        # Stems are always stereo (a DAW-ready pair), whatever the input's layout.
        separated = {s: audio_io.to_channels(a, 2) for s, a in separated.items()}
    report_progress(progress, "separate", 1.0)

    from .transcribe.key import estimate_key
    from .transcribe.tempo import estimate_beats

    report_progress(progress, "tempo", 0.0)
    with timer("tempo"):
        grid = estimate_beats(audio)
        key = estimate_key(audio)
    report_progress(progress, "tempo", 1.0)

    tracks: dict[str, NoteTrack] = {}
    if midi:
        tracks = _transcribe_separated(separated, wanted, timer, progress)
        if quantize:
            from .midi import quantize as quantize_track

            tracks = {s: quantize_track(t, grid, quantize) for s, t in tracks.items()}
        report_progress(progress, "transcribe", 1.0)

    report_progress(progress, "report", 0.0)
    with timer("report"):
        from .report import quality_report

        # bleed is judged against all four stems; the report lists the ones asked for
        quality = quality_report(separated, tracks, grid)
        quality["stems"] = {s: v for s, v in quality.get("stems", {}).items() if s in wanted}
    report_progress(progress, "report", 1.0)

    result = SplitResult(input=src_path or Path(name), out_dir=out_dir / name, model=model_name, notice=notice,
                         input_notes=input_notes)
    report = {
        "stemscribe_version": __version__,
        "input": str(src_path) if src_path else None,
        "input_notes": input_notes,
        "model": model_name,
        "model_notice": notice,
        "duration_seconds": round(audio.duration, 3),
        "sample_rate": audio.sr,
        "channels": audio.channels,
        "stems": list(wanted),
        "format": fmt,
        "tempo_bpm": round(float(grid.tempo), 2),
        "beats": [round(float(b), 3) for b in grid.beats],
        "downbeats": [round(float(b), 3) for b in grid.downbeats],
        "time_signature": list(grid.time_signature),
        "key": key,
        "quantize": quantize,
        "note_counts": {s: len(t) for s, t in tracks.items()},
        "seconds_per_stage": {},
        "real_time_factor": {},
        "quality": quality,
    }

    report_progress(progress, "write", 0.0)
    from .midi import write_midi

    t_write = time.perf_counter()
    with atomic_dir(result.out_dir) as tmp:
        for i, stem in enumerate(wanted):
            path = audio_io.write(tmp / f"{stem}.{fmt}", separated[stem], format=fmt)
            result.stems[stem] = result.out_dir / path.name
            report_progress(progress, "write", (i + 1) / (len(wanted) + 2))
        if midi:
            for stem in wanted:
                write_midi(tmp / f"{stem}.mid", [tracks[stem]], grid, follow_beats=bool(quantize))
                result.midi[stem] = result.out_dir / f"{stem}.mid"
            combined = combined_midi_name(name)
            write_midi(tmp / combined, [tracks[s] for s in wanted], grid, follow_beats=bool(quantize))
            result.combined_midi = result.out_dir / combined
        timer.seconds["write"] = round(time.perf_counter() - t_write, 4)
        report["seconds_per_stage"] = dict(timer.seconds)
        dur = max(audio.duration, 1e-9)
        report["real_time_factor"] = {k: round(v / dur, 4) for k, v in timer.seconds.items()}
        (tmp / "report.json").write_text(json.dumps(report, indent=2))
        result.report_path = result.out_dir / "report.json"
    report_progress(progress, "write", 1.0)
    result.report = report
    return result


__all__ = ["split", "transcribe", "separate", "SplitResult", "validate_stems"]
