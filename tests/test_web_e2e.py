"""End to end in a real browser: Playwright drives Debian's Chromium (headless, no browser download).

Upload a devset song through the page, wait for the job, open its results, check the players and
piano rolls are there and drawn, play, download a MIDI file and parse it. A text file named .mp3,
dropped on the page, is refused with a message there. Skips when Chromium, Playwright or the devset
are missing.

The song goes through the real pipeline with the embedded ``lite`` model, picked in the page's
Options. Set ``STEMSCRIBE_UPDATE_SCREENSHOT=1`` to refresh docs/screenshots/results.png.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
DEVSONG = Path(__file__).resolve().parents[2] / "shared" / "data" / "devset" / "dev00" / "mixture.flac"
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "screenshots" / "results.png"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="/usr/bin/chromium is not installed"),
    pytest.mark.skipif(not DEVSONG.is_file(), reason="../shared/data/devset not present"),
]


@pytest.fixture
def server(tmp_path: Path):
    import uvicorn

    from stemscribe.web.server import Settings, create_app

    app = create_app(Settings(data_dir=tmp_path / "data"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                        timeout_graceful_shutdown=1))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_upload_listen_see_notes_download(server: str, tmp_path: Path) -> None:
    import mido

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            # Console errors (CSP violations, failed loads), except the refused upload's expected 415.
            page.on("console", lambda m: m.type == "error" and "status of 415" not in m.text and errors.append(m.text))
            page.goto(server + "/")
            page.wait_for_selector(".dropzone")

            # A text file named .mp3, dropped on the page, is refused with a clear message in it.
            page.evaluate(
                """() => {
                    const dt = new DataTransfer();
                    dt.items.add(new File(["this is a shopping list, not a song\\n".repeat(10)], "notes.mp3", {type: "audio/mpeg"}));
                    document.querySelector(".dropzone").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
                }"""
            )
            message = page.wait_for_selector(".message.error", timeout=10_000)
            assert "notes.mp3" in message.inner_text() and "not an audio file" in message.inner_text()

            # The devset song with the lite model: upload, live progress, done.
            page.select_option("select[name=model]", "lite")
            page.set_input_files("input[type=file]", str(DEVSONG))
            page.wait_for_selector("li.job[data-status=running] .progress", timeout=60_000)
            page.wait_for_selector("li.job[data-status=done]", timeout=600_000)
            assert page.locator("li.job").count() == 1
            assert "lite" in page.inner_text("li.job .job-meta")
            page.click("li.job[data-status=done] a.btn.primary")

            page.wait_for_selector(".results[data-ready=true]", timeout=60_000)
            stems = page.eval_on_selector_all(".head", "els => els.map(e => e.dataset.stem)")
            assert sorted(stems) == ["bass", "drums", "other", "vocals"]
            assert page.locator("canvas.tl-lane").count() == 4
            assert page.locator("button.play").is_enabled()

            # Each lane drew its waveform, and the drum and bass rolls drew notes in the stem's colour.
            colored = page.evaluate(
                """() => Object.fromEntries([...document.querySelectorAll('canvas.tl-lane')].map(c => {
                    const ctx = c.getContext('2d');
                    const dpr = c.width / c.clientWidth;
                    const count = (y0, y1) => {
                        const d = ctx.getImageData(80 * dpr, y0 * dpr, c.width - 80 * dpr, (y1 - y0) * dpr).data;
                        let n = 0;
                        for (let i = 0; i < d.length; i += 4) {
                            const max = Math.max(d[i], d[i + 1], d[i + 2]), min = Math.min(d[i], d[i + 1], d[i + 2]);
                            if (max - min > 60) n++;
                        }
                        return n;
                    };
                    return [c.dataset.stem, {wave: count(2, 50), roll: count(56, 166)}];
                }))"""
            )
            for stem, counts in colored.items():
                assert counts["wave"] > 100, (stem, counts)
            for stem in ("drums", "bass"):
                assert colored[stem]["roll"] > 20, (stem, colored[stem])

            # Play: the clock and the playhead move; solo and mute toggle.
            page.click("button.play")
            deadline = time.monotonic() + 10
            while not page.inner_text(".clock").startswith("0:01"):  # (wait_for_function needs eval: CSP)
                assert time.monotonic() < deadline, page.inner_text(".clock")
                time.sleep(0.1)
            moved = page.eval_on_selector(".tl-playhead", "e => e.style.transform")
            assert moved and moved != "translateX(0px)"
            page.click(".head[data-stem=bass] .solo")
            assert page.get_attribute(".head[data-stem=bass] .solo", "aria-pressed") == "true"
            page.click(".head[data-stem=vocals] .mute")
            assert page.get_attribute(".head[data-stem=vocals] .mute", "aria-pressed") == "true"
            page.click(".head[data-stem=bass] .solo")
            page.click("button.play")  # pause

            if os.environ.get("STEMSCRIBE_UPDATE_SCREENSHOT"):
                page.evaluate("document.querySelector('.head[data-stem=vocals] .mute').click()")
                page.evaluate("window.scrollTo(0, 0)")
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT), full_page=True)

            # Download the bass MIDI through the page and parse it.
            with page.expect_download() as download:
                page.click(".head[data-stem=bass] a[href*='/files/midi/bass']")
            target = tmp_path / download.value.suggested_filename
            download.value.save_as(target)
            assert target.name == "mixture - bass.mid"
            midi = mido.MidiFile(target)
            notes = [m for m in midi if m.type == "note_on" and m.velocity > 0]
            assert notes and all(m.note < 72 for m in notes)
            assert errors == []
        finally:
            browser.close()

