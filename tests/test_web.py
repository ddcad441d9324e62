"""The web app's HTTP API: uploads, live progress, results, downloads, bad uploads, path safety,
cancel/retry/delete, and a restart after a crash with a job in flight.

Most tests run the app with a fake ``split`` (same signature as :func:`stemscribe.pipeline.split`)
that writes small real files and reports progress; one runs the real pipeline on a devset song.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import soundfile as sf  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from stemscribe.errors import BadInputError  # noqa: E402
from stemscribe.types import STEM_NAMES, BeatGrid, Note, NoteTrack  # noqa: E402
from stemscribe.web.server import Settings, create_app  # noqa: E402

SR = 22050
DEVSONG = Path(__file__).resolve().parents[2] / "shared" / "data" / "devset" / "dev00" / "mixture.flac"


# --------------------------------------------------------------------------- a fake split


class FakeResult:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


def fake_notes(stem: str, seconds: float = 1.0) -> NoteTrack:
    """Known notes per stem, one bar of three per second: what the piano roll must give back."""
    notes = []
    for bar in range(max(1, int(seconds))):
        t = float(bar)
        if stem == "drums":
            notes += [Note(36, t, t + 0.1, 100), Note(38, t + 0.25, t + 0.35, 90), Note(42, t + 0.5, t + 0.55, 70)]
        else:
            base = {"bass": 40, "other": 60, "vocals": 67}[stem] + (bar % 3) * 2
            notes += [Note(base, t, t + 0.2, 80), Note(base + 4, t + 0.25, t + 0.45, 80), Note(base + 7, t + 0.5, t + 0.9, 80)]
    return NoteTrack(stem, notes, 0, stem == "drums")


def fake_split(
    source: Any,
    *,
    out_dir: Any,
    model: str | None = None,
    stems: Any = None,
    midi: bool = True,
    format: str = "wav",
    quantize: str | None = None,
    model_dir: Any = None,
    progress: Any = None,
    gate: threading.Event | None = None,
    seconds: float = 1.0,
) -> FakeResult:
    """Writes ``seconds`` of a sine per stem, per-stem and combined MIDI, report.json.

    With ``gate``, it keeps reporting "separate" progress until the gate opens (so a test can
    cancel it, or kill the process, while it is in flight).
    """
    from stemscribe.midi import write_midi
    from stemscribe.pipeline import output_name

    source = Path(source)
    sf.info(str(source))  # a real decode probe of the upload, like the pipeline's load
    wanted = [s for s in STEM_NAMES if not stems or s in stems]
    say = progress or (lambda e: None)
    say({"stage": "load", "fraction": 0.0})
    say({"stage": "load", "fraction": 1.0})
    for i in range(5):
        say({"stage": "separate", "fraction": i / 4})
    while gate is not None and not gate.wait(0.02):
        say({"stage": "separate", "fraction": 0.5})
    say({"stage": "tempo", "fraction": 1.0})
    for i, s in enumerate(wanted):
        say({"stage": "transcribe", "fraction": i / len(wanted), "stem": s})
    say({"stage": "report", "fraction": 1.0})
    say({"stage": "write", "fraction": 0.0})
    folder = Path(out_dir) / output_name(source)
    folder.mkdir(parents=True, exist_ok=True)
    grid = BeatGrid(120.0, np.arange(0.0, seconds, 0.5))
    t = np.arange(int(seconds * SR)) / SR
    result = FakeResult(out_dir=folder, model=model or "fake", stems={}, midi={}, combined_midi=None, report={})
    for k, s in enumerate(wanted):
        audio = 0.3 * np.sin(2 * np.pi * 110.0 * (k + 1) * t).astype(np.float32)
        path = folder / f"{s}.{format}"
        sf.write(str(path), audio, SR, format=format.upper())
        result.stems[s] = path
        write_midi(folder / f"{s}.mid", [fake_notes(s, seconds)], grid)
        result.midi[s] = folder / f"{s}.mid"
    result.combined_midi = write_midi(folder / "song.mid", [fake_notes(s, seconds) for s in wanted], grid)
    report = {
        "duration_seconds": seconds,
        "tempo_bpm": 120.0,
        "key": "A minor",
        "beats": grid.beats.tolist(),
        "quality": {  # the shape of stemscribe.report.quality_report
            "version": 1,
            "stems": {
                s: {
                    "loudness_lufs": -14.0 - k,
                    "peak_dbfs": -10.5,
                    "silence_ratio": 0.1 * k,
                    "bleed": {"estimate": 0.05 * k, "source": "vocals" if s != "vocals" else "bass", "from": {}},
                    "midi": {"score": 0.9 - 0.2 * k, "n_notes": len(fake_notes(s, seconds)),
                             "flagged_bars": [{"bar": 2, "start": 2.0, "end": 4.0, "score": 0.3, "reason": "onsets disagree"}]},
                }
                for k, s in enumerate(wanted)
            },
            "method": {"bleed": "a made-up measure for the test"},
        },
    }
    (folder / "report.json").write_text(json.dumps(report))
    result.report_path = folder / "report.json"
    result.report = report
    say({"stage": "write", "fraction": 1.0})
    return result


def failing_split(source: Any, **kw: Any) -> None:
    raise BadInputError("this recording is broken in a way the test chose")


# --------------------------------------------------------------------------- helpers


def wav_bytes(rng: np.random.Generator, seconds: float = 1.0) -> bytes:
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * 220.0 * t) + 0.01 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, y.astype(np.float32), SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def make_client(data: Path, split: Any = fake_split, **kw: Any) -> TestClient:
    app = create_app(Settings(data_dir=data, split=split, **kw))
    client = TestClient(app, base_url="http://127.0.0.1:8000")
    client.headers["X-Stemscribe"] = "1"
    return client


def upload(client: TestClient, body: bytes, name: str = "tone.wav", **params: str):
    return client.post("/api/jobs", params={"name": name, **params}, content=body)


def wait_for(client: TestClient, job_id: str, statuses=("done", "failed", "cancelled"), timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not reach {statuses}: {job}")


def sse_events(text: str) -> list[dict]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


@pytest.fixture
def client(tmp_path: Path):
    with make_client(tmp_path / "data") as c:
        yield c


# --------------------------------------------------------------------------- tests


def test_upload_progress_results_and_downloads(client: TestClient, rng: np.random.Generator, tmp_path: Path) -> None:
    r = upload(client, wav_bytes(rng), name="My Song.wav", format="wav", quantize="1/16")
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["name"] == "My Song.wav" and job["status"] in ("queued", "running", "done")
    assert job["duration"] == pytest.approx(1.0, abs=0.01)
    assert job["options"]["quantize"] == "1/16"

    # The per-job event stream ends when the job does; progress never goes back.
    events = sse_events(client.get(f"/api/jobs/{job['id']}/events").text)
    jobs = [e["job"] for e in events if e["type"] == "job"]
    assert jobs[-1]["status"] == "done"
    progress = [j["progress"] for j in jobs]
    assert progress == sorted(progress) and progress[-1] == 1.0
    if len(jobs) > 2:  # the job did not finish before we subscribed: stages arrive in order
        stages = [j["stage"] for j in jobs if j["status"] == "running"]
        order = ["load", "separate", "tempo", "transcribe", "report", "write"]
        assert [order.index(s) for s in stages] == sorted(order.index(s) for s in stages)

    done = client.get(f"/api/jobs/{job['id']}").json()
    assert done["status"] == "done" and done["error"] is None
    assert done["result"]["stems"] == list(STEM_NAMES) and done["result"]["combined_midi"]
    listed = client.get("/api/jobs").json()
    assert [j["id"] for j in listed] == [job["id"]]

    # Piano-roll notes are what the split wrote, drums flagged and named.
    notes = client.get(f"/api/jobs/{job['id']}/notes").json()
    assert set(notes) == set(STEM_NAMES)
    for stem in STEM_NAMES:
        want = fake_notes(stem)
        got = notes[stem]["notes"]
        assert [n[0] for n in got] == [n.pitch for n in want.notes]
        assert [n[1] for n in got] == pytest.approx([n.start for n in want.notes], abs=0.01)
        assert notes[stem]["is_drum"] == (stem == "drums")
    assert notes["drums"]["drum_names"] == {"36": "Kick", "38": "Snare", "42": "Hi-hat closed"}

    report = client.get(f"/api/jobs/{job['id']}/report").json()
    assert report["quality"]["stems"]["bass"]["midi"]["flagged_bars"][0]["bar"] == 2

    # Each stem decodes to the audio the split wrote; the download name is the song's.
    for k, stem in enumerate(STEM_NAMES):
        r = client.get(f"/api/jobs/{job['id']}/files/stem/{stem}", params={"download": 1})
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        assert f"My Song - {stem}.wav" in unquote(r.headers["content-disposition"])
        assert r.headers["content-disposition"].startswith("attachment")
        y, sr = sf.read(io.BytesIO(r.content))
        assert sr == SR and len(y) == SR
        freq = np.argmax(np.abs(np.fft.rfft(y))) * SR / len(y)
        assert freq == pytest.approx(110.0 * (k + 1), abs=2)
    inline = client.get(f"/api/jobs/{job['id']}/files/stem/vocals")
    assert inline.headers["content-disposition"].startswith("inline")

    import mido

    r = client.get(f"/api/jobs/{job['id']}/files/midi/bass")
    mid = mido.MidiFile(file=io.BytesIO(r.content))
    pitches = [m.note for m in mid if m.type == "note_on" and m.velocity > 0]
    assert pitches == [40, 44, 47]
    r = client.get(f"/api/jobs/{job['id']}/files/midi")
    assert r.status_code == 200 and "My Song.mid" in unquote(r.headers["content-disposition"])
    combined = mido.MidiFile(file=io.BytesIO(r.content))
    assert any(m.channel == 9 for m in combined if m.type == "note_on")

    r = client.get(f"/api/jobs/{job['id']}/files/zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    names = set(zipfile.ZipFile(io.BytesIO(r.content)).namelist())
    expected = {f"My Song/My Song - {s}.{ext}" for s in STEM_NAMES for ext in ("wav", "mid")}
    assert expected | {"My Song/My Song.mid", "My Song/My Song - report.json"} == names

    # The front end is served.
    page = client.get("/")
    assert page.status_code == 200 and "/static/js/app.js" in page.text
    assert client.get("/static/js/results.js").status_code == 200


def test_options_are_validated(client: TestClient, rng: np.random.Generator) -> None:
    body = wav_bytes(rng)
    r = upload(client, body, stems="bass,kazoo")
    assert r.status_code == 400 and "kazoo" in r.json()["detail"]
    r = upload(client, body, quantize="1/7")
    assert r.status_code == 400 and "quantize" in r.json()["detail"]
    r = upload(client, body, format="aiff")
    assert r.status_code == 400 and "format" in r.json()["detail"]
    r = upload(client, body, model="no-such-model")
    assert r.status_code == 400 and "model" in r.json()["detail"]
    assert client.get("/api/jobs").json() == []
    opts = client.get("/api/options").json()
    assert opts["stems"] == list(STEM_NAMES) and "1/16" in opts["grids"] and "wav" in opts["formats"]

    r = upload(client, body, stems="vocals,bass", format="flac")
    assert r.status_code == 201
    job = wait_for(client, r.json()["id"])
    assert job["status"] == "done" and job["result"]["stems"] == ["bass", "vocals"]
    r = client.get(f"/api/jobs/{job['id']}/files/stem/bass")
    assert r.headers["content-type"] == "audio/flac" and sf.read(io.BytesIO(r.content))[1] == SR
    assert client.get(f"/api/jobs/{job['id']}/files/stem/drums").status_code == 404


def test_bad_uploads_give_clear_messages(tmp_path: Path, rng: np.random.Generator) -> None:
    data = tmp_path / "data"
    with make_client(data, max_upload_mb=0.05) as client:
        r = upload(client, b"Dear diary, this is not a song at all.\n" * 20, name="notes.mp3")
        assert r.status_code == 415
        assert "not an audio file" in r.json()["detail"] and "text" in r.json()["detail"]
        assert "notes.mp3" in r.json()["detail"]

        r = upload(client, b"", name="empty.wav")
        assert r.status_code == 400 and "empty" in r.json()["detail"]

        big = wav_bytes(rng, seconds=2.0)  # ~88 kB > 50 kB
        r = upload(client, big, name="big.wav")
        assert r.status_code == 413 and "limit of 0.05 MB" in r.json()["detail"]

        # Streamed without a Content-Length: the limit is enforced while reading.
        def chunks():
            for i in range(0, len(big), 8192):
                yield big[i : i + 8192]

        r = client.post("/api/jobs", params={"name": "big.wav"}, content=chunks())
        assert r.status_code == 413

        # Right magic bytes, nothing decodable behind them.
        fake_wav = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(rng.integers(0, 256, 400, dtype=np.uint8))
        r = upload(client, fake_wav, name="broken.wav")
        assert r.status_code == 415 and "could not be read as audio" in r.json()["detail"]

        png = b"\x89PNG\r\n\x1a\n" + bytes(100)
        r = upload(client, png, name="cover.wav")
        assert r.status_code == 415 and "PNG image" in r.json()["detail"]

        # Nothing was kept, and the server still works.
        assert client.get("/api/jobs").json() == []
        assert list((data / "jobs").iterdir()) == []
        r = upload(client, wav_bytes(rng, seconds=0.5), name="ok.wav")
        assert r.status_code == 201
        assert wait_for(client, r.json()["id"])["status"] == "done"


def test_multipart_uploads(tmp_path: Path, rng: np.random.Generator) -> None:
    """What ``curl -F song=@file`` and most HTTP libraries send: the file field is the song, its file
    name is shown when no ?name= is given; a form without a file, or with a non-audio file, is refused
    with a message about that (never "the envelope is not audio")."""
    data = tmp_path / "data"
    with make_client(data, max_upload_mb=0.05) as client:
        body = wav_bytes(rng, seconds=0.5)
        r = client.post("/api/jobs", files={"song": ("Take 2.wav", body, "audio/wav")}, data={"note": "hi"})
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["name"] == "Take 2.wav" and job["duration"] == pytest.approx(0.5, abs=0.01)
        assert wait_for(client, job["id"])["status"] == "done"
        stored = next((data / "jobs" / job["id"]).glob("song.*"))
        assert stored.read_bytes() == body  # exactly the file part, no multipart framing

        r = client.post("/api/jobs", params={"name": "given.wav"}, files={"f": ("x.wav", body)})
        assert r.status_code == 201 and r.json()["name"] == "given.wav"

        r = client.post("/api/jobs", data={"song": "not a file"}, files={"other": ("", b"")})
        assert r.status_code == 400 and "no file in it" in r.json()["detail"], r.text

        r = client.post("/api/jobs", files={"song": ("notes.txt", b"Dear diary, not a song.\n" * 10)})
        assert r.status_code == 415 and "notes.txt" in r.json()["detail"] and "text" in r.json()["detail"]

        r = client.post("/api/jobs", files={"song": ("big.wav", wav_bytes(rng, seconds=2.0))})
        assert r.status_code == 413 and "limit of 0.05 MB" in r.json()["detail"]

        r = client.post("/api/jobs", content=body, headers={"Content-Type": "multipart/form-data"})
        assert r.status_code == 400 and "boundary" in r.json()["detail"]
        assert len(client.get("/api/jobs").json()) == 2


def test_no_path_traversal_and_request_guards(client: TestClient, rng: np.random.Generator) -> None:
    job = upload(client, wav_bytes(rng)).json()
    wait_for(client, job["id"])
    jid = job["id"]
    bad = [
        "/api/jobs/..%2F..%2Fstemscribe.sqlite3",
        "/api/jobs/../stemscribe.sqlite3",
        f"/api/jobs/{jid.upper()}",
        f"/api/jobs/{jid}x",
        f"/api/jobs/{jid}/files/stem/..%2Fsong.wav",
        f"/api/jobs/{jid}/files/stem/song",
        f"/api/jobs/{jid}/files/midi/..%2F..%2F..%2Fstemscribe.sqlite3",
        f"/api/jobs/{jid}/files/stem/%2e%2e",
        "/static/../server.py",
        "/static/..%2Fserver.py",
        "/static/%2e%2e/jobs.py",
    ]
    for url in bad:
        r = client.get(url)
        assert r.status_code == 404, (url, r.status_code)
        assert b"import" not in r.content and b"SQLite" not in r.content
    assert client.delete("/api/jobs/not-a-job").status_code == 404
    assert client.post("/api/jobs/../../x/cancel").status_code == 404

    # Changing requests need the X-Stemscribe header (other web sites cannot send it).
    r = client.delete(f"/api/jobs/{jid}", headers={"X-Stemscribe": ""})
    assert r.status_code == 403
    # A foreign Host header (DNS rebinding) is refused.
    r = client.get("/api/jobs", headers={"Host": "evil.example:8000"})
    assert r.status_code == 421
    assert client.get(f"/api/jobs/{jid}").json()["status"] == "done"


def test_cancel_retry_and_delete(tmp_path: Path, rng: np.random.Generator) -> None:
    gate = threading.Event()

    def held(source: Any, **kw: Any) -> FakeResult:
        return fake_split(source, gate=gate, **kw)

    data = tmp_path / "data"
    with make_client(data, split=held) as client:
        first = upload(client, wav_bytes(rng), name="first.wav").json()
        second = upload(client, wav_bytes(rng), name="second.wav").json()
        wait_for(client, first["id"], ("running",))
        # One worker: the second job waits its turn; cancelling it never starts it.
        assert client.get(f"/api/jobs/{second['id']}").json()["status"] == "queued"
        assert client.post(f"/api/jobs/{second['id']}/cancel").json()["status"] == "cancelled"

        r = client.post(f"/api/jobs/{first['id']}/cancel")
        assert r.status_code == 200
        job = wait_for(client, first["id"])
        assert job["status"] == "cancelled"
        assert not (data / "jobs" / first["id"] / "out").exists()  # nothing half-written kept
        assert client.get(f"/api/jobs/{first['id']}/files/zip").status_code == 409

        gate.set()
        r = client.post(f"/api/jobs/{first['id']}/retry")
        assert r.status_code == 200 and r.json()["status"] == "queued"
        assert wait_for(client, first["id"])["status"] == "done"
        assert client.post(f"/api/jobs/{first['id']}/retry").status_code == 400  # done: nothing to retry
        assert client.get(f"/api/jobs/{first['id']}/files/zip").status_code == 200

        # Deleting a job deletes its files.
        job_dir = data / "jobs" / first["id"]
        assert (job_dir / "all.zip").is_file()
        assert client.delete(f"/api/jobs/{first['id']}").status_code == 200
        assert not job_dir.exists()
        assert client.get(f"/api/jobs/{first['id']}").status_code == 404
        assert client.get(f"/api/jobs/{first['id']}/files/midi").status_code == 404
        assert [j["id"] for j in client.get("/api/jobs").json()] == [second["id"]]


def test_failed_job_shows_the_error(tmp_path: Path, rng: np.random.Generator) -> None:
    with make_client(tmp_path / "data", split=failing_split) as client:
        job = upload(client, wav_bytes(rng)).json()
        job = wait_for(client, job["id"])
        assert job["status"] == "failed" and "broken in a way the test chose" in job["error"]
        assert not (tmp_path / "data" / "jobs" / job["id"] / "out").exists()
        (tmp_path / "data" / "jobs" / job["id"] / "song.wav").unlink()
        r = client.post(f"/api/jobs/{job['id']}/retry")
        assert r.status_code == 400 and "upload the song again" in r.json()["detail"]


_CRASHING_SERVER = """
import sys, threading, uvicorn
sys.path.insert(0, {tests!r})
from test_web import fake_split
from stemscribe.web.server import Settings, create_app
never = threading.Event()
def held(source, **kw):
    return fake_split(source, gate=never, **kw)
app = create_app(Settings(data_dir={data!r}, split=held))
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_restart_after_crash_marks_running_job_failed_and_retry_works(tmp_path: Path, rng: np.random.Generator) -> None:
    import httpx

    data = tmp_path / "data"
    port = free_port()
    code = _CRASHING_SERVER.format(tests=str(Path(__file__).parent), data=str(data), port=port)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/api/jobs", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(proc.stdout.read().decode() if proc.poll() is not None else "no server")
                time.sleep(0.1)
        headers = {"X-Stemscribe": "1"}
        job = httpx.post(f"{base}/api/jobs", params={"name": "crash.wav"}, content=wav_bytes(rng), headers=headers).json()
        while httpx.get(f"{base}/api/jobs/{job['id']}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        queued = httpx.post(f"{base}/api/jobs", params={"name": "next.wav"}, content=wav_bytes(rng), headers=headers).json()
    finally:
        proc.kill()  # a crash: no shutdown handlers run
        proc.wait()

    with make_client(data) as client:
        crashed = client.get(f"/api/jobs/{job['id']}").json()
        assert crashed["status"] == "failed" and "Retry" in crashed["error"]
        # The job that was waiting is not lost: it runs after the restart.
        assert wait_for(client, queued["id"])["status"] == "done"
        r = client.post(f"/api/jobs/{job['id']}/retry")
        assert r.status_code == 200
        done = wait_for(client, job["id"])
        assert done["status"] == "done" and done["error"] is None
        assert client.get(f"/api/jobs/{job['id']}/files/midi/vocals").status_code == 200


def test_live_event_stream_on_a_real_server(tmp_path: Path, rng: np.random.Generator) -> None:
    """The page's all-jobs event stream (an endless SSE response) through uvicorn."""
    import httpx
    import uvicorn

    app = create_app(Settings(data_dir=tmp_path / "data", split=fake_split))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        seen: list[dict] = []
        with httpx.stream("GET", f"{base}/api/events", timeout=10) as stream:
            lines = stream.iter_lines()
            assert next(l for l in lines if l.startswith("data:"))  # hello
            job = httpx.post(f"{base}/api/jobs", params={"name": "live.wav"}, content=wav_bytes(rng),
                             headers={"X-Stemscribe": "1"}).json()
            for line in lines:
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    seen.append(event)
                    if event["type"] == "job" and event["job"]["status"] == "done":
                        break
                assert time.monotonic() < deadline
        assert all(e["job"]["id"] == job["id"] for e in seen)
        assert seen[-1]["job"]["progress"] == 1.0
        assert {"separate", "transcribe"} <= {e["job"]["stage"] for e in seen}
    finally:
        server.should_exit = True
        thread.join(10)


def test_serve_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from stemscribe.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code = main(["serve", "--port", str(port), "--data", str(tmp_path / "d")])
    assert code == 2 and "already in use" in capsys.readouterr().err
    assert main(["serve", "--workers", "0", "--data", str(tmp_path / "d")]) == 2
    assert main(["serve", "--max-upload-mb", "-1", "--data", str(tmp_path / "d")]) == 2

    from stemscribe.commands.serve import default_data_dir

    os.environ["STEMSCRIBE_DATA"] = str(tmp_path / "env")
    try:
        assert default_data_dir() == tmp_path / "env"
    finally:
        del os.environ["STEMSCRIBE_DATA"]
    assert "stemscribe" in str(default_data_dir())


@pytest.mark.skipif(not DEVSONG.is_file(), reason="../shared/data/devset not present")
def test_real_split_of_a_devset_song(tmp_path: Path) -> None:
    """One real run of the pipeline behind the API (the lite model keeps it short)."""
    import mido


    with make_client(tmp_path / "data", split=None) as client:
        r = upload(client, DEVSONG.read_bytes(), name="dev00.flac", model="lite", stems="bass,drums")
        assert r.status_code == 201, r.text
        job = wait_for(client, r.json()["id"], timeout=600)
        assert job["status"] == "done", job["error"]
        assert job["result"]["stems"] == ["drums", "bass"]
        y, sr = sf.read(io.BytesIO(client.get(f"/api/jobs/{job['id']}/files/stem/bass").content))
        assert abs(len(y) / sr - 12.0) < 0.05
        notes = client.get(f"/api/jobs/{job['id']}/notes").json()
        assert notes["drums"]["is_drum"] and notes["drums"]["notes"]
        assert notes["bass"]["notes"] and all(n[0] < 72 for n in notes["bass"]["notes"])
        mid = mido.MidiFile(file=io.BytesIO(client.get(f"/api/jobs/{job['id']}/files/midi").content))
        assert sum(1 for m in mid if m.type == "note_on" and m.velocity > 0) > 0
        report = client.get(f"/api/jobs/{job['id']}/report").json()
        assert report["tempo_bpm"] > 0 and report["stems"] == ["drums", "bass"]


def test_client_file_names_are_only_labels(client: TestClient, rng: np.random.Generator, tmp_path: Path) -> None:
    body = wav_bytes(rng, seconds=0.5)
    names = {"../../etc/passwd.wav": "passwd.wav", "C:\\music\\x.wav": "x.wav", "Señor ☃.wav": "Señor ☃.wav"}
    for sent, shown in names.items():
        job = upload(client, body, name=sent).json()
        assert job["name"] == shown
        job = wait_for(client, job["id"])
        files = sorted(p.name for p in (tmp_path / "data" / "jobs" / job["id"]).iterdir())
        assert files == ["out", "song.wav"]  # stored under a fixed name, typed by content
        header = client.get(f"/api/jobs/{job['id']}/files/midi/bass", params={"download": 1}).headers["content-disposition"]
        plain = header.split('filename="', 1)[1].split('"', 1)[0]
        assert plain.isascii() and "/" not in plain and "\\" not in plain
        assert unquote(header.split("filename*=UTF-8''", 1)[1]) == f"{Path(shown).stem} - bass.mid"
    assert not (tmp_path / "etc").exists()


def test_serve_prints_its_address_serves_and_stops_cleanly(tmp_path: Path) -> None:
    import signal

    import httpx

    proc = subprocess.Popen(
        [sys.executable, "-m", "stemscribe", "serve", "--port", "0", "--data", str(tmp_path / "d")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("stemscribe is running at http://127.0.0.1:"), line
        url = line.split(" at ", 1)[1].strip()
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "stemscribe" in page.text
        with httpx.stream("GET", url + "api/events", timeout=10):  # an open live stream...
            proc.send_signal(signal.SIGINT)  # ...does not hold up Ctrl+C
            assert proc.wait(timeout=10) == 0
        assert "stemscribe stopped" in proc.stdout.read()
        assert (tmp_path / "d" / "stemscribe.sqlite3").is_file()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_two_workers_and_deleting_a_running_job(tmp_path: Path, rng: np.random.Generator) -> None:
    gate = threading.Event()

    def held(source: Any, **kw: Any) -> FakeResult:
        return fake_split(source, gate=gate, **kw)

    data = tmp_path / "data"
    with make_client(data, split=held, workers=2) as client:
        ids = [upload(client, wav_bytes(rng), name=f"{i}.wav").json()["id"] for i in range(3)]
        wait_for(client, ids[0], ("running",))
        wait_for(client, ids[1], ("running",))  # two at a time...
        assert client.get(f"/api/jobs/{ids[2]}").json()["status"] == "queued"  # ...the third waits

        assert client.delete(f"/api/jobs/{ids[0]}").status_code == 200
        assert client.get(f"/api/jobs/{ids[0]}").status_code == 404
        deadline = time.monotonic() + 10
        while (data / "jobs" / ids[0]).exists():  # its files go as soon as it has stopped
            assert time.monotonic() < deadline
            time.sleep(0.02)
        wait_for(client, ids[2], ("running",))  # the freed worker takes the next job
        gate.set()
        assert [wait_for(client, i)["status"] for i in ids[1:]] == ["done", "done"]
        assert client.post(f"/api/jobs/{ids[0]}/retry").status_code == 404
