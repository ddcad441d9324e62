"""Listening to a solo vocal: is it singing, and which notes does it sing?

``analyse_voice`` tracks f0 with pYIN (on a 16 kHz mono copy) and measures:

- ``voiced_ratio``: voiced frames / frames with sound (above -45 dB from the loudest 50 ms),
  reported only: reverb and breathy takes make it unreliable;
- ``stable_ratio``: voiced frames whose pitch stays within ``STABLE_SEMITONES`` over a
  ``STABLE_WINDOW_S`` window that is voiced throughout. Sung notes hold their pitch (vibrato
  included); speech glides through every syllable, so speech scores low.

``check_singing`` rejects clips under ``MIN_SECONDS``, with under ``MIN_VOICED_SECONDS`` of voiced
sound ("no voice"), or with ``stable_ratio < MIN_STABLE_RATIO`` ("speech").

The notes come from :func:`stemscribe.transcribe.pitched.transcribe_pitched` (``stem="vocals"``);
if that transcriber is unavailable, from segmenting the pYIN track at rests and pitch jumps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import BadInputError
from ..types import Audio, Note, NoteTrack

__all__ = ["VoiceAnalysis", "analyse_voice", "check_singing", "notes_from_f0", "vocal_notes",
           "MIN_SECONDS", "MIN_STABLE_RATIO", "MIN_VOICED_SECONDS", "MIN_NOTES"]

MIN_SECONDS = 4.0
MIN_NOTES = 4
MIN_VOICED_SECONDS = 0.5
MIN_STABLE_RATIO = 0.15
STABLE_WINDOW_S = 0.30
STABLE_SEMITONES = 1.6
_SR = 16000
_HOP = 256  # 16 ms


@dataclass
class VoiceAnalysis:
    """f0 track (``times``, ``midi`` with NaN where unvoiced, shape ``(n_frames,)``) and its statistics."""

    times: np.ndarray
    midi: np.ndarray
    active: np.ndarray
    voiced_ratio: float
    stable_ratio: float
    notes: list[Note] = field(default_factory=list)


def _pitch_track(audio: Audio) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import librosa

    y = audio.mono().astype(np.float32)
    if audio.sr != _SR:
        y = librosa.resample(y, orig_sr=audio.sr, target_sr=_SR, res_type="soxr_hq")
    f0, voiced, _ = librosa.pyin(
        y, fmin=65.0, fmax=1100.0, sr=_SR, frame_length=2048, hop_length=_HOP, resolution=0.2,
        center=True, fill_na=np.nan,
    )
    rms = librosa.feature.rms(y=y, frame_length=2048, hop_length=_HOP, center=True)[0]
    n = min(len(f0), len(rms))
    f0, voiced, rms = f0[:n], voiced[:n], rms[:n]
    db = 20 * np.log10(rms + 1e-9)
    loud = np.max(np.convolve(db, np.ones(3) / 3, mode="same")) if n else -180.0
    active = (db > loud - 45.0) & (db > -70.0)
    midi = np.where(voiced & active, 69.0 + 12.0 * np.log2(np.maximum(np.nan_to_num(f0, nan=1.0), 1e-3) / 440.0), np.nan)
    times = np.arange(n) * _HOP / _SR
    return times, midi, active


def _stable_ratio(midi: np.ndarray) -> float:
    voiced = ~np.isnan(midi)
    n_v = int(voiced.sum())
    if n_v == 0:
        return 0.0
    w = max(int(round(STABLE_WINDOW_S * _SR / _HOP)), 2)
    stable = np.zeros(len(midi), bool)
    for i in range(0, len(midi) - w + 1):
        seg = midi[i:i + w]
        if np.isnan(seg).any():
            continue
        if seg.max() - seg.min() <= STABLE_SEMITONES:
            stable[i:i + w] = True
    return float(np.sum(stable & voiced) / n_v)


def notes_from_f0(times: np.ndarray, midi: np.ndarray, *, min_dur: float = 0.09) -> list[Note]:
    """Segment an f0 track (MIDI pitch per frame, NaN unvoiced) into notes at rests and pitch jumps."""
    notes: list[Note] = []
    hop = float(times[1] - times[0]) if len(times) > 1 else _HOP / _SR
    i, n = 0, len(midi)
    while i < n:
        if np.isnan(midi[i]):
            i += 1
            continue
        j = i
        while j + 1 < n and not np.isnan(midi[j + 1]) and abs(midi[j + 1] - np.median(midi[max(i, j - 5):j + 1])) < 0.8:
            j += 1
        dur = (j - i + 1) * hop
        if dur >= min_dur:
            pitch = int(np.round(np.median(midi[i:j + 1])))
            notes.append(Note(pitch, float(times[i]), float(times[i] + dur), 90))
        i = j + 1
    return notes


def _transcribe(audio: Audio) -> list[Note] | None:
    try:
        from ..transcribe.pitched import transcribe_pitched
    except ImportError:  # transcriber not installed: fall back to the pYIN segmentation
        return None
    track: NoteTrack = transcribe_pitched(audio, stem="vocals")
    return list(track.notes)


def analyse_voice(audio: Audio, *, transcribe: bool = True) -> VoiceAnalysis:
    """f0 track, voicing statistics and (with ``transcribe``) the notes of a solo vocal ``audio``."""
    times, midi, active = _pitch_track(audio)
    n_active = int(active.sum())
    voiced_ratio = float(np.sum(~np.isnan(midi)) / n_active) if n_active else 0.0
    res = VoiceAnalysis(times, midi, active, voiced_ratio, _stable_ratio(midi))
    if transcribe:
        res.notes = vocal_notes(audio, res)
    return res


def vocal_notes(audio: Audio, analysis: VoiceAnalysis) -> list[Note]:
    """Sung notes: the vocal transcriber's, or the pYIN segmentation when it is unavailable."""
    notes = _transcribe(audio)
    return notes if notes is not None else notes_from_f0(analysis.times, analysis.midi)


def check_singing(audio: Audio, analysis: VoiceAnalysis, name: str = "input", *, check_notes: bool = True) -> None:
    """Raise :class:`BadInputError` (one line) unless ``analysis`` looks like a sung melody.

    ``check_notes=False`` skips the note-count check (when the notes are not transcribed yet).
    """
    if audio.duration < MIN_SECONDS:
        raise BadInputError(
            f"{name} is {audio.duration:.1f} s long; give at least {MIN_SECONDS:.0f} s of singing to accompany"
        )
    hop = float(analysis.times[1] - analysis.times[0]) if len(analysis.times) > 1 else _HOP / _SR
    voiced_s = float(np.sum(~np.isnan(analysis.midi))) * hop
    if not analysis.active.any() or voiced_s < MIN_VOICED_SECONDS:
        raise BadInputError(f"{name}: no voice found (silence or unpitched sound); give a solo vocal or melody recording")
    if analysis.stable_ratio < MIN_STABLE_RATIO:
        raise BadInputError(
            f"{name} sounds like speech, not singing (held pitch in {100 * analysis.stable_ratio:.0f}% of voiced time, "
            f"need {100 * MIN_STABLE_RATIO:.0f}%); give a sung melody"
        )
    if check_notes and len(analysis.notes) < MIN_NOTES:
        raise BadInputError(
            f"{name}: found only {len(analysis.notes)} sung notes; need at least {MIN_NOTES} to find a key and chords"
        )
