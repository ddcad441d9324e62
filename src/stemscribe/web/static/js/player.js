// Plays every stem in sync with Web Audio: one AudioBufferSourceNode per stem, all started at the
// same AudioContext time; mute, solo and volume are per-stem gains.

export class MultiPlayer {
  constructor() {
    this.ctx = new (window.AudioContext || window.webkitAudioContext)();
    this.master = this.ctx.createGain();
    this.master.connect(this.ctx.destination);
    this.tracks = new Map(); // name -> {buffer, gain, source, volume, muted, solo}
    this.playing = false;
    this.offset = 0; // seconds into the song when paused
    this.startedAt = 0; // ctx time that corresponds to song time 0 while playing
    this.duration = 0;
    this.onended = null;
  }

  /** Fetch and decode one stem. onProgress(fraction) during the download. */
  async load(name, url, onProgress) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`Could not load the ${name} audio (${response.status}).`);
    const total = Number(response.headers.get("Content-Length")) || 0;
    let data;
    if (total && response.body && onProgress) {
      const reader = response.body.getReader();
      const chunks = [];
      let got = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        got += value.length;
        onProgress(got / total);
      }
      data = new Uint8Array(got);
      let at = 0;
      for (const c of chunks) (data.set(c, at), (at += c.length));
      data = data.buffer;
    } else {
      data = await response.arrayBuffer();
    }
    const buffer = await this.ctx.decodeAudioData(data);
    const gain = this.ctx.createGain();
    gain.connect(this.master);
    this.tracks.set(name, { buffer, gain, source: null, volume: 1, muted: false, solo: false });
    this.duration = Math.max(this.duration, buffer.duration);
    this._applyGains();
    return buffer;
  }

  currentTime() {
    if (!this.playing) return this.offset;
    return Math.min(this.ctx.currentTime - this.startedAt, this.duration);
  }

  async play() {
    if (this.playing || !this.tracks.size) return;
    if (this.ctx.state === "suspended") await this.ctx.resume();
    if (this.offset >= this.duration - 0.01) this.offset = 0;
    const when = this.ctx.currentTime + 0.05;
    for (const t of this.tracks.values()) {
      const src = this.ctx.createBufferSource();
      src.buffer = t.buffer;
      src.connect(t.gain);
      src.start(when, Math.min(this.offset, t.buffer.duration));
      t.source = src;
    }
    this.startedAt = when - this.offset;
    this.playing = true;
  }

  pause() {
    if (!this.playing) return;
    this.offset = this.currentTime();
    this._stopSources();
    this.playing = false;
  }

  toggle() {
    return this.playing ? this.pause() : this.play();
  }

  seek(seconds) {
    const wasPlaying = this.playing;
    if (wasPlaying) {
      this._stopSources();
      this.playing = false;
    }
    this.offset = Math.min(Math.max(0, seconds), this.duration);
    if (wasPlaying) this.play();
  }

  /** Called every animation frame by the page: stops at the end of the song. */
  tick() {
    if (this.playing && this.currentTime() >= this.duration) {
      this._stopSources();
      this.playing = false;
      this.offset = 0;
      if (this.onended) this.onended();
    }
    return this.currentTime();
  }

  set(name, changes) {
    const t = this.tracks.get(name);
    if (!t) return;
    Object.assign(t, changes);
    this._applyGains();
  }

  setMasterVolume(v) {
    this.master.gain.setTargetAtTime(v, this.ctx.currentTime, 0.01);
  }

  audible(name) {
    const t = this.tracks.get(name);
    if (!t) return false;
    const anySolo = [...this.tracks.values()].some((x) => x.solo);
    return anySolo ? t.solo : !t.muted;
  }

  _applyGains() {
    for (const [name, t] of this.tracks) {
      const target = this.audible(name) ? t.volume : 0;
      t.gain.gain.setTargetAtTime(target, this.ctx.currentTime, 0.01);
    }
  }

  _stopSources() {
    for (const t of this.tracks.values()) {
      if (t.source) {
        try {
          t.source.stop();
        } catch {
          /* already stopped */
        }
        t.source.disconnect();
        t.source = null;
      }
    }
  }

  close() {
    this._stopSources();
    this.ctx.close();
  }
}

/** Min/max peaks of an AudioBuffer, `perSecond` pairs per second of audio: Float32Array [min0, max0, ...]. */
export function computePeaks(buffer, perSecond = 200) {
  const n = buffer.length;
  const bucket = Math.max(1, Math.floor(buffer.sampleRate / perSecond));
  const count = Math.ceil(n / bucket);
  const peaks = new Float32Array(count * 2);
  const channels = [];
  for (let c = 0; c < buffer.numberOfChannels; c++) channels.push(buffer.getChannelData(c));
  const scale = 1 / channels.length;
  for (let b = 0; b < count; b++) {
    let lo = 0;
    let hi = 0;
    const end = Math.min(n, (b + 1) * bucket);
    for (let i = b * bucket; i < end; i++) {
      let v = 0;
      for (const ch of channels) v += ch[i];
      v *= scale;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    peaks[2 * b] = lo;
    peaks[2 * b + 1] = hi;
  }
  return { peaks, perSecond: buffer.sampleRate / bucket };
}
