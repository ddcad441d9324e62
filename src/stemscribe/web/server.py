"""HTTP routes of the web app (``create_app``); the work itself lives in ``jobs``/``uploads``/``results``.

API (JSON unless noted; changing requests need the header ``X-Stemscribe: 1``)::

    GET    /api/options                      models, stems, formats, grids, upload limit
    GET    /api/jobs                         all jobs, newest first
    POST   /api/jobs?name=&model=&stems=&format=&quantize=    body: the audio file (raw bytes, or a
                                                              multipart/form-data file field)
    GET    /api/jobs/{id}                    one job
    GET    /api/jobs/{id}/events             server-sent events for one job; ends when it finishes
    GET    /api/events                       server-sent events for all jobs
    POST   /api/jobs/{id}/cancel | /retry
    DELETE /api/jobs/{id}                    forget the job and delete its files
    GET    /api/jobs/{id}/notes              piano-roll notes per stem
    GET    /api/jobs/{id}/report             report.json
    GET    /api/jobs/{id}/files/stem/{stem}  the stem's audio      (?download=1 for an attachment)
    GET    /api/jobs/{id}/files/midi/{stem}  the stem's MIDI
    GET    /api/jobs/{id}/files/midi         the combined MIDI
    GET    /api/jobs/{id}/files/zip          everything in one zip
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ..errors import BadArgumentError, OutputError, StemscribeError
from ..types import STEM_NAMES
from . import jobs as jobs_mod
from .jobs import EventBroker, Job, JobOptions, JobRunner, JobStore, SplitFn, job_event, valid_job_id

log = logging.getLogger("stemscribe.web")

STATIC_DIR = Path(__file__).resolve().parent / "static"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
CSRF_HEADER = "x-stemscribe"
HEARTBEAT_S = 15.0
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass
class Settings:
    """How the app runs. ``allowed_hosts`` lists the Host header names accepted (``None`` = any);
    ``split`` replaces :func:`stemscribe.pipeline.split` (tests)."""

    data_dir: Path
    workers: int = 1
    max_upload_mb: float = 500.0
    allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS
    model_dir: Path | None = None
    split: SplitFn | None = field(default=None, repr=False)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)


def create_app(settings: Settings) -> FastAPI:
    """Build the application. Workers start with the app's lifespan and stop with it."""
    from . import results, uploads

    if settings.max_upload_mb <= 0:
        raise BadArgumentError(f"the upload limit must be positive, got {settings.max_upload_mb} MB")
    data_dir = Path(settings.data_dir)
    jobs_dir = data_dir / "jobs"
    try:
        jobs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the data folder {data_dir}: {exc.strerror or exc}") from None
    store = JobStore(data_dir / "stemscribe.sqlite3")
    broker = EventBroker()
    runner = JobRunner(
        store, jobs_dir, broker, workers=settings.workers, split=settings.split, model_dir=settings.model_dir
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner.start()
        try:
            yield
        finally:
            broker.close()
            await run_in_threadpool(runner.stop)

    app = FastAPI(title="stemscribe", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.settings = settings
    app.state.runner = runner
    app.state.store = store
    app.state.broker = broker

    # ---------------------------------------------------------------- guards
    @app.middleware("http")
    async def guard(request: Request, call_next):
        if settings.allowed_hosts is not None:
            host = _hostname(request.headers.get("host", ""))
            if host not in settings.allowed_hosts:
                return JSONResponse({"detail": f"unknown host {host!r}"}, status_code=421)
        if request.method not in ("GET", "HEAD", "OPTIONS") and request.headers.get(CSRF_HEADER) != "1":
            return JSONResponse(
                {"detail": f"missing header {CSRF_HEADER.title()}: 1 (it keeps other web sites out)"}, status_code=403
            )
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", CSP)
        if request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-cache"  # revalidate (ETag): fresh after an upgrade
        return response

    @app.exception_handler(StemscribeError)
    async def stemscribe_error(request: Request, exc: StemscribeError) -> JSONResponse:
        status = getattr(exc, "status", 400)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    def error(status: int, detail: str) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=status)

    def find_job(job_id: str) -> Job | None:
        return store.get(job_id) if valid_job_id(job_id) else None

    no_job = "No such job (it may have been deleted)."

    # ---------------------------------------------------------------- pages
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # ---------------------------------------------------------------- jobs
    @app.get("/api/options")
    async def options() -> dict[str, Any]:
        from ..pipeline import AUDIO_FORMATS

        models = await run_in_threadpool(jobs_mod.model_choices)
        return {
            "models": models,
            "stems": list(STEM_NAMES),
            "formats": list(AUDIO_FORMATS),
            "grids": list(jobs_mod.GRIDS),
            "max_upload_mb": settings.max_upload_mb,
            "stages": [s for s, _ in jobs_mod.STAGES],
        }

    @app.get("/api/jobs")
    async def list_jobs() -> list[dict[str, Any]]:
        return [j.public() for j in store.list()]

    @app.post("/api/jobs", status_code=201)
    async def create_job(
        request: Request,
        name: str = "",
        model: str = "",
        stems: str = "",
        format: str = "wav",
        quantize: str = "",
    ):
        shown = uploads.display_name(name)
        opts = await run_in_threadpool(JobOptions.parse, model=model, stems=stems or None, format=format, quantize=quantize)
        content_type = request.headers.get("content-type", "")
        multipart = content_type.lower().startswith("multipart/form-data")
        declared = request.headers.get("content-length")
        envelope = uploads.MULTIPART_ENVELOPE if multipart else 0
        if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes + envelope:
            return error(413, f"“{shown}” is larger than the upload limit of {settings.max_upload_mb:g} MB "
                              "(start stemscribe with --max-upload-mb to raise it).")
        body = request.stream()
        if multipart:
            # curl -F song=@file and most HTTP libraries: take the file field; its name if none given
            info: dict[str, str] = {}
            body = uploads.multipart_file(body, content_type, limit=settings.max_upload_bytes, info=info)
            await anext(body, b"")  # the empty chunk it yields once the file part's headers are read
            if not name and info.get("filename"):
                shown = uploads.display_name(info["filename"])
        job_id = jobs_mod.new_job_id()
        job_dir = runner.job_dir(job_id)
        try:
            path, size = await uploads.receive(body, job_dir, limit=settings.max_upload_bytes, name=shown)
            duration = await run_in_threadpool(uploads.probe, path, shown)
        except BaseException:
            shutil.rmtree(job_dir, ignore_errors=True)
            raise
        job = Job(id=job_id, name=shown, input_file=path.name, options=opts, size=size, duration=duration)
        runner.submit(job)
        return job.public()

    @app.get("/api/jobs/{job_id}")
    async def get_job(job_id: str):
        job = find_job(job_id)
        return job.public() if job else error(404, no_job)

    @app.post("/api/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str):
        if find_job(job_id) is None:
            return error(404, no_job)
        job = await run_in_threadpool(runner.cancel, job_id)
        return job.public() if job else error(404, no_job)

    @app.post("/api/jobs/{job_id}/retry")
    async def retry_job(job_id: str):
        if find_job(job_id) is None:
            return error(404, no_job)
        job = await run_in_threadpool(runner.retry, job_id)
        return job.public()

    @app.delete("/api/jobs/{job_id}")
    async def delete_job(job_id: str):
        if find_job(job_id) is None:
            return error(404, no_job)
        await run_in_threadpool(runner.delete, job_id)
        return {"deleted": job_id}

    # ---------------------------------------------------------------- live progress
    def sse(event: dict[str, Any] | None) -> str:
        kind = event.get("type", "message") if event else "message"
        return f"event: {kind}\ndata: {json.dumps(event)}\n\n"

    async def stream(job_id: str | None) -> AsyncIterator[str]:
        q = broker.subscribe()
        try:
            yield "retry: 2000\n\n"
            if job_id is not None:
                job = store.get(job_id)
                if job is None:
                    yield sse({"type": "deleted", "id": job_id})
                    return
                yield sse(job_event(job))
                if job.status in jobs_mod.TERMINAL:
                    return
                # Events queued between subscribing and reading the snapshot are older than it.
                seen_progress = job.progress
            else:
                yield sse({"type": "hello", "time": time.time()})
            while True:
                try:
                    event = await asyncio.wait_for(q.get(), HEARTBEAT_S)
                except asyncio.TimeoutError:
                    yield ": ping\n\n"
                    continue
                if event is None:
                    return
                if job_id is not None:
                    ev_id = event.get("id") or event.get("job", {}).get("id")
                    if ev_id != job_id:
                        continue
                    ev_job = event.get("job") or {}
                    if ev_job.get("status") == "running" and ev_job.get("progress", 1.0) < seen_progress:
                        continue
                    seen_progress = max(seen_progress, ev_job.get("progress", seen_progress))
                yield sse(event)
                if job_id is not None and (
                    event["type"] == "deleted" or event["job"]["status"] in jobs_mod.TERMINAL
                ):
                    return
        finally:
            broker.unsubscribe(q)

    sse_headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

    @app.get("/api/events")
    async def all_events():
        return StreamingResponse(stream(None), media_type="text/event-stream", headers=sse_headers)

    @app.get("/api/jobs/{job_id}/events")
    async def job_events(job_id: str):
        if find_job(job_id) is None:
            return error(404, no_job)
        return StreamingResponse(stream(job_id), media_type="text/event-stream", headers=sse_headers)

    # ---------------------------------------------------------------- results
    def finished(job_id: str) -> Job | JSONResponse:
        job = find_job(job_id)
        if job is None:
            return error(404, no_job)
        if job.status != "done":
            return error(409, f"This job is {job.status}; results appear when it is done.")
        return job

    @app.get("/api/jobs/{job_id}/report")
    async def report(job_id: str):
        job = finished(job_id)
        if isinstance(job, Response):
            return job
        return results.read_report(results.job_file(runner.job_dir(job_id), job, "report"))

    @app.get("/api/jobs/{job_id}/notes")
    async def notes(job_id: str):
        job = finished(job_id)
        if isinstance(job, Response):
            return job
        job_dir = runner.job_dir(job_id)
        out = {}
        for stem in (job.result or {}).get("midi", {}):
            path = results.job_file(job_dir, job, "midi", stem)
            if path is not None:
                out[stem] = await run_in_threadpool(results.roll_notes, path)
        return out

    def send_file(job: Job, kind: str, stem: str | None, download: bool):
        path = results.job_file(runner.job_dir(job.id), job, kind, stem)
        if path is None:
            return error(404, "This job has no such file.")
        media = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".mid": "audio/midi"}
        name = results.download_name(job, kind, stem, path)
        return FileResponse(
            path,
            media_type=media.get(path.suffix, "application/octet-stream"),
            headers={"Content-Disposition": results.content_disposition(name, attachment=download)},
        )

    @app.get("/api/jobs/{job_id}/files/stem/{stem}")
    async def stem_file(job_id: str, stem: str, download: bool = False):
        job = finished(job_id)
        return job if isinstance(job, Response) else send_file(job, "stem", stem, download)

    @app.get("/api/jobs/{job_id}/files/midi/{stem}")
    async def midi_file(job_id: str, stem: str, download: bool = False):
        job = finished(job_id)
        return job if isinstance(job, Response) else send_file(job, "midi", stem, download)

    @app.get("/api/jobs/{job_id}/files/midi")
    async def combined_midi(job_id: str, download: bool = False):
        job = finished(job_id)
        return job if isinstance(job, Response) else send_file(job, "midi", None, download)

    @app.get("/api/jobs/{job_id}/files/zip")
    async def zip_all(job_id: str):
        job = finished(job_id)
        if isinstance(job, Response):
            return job
        path = await run_in_threadpool(results.build_zip, runner.job_dir(job_id), job)
        name = f"{Path(job.name).stem or 'song'} - stemscribe.zip"
        return FileResponse(path, media_type="application/zip", headers={"Content-Disposition": results.content_disposition(name)})

    return app


def _hostname(host: str) -> str:
    """``"127.0.0.1:8000"`` -> ``"127.0.0.1"``, ``"[::1]:8000"`` -> ``"::1"``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
