// The shared timeline of the results page: a time ruler, then one lane per stem with its waveform
// on top and its notes below (a piano roll, or a drum grid with named rows), and one playhead.
// Canvases are the size of the visible window and are redrawn when the view scrolls or zooms.

import { clamp } from "./util.js";

export const RULER_H = 26;
export const LANE_H = 168;
const WAVE_H = 52;
const LABEL_W = 74; // where a lane's messages ("Loading audio…") start

// Drum rows from top to bottom: cymbals, hi-hats, toms, snare, kick.
const DRUM_ORDER = [49, 57, 55, 52, 51, 59, 53, 46, 42, 44, 50, 48, 47, 45, 43, 41, 54, 56, 39, 37, 40, 38, 36, 35];
const NOTE_NAMES = ["C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B"];

export function noteName(pitch) {
  return `${NOTE_NAMES[pitch % 12]}${Math.floor(pitch / 12) - 1}`;
}

export class Timeline {
  /**
   * @param {HTMLElement} host  where the scrolling lanes go
   * @param {{duration: number, beats?: number[], downbeats?: number[], beatsPerBar?: number}} song
   */
  constructor(host, song) {
    this.duration = Math.max(song.duration || 0, 0.1);
    this.beats = song.beats || [];
    this.beatsPerBar = song.beatsPerBar || 4;
    // bar lines from the first downbeat (a beat of the song that starts a bar); without one, from the first beat
    const first = (song.downbeats || []).length ? this.beats.findIndex((b) => Math.abs(b - song.downbeats[0]) < 1e-3) : -1;
    this.barPhase = first >= 0 ? first % this.beatsPerBar : 0;
    this.zoom = 1;
    this.time = 0;
    this.lanes = []; // {stem, color, canvas, peaks, notes, audible, message}
    this.onseek = null;

    this.scroll = document.createElement("div");
    this.scroll.className = "tl-scroll";
    this.inner = document.createElement("div");
    this.inner.className = "tl-inner";
    this.sticky = document.createElement("div");
    this.sticky.className = "tl-sticky";
    this.ruler = this._canvas(RULER_H, "tl-ruler");
    this.sticky.append(this.ruler);
    this.playhead = document.createElement("div");
    this.playhead.className = "tl-playhead";
    this.inner.append(this.sticky, this.playhead);
    this.scroll.append(this.inner);
    host.append(this.scroll);

    let pending = false;
    this.scroll.addEventListener("scroll", () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => ((pending = false), this.draw()));
    });
    this.inner.addEventListener("pointerdown", (e) => {
      const rect = this.scroll.getBoundingClientRect();
      const x = e.clientX - rect.left + this.scroll.scrollLeft;
      if (this.onseek) this.onseek(clamp((x / this.width) * this.duration, 0, this.duration));
    });
    new ResizeObserver(() => this.layout()).observe(this.scroll);
  }

  _canvas(height, cls) {
    const c = document.createElement("canvas");
    c.className = cls;
    c.style.height = `${height}px`;
    c.dataset.h = height;
    return c;
  }

  addLane(stem, color) {
    const canvas = this._canvas(LANE_H, "tl-lane");
    canvas.dataset.stem = stem;
    this.sticky.append(canvas);
    const lane = { stem, color, canvas, peaks: null, notes: null, audible: true, message: "Loading audio…" };
    this.lanes.push(lane);
    this.layout();
    return lane;
  }

  lane(stem) {
    return this.lanes.find((l) => l.stem === stem);
  }

  update(stem, changes) {
    Object.assign(this.lane(stem), changes);
    this.draw();
  }

  setZoom(zoom) {
    const center = this.scroll.scrollLeft + this.viewWidth / 2;
    const t = (center / this.width) * this.duration;
    this.zoom = zoom;
    this.layout();
    this.scroll.scrollLeft = (t / this.duration) * this.width - this.viewWidth / 2;
    this.draw();
  }

  layout() {
    this.viewWidth = Math.max(200, this.scroll.clientWidth);
    this.width = Math.round(this.viewWidth * this.zoom);
    this.inner.style.width = `${this.width}px`;
    const dpr = window.devicePixelRatio || 1;
    for (const c of [this.ruler, ...this.lanes.map((l) => l.canvas)]) {
      c.style.width = `${this.viewWidth}px`;
      c.width = Math.round(this.viewWidth * dpr);
      c.height = Math.round(Number(c.dataset.h) * dpr);
    }
    this.sticky.style.width = `${this.viewWidth}px`;
    this.setTime(this.time, false);
    this.draw();
  }

  /** Move the playhead; while playing, turn the page when it leaves the view. */
  setTime(t, follow = true) {
    this.time = t;
    const x = (t / this.duration) * this.width;
    this.playhead.style.transform = `translateX(${x}px)`;
    if (follow && this.zoom > 1) {
      const left = this.scroll.scrollLeft;
      if (x < left || x > left + this.viewWidth - 24) this.scroll.scrollLeft = x - 24;
    }
  }

  window() {
    const t0 = (this.scroll.scrollLeft / this.width) * this.duration;
    const t1 = ((this.scroll.scrollLeft + this.viewWidth) / this.width) * this.duration;
    return [t0, t1, this.viewWidth / (t1 - t0)];
  }

  draw() {
    if (!this.width) return;
    const [t0, t1, pps] = this.window();
    this._drawRuler(t0, t1, pps);
    for (const lane of this.lanes) this._drawLane(lane, t0, t1, pps);
  }

  _ctx(canvas) {
    const ctx = canvas.getContext("2d");
    const dpr = canvas.width / this.viewWidth;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return ctx;
  }

  _drawRuler(t0, t1, pps) {
    const ctx = this._ctx(this.ruler);
    const w = this.viewWidth;
    ctx.clearRect(0, 0, w, RULER_H);
    ctx.fillStyle = "#f4f5fa";
    ctx.fillRect(0, 0, w, RULER_H);
    const step = [1, 2, 5, 10, 15, 30, 60, 120].find((s) => s * pps >= 64) || 300;
    ctx.fillStyle = "#5c6178";
    ctx.strokeStyle = "#c5c9d8";
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      const x = Math.round((t - t0) * pps) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, RULER_H - 8);
      ctx.lineTo(x, RULER_H);
      ctx.stroke();
      const m = Math.floor(t / 60);
      const s = String(Math.round(t % 60)).padStart(2, "0");
      ctx.fillText(`${m}:${s}`, x + 4, RULER_H / 2 - 1);
    }
    ctx.fillStyle = "#dfe2ec";
    ctx.fillRect(0, RULER_H - 1, w, 1);
  }

  _drawBeats(ctx, t0, t1, pps, top, height) {
    if (!this.beats.length) return;
    const spacing = (this.beats.length > 1 ? (this.beats.at(-1) - this.beats[0]) / (this.beats.length - 1) : 1) * pps;
    this.beats.forEach((b, i) => {
      if (b < t0 || b > t1) return;
      const bar = (i - this.barPhase) % this.beatsPerBar === 0;
      if (!bar && spacing < 6) return;
      ctx.fillStyle = bar ? "rgba(31,35,64,0.13)" : "rgba(31,35,64,0.05)";
      ctx.fillRect(Math.round((b - t0) * pps), top, 1, height);
    });
  }

  _drawLane(lane, t0, t1, pps) {
    const ctx = this._ctx(lane.canvas);
    const w = this.viewWidth;
    const color = lane.audible ? lane.color : "#adb5bd";
    ctx.clearRect(0, 0, w, LANE_H);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, w, LANE_H);
    // waveform
    ctx.fillStyle = "#fafbfd";
    ctx.fillRect(0, 0, w, WAVE_H);
    const mid = WAVE_H / 2;
    if (lane.peaks) {
      const { peaks, perSecond } = lane.peaks;
      const n = peaks.length / 2;
      // Scale each stem to its own loudest peak (at most 8x) so quiet stems stay readable.
      if (lane.peaks.gain === undefined) {
        let top = 0;
        for (let i = 0; i < peaks.length; i++) top = Math.max(top, Math.abs(peaks[i]));
        lane.peaks.gain = top > 0 ? Math.min(0.95 / top, 8) : 1;
      }
      const gain = lane.peaks.gain;
      ctx.fillStyle = color;
      ctx.globalAlpha = 0.85;
      for (let x = 0; x < w; x++) {
        const a = Math.floor((t0 + x / pps) * perSecond);
        const b = Math.max(a + 1, Math.floor((t0 + (x + 1) / pps) * perSecond));
        if (a >= n) break;
        let lo = 0;
        let hi = 0;
        for (let i = Math.max(0, a); i < Math.min(n, b); i++) {
          if (peaks[2 * i] < lo) lo = peaks[2 * i];
          if (peaks[2 * i + 1] > hi) hi = peaks[2 * i + 1];
        }
        const y0 = mid - hi * gain * (mid - 3);
        const y1 = mid - lo * gain * (mid - 3);
        ctx.fillRect(x, y0, 1, Math.max(1, y1 - y0));
      }
      ctx.globalAlpha = 1;
    } else {
      this._message(ctx, lane.message || "", 0, WAVE_H);
    }
    ctx.fillStyle = "#e6e8f0";
    ctx.fillRect(0, WAVE_H, w, 1);
    // notes
    const top = WAVE_H + 1;
    const height = LANE_H - top - 1;
    for (const f of lane.flags || []) {
      if (f.end < t0 || f.start > t1) continue;
      const x0 = (f.start - t0) * pps;
      const fw = Math.max(2, (f.end - f.start) * pps);
      ctx.fillStyle = "rgba(250,82,82,0.08)";
      ctx.fillRect(x0, top, fw, height);
      ctx.fillStyle = "rgba(224,49,49,0.55)";
      ctx.fillRect(x0, top, fw, 2);
    }
    this._drawBeats(ctx, t0, t1, pps, top, height);
    const data = lane.notes;
    if (!data) {
      this._message(ctx, lane.notesMessage || "Loading notes…", top, height);
    } else if (!data.notes.length) {
      this._message(ctx, "No notes found in this stem", top, height);
    } else if (data.is_drum) {
      this._drawDrums(ctx, data, color, t0, t1, pps, top, height);
    } else {
      this._drawPitched(ctx, data, color, t0, t1, pps, top, height);
    }
    ctx.fillStyle = "#dfe2ec";
    ctx.fillRect(0, LANE_H - 1, w, 1);
  }

  _message(ctx, text, top, height) {
    ctx.fillStyle = "#8a8fa3";
    ctx.font = "13px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    ctx.fillText(text, LABEL_W, top + height / 2);
  }

  _drawPitched(ctx, data, color, t0, t1, pps, top, height) {
    if (data._lo === undefined) {
      let lo = 127;
      let hi = 0;
      for (const [p] of data.notes) (lo = Math.min(lo, p)), (hi = Math.max(hi, p));
      const span = Math.max(hi - lo + 3, 18);
      const center = (lo + hi) / 2;
      data._lo = Math.max(0, Math.floor(center - span / 2));
      data._hi = Math.min(127, data._lo + span);
    }
    const lo = data._lo;
    const hi = data._hi;
    const row = height / (hi - lo + 1);
    const y = (p) => top + (hi - p) * row;
    // octave lines and labels
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (let p = lo; p <= hi; p++) {
      if (p % 12 === 0) {
        ctx.fillStyle = "rgba(31,35,64,0.08)";
        ctx.fillRect(0, Math.round(y(p) + row), this.viewWidth, 1);
      }
    }
    ctx.fillStyle = color;
    for (const [p, s, e, v] of data.notes) {
      if (e < t0 || s > t1) continue;
      ctx.globalAlpha = 0.45 + 0.55 * (v / 127);
      const x = (s - t0) * pps;
      this._rect(ctx, x, y(p) + 0.5, Math.max(2, (e - s) * pps), Math.max(1.5, row - 1));
    }
    ctx.globalAlpha = 1;
    for (let p = lo; p <= hi; p++) if (p % 12 === 0) this._label(ctx, noteName(p), y(p) + row / 2);
  }

  /** A small label on a light pill at the left edge, readable over notes. */
  _label(ctx, text, cy) {
    const w = ctx.measureText(text).width + 8;
    ctx.fillStyle = "rgba(255,255,255,0.88)";
    ctx.beginPath();
    ctx.roundRect ? ctx.roundRect(2, cy - 7, w, 14, 4) : ctx.rect(2, cy - 7, w, 14);
    ctx.fill();
    ctx.fillStyle = "#4a4f66";
    ctx.fillText(text, 6, cy + 0.5);
  }

  _drawDrums(ctx, data, color, t0, t1, pps, top, height) {
    if (!data._rows) {
      const present = [...new Set(data.notes.map((n) => n[0]))];
      present.sort((a, b) => {
        const ia = DRUM_ORDER.indexOf(a);
        const ib = DRUM_ORDER.indexOf(b);
        return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a - b;
      });
      data._rows = present;
    }
    const rows = data._rows;
    const row = height / rows.length;
    const index = new Map(rows.map((p, i) => [p, i]));
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    rows.forEach((p, i) => {
      if (i % 2 === 1) {
        ctx.fillStyle = "rgba(31,35,64,0.035)";
        ctx.fillRect(0, top + i * row, this.viewWidth, row);
      }
    });
    ctx.fillStyle = color;
    const size = Math.max(3, Math.min(row - 3, 9));
    for (const [p, s, , v] of data.notes) {
      if (s < t0 - 0.05 || s > t1) continue;
      const x = (s - t0) * pps;
      const cy = top + index.get(p) * row + row / 2;
      ctx.globalAlpha = 0.45 + 0.55 * (v / 127);
      ctx.beginPath();
      ctx.moveTo(x, cy - size / 2);
      ctx.lineTo(x + size / 2, cy);
      ctx.lineTo(x, cy + size / 2);
      ctx.lineTo(x - size / 2, cy);
      ctx.closePath();
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    if (row >= 9) rows.forEach((p, i) => this._label(ctx, (data.drum_names && data.drum_names[p]) || `Drum ${p}`, top + i * row + row / 2));
  }

  _rect(ctx, x, y, w, h) {
    const r = Math.min(2, h / 2, w / 2);
    ctx.beginPath();
    ctx.roundRect ? ctx.roundRect(x, y, w, h, r) : ctx.rect(x, y, w, h);
    ctx.fill();
  }
}
