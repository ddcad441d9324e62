"""Jobs of the web app: a SQLite store, the worker threads that run the split, live progress events.

A job is one uploaded song. Its files live in ``<data>/jobs/<job id>/``: the upload as
``song.<ext>``, the split's output under ``out/``, and a cached ``all.zip``. The database row holds
the options, the status (``queued`` → ``running`` → ``done`` | ``failed`` | ``cancelled``), the
progress and the result's file names relative to the job folder. Job ids are 32 lowercase hex
digits (a UUID4); anything else is refused before it gets near the file system.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import re
import shutil
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import BadArgumentError, Cancelled, StemscribeError
from ..types import STEM_NAMES

log = logging.getLogger("stemscribe.web")

JOB_ID_RE = re.compile(r"^[0-9a-f]{32}$")
TERMINAL = frozenset({"done", "failed", "cancelled"})

#: The pipeline's stages in order, with the share of the whole job each one usually takes.
STAGES: tuple[tuple[str, float], ...] = (
    ("load", 0.04),
    ("separate", 0.56),
    ("tempo", 0.06),
    ("transcribe", 0.24),
    ("report", 0.04),
    ("write", 0.06),
)

#: Quantize grids offered in the page (``None`` = keep the played timing).
GRIDS: tuple[str, ...] = ("1/4", "1/8", "1/16", "1/32", "1/8t", "1/16t")

#: Models known to the pipeline, used when ``stemscribe.models`` cannot list them.
FALLBACK_MODELS: tuple[str, ...] = ("htdemucs", "htdemucs_ft", "lite")

INTERRUPTED = "Interrupted: stemscribe stopped while this song was being processed. Press Retry to run it again."
CANCELLED = "Cancelled."

SplitFn = Callable[..., Any]


def new_job_id() -> str:
    """A fresh job id: 32 lowercase hex digits."""
    return uuid.uuid4().hex


def valid_job_id(job_id: str) -> bool:
    """True when ``job_id`` has the shape of a job id (so it is safe inside a path)."""
    return bool(JOB_ID_RE.match(job_id or ""))


def model_choices() -> list[dict[str, Any]]:
    """The separation models a job may ask for: ``[{"name", "available", "description"}]``."""
    try:
        from ..models import list_models
    except ImportError:
        return [{"name": m, "available": True, "description": ""} for m in FALLBACK_MODELS]
    out = []
    for info in list_models():
        name = getattr(info, "name", None) or str(info)
        available = getattr(info, "available_offline", getattr(info, "available", True))
        available = available() if callable(available) else bool(available)
        description = getattr(info, "description", "") or ""
        out.append({"name": str(name), "available": available, "description": str(description)})
    return out


@dataclass(frozen=True)
class JobOptions:
    """What a job asks the pipeline for. ``None`` means the pipeline's default."""

    model: str | None = None
    stems: tuple[str, ...] | None = None
    format: str = "wav"
    quantize: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        model: str | None = None,
        stems: str | Sequence[str] | None = None,
        format: str | None = None,
        quantize: str | None = None,
    ) -> "JobOptions":
        """Validate options as they come from a request; raises :class:`BadArgumentError`."""
        from ..pipeline import AUDIO_FORMATS, validate_stems

        model = (model or "").strip() or None
        if model in ("default", "auto"):
            model = None
        if model is not None:
            names = [m["name"] for m in model_choices()]
            if model not in names:
                raise BadArgumentError(f"unknown model {model!r}: choose from {', '.join(names)}")
        chosen = validate_stems(stems or None)
        fmt = (format or "wav").strip().lower()
        if fmt not in AUDIO_FORMATS:
            raise BadArgumentError(f"unknown audio format {fmt!r}: choose from {', '.join(AUDIO_FORMATS)}")
        grid = (quantize or "").strip().lower() or None
        if grid in ("off", "none"):
            grid = None
        if grid is not None:
            from ..midi import parse_grid

            parse_grid(grid)
        return cls(model, None if chosen == STEM_NAMES else tuple(chosen), fmt, grid)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "stems": list(self.stems) if self.stems else None,
            "format": self.format,
            "quantize": self.quantize,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "JobOptions":
        stems = d.get("stems")
        return cls(d.get("model"), tuple(stems) if stems else None, d.get("format", "wav"), d.get("quantize"))


@dataclass
class Job:
    """One row of the job table."""

    id: str
    name: str
    input_file: str
    options: JobOptions = field(default_factory=JobOptions)
    status: str = "queued"
    stage: str | None = None
    stem: str | None = None
    stage_fraction: float = 0.0
    progress: float = 0.0
    error: str | None = None
    result: dict[str, Any] | None = None
    size: int = 0
    duration: float | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None

    def public(self) -> dict[str, Any]:
        """What the API shows: no file-system paths."""
        result = None
        if self.result:
            result = {
                "model": self.result.get("model"),
                "stems": sorted(self.result.get("stems", {}), key=_stem_order),
                "midi": sorted(self.result.get("midi", {}), key=_stem_order),
                "combined_midi": bool(self.result.get("combined_midi")),
                "report": bool(self.result.get("report")),
            }
        return {
            "id": self.id,
            "name": self.name,
            "options": self.options.to_dict(),
            "status": self.status,
            "stage": self.stage,
            "stem": self.stem,
            "stage_fraction": round(self.stage_fraction, 4),
            "progress": round(self.progress, 4),
            "error": self.error,
            "result": result,
            "size": self.size,
            "duration": self.duration,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
        }


def _stem_order(stem: str) -> int:
    return STEM_NAMES.index(stem) if stem in STEM_NAMES else len(STEM_NAMES)


_COLUMNS = (
    "id", "name", "input_file", "options", "status", "stage", "stem", "stage_fraction", "progress",
    "error", "result", "size", "duration", "created", "started", "finished",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    input_file TEXT NOT NULL,
    options TEXT NOT NULL,
    status TEXT NOT NULL,
    stage TEXT,
    stem TEXT,
    stage_fraction REAL NOT NULL DEFAULT 0,
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    result TEXT,
    size INTEGER NOT NULL DEFAULT 0,
    duration REAL,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created);
"""


class JobStore:
    """Jobs persisted in one SQLite file; safe to use from several threads."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = Path(db_path)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    @staticmethod
    def _row_to_job(row: Sequence[Any]) -> Job:
        d = dict(zip(_COLUMNS, row))
        d["options"] = JobOptions.from_dict(json.loads(d["options"]))
        d["result"] = json.loads(d["result"]) if d["result"] else None
        return Job(**d)

    @staticmethod
    def _to_row(values: Mapping[str, Any]) -> dict[str, Any]:
        row = dict(values)
        if "options" in row:
            row["options"] = json.dumps(row["options"].to_dict())
        if "result" in row:
            row["result"] = json.dumps(row["result"]) if row["result"] is not None else None
        return row

    def add(self, job: Job) -> None:
        row = self._to_row({c: getattr(job, c) for c in _COLUMNS})
        with self._lock, self._connect() as db:
            db.execute(f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                       [row[c] for c in _COLUMNS])

    def get(self, job_id: str) -> Job | None:
        with self._connect() as db:
            row = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._row_to_job(row) if row else None

    def list(self) -> list[Job]:
        """All jobs, newest first."""
        with self._connect() as db:
            rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs ORDER BY created DESC").fetchall()
        return [self._row_to_job(r) for r in rows]

    def update(self, job_id: str, **values: Any) -> Job | None:
        """Set some columns of a job; returns the updated job (``None`` if it is gone)."""
        unknown = set(values) - set(_COLUMNS[1:])
        if unknown:
            raise ValueError(f"unknown job fields {sorted(unknown)}")
        row = self._to_row(values)
        with self._lock, self._connect() as db:
            db.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in row)} WHERE id = ?", [*row.values(), job_id])
        return self.get(job_id)

    def delete(self, job_id: str) -> bool:
        with self._lock, self._connect() as db:
            return db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def ids_with_status(self, status: str) -> list[str]:
        """Ids of jobs in ``status``, oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT id FROM jobs WHERE status = ? ORDER BY created", (status,)).fetchall()
        return [r[0] for r in rows]


class EventBroker:
    """Fans job events out to the open event streams (one asyncio queue per stream).

    ``publish`` may be called from any thread; each subscriber's queue is fed on its own loop.
    """

    def __init__(self) -> None:
        self._subs: dict[asyncio.Queue, asyncio.AbstractEventLoop] = {}
        self._lock = threading.Lock()
        self.closed = False

    def subscribe(self) -> asyncio.Queue:
        """A queue of events for the calling coroutine's loop; ``None`` in it means "stop"."""
        q: asyncio.Queue = asyncio.Queue(maxsize=1000)
        with self._lock:
            self._subs[q] = asyncio.get_running_loop()
        if self.closed:
            q.put_nowait(None)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        with self._lock:
            self._subs.pop(q, None)

    def publish(self, event: Mapping[str, Any] | None) -> None:
        with self._lock:
            subs = list(self._subs.items())
        for q, loop in subs:
            try:
                loop.call_soon_threadsafe(_put, q, event)
            except RuntimeError:  # that stream's loop is closed
                self.unsubscribe(q)

    def close(self) -> None:
        """Ask every open stream to end (the server is stopping)."""
        self.closed = True
        self.publish(None)


def _put(q: asyncio.Queue, event: Mapping[str, Any] | None) -> None:
    try:
        q.put_nowait(event)
    except asyncio.QueueFull:  # a stalled client; it refetches the state when it reconnects
        pass


def job_event(job: Job) -> dict[str, Any]:
    return {"type": "job", "job": job.public()}


class _ProgressTracker:
    """The progress callback given to the pipeline: cancels, maps stages to one overall fraction,
    and throttles what reaches the event streams (10 per second) and the database (1 per second)."""

    def __init__(self, runner: "JobRunner", job: Job, cancel: threading.Event) -> None:
        self.runner = runner
        self.job = job
        self.cancel = cancel
        self._last_publish = 0.0
        self._last_store = 0.0

    def __call__(self, event: Mapping[str, Any]) -> None:
        if self.cancel.is_set():
            raise Cancelled("cancelled by the user")
        stage = str(event.get("stage") or self.job.stage or "")
        try:
            fraction = min(max(float(event.get("fraction", 0.0)), 0.0), 1.0)
        except (TypeError, ValueError):
            fraction = 0.0
        stem = event.get("stem")
        stem = stem if isinstance(stem, str) and stem in STEM_NAMES else None
        changed = stage != self.job.stage or stem != self.job.stem
        self.job.stage, self.job.stem, self.job.stage_fraction = stage, stem, fraction
        offset = 0.0
        for name, weight in STAGES:
            if name == stage:
                self.job.progress = max(self.job.progress, min(offset + weight * fraction, 0.999))
                break
            offset += weight
        now = time.monotonic()
        if changed or now - self._last_store >= 1.0:
            self._last_store = now
            self.runner.store.update(
                self.job.id, stage=stage, stem=stem, stage_fraction=fraction, progress=self.job.progress
            )
        if changed or now - self._last_publish >= 0.1:
            self._last_publish = now
            self.runner.broker.publish(job_event(self.job))


class JobRunner:
    """Runs queued jobs on ``workers`` threads, one job per thread at a time.

    ``split`` is :func:`stemscribe.pipeline.split` unless a test gives another function with the
    same signature. The separation models live in the pipeline's per-process cache, so every job
    after the first reuses them.
    """

    def __init__(
        self,
        store: JobStore,
        jobs_dir: Path,
        broker: EventBroker,
        *,
        workers: int = 1,
        split: SplitFn | None = None,
        model_dir: Path | None = None,
    ) -> None:
        if workers < 1:
            raise BadArgumentError(f"workers must be at least 1, got {workers}")
        self.store = store
        self.jobs_dir = Path(jobs_dir)
        self.broker = broker
        self.workers = workers
        self.model_dir = model_dir
        self._split = split
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._active: dict[str, threading.Event] = {}
        self._doomed: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = False

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Mark jobs a previous run left running as failed, queue the waiting ones, start workers."""
        for job_id in self.store.ids_with_status("running"):
            self.store.update(job_id, status="failed", error=INTERRUPTED, finished=time.time())
            log.warning("job %s was interrupted by a restart; marked failed", job_id)
        for job_id in self.store.ids_with_status("queued"):
            self._queue.put(job_id)
        self._stopping = False
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"stemscribe-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the workers; a running job is stopped and left marked as interrupted."""
        self._stopping = True
        with self._lock:
            for ev in self._active.values():
                ev.set()
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]

    # ----------------------------------------------------------------- actions
    def job_dir(self, job_id: str) -> Path:
        if not valid_job_id(job_id):
            raise BadArgumentError(f"not a job id: {job_id!r}")
        return self.jobs_dir / job_id

    def submit(self, job: Job) -> None:
        self.store.add(job)
        self.broker.publish(job_event(job))
        self._queue.put(job.id)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued or running job. A running one stops at its next progress event."""
        job = self.store.get(job_id)
        if job is None or job.status in TERMINAL:
            return job
        with self._lock:
            ev = self._active.get(job_id)
            if ev is not None:
                ev.set()
                return job
            job = self.store.update(job_id, status="cancelled", error=CANCELLED, finished=time.time())
        if job is not None:
            self.broker.publish(job_event(job))
        return job

    def retry(self, job_id: str) -> Job:
        """Queue a failed or cancelled job again with the same upload and options."""
        job = self.store.get(job_id)
        if job is None:
            raise BadArgumentError("no such job")
        if job.status not in ("failed", "cancelled"):
            raise BadArgumentError(f"only a failed or cancelled job can be retried (this one is {job.status})")
        if not (self.job_dir(job_id) / job.input_file).is_file():
            raise BadArgumentError("the uploaded file of this job is gone; upload the song again")
        job = self.store.update(
            job_id, status="queued", stage=None, stem=None, stage_fraction=0.0, progress=0.0, error=None,
            result=None, started=None, finished=None,
        )
        assert job is not None
        self.broker.publish(job_event(job))
        self._queue.put(job_id)
        return job

    def delete(self, job_id: str) -> bool:
        """Forget a job and delete its files (a running job's files go as soon as it stops)."""
        existed = self.store.delete(job_id)
        with self._lock:
            ev = self._active.get(job_id)
            if ev is not None:
                ev.set()
                self._doomed.add(job_id)
        if ev is None:
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        if existed:
            self.broker.publish({"type": "deleted", "id": job_id})
        return existed

    # ----------------------------------------------------------------- worker
    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None or self._stopping:
                return
            try:
                self._run(job_id)
            except Exception:  # never let one job kill the worker
                log.exception("worker error on job %s", job_id)

    def _run(self, job_id: str) -> None:
        cancel = threading.Event()
        with self._lock:
            job = self.store.get(job_id)
            if job is None or job.status != "queued":
                return
            self._active[job_id] = cancel
            job = self.store.update(
                job_id, status="running", started=time.time(), stage="load", stem=None, stage_fraction=0.0,
                progress=0.0, error=None,
            )
        assert job is not None
        self.broker.publish(job_event(job))
        job_dir = self.job_dir(job_id)
        out_dir = job_dir / "out"
        shutil.rmtree(out_dir, ignore_errors=True)
        (job_dir / "all.zip").unlink(missing_ok=True)
        tracker = _ProgressTracker(self, job, cancel)
        final: dict[str, Any]
        try:
            split = self._split
            if split is None:
                from ..pipeline import split
            opts = job.options
            result = split(
                job_dir / job.input_file,
                out_dir=out_dir,
                model=opts.model,
                stems=list(opts.stems) if opts.stems else None,
                format=opts.format,
                quantize=opts.quantize,
                model_dir=self.model_dir,
                progress=tracker,
            )
            record = _result_record(result, job_dir)
            duration = (getattr(result, "report", None) or {}).get("duration_seconds", job.duration)
            final = {"status": "done", "result": record, "progress": 1.0, "stage_fraction": 1.0, "duration": duration}
        except Cancelled:
            shutil.rmtree(out_dir, ignore_errors=True)
            if self._stopping:
                final = {"status": "failed", "error": INTERRUPTED}
            else:
                final = {"status": "cancelled", "error": CANCELLED}
        except StemscribeError as exc:
            shutil.rmtree(out_dir, ignore_errors=True)
            final = {"status": "failed", "error": str(exc)}
        except Exception as exc:
            log.exception("job %s failed", job_id)
            shutil.rmtree(out_dir, ignore_errors=True)
            final = {"status": "failed", "error": f"Internal error ({type(exc).__name__}): {exc}"}
        with self._lock:
            self._active.pop(job_id, None)
            doomed = job_id in self._doomed
            self._doomed.discard(job_id)
        if doomed:
            shutil.rmtree(job_dir, ignore_errors=True)
            return
        updated = self.store.update(job_id, finished=time.time(), **final)
        if updated is not None:
            self.broker.publish(job_event(updated))


def _result_record(result: Any, job_dir: Path) -> dict[str, Any]:
    """The split result as file names relative to the job folder (checked to lie inside it)."""
    root = job_dir.resolve()

    def rel(path: Any) -> str | None:
        if not path:
            return None
        p = Path(path).resolve()
        if not p.is_file() or not p.is_relative_to(root):
            raise StemscribeError(f"the split wrote an unexpected file: {path}")
        return p.relative_to(root).as_posix()

    report_path = getattr(result, "report_path", None)
    if report_path is None and getattr(result, "out_dir", None):
        candidate = Path(result.out_dir) / "report.json"
        report_path = candidate if candidate.is_file() else None
    return {
        "model": getattr(result, "model", None),
        "stems": {s: rel(p) for s, p in result.stems.items() if s in STEM_NAMES},
        "midi": {s: rel(p) for s, p in (getattr(result, "midi", None) or {}).items() if s in STEM_NAMES},
        "combined_midi": rel(getattr(result, "combined_midi", None)),
        "report": rel(report_path),
    }

