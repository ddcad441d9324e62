// The home page: drop songs, choose options, follow the queue of jobs.

import { api, upload, onJobEvent } from "./api.js";
import { el, formatBytes, formatTime, stemLabel, STAGE_LABELS, toast } from "./util.js";

const OPTIONS_KEY = "stemscribe.options";
const STATUS_LABELS = {
  queued: "Waiting",
  running: "Working",
  done: "Ready",
  failed: "Failed",
  cancelled: "Cancelled",
};

function savedOptions() {
  try {
    return JSON.parse(localStorage.getItem(OPTIONS_KEY)) || {};
  } catch {
    return {};
  }
}

export function stageText(job) {
  if (job.status === "queued") return "Waiting for its turn…";
  if (job.status !== "running") return "";
  const label = STAGE_LABELS[job.stage] || "Working";
  const stem = job.stem ? ` (${stemLabel(job.stem).toLowerCase()})` : "";
  return `${label}${stem}… ${Math.round(job.progress * 100)}%`;
}

function summary(job) {
  const o = job.options || {};
  const parts = [];
  if (job.duration) parts.push(formatTime(job.duration));
  if (job.size) parts.push(formatBytes(job.size));
  parts.push((job.result && job.result.model) || o.model || "best available model");
  parts.push((o.format || "wav").toUpperCase());
  parts.push(o.stems ? o.stems.map(stemLabel).join(", ") : "all stems");
  if (o.quantize) parts.push(`MIDI snapped to ${o.quantize}`);
  return parts.join(" · ");
}

export function jobRow(job, { onChange } = {}) {
  const act = (fn, busyText) => async (e) => {
    const button = e.currentTarget;
    button.disabled = true;
    if (busyText) button.textContent = busyText;
    try {
      await fn();
      onChange && onChange();
    } catch (err) {
      toast(err.message, "error");
      button.disabled = false;
    }
  };
  const actions = [];
  if (job.status === "done") {
    actions.push(el("a", { class: "btn primary", href: `#/job/${job.id}` }, "Open"));
  }
  if (job.status === "queued" || job.status === "running") {
    actions.push(el("button", { class: "btn", onclick: act(() => api.cancel(job.id), "Cancelling…") }, "Cancel"));
  }
  if (job.status === "failed" || job.status === "cancelled") {
    actions.push(el("button", { class: "btn primary", onclick: act(() => api.retry(job.id)) }, "Retry"));
  }
  actions.push(
    el(
      "button",
      {
        class: "btn ghost danger",
        title: "Delete this song and its files",
        onclick: act(async () => {
          if (!confirm(`Delete “${job.name}” and all its files?`)) throw new Error("Not deleted.");
          await api.remove(job.id);
        }),
      },
      "Delete",
    ),
  );
  const active = job.status === "running" || job.status === "queued";
  return el(
    "li",
    { class: `job status-${job.status}`, dataset: { id: job.id, status: job.status } },
    el(
      "div",
      { class: "job-main" },
      el(
        "div",
        { class: "job-title" },
        job.status === "done" ? el("a", { href: `#/job/${job.id}` }, job.name) : el("span", {}, job.name),
        el("span", { class: `badge ${job.status}` }, STATUS_LABELS[job.status] || job.status),
      ),
      el("div", { class: "job-meta" }, summary(job)),
      active &&
        el(
          "div",
          { class: "progress", role: "progressbar", "aria-valuenow": Math.round(job.progress * 100), "aria-valuemin": 0, "aria-valuemax": 100 },
          el("div", { class: "bar", style: { width: `${(job.progress * 100).toFixed(1)}%` } }),
        ),
      active && el("div", { class: "job-stage" }, stageText(job)),
      job.error && job.status !== "cancelled" && el("div", { class: "job-error" }, job.error),
    ),
    el("div", { class: "job-actions" }, actions),
  );
}

function optionsForm(opts) {
  const saved = savedOptions();
  const field = (label, control, hint) =>
    el("label", { class: "field" }, el("span", { class: "field-label" }, label), control, hint && el("small", {}, hint));

  const model = el(
    "select",
    { name: "model" },
    el("option", { value: "" }, "Best available (default)"),
    opts.models.map((m) =>
      el("option", { value: m.name, disabled: !m.available, title: m.description || null }, m.available ? m.name : `${m.name} (not installed)`),
    ),
  );
  model.value = saved.model || "";
  if (model.selectedIndex < 0) model.value = "";

  const format = el("select", { name: "format" }, opts.formats.map((f) => el("option", { value: f }, f.toUpperCase())));
  format.value = opts.formats.includes(saved.format) ? saved.format : opts.formats[0];

  const quantize = el(
    "select",
    { name: "quantize" },
    el("option", { value: "" }, "As played"),
    opts.grids.map((g) => el("option", { value: g }, `Snap to ${g.replace("t", " triplet")} notes`)),
  );
  quantize.value = opts.grids.includes(saved.quantize) ? saved.quantize : "";

  const chosen = new Set(saved.stems && saved.stems.length ? saved.stems : opts.stems);
  const stems = el(
    "div",
    { class: "stem-choices" },
    opts.stems.map((s) =>
      el("label", { class: "check" }, el("input", { type: "checkbox", name: "stems", value: s, checked: chosen.has(s) }), stemLabel(s)),
    ),
  );

  const form = el(
    "form",
    { class: "options-grid", onsubmit: (e) => e.preventDefault() },
    field("Separation model", model),
    field("Stems to keep", stems),
    field("Audio files", format),
    field("MIDI timing", quantize),
  );
  form.addEventListener("change", () => localStorage.setItem(OPTIONS_KEY, JSON.stringify(read())));

  function read() {
    const picked = [...form.querySelectorAll("input[name=stems]:checked")].map((i) => i.value);
    return {
      model: model.value,
      stems: picked.length === opts.stems.length ? "" : picked.join(","),
      format: format.value,
      quantize: quantize.value,
      _count: picked.length,
    };
  }
  return { form, read };
}

export async function renderHome(view) {
  const [opts, jobs] = await Promise.all([api.options(), api.jobs()]);
  const input = el("input", { type: "file", multiple: true, accept: "audio/*,video/*,.mp3,.wav,.flac,.ogg,.m4a,.aac,.aif,.aiff,.opus,.webm", hidden: true });
  const drop = el(
    "div",
    { class: "dropzone", tabindex: "0", role: "button", "aria-label": "Drop songs here or choose files" },
    el("div", { class: "drop-icon", "aria-hidden": "true" }, "♫"),
    el("div", { class: "drop-title" }, "Drop songs here"),
    el("div", { class: "drop-or" }, "or"),
    el("button", { class: "btn primary", type: "button", onclick: (e) => (e.stopPropagation(), input.click()) }, "Choose files…"),
    el("div", { class: "drop-hint" }, `MP3, WAV, FLAC, OGG, M4A or a video · up to ${opts.max_upload_mb} MB each · nothing leaves this computer`),
    input,
  );
  const { form, read } = optionsForm(opts);
  const messages = el("div", { id: "upload-messages", class: "messages", role: "alert" });
  const list = el("ul", { id: "job-list", class: "job-list" });
  const empty = el("p", { class: "empty muted" }, "No songs yet. Drop one above to get started.");

  view.replaceChildren(
    el(
      "section",
      { class: "card upload-card" },
      drop,
      el("details", { class: "options", open: true }, el("summary", {}, "Options"), form),
    ),
    messages,
    el("section", { class: "card" }, el("h2", {}, "Your songs"), list, empty),
  );

  const rows = new Map();
  const refresh = async () => {
    try {
      render(await api.jobs());
    } catch (err) {
      toast(err.message, "error");
    }
  };
  function place(job) {
    const row = jobRow(job, { onChange: refresh });
    const old = rows.get(job.id);
    if (old && old.isConnected) old.replaceWith(row);
    else list.prepend(row);
    rows.set(job.id, row);
    empty.hidden = rows.size > 0 || list.children.length > 0;
  }
  function render(all) {
    for (const [id, row] of rows) if (!all.find((j) => j.id === id)) (row.remove(), rows.delete(id));
    for (const job of [...all].reverse()) place(job);
  }
  render(jobs);

  const stop = onJobEvent((ev) => {
    if (!view.isConnected || !list.isConnected) return stop();
    if (ev.type === "job") place(ev.job);
    else if (ev.type === "deleted") {
      const row = rows.get(ev.id);
      if (row) row.remove();
      rows.delete(ev.id);
      empty.hidden = rows.size > 0;
    } else if (ev.type === "hello") refresh();
  });

  function showError(message) {
    const note = el("div", { class: "message error" }, el("span", {}, message));
    note.append(el("button", { class: "toast-close", "aria-label": "Dismiss", onclick: () => note.remove() }, "×"));
    messages.append(note);
  }

  async function send(files) {
    const options = read();
    if (!options._count) {
      showError("Pick at least one stem to keep (under Options).");
      return;
    }
    delete options._count;
    for (const file of files) {
      if (file.size > opts.max_upload_mb * 1e6) {
        showError(`“${file.name}” was not added: it is larger than the upload limit of ${opts.max_upload_mb} MB.`);
        continue;
      }
      const bar = el("div", { class: "bar", style: { width: "0%" } });
      const pending = el(
        "li",
        { class: "job status-uploading" },
        el(
          "div",
          { class: "job-main" },
          el("div", { class: "job-title" }, el("span", {}, file.name), el("span", { class: "badge queued" }, "Uploading")),
          el("div", { class: "progress" }, bar),
        ),
      );
      list.prepend(pending);
      empty.hidden = true;
      try {
        const job = await upload(file, options, (f) => (bar.style.width = `${(f * 100).toFixed(1)}%`));
        pending.remove();
        place(job);
      } catch (err) {
        pending.remove();
        // The server's message names the file already; a network error does not.
        showError(err.message.includes(file.name) ? err.message : `“${file.name}” was not added: ${err.message}`);
        empty.hidden = rows.size > 0;
      }
    }
  }

  input.addEventListener("change", () => {
    send([...input.files]);
    input.value = "";
  });
  drop.addEventListener("click", () => input.click());
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") (e.preventDefault(), input.click());
  });
  const over = (on) => (e) => {
    e.preventDefault();
    drop.classList.toggle("dragging", on);
  };
  drop.addEventListener("dragenter", over(true));
  drop.addEventListener("dragover", over(true));
  drop.addEventListener("dragleave", over(false));
  drop.addEventListener("drop", (e) => {
    over(false)(e);
    const files = [...(e.dataTransfer ? e.dataTransfer.files : [])];
    if (files.length) send(files);
  });
}

// Dropping a file anywhere else in the page must not navigate away from the app.
window.addEventListener("dragover", (e) => e.preventDefault());
window.addEventListener("drop", (e) => e.preventDefault());
