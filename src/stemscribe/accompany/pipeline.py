"""``accompany()``: a solo vocal (or melody MIDI) in, a band arrangement and backing track out.

Flow: load -> listen (pitch track, singing check, notes) -> beats from the note onsets -> key and
chords (HMM) -> band parts in the chosen style -> render the backing -> mix it under the untouched
vocal -> write ``melody.mid``, ``arrangement.mid``, ``backing.wav``, ``song.wav``, ``report.json``.

Progress events: ``{"stage": "load"|"analyse"|"tempo"|"harmonise"|"arrange"|"render"|"write",
"fraction": 0..1}``. All five files are first written under temporary names in the output folder
and renamed into place only when every one of them is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadArgumentError, BadInputError, StemscribeError
from ..types import Audio, BeatGrid, Note, NoteTrack, Progress, report_progress

__all__ = ["AccompanyResult", "accompany", "parse_tempo", "onset_alignment", "MIDI_SUFFIXES", "OUTPUT_NAMES"]

MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")
OUTPUT_NAMES = ("melody.mid", "arrangement.mid", "backing.wav", "song.wav", "report.json")
_MIDI_SR = 44100


@dataclass
class AccompanyResult:
    """Paths of the written files and the report's content."""

    out_dir: Path
    files: dict[str, Path]
    report: dict[str, Any]
    key: str
    tempo: float
    chords: list[tuple[float, float, str]]
    tracks: list[NoteTrack] = field(default_factory=list)


def parse_tempo(value: str | float | None) -> float | None:
    """``"auto"``/None -> None; ``"96"`` -> 96.0; anything else -> :class:`BadArgumentError`."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        bpm = float(value)
    except (TypeError, ValueError):
        raise BadArgumentError(f"--tempo {value!r} is not a number: give BPM such as 96, or 'auto'") from None
    if not 20.0 <= bpm <= 300.0:
        raise BadArgumentError(f"--tempo {bpm:g} is out of range: give 20..300 BPM or 'auto'")
    return bpm


def onset_alignment(onsets: np.ndarray, beats: np.ndarray, *, subdivision: int = 2, tol: float = 0.07) -> float:
    """Fraction of ``onsets`` (s) within ``tol`` s of a beat or an even ``subdivision`` of one."""
    onsets = np.asarray(onsets, dtype=float)
    beats = np.asarray(beats, dtype=float)
    if len(onsets) == 0 or len(beats) < 2:
        return 0.0
    idx = np.arange(len(beats))
    fine = np.interp(np.arange(0, len(beats) - 1 + 1e-9, 1.0 / subdivision), idx, beats)
    d = np.min(np.abs(onsets[:, None] - fine[None, :]), axis=1)
    return float(np.mean(d <= tol))


def _active_rms(x: np.ndarray, sr: int) -> float:
    """RMS over the 50 ms blocks within 30 dB of the loudest block (``x`` shape ``(channels, n)``)."""
    m = x.mean(axis=0) if x.ndim == 2 else x
    hop = max(int(0.05 * sr), 1)
    n = len(m) // hop
    if n == 0:
        return float(np.sqrt(np.mean(m**2))) if len(m) else 0.0
    blocks = np.sqrt(np.mean(m[: n * hop].reshape(n, hop) ** 2, axis=1))
    top = float(blocks.max())
    if top <= 0:
        return 0.0
    act = blocks[blocks > top * 10 ** (-30 / 20)]
    return float(np.sqrt(np.mean(act**2)))


def _render(tracks: list[NoteTrack], sr: int, renderer: str, seed: int) -> tuple[Audio, str]:
    if renderer in ("auto", "soundfont"):
        try:
            from ..render import render_midi

            return render_midi(tracks, sr=sr), "soundfont"
        except (ImportError, StemscribeError, OSError):
            if renderer == "soundfont":
                raise
    from .synth import synth_tracks

    return synth_tracks(tracks, sr=sr, seed=seed), "builtin"


def _melody_from_midi(path: Path) -> tuple[list[Note], BeatGrid]:
    from ..midi import read_midi

    tracks, grid = read_midi(path)
    cands = [t for t in tracks if not t.is_drum and t.notes]
    if not cands:
        raise BadInputError(f"{path}: the MIDI file has no (non-drum) notes to accompany")
    by_name = [t for t in cands if t.name.strip().lower() in ("melody", "vocals", "vocal", "lead", "voice")]
    track = by_name[0] if by_name else max(cands, key=lambda t: len(t.notes))
    return list(track.sorted().notes), grid


class _Staged:
    """Temporary files in ``folder`` renamed to their final names together by :meth:`commit`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.pending: dict[Path, Path] = {}

    def path(self, name: str) -> Path:
        final = self.folder / name
        tmp = self.folder / f".{final.stem}.partial-{secrets.token_hex(4)}{final.suffix}"
        self.pending[final] = tmp
        return tmp

    def commit(self) -> dict[str, Path]:
        for final, tmp in self.pending.items():
            os.replace(tmp, final)
        done = {f.name: f for f in self.pending}
        self.pending = {}
        return done

    def discard(self) -> None:
        for tmp in self.pending.values():
            with contextlib.suppress(OSError):
                tmp.unlink()


def accompany(
    input: str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str],
    style: str = "pop",
    key: str | None = "auto",
    tempo: str | float | None = "auto",
    seed: int = 0,
    renderer: str = "auto",
    progress: Progress | None = None,
) -> AccompanyResult:
    """Arrange and render a backing band for a solo vocal recording or a melody MIDI file.

    Args:
        input: audio file (any format :func:`stemscribe.audio.load` reads) or ``.mid``.
        out_dir: folder for the five outputs (created if needed; existing outputs are replaced).
        style: ``pop``, ``rock``, ``ballad``, ``funk`` or ``electronic``.
        key: ``"auto"``/None to detect it, or a key name such as ``"A minor"``, ``"F#"``.
        tempo: ``"auto"``/None to follow the singer (tempo may drift), or a fixed BPM.
        seed: the arrangement's random choices (fills, humanising) follow this seed.
        renderer: ``"auto"`` (SoundFont if available, else built-in), ``"soundfont"``, ``"builtin"``.

    Raises:
        BadArgumentError: unknown style, key, tempo or renderer.
        BadInputError: unreadable input, too short, silence/no notes, speech instead of singing.
        OutputError: the output folder cannot be written.
    """
    from ..atomic import ensure_dir
    from . import harmony
    from .arrange import arrange
    from .beats import track_beats
    from .styles import get_style

    sty = get_style(style)
    key_arg = None if key is None or str(key).strip().lower() == "auto" else str(key)
    if key_arg is not None:
        harmony.parse_key(key_arg)
    bpm = parse_tempo(tempo)
    if renderer not in ("auto", "soundfont", "builtin"):
        raise BadArgumentError(f"unknown renderer {renderer!r}: use auto, soundfont or builtin")
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        raise BadArgumentError(f"--seed {seed!r} is not an integer") from None
    path = Path(input)
    name = path.name

    report_progress(progress, "load", 0.0)
    vocal: Audio | None = None
    analysis_info: dict[str, Any] = {}
    if path.suffix.lower() in MIDI_SUFFIXES:
        notes, file_grid = _melody_from_midi(path)
        duration = max(n.end for n in notes)
        if duration - min(n.start for n in notes) < 4.0:
            raise BadInputError(f"{name}: the melody lasts {duration:.1f} s; give at least 4 s to accompany")
        if len(notes) < 4:
            raise BadInputError(f"{name}: found only {len(notes)} notes; need at least 4 to find a key and chords")
        report_progress(progress, "tempo", 0.0)
        if bpm is None and len(file_grid.beats) >= 2:
            grid = file_grid
        else:
            grid = track_beats(notes, duration, tempo=bpm or file_grid.tempo, per_bar=file_grid.time_signature[0] or 4)
        sr = _MIDI_SR
        source = "midi"
    else:
        from ..audio import load
        from .voice import MIN_NOTES, analyse_voice, check_singing, vocal_notes

        vocal = load(path)
        report_progress(progress, "load", 1.0)
        report_progress(progress, "analyse", 0.0)
        if vocal.duration < 4.0:
            raise BadInputError(f"{name} is {vocal.duration:.1f} s long; give at least 4 s of singing to accompany")
        va = analyse_voice(vocal, transcribe=False)
        check_singing(vocal, va, name, check_notes=False)
        report_progress(progress, "analyse", 0.3)
        notes = sorted(vocal_notes(vocal, va), key=lambda n: n.start)
        if len(notes) < MIN_NOTES:
            raise BadInputError(
                f"{name}: found only {len(notes)} sung notes; need at least {MIN_NOTES} to find a key and chords"
            )
        analysis_info = {"voiced_ratio": round(va.voiced_ratio, 3), "stable_pitch_ratio": round(va.stable_ratio, 3),
                         "notes": len(notes)}
        report_progress(progress, "analyse", 1.0)
        report_progress(progress, "tempo", 0.0)
        duration = vocal.duration
        from .beats import audio_envelope

        grid = track_beats(notes, duration, tempo=bpm, audio_env=audio_envelope(vocal.mono(), vocal.sr))
        sr = vocal.sr
        source = "audio"
    report_progress(progress, "tempo", 1.0)

    report_progress(progress, "harmonise", 0.0)
    first, last = min(n.start for n in notes), max(n.end for n in notes)
    harm = harmony.harmonize(notes, grid, key=key_arg, t_end=last)
    report_progress(progress, "harmonise", 1.0)

    report_progress(progress, "arrange", 0.0)
    center = float(np.median([n.pitch for n in notes]))
    arr = arrange(harm.chords, grid, sty, start=first, end=last, seed=seed, melody_center=center)
    report_progress(progress, "arrange", 1.0)

    report_progress(progress, "render", 0.0)
    backing, used = _render(arr.tracks, int(sr), renderer, seed)
    if vocal is not None:
        voice = vocal.samples.astype(np.float64)
        if voice.shape[0] == 1:
            voice = np.repeat(voice, 2, axis=0)
    else:
        from ..midi import GM_PROGRAMS

        lead = NoteTrack("melody", notes, GM_PROGRAMS.get("vocals", 53))
        voice = _render([lead], int(sr), renderer, seed)[0].samples.astype(np.float64)
    b = backing.samples.astype(np.float64)
    if b.shape[0] != voice.shape[0]:
        b = np.repeat(b.mean(axis=0, keepdims=True), voice.shape[0], axis=0)
    # the renderer's release tails can run long: keep 2 s after the last bar (fading the cut)
    keep = max(voice.shape[1], int((arr.end + 2.0) * sr))
    if b.shape[1] > keep:
        b = b[:, :keep].copy()
        fade = min(int(0.5 * sr), keep)
        b[:, keep - fade:] *= np.linspace(1.0, 0.0, fade)
    n = max(voice.shape[1], b.shape[1])
    voice = np.pad(voice, ((0, 0), (0, n - voice.shape[1])))
    b = np.pad(b, ((0, 0), (0, n - b.shape[1])))
    v_rms, b_rms = _active_rms(voice, sr), _active_rms(b, sr)
    gain = (v_rms * 10 ** (sty.level_db / 20) / b_rms) if b_rms > 0 and v_rms > 0 else 0.0
    b *= gain
    # keep the sum from clipping by turning the backing down (never the voice), at most 12 dB
    for _ in range(12):
        if np.max(np.abs(voice + b)) <= 0.999 or np.max(np.abs(voice)) >= 0.999:
            break
        b *= 10 ** (-1 / 20)
        gain *= 10 ** (-1 / 20)
    song = voice + b
    report_progress(progress, "render", 1.0)

    chords = [(round(s, 3), round(e, 3), lab) for s, e, lab in arr.chords]
    report = {
        "input": str(path),
        "source": source,
        "key": harm.key,
        "tempo": round(float(grid.tempo), 2),
        "style": sty.name,
        "seed": seed,
        "chords": [list(c) for c in chords],
        "beats": [round(float(t), 3) for t in grid.beats if -1e-9 <= t <= n / sr],
        "downbeats": [round(float(t), 3) for t in grid.downbeats if -1e-9 <= t <= n / sr],
        "duration": round(n / sr, 3),
        "backing": {"start": round(arr.start, 3), "end": round(arr.end, 3), "renderer": used,
                    "gain_db": round(20 * np.log10(gain), 2) if gain > 0 else None},
        "onset_alignment_70ms": round(onset_alignment(np.array([x.start for x in notes]), grid.beats), 3),
        "analysis": analysis_info,
        "tracks": {t.name: len(t.notes) for t in arr.tracks},
    }

    report_progress(progress, "write", 0.0)
    from ..audio import write as write_audio
    from ..midi import write_midi

    out = ensure_dir(out_dir)
    staged = _Staged(out)
    try:
        melody_track = NoteTrack("melody", notes, 53 if source == "audio" else 0)
        write_midi(staged.path("melody.mid"), [melody_track], grid)
        write_midi(staged.path("arrangement.mid"), arr.tracks, grid)
        write_audio(staged.path("backing.wav"), Audio(b.astype(np.float32), sr))
        write_audio(staged.path("song.wav"), Audio(song.astype(np.float32), sr))
        rp = staged.path("report.json")
        rp.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        files = staged.commit()
    except BaseException:
        staged.discard()
        raise
    report_progress(progress, "write", 1.0)
    return AccompanyResult(out, files, report, harm.key, float(grid.tempo), chords, arr.tracks)
