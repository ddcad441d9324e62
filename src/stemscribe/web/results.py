"""Reading a finished job: its files by kind, the notes for the piano roll, the zip of everything.

Files are found through the job's result record (names relative to the job folder), and each one
is checked to resolve inside that folder before it is served.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from ..types import STEM_NAMES
from .jobs import Job

#: General MIDI drum names for the drum grid (pitch -> label).
DRUM_NAMES: dict[int, str] = {
    35: "Kick", 36: "Kick", 37: "Side stick", 38: "Snare", 39: "Clap", 40: "Snare",
    41: "Low tom", 42: "Hi-hat closed", 43: "Low tom", 44: "Hi-hat pedal", 45: "Mid tom",
    46: "Hi-hat open", 47: "Mid tom", 48: "High tom", 49: "Crash", 50: "High tom", 51: "Ride",
    52: "China", 53: "Ride bell", 54: "Tambourine", 55: "Splash", 56: "Cowbell", 57: "Crash 2",
    59: "Ride 2",
}


def job_file(job_dir: Path, job: Job, kind: str, stem: str | None = None) -> Path | None:
    """The file of a finished job: ``kind`` is ``"stem"``, ``"midi"`` (per stem, or the combined
    file when ``stem`` is None) or ``"report"``. ``None`` when the job has no such file."""
    rec = job.result or {}
    if kind in ("stem", "midi") and stem is not None:
        if stem not in STEM_NAMES:
            return None
        rel = (rec.get("stems" if kind == "stem" else "midi") or {}).get(stem)
    elif kind == "midi":
        rel = rec.get("combined_midi")
    elif kind == "report":
        rel = rec.get("report")
    else:
        return None
    if not rel:
        return None
    root = job_dir.resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def download_name(job: Job, kind: str, stem: str | None, path: Path) -> str:
    """``"<song> - drums.wav"``, ``"<song> - bass.mid"``, ``"<song>.mid"``..."""
    base = Path(job.name).stem or "song"
    if kind == "report":
        return f"{base} - report.json"
    if stem is None:
        return f"{base}{path.suffix}"
    return f"{base} - {stem}{path.suffix}"


def content_disposition(filename: str, *, attachment: bool = True) -> str:
    """A Content-Disposition header with a plain ASCII ``filename`` (for curl -J and old clients)
    and the exact UTF-8 name in ``filename*`` (RFC 6266)."""
    from urllib.parse import quote

    plain = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in filename)
    kind = "attachment" if attachment else "inline"
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


def roll_notes(path: Path) -> dict[str, Any]:
    """The notes of one MIDI file for the piano roll.

    Returns ``{"is_drum": bool, "program": int, "notes": [[pitch, start_s, end_s, velocity], ...],
    "drum_names": {pitch: label}}`` with times in seconds, sorted by start.
    """
    from ..midi import read_midi

    tracks, _ = read_midi(path)
    notes = [n for t in tracks for n in t.notes]
    notes.sort(key=lambda n: (n.start, n.pitch))
    is_drum = any(t.is_drum for t in tracks)
    program = next((t.program for t in tracks if not t.is_drum), 0)
    out: dict[str, Any] = {
        "is_drum": is_drum,
        "program": int(program),
        "notes": [[int(n.pitch), round(float(n.start), 4), round(float(n.end), 4), int(n.velocity)] for n in notes],
    }
    if is_drum:
        out["drum_names"] = {str(p): DRUM_NAMES.get(p, f"Drum {p}") for p in sorted({n.pitch for n in notes})}
    return out


def read_report(path: Path | None) -> dict[str, Any]:
    """The job's report.json (``{}`` if it has none)."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def build_zip(job_dir: Path, job: Job) -> Path:
    """``job_dir/all.zip`` with every stem, MIDI file and the report, built once and cached.

    Inside, files sit in a folder named after the song. Audio is stored (it does not compress),
    the rest deflated.
    """
    from ..atomic import atomic_output

    target = job_dir / "all.zip"
    if target.is_file():
        return target
    folder = Path(job.name).stem or "song"
    entries: list[tuple[Path, str]] = []
    for stem in STEM_NAMES:
        for kind in ("stem", "midi"):
            p = job_file(job_dir, job, kind, stem)
            if p is not None:
                entries.append((p, download_name(job, kind, stem, p)))
    for kind in ("midi", "report"):
        p = job_file(job_dir, job, kind)
        if p is not None:
            entries.append((p, download_name(job, kind, None, p)))
    with atomic_output(target) as tmp:
        with zipfile.ZipFile(tmp, "w") as zf:
            for path, arcname in entries:
                compress = zipfile.ZIP_STORED if path.suffix in (".wav", ".flac", ".mp3") else zipfile.ZIP_DEFLATED
                zf.write(path, f"{folder}/{arcname}", compress_type=compress)
    return target
