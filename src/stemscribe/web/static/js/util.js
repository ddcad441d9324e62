// Small helpers shared by the views.

export const STEMS = {
  vocals: { label: "Vocals", color: "#be4bdb" },
  drums: { label: "Drums", color: "#f76707" },
  bass: { label: "Bass", color: "#4c6ef5" },
  other: { label: "Other", color: "#12b886" },
};

export const STAGE_LABELS = {
  load: "Reading the song",
  separate: "Separating the stems",
  tempo: "Finding the tempo and key",
  transcribe: "Writing down the notes",
  report: "Checking the quality",
  write: "Saving the files",
};

/** Build an element: el("div", {class: "x", onclick: fn}, child, "text", ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style" && typeof value === "object") {
      for (const [prop, v] of Object.entries(value)) {
        if (prop.startsWith("--")) node.style.setProperty(prop, v);
        else node.style[prop] = v;
      }
    }
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function formatTime(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) seconds = 0;
  const m = Math.floor(seconds / 60);
  const s = Math.floor(seconds % 60);
  return `${m}:${String(s).padStart(2, "0")}`;
}

export function formatBytes(n) {
  if (!n) return "";
  if (n < 1e6) return `${Math.max(1, Math.round(n / 1e3))} KB`;
  return `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`;
}

export function stemLabel(stem) {
  return (STEMS[stem] && STEMS[stem].label) || stem;
}

export function stemColor(stem) {
  return (STEMS[stem] && STEMS[stem].color) || "#868e96";
}

/** A short message in the corner; kind is "info" or "error". */
export function toast(message, kind = "info", ms = 6000) {
  const box = document.getElementById("toasts");
  const node = el("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  const close = el("button", { class: "toast-close", "aria-label": "Dismiss", onclick: () => node.remove() }, "×");
  node.append(close);
  box.append(node);
  if (ms) setTimeout(() => node.remove(), ms);
}

export function clamp(x, lo, hi) {
  return Math.min(hi, Math.max(lo, x));
}

// Icons are fixed SVG strings from this file (never data from the server).
const ICONS = {
  play: '<path d="M7 4.5v15l12.5-7.5z"/>',
  pause: '<path d="M6.5 4.5h4v15h-4zM13.5 4.5h4v15h-4z"/>',
  rewind: '<path d="M5 4.5h2.5v15H5zM20 4.5v15L9 12z"/>',
  download: '<path d="M11 3.5h2v9.2l3.3-3.3 1.4 1.4-5.7 5.7-5.7-5.7 1.4-1.4 3.3 3.3zM4.5 18.5h15v2h-15z"/>',
};

export function icon(name) {
  const span = document.createElement("span");
  span.className = "icon";
  span.setAttribute("aria-hidden", "true");
  span.innerHTML = `<svg viewBox="0 0 24 24" width="18" height="18" fill="currentColor">${ICONS[name]}</svg>`;
  return span;
}
