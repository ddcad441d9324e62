// The results page of one song: stems playing in sync, waveforms, piano rolls, downloads, report.

import { api, fileUrl, onJobEvent } from "./api.js";
import { jobRow } from "./home.js";
import { MultiPlayer, computePeaks } from "./player.js";
import { Timeline, RULER_H, LANE_H } from "./timeline.js";
import { el, formatTime, icon, stemColor, stemLabel, STEMS, toast } from "./util.js";

const DISPLAY_ORDER = ["vocals", "drums", "bass", "other"];

/** Render the page for job `id` into `view`; returns a function that tears it down. */
export async function renderResults(view, id) {
  const job = await api.job(id);
  if (job.status !== "done") return renderWaiting(view, job);

  const [report, notes] = await Promise.all([api.report(id).catch(() => ({})), api.notes(id).catch(() => ({}))]);
  const stems = DISPLAY_ORDER.filter((s) => job.result.stems.includes(s));
  const quality = qualityEntries(report);
  const duration = report.duration_seconds || job.duration || 1;
  const player = new MultiPlayer();
  let alive = true;

  // ---------------------------------------------------------------- header and transport
  const facts = [];
  // no beats heard (silence, a very short sound): the MIDI keeps its default tempo, but none was found
  if (report.tempo_bpm) facts.push(["Tempo", report.beats && report.beats.length ? `${Math.round(report.tempo_bpm)} BPM` : "unknown"]);
  if (report.key) facts.push(["Key", report.key]);
  facts.push(["Length", formatTime(duration)]);
  if (report.time_signature) facts.push(["Time", report.time_signature.join("/")]);
  if (job.result.model) facts.push(["Model", job.result.model]);

  const playButton = el("button", { class: "btn primary play", disabled: true, "aria-label": "Play" }, icon("play"), el("span", {}, "Play"));
  const rewind = el("button", { class: "btn", title: "Back to the start", "aria-label": "Back to the start" }, icon("rewind"));
  const clock = el("span", { class: "clock", "aria-live": "off" }, `0:00 / ${formatTime(duration)}`);
  const loading = el("span", { class: "loading muted" }, "Loading audio…");
  const master = el("input", { type: "range", min: 0, max: 1, step: 0.01, value: 0.9, "aria-label": "Master volume" });
  const zoomOut = el("button", { class: "btn small", title: "Zoom out", "aria-label": "Zoom out" }, "−");
  const zoomIn = el("button", { class: "btn small", title: "Zoom in", "aria-label": "Zoom in" }, "+");
  const zoomLabel = el("span", { class: "zoom-label" }, "1×");

  const downloads = el(
    "div",
    { class: "downloads" },
    el("a", { class: "btn primary", href: fileUrl.zip(id), download: "" }, icon("download"), "Everything (ZIP)"),
    job.result.combined_midi && el("a", { class: "btn", href: fileUrl.combined(id), download: "" }, icon("download"), "MIDI of all stems"),
    job.result.report && el("a", { class: "btn", href: `/api/jobs/${id}/report`, download: "report.json" }, icon("download"), "Report (JSON)"),
  );

  // ---------------------------------------------------------------- tracks
  const heads = el("div", { class: "heads" }, el("div", { class: "head-ruler", style: { height: `${RULER_H}px` } }, "Stems"));
  const lanesHost = el("div", { class: "lanes" });
  const timeline = new Timeline(lanesHost, {
    duration,
    beats: report.beats || [],
    downbeats: report.downbeats || [],
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
        el("a", { href: fileUrl.stem(id, stem, true), download: "", title: `Download the ${stemLabel(stem).toLowerCase()} audio` }, icon("download"), "Audio"),
        job.result.midi.includes(stem) &&
          el("a", { href: fileUrl.midi(id, stem, true), download: "", title: `Download the ${stemLabel(stem).toLowerCase()} MIDI` }, icon("download"), "MIDI"),
      ),
      count !== null && el("div", { class: "note-count muted" }, `${count} ${notes[stem].is_drum ? "hits" : "notes"}`),
    );
    heads.append(head);
    controls.set(stem, { mute, solo, vol });
    const lane = timeline.addLane(stem, color);
    lane.flags = flaggedBars(quality[stem]);
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
        // what was repaired in the upload (NaN samples...), as `split` prints it
        ...(report.input_notes || []).map((n) => el("p", { class: "input-note muted" }, `Note: ${n}.`)),
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
      qualitySection(report, stems, (t) => player.seek(t)),
    ),
  );
  timeline.layout();

  // ---------------------------------------------------------------- behaviour
  const setPlaying = () => {
    playButton.replaceChildren(icon(player.playing ? "pause" : "play"), el("span", {}, player.playing ? "Pause" : "Play"));
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
// report.json["quality"] from stemscribe.report: {"stems": {stem: {loudness_lufs, peak_dbfs,
// silence_ratio, bleed: {estimate, source}, midi: {score, n_notes, flagged_bars: [{bar, start, end,
// reason}]}}}, "method": {...}}. Keys this page does not know are still shown, generically.

const LABELS = {
  loudness_lufs: "Loudness",
  peak_dbfs: "Peak",
  silence_ratio: "Silent",
  bleed: "Bleed",
  midi: "Notes match the audio",
  flagged_bars: "Bars to check",
};

const HINTS = {
  loudness_lufs: "Integrated loudness (ITU-R BS.1770), in LUFS",
  peak_dbfs: "Highest sample level, in dB below full scale",
  silence_ratio: "Share of the song where this stem is silent",
  bleed: "How much of another stem leaks into this one (0% = clean)",
  midi: "How well the MIDI notes agree with the audio of this stem",
  flagged_bars: "Bars where the MIDI and the audio disagree: click one to listen",
};

function label(key) {
  return LABELS[key] || key.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

function pct(x) {
  return `${Math.round(x * 100)}%`;
}

function meter(score) {
  const tone = score >= 0.7 ? "good" : score >= 0.4 ? "fair" : "poor";
  return el("span", { class: `meter ${tone}`, title: pct(score) }, el("span", { style: { width: pct(score) } }));
}

function genericValue(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
  if (Array.isArray(v)) return v.length ? v.map((x) => (typeof x === "object" ? JSON.stringify(x) : String(x))).join(", ") : "none";
  if (typeof v === "object") return Object.entries(v).map(([k, x]) => `${k}: ${genericValue(x)}`).join(", ");
  return String(v);
}

/** One cell of the quality table: known keys get a friendly form, others a generic one. */
function cell(key, v, onSeek) {
  if (v === null || v === undefined) return key === "loudness_lufs" ? "silent" : "—";
  switch (key) {
    case "loudness_lufs":
      return typeof v === "number" ? `${v.toFixed(1)} LUFS` : genericValue(v);
    case "peak_dbfs":
      return typeof v === "number" ? `${v.toFixed(1)} dB` : genericValue(v);
    case "silence_ratio":
      return typeof v === "number" ? pct(v) : genericValue(v);
    case "bleed": {
      const est = typeof v === "number" ? v : v.estimate;
      if (typeof est !== "number") return genericValue(v);
      const word = est < 0.1 ? "low" : est < 0.3 ? "some" : "high";
      return el("span", {}, `${pct(est)} `, el("span", { class: `tag ${word}` }, word), v.source && est >= 0.1 ? el("small", { class: "muted" }, ` from ${stemLabel(v.source).toLowerCase()}`) : null);
    }
    case "midi": {
      if (typeof v !== "object") return genericValue(v);
      if (typeof v.score !== "number") return "no notes to check";
      return el("span", { class: "score" }, meter(v.score), ` ${pct(v.score)}`);
    }
    case "flagged_bars": {
      if (!Array.isArray(v) || !v.length) return "none";
      const chips = v.slice(0, 16).map((b) =>
        typeof b === "object" && b !== null && typeof b.start === "number"
          ? el("button", { class: "chip", title: `${b.reason || "check this bar"} (${formatTime(b.start)})`, onclick: () => onSeek && onSeek(b.start) }, String(b.bar ?? formatTime(b.start)))
          : el("span", { class: "chip" }, genericValue(b)),
      );
      return el("span", { class: "chips" }, chips, v.length > 16 ? el("small", { class: "muted" }, ` +${v.length - 16} more`) : null);
    }
    default:
      return genericValue(v);
  }
}

/** The flagged bars of a stem's quality entry, for the timeline: [{start, end, reason}]. */
export function flaggedBars(entry) {
  const bars = (entry && ((entry.midi && entry.midi.flagged_bars) || entry.flagged_bars)) || [];
  return bars.filter((b) => b && typeof b.start === "number" && typeof b.end === "number");
}

export function qualityEntries(report) {
  const q = report && report.quality;
  if (!q || typeof q !== "object") return {};
  const perStem = q.stems && typeof q.stems === "object" && !Array.isArray(q.stems) ? q.stems : q;
  return Object.fromEntries(Object.entries(perStem).filter(([k, v]) => k in STEMS && v && typeof v === "object"));
}

export function qualitySection(report, stems, onSeek) {
  const q = report && report.quality;
  const section = el("section", { class: "card quality" }, el("h2", {}, "Quality report"));
  if (!q || typeof q !== "object") {
    section.append(el("p", { class: "muted" }, "There is no quality report for this song."));
    return section;
  }
  section.append(
    el("p", { class: "muted intro" }, "Estimates made without the original multitracks: a guide to where to listen closely, not a verdict."),
  );
  const entries = qualityEntries(report);
  const rows = DISPLAY_ORDER.filter((s) => s in entries);
  const columns = [];
  for (const s of rows) {
    for (const k of Object.keys(entries[s])) if (!columns.includes(k)) columns.push(k);
    if (entries[s].midi && typeof entries[s].midi === "object" && "flagged_bars" in entries[s].midi && !columns.includes("flagged_bars"))
      columns.push("flagged_bars");
  }
  if (rows.length) {
    section.append(
      el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          {},
          el("thead", {}, el("tr", {}, el("th", {}, "Stem"), columns.map((c) => el("th", { title: HINTS[c] || null }, label(c))))),
          el(
            "tbody",
            {},
            rows.map((s) =>
              el(
                "tr",
                { dataset: { stem: s } },
                el("th", { scope: "row" }, el("span", { class: "dot", style: { "--c": stemColor(s) } }), stemLabel(s)),
                columns.map((c) => {
                  let v = entries[s][c];
                  if (c === "flagged_bars" && v === undefined && entries[s].midi) v = entries[s].midi.flagged_bars;
                  return el("td", {}, cell(c, v, onSeek));
                }),
              ),
            ),
          ),
        ),
      ),
    );
  }
  const method = q.method && typeof q.method === "object" ? q.method : null;
  const rest = Object.entries(q).filter(([k]) => !(k in STEMS) && !["stems", "method", "version"].includes(k));
  if (rest.length) {
    section.append(el("dl", { class: "kv" }, rest.map(([k, v]) => el("div", {}, el("dt", {}, label(k)), el("dd", {}, genericValue(v))))));
  }
  if (method) {
    section.append(
      el(
        "details",
        { class: "method" },
        el("summary", {}, "How these are measured"),
        el("dl", { class: "kv" }, Object.entries(method).map(([k, v]) => el("div", {}, el("dt", {}, label(k)), el("dd", {}, genericValue(v))))),
      ),
    );
  }
  if (!rows.length && !rest.length) section.append(el("p", { class: "muted" }, "The quality report is empty."));
  return section;
}
