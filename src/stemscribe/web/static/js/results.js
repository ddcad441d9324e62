// The results page of one song: stems playing in sync, waveforms, piano rolls, downloads, report.

import { api, fileUrl, onJobEvent } from "./api.js";
import { jobRow } from "./home.js";
import { MultiPlayer, computePeaks } from "./player.js";
import { Timeline, RULER_H, LANE_H } from "./timeline.js";
import { el, formatTime, stemColor, stemLabel, STEMS, toast } from "./util.js";

const DISPLAY_ORDER = ["vocals", "drums", "bass", "other"];

/** Render the page for job `id` into `view`; returns a function that tears it down. */
export async function renderResults(view, id) {
  const job = await api.job(id);
  if (job.status !== "done") return renderWaiting(view, job);

  const [report, notes] = await Promise.all([api.report(id).catch(() => ({})), api.notes(id).catch(() => ({}))]);
  const stems = DISPLAY_ORDER.filter((s) => job.result.stems.includes(s));
  const duration = report.duration_seconds || job.duration || 1;
  const player = new MultiPlayer();
  let alive = true;

  // ---------------------------------------------------------------- header and transport
  const facts = [];
  if (report.tempo_bpm) facts.push(["Tempo", `${Math.round(report.tempo_bpm)} BPM`]);
  if (report.key) facts.push(["Key", report.key]);
  facts.push(["Length", formatTime(duration)]);
  if (report.time_signature) facts.push(["Time", report.time_signature.join("/")]);
  if (job.result.model) facts.push(["Model", job.result.model]);

  const playButton = el("button", { class: "btn primary play", disabled: true, "aria-label": "Play" }, "▶ Play");
  const rewind = el("button", { class: "btn", title: "Back to the start", "aria-label": "Back to the start" }, "⏮");
  const clock = el("span", { class: "clock", "aria-live": "off" }, `0:00 / ${formatTime(duration)}`);
  const loading = el("span", { class: "loading muted" }, "Loading audio…");
  const master = el("input", { type: "range", min: 0, max: 1, step: 0.01, value: 0.9, "aria-label": "Master volume" });
  const zoomOut = el("button", { class: "btn small", title: "Zoom out", "aria-label": "Zoom out" }, "−");
  const zoomIn = el("button", { class: "btn small", title: "Zoom in", "aria-label": "Zoom in" }, "+");
  const zoomLabel = el("span", { class: "zoom-label" }, "1×");

  const downloads = el(
    "div",
    { class: "downloads" },
    el("a", { class: "btn primary", href: fileUrl.zip(id), download: "" }, "Download all (ZIP)"),
    job.result.combined_midi && el("a", { class: "btn", href: fileUrl.combined(id), download: "" }, "MIDI of all stems"),
    job.result.report && el("a", { class: "btn ghost", href: `/api/jobs/${id}/report`, download: "report.json" }, "Report"),
  );

  // ---------------------------------------------------------------- tracks
  const heads = el("div", { class: "heads" }, el("div", { class: "head-ruler", style: { height: `${RULER_H}px` } }, "Stems"));
  const lanesHost = el("div", { class: "lanes" });
  const timeline = new Timeline(lanesHost, {
    duration,
    beats: report.beats || [],
    beatsPerBar: (report.time_signature && report.time_signature[0]) || 4,
  });

  const controls = new Map();
  for (const stem of stems) {
    const color = stemColor(stem);
    const count = notes[stem] ? notes[stem].notes.length : null;
    const mute = el("button", { class: "toggle mute", "aria-pressed": "false", title: `Mute ${stemLabel(stem)}` }, "Mute");
    const solo = el("button", { class: "toggle solo", "aria-pressed": "false", title: `Play only ${stemLabel(stem)}` }, "Solo");
    const vol = el("input", { type: "range", min: 0, max: 1.5, step: 0.01, value: 1, "aria-label": `${stemLabel(stem)} volume` });
    const head = el(
      "div",
      { class: "head", style: { height: `${LANE_H}px`, "--c": color }, dataset: { stem } },
      el("div", { class: "head-title" }, el("span", { class: "dot" }), stemLabel(stem)),
      el("div", { class: "head-buttons" }, mute, solo),
      el("label", { class: "vol" }, el("span", { class: "sr-only" }, "Volume"), vol),
      el(
        "div",
        { class: "head-links" },
        el("a", { href: fileUrl.stem(id, stem, true), download: "", title: `Download the ${stemLabel(stem).toLowerCase()} audio` }, "⤓ Audio"),
        job.result.midi.includes(stem) &&
          el("a", { href: fileUrl.midi(id, stem, true), download: "", title: `Download the ${stemLabel(stem).toLowerCase()} MIDI` }, "⤓ MIDI"),
      ),
      count !== null && el("div", { class: "note-count muted" }, `${count} ${notes[stem].is_drum ? "hits" : "notes"}`),
    );
    heads.append(head);
    controls.set(stem, { mute, solo, vol });
    const lane = timeline.addLane(stem, color);
    if (notes[stem]) lane.notes = notes[stem];
    else lane.notesMessage = job.result.midi.includes(stem) ? "Could not read the notes" : "No MIDI for this stem";

    const refresh = () => {
      for (const [s, c] of controls) {
        const t = player.tracks.get(s);
        c.mute.setAttribute("aria-pressed", String(!!(t && t.muted)));
        c.solo.setAttribute("aria-pressed", String(!!(t && t.solo)));
        timeline.lane(s).audible = player.tracks.size ? player.audible(s) : true;
      }
      timeline.draw();
    };
    mute.addEventListener("click", () => {
      const t = player.tracks.get(stem);
      if (t) player.set(stem, { muted: !t.muted });
      refresh();
    });
    solo.addEventListener("click", () => {
      const t = player.tracks.get(stem);
      if (t) player.set(stem, { solo: !t.solo });
      refresh();
    });
    vol.addEventListener("input", () => player.set(stem, { volume: Number(vol.value) }));
  }

  view.replaceChildren(
    el(
      "div",
      { class: "results" },
      el(
        "div",
        { class: "results-head" },
        el("a", { class: "back", href: "#/" }, "← All songs"),
        el("h1", {}, job.name),
        el("dl", { class: "facts" }, facts.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v)))),
      ),
      el(
        "div",
        { class: "card transport" },
        el("div", { class: "transport-left" }, playButton, rewind, clock, loading),
        el(
          "div",
          { class: "transport-right" },
          el("label", { class: "inline" }, "Volume", master),
          el("span", { class: "inline zoom" }, "Zoom", zoomOut, zoomLabel, zoomIn),
        ),
      ),
      el("div", { class: "card tracks" }, heads, lanesHost),
      el("div", { class: "card downloads-card" }, el("h2", {}, "Downloads"), downloads),
      qualitySection(report, stems),
    ),
  );
  timeline.layout();

  // ---------------------------------------------------------------- behaviour
  const setPlaying = () => {
    playButton.textContent = player.playing ? "❚❚ Pause" : "▶ Play";
    playButton.setAttribute("aria-label", player.playing ? "Pause" : "Play");
  };
  playButton.addEventListener("click", async () => {
    await player.toggle();
    setPlaying();
  });
  rewind.addEventListener("click", () => player.seek(0));
  player.onended = setPlaying;
  timeline.onseek = (t) => player.seek(t);
  master.addEventListener("input", () => player.setMasterVolume(Number(master.value)));
  player.setMasterVolume(Number(master.value));
  const zooms = [1, 2, 4, 8, 16];
  const setZoom = (dir) => {
    const i = Math.max(0, Math.min(zooms.length - 1, zooms.indexOf(timeline.zoom) + dir));
    timeline.setZoom(zooms[i]);
    zoomLabel.textContent = `${zooms[i]}×`;
  };
  zoomOut.addEventListener("click", () => setZoom(-1));
  zoomIn.addEventListener("click", () => setZoom(1));
  const onKey = (e) => {
    if (e.code !== "Space" || ["INPUT", "SELECT", "TEXTAREA", "BUTTON", "A"].includes(document.activeElement.tagName)) return;
    e.preventDefault();
    if (!playButton.disabled) playButton.click();
  };
  window.addEventListener("keydown", onKey);

  const frame = () => {
    if (!alive) return;
    const t = player.tick();
    timeline.setTime(t, player.playing);
    clock.textContent = `${formatTime(t)} / ${formatTime(duration)}`;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);

  // Load the stems one after the other: the first waveform shows up quickly.
  (async () => {
    let done = 0;
    for (const stem of stems) {
      try {
        const buffer = await player.load(stem, fileUrl.stem(id, stem), (f) => {
          loading.textContent = `Loading audio… ${Math.round(((done + f) / stems.length) * 100)}%`;
        });
        if (!alive) return;
        timeline.update(stem, { peaks: computePeaks(buffer) });
      } catch (err) {
        if (!alive) return;
        timeline.update(stem, { message: `Could not play this stem: ${err.message}` });
        toast(err.message, "error");
      }
      done += 1;
    }
    if (!alive) return;
    timeline.duration = Math.max(timeline.duration, player.duration);
    loading.textContent = "";
    loading.hidden = true;
    playButton.disabled = !player.tracks.size;
    view.querySelector(".results").dataset.ready = "true";
  })();

  return () => {
    alive = false;
    window.removeEventListener("keydown", onKey);
    player.close();
  };
}

function renderWaiting(view, job) {
  const box = el("ul", { class: "job-list" });
  const draw = (j) => box.replaceChildren(jobRow(j));
  draw(job);
  view.replaceChildren(
    el(
      "div",
      { class: "results" },
      el("div", { class: "results-head" }, el("a", { class: "back", href: "#/" }, "← All songs"), el("h1", {}, job.name)),
      el("section", { class: "card" }, el("p", { class: "muted" }, "The results appear here when this song is done."), box),
    ),
  );
  const stop = onJobEvent((ev) => {
    if (!box.isConnected) return stop();
    if (ev.type === "deleted" && ev.id === job.id) location.hash = "#/";
    if (ev.type !== "job" || ev.job.id !== job.id) return;
    if (ev.job.status === "done") {
      stop();
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    } else draw(ev.job);
  });
  return () => stop();
}

// ---------------------------------------------------------------- quality report

const LABELS = {
  bleed: "Bleed from other stems",
  bleed_db: "Bleed (dB)",
  loudness: "Loudness",
  loudness_lufs: "Loudness (LUFS)",
  loudness_db: "Loudness (dB)",
  rms_db: "Level (dB)",
  silence_ratio: "Silent share",
  silence: "Silent share",
  midi_consistency: "Notes match the audio",
  consistency: "Notes match the audio",
  midi_audio_consistency: "Notes match the audio",
  flagged_bars: "Bars to check",
  n_notes: "Notes",
  notes: "Notes",
};

function label(key) {
  return LABELS[key] || key.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

function formatValue(key, v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "number") {
    if (/(ratio|share|fraction|consistency|silence)/.test(key) && v >= 0 && v <= 1) return `${Math.round(v * 100)}%`;
    if (Number.isInteger(v)) return String(v);
    return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
  }
  if (Array.isArray(v)) {
    if (!v.length) return "none";
    const shown = v.slice(0, 12).map((x) => (typeof x === "object" ? JSON.stringify(x) : String(x)));
    return shown.join(", ") + (v.length > 12 ? ` … (${v.length} in all)` : "");
  }
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function qualitySection(report, stems) {
  const q = report && report.quality;
  const section = el("section", { class: "card quality" }, el("h2", {}, "Quality report"));
  if (!q || typeof q !== "object") {
    section.append(el("p", { class: "muted" }, "There is no quality report for this song."));
    return section;
  }
  const perStem = q.stems && typeof q.stems === "object" && !Array.isArray(q.stems) ? q.stems : q;
  const stemRows = Object.keys(perStem).filter((k) => k in STEMS && perStem[k] && typeof perStem[k] === "object");
  stemRows.sort((a, b) => DISPLAY_ORDER.indexOf(a) - DISPLAY_ORDER.indexOf(b));
  const columns = [];
  for (const s of stemRows) for (const k of Object.keys(perStem[s])) if (!columns.includes(k)) columns.push(k);
  if (stemRows.length) {
    section.append(
      el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          {},
          el("thead", {}, el("tr", {}, el("th", {}, "Stem"), columns.map((c) => el("th", {}, label(c))))),
          el(
            "tbody",
            {},
            stemRows.map((s) =>
              el(
                "tr",
                {},
                el("th", { scope: "row" }, el("span", { class: "dot", style: { "--c": stemColor(s) } }), stemLabel(s)),
                columns.map((c) => el("td", {}, formatValue(c, perStem[s][c]))),
              ),
            ),
          ),
        ),
      ),
    );
  }
  const rest = Object.entries(q).filter(([k]) => !(k in STEMS) && k !== "stems");
  if (rest.length) {
    section.append(
      el(
        "dl",
        { class: "kv" },
        rest.map(([k, v]) => el("div", {}, el("dt", {}, label(k)), el("dd", {}, formatValue(k, v)))),
      ),
    );
  }
  if (!stemRows.length && !rest.length) section.append(el("p", { class: "muted" }, "The quality report is empty."));
  return section;
}
