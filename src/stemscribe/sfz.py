"""A small sample player shared by SoundFont (SF2) and SFZ rendering, plus SFZ read/write.

An :class:`Instrument` is a list of :class:`Region` s — one sample each, mapped to a key range and a
velocity range, with a root key, tuning, loop points and an amplitude envelope. This is the common
subset of SF2 instrument zones and SFZ ``<region>`` s, so one voice renderer plays both.

Rendering is offline and unlimited in polyphony: every note is one (or a few) voices, each resampled
by linear interpolation to its pitch, looped while held when the region loops, shaped by its
attack/hold/decay/sustain/release envelope, panned, and summed into a stereo buffer ``(2, n)``.

SFZ support covers what :mod:`stemscribe.capture` writes and what common sample libraries use most:
``<control> <global> <master> <group> <region>`` headers, ``sample default_path key lokey hikey
pitch_keycenter lovel hivel tune transpose volume pan amp_veltrack ampeg_attack ampeg_hold ampeg_decay
ampeg_sustain ampeg_release loop_mode loop_start loop_end offset end``, and a 2-pole low-pass
(``cutoff resonance fil_veltrack fileg_*``; any ``fil_type`` is played as ``lpf_2p``). Release
triggers, round robins and other modulation are ignored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import BadInputError

LOOP_MODES = ("no_loop", "one_shot", "loop_continuous", "loop_sustain")


@dataclass
class Region:
    """One sample mapped onto keys and velocities.

    ``data`` is the sample, shape ``(n,)`` float32 (mono; stereo files are mixed down), at ``sr`` Hz.
    ``loop_start``/``loop_end`` are sample indices (end exclusive) used when ``loop_mode`` loops.
    Envelope times are seconds; ``sustain`` is a linear level 0..1; ``volume`` is dB; ``pan`` -1..1.
    ``amp_veltrack`` 0..1: 1 means gain ``(velocity / 127) ** 2`` (SFZ and SF2 default curve).
    """

    data: np.ndarray
    sr: int
    pitch_keycenter: int = 60
    lokey: int = 0
    hikey: int = 127
    lovel: int = 1
    hivel: int = 127
    tune: float = 0.0  # cents
    volume: float = 0.0  # dB
    pan: float = 0.0
    amp_veltrack: float = 1.0
    attack: float = 0.0
    hold: float = 0.0
    decay: float = 0.0
    sustain: float = 1.0
    release: float = 0.05
    loop_mode: str = "no_loop"
    loop_start: int = 0
    loop_end: int = 0
    pitch_keytrack: float = 1.0  # 0 for unpitched (drum) samples
    sample: str = ""  # file name relative to the .sfz (for writing)
    # 2-pole low-pass filter (off when cutoff is None): cutoff Hz, resonance dB, and a filter envelope
    # (delay/attack/hold/decay/release seconds, sustain 0..1) moving the cutoff by fileg_depth cents
    cutoff: float | None = None
    resonance: float = 0.0
    fil_veltrack: float = 0.0  # cents at velocity 127 (SFZ); SF2's default modulator when sf2_vel2filter
    sf2_vel2filter: bool = False
    fileg_depth: float = 0.0
    fileg_delay: float = 0.0
    fileg_attack: float = 0.0
    fileg_hold: float = 0.0
    fileg_decay: float = 0.0
    fileg_sustain: float = 1.0
    fileg_release: float = 0.0

    @property
    def loops(self) -> bool:
        return self.loop_mode in ("loop_continuous", "loop_sustain") and 0 <= self.loop_start < self.loop_end - 8


@dataclass
class Instrument:
    """A playable instrument: regions plus a name."""

    name: str
    regions: list[Region] = field(default_factory=list)

    def regions_for(self, pitch: int, velocity: int) -> list[Region]:
        """The regions a note triggers (key and velocity inside the region's ranges)."""
        return [r for r in self.regions if r.lokey <= pitch <= r.hikey and r.lovel <= velocity <= r.hivel]

    def key_range(self) -> tuple[int, int]:
        """Lowest and highest mapped key, ``(lo, hi)``; raises when there are no regions."""
        if not self.regions:
            raise BadInputError(f"instrument {self.name!r} has no regions")
        return min(r.lokey for r in self.regions), max(r.hikey for r in self.regions)

    def mapped_keys(self) -> np.ndarray:
        """Boolean ``(128,)``: keys some region answers."""
        keys = np.zeros(128, dtype=bool)
        for r in self.regions:
            keys[max(r.lokey, 0) : min(r.hikey, 127) + 1] = True
        return keys

    def nearest_regions(self, pitch: int, velocity: int) -> list[Region]:
        """Regions of the mapped key closest to ``pitch`` (for notes outside every key range)."""
        keys = np.flatnonzero(self.mapped_keys())
        if not len(keys):
            return []
        key = int(keys[np.argmin(np.abs(keys - pitch))])
        found = self.regions_for(key, velocity)
        if not found:  # velocity gap: take the closest velocity layer
            cands = [r for r in self.regions if r.lokey <= key <= r.hikey]
            if not cands:
                return []
            best = min(cands, key=lambda r: min(abs(velocity - r.lovel), abs(velocity - r.hivel)))
            found = [best]
        return found


@dataclass
class Voice:
    """A note to play: MIDI ``pitch``, ``start``/``end`` seconds, ``velocity`` 1..127, extra ``gain`` (linear)."""

    pitch: int
    start: float
    end: float
    velocity: int
    gain: float = 1.0
    pan: float = 0.0


def _envelope(region: Region, n_held: int, n_total: int, sr: int) -> np.ndarray:
    """Amplitude envelope ``(n_total,)``: AHDS while held (``n_held`` samples), then release."""
    t = np.arange(n_total, dtype=np.float64) / sr
    env = np.full(n_total, region.sustain, dtype=np.float64)
    a, h, d = max(region.attack, 0.0), max(region.hold, 0.0), max(region.decay, 0.0)
    if a > 0:
        m = t < a
        env[m] = t[m] / a
    m = (t >= a) & (t < a + h)
    env[m] = 1.0
    if d > 0:
        m = (t >= a + h) & (t < a + h + d)
        # exponential-ish decay toward sustain (linear in dB like SF2/SFZ)
        frac = (t[m] - a - h) / d
        lo = max(region.sustain, 1e-4)
        env[m] = np.exp(np.log(lo) * frac) if region.sustain < 1 else 1.0
    if n_held < n_total:
        level = env[n_held - 1] if n_held > 0 else 0.0
        r = max(region.release, 0.002)
        tr = (np.arange(n_total - n_held, dtype=np.float64) + 1) / sr
        # -60 dB over the release time, then silence
        env[n_held:] = level * np.where(tr < r, 10.0 ** (-3.0 * tr / r), 0.0)
    return env


_FILTER_BLOCK = 512  # samples per filter-coefficient update (11.6 ms at 44.1 kHz)


def _filter_env(region: Region, n_held: int, n_total: int, sr: int, step: int) -> np.ndarray:
    """Filter envelope 0..1 sampled every ``step`` samples, ``(ceil(n_total / step),)``."""
    t = np.arange(0, n_total, step, dtype=np.float64) / sr
    d, a, h, dc = region.fileg_delay, region.fileg_attack, region.fileg_hold, region.fileg_decay
    sus = float(np.clip(region.fileg_sustain, 0.0, 1.0))
    env = np.full(len(t), sus)
    env[t < d] = 0.0
    m = (t >= d) & (t < d + a)
    env[m] = (t[m] - d) / a if a > 0 else 1.0
    env[(t >= d + a) & (t < d + a + h)] = 1.0
    if dc > 0:
        m = (t >= d + a + h) & (t < d + a + h + dc)
        env[m] = 1.0 - (1.0 - sus) * (t[m] - d - a - h) / dc
    t_off = n_held / sr
    off = t >= t_off
    if off.any():
        level = env[~off][-1] if (~off).any() else 0.0
        r = max(region.fileg_release, 1e-3)
        env[off] = level * np.clip(1.0 - (t[off] - t_off) / r, 0.0, 1.0)
    return env


def _lowpass(x: np.ndarray, region: Region, voice: Voice, n_held: int, sr: int) -> np.ndarray:
    """The region's 2-pole resonant low-pass (RBJ biquad), cutoff updated every 512 samples (one
    pass when no filter envelope moves it)."""
    from scipy.signal import lfilter

    base = 1200.0 * math.log2(max(region.cutoff or 20000.0, 1.0) / 8.176)
    v = max(1, min(127, int(voice.velocity)))
    if region.sf2_vel2filter:
        base += -2400.0 * (1.0 - v / 127.0) if v >= 64 else 0.0  # SF2 default modulator (as FluidSynth)
    else:
        base += region.fil_veltrack * v / 127.0
    env = _filter_env(region, n_held, len(x), sr, _FILTER_BLOCK) if region.fileg_depth else None
    q_db = region.resonance - 3.01  # 0 dB resonance = Butterworth
    q = 10.0 ** (q_db / 20.0)
    gain = 1.0 / math.sqrt(q) if q > 1.0 else 1.0  # keep the pass band level (FluidSynth does the same)
    out = np.empty_like(x)
    zi = np.zeros(2)
    nyq = 0.45 * sr
    block = _FILTER_BLOCK if env is not None else max(len(x), 1)
    for i, start in enumerate(range(0, len(x), block)):
        cents = base + (region.fileg_depth * env[i] if env is not None else 0.0)
        fc = min(8.176 * 2.0 ** (cents / 1200.0), nyq)
        w0 = 2.0 * math.pi * max(fc, 5.0) / sr
        alpha = math.sin(w0) / (2.0 * q)
        cw = math.cos(w0)
        b = np.array([(1 - cw) / 2, 1 - cw, (1 - cw) / 2]) * gain
        a = np.array([1 + alpha, -2 * cw, 1 - alpha])
        blk = x[start : start + block]
        y, zi = lfilter(b / a[0], a / a[0], blk, zi=zi)
        out[start : start + len(blk)] = y
    return out


def render_voice(region: Region, voice: Voice, sr: int, *, max_release: float = 10.0) -> np.ndarray:
    """One voice of ``region`` playing ``voice``, shape ``(n,)`` float32 at output rate ``sr``."""
    semis = (voice.pitch - region.pitch_keycenter) * region.pitch_keytrack + region.tune / 100.0
    step = 2.0 ** (semis / 12.0) * region.sr / sr
    held = max(voice.end - voice.start, 1.0 / sr)
    release = min(max(region.release, 0.002), max_release)
    n_held = int(round(held * sr))
    data = region.data
    length = len(data)
    if region.loops:
        n_total = n_held + int(math.ceil(release * sr))
    else:
        n_sample = int(math.floor((length - 1) / step))  # how long the sample lasts at this pitch
        if region.loop_mode == "one_shot":
            n_total = n_sample
            n_held = n_total
        else:
            n_total = min(n_held + int(math.ceil(release * sr)), n_sample)
            n_held = min(n_held, n_total)
    if n_total <= 1:
        return np.zeros(0, dtype=np.float32)
    pos = np.arange(n_total, dtype=np.float64) * step
    if region.loops:
        ls, le = float(region.loop_start), float(region.loop_end)
        over = pos >= le
        pos[over] = ls + np.mod(pos[over] - ls, le - ls)
    pos = np.minimum(pos, length - 1.000001)
    i0 = pos.astype(np.int64)
    frac = (pos - i0).astype(np.float32)
    i1 = np.minimum(i0 + 1, length - 1)
    out = data[i0] * (1.0 - frac) + data[i1] * frac
    if region.cutoff is not None:
        out = _lowpass(out.astype(np.float64), region, voice, n_held, sr)
    env = _envelope(region, n_held, n_total, sr)
    vel = max(1, min(127, int(voice.velocity))) / 127.0
    gain = (1.0 - region.amp_veltrack) + region.amp_veltrack * vel * vel
    gain *= 10.0 ** (region.volume / 20.0) * voice.gain
    return (out * (env * gain)).astype(np.float32)


def render_voices(
    pairs: Iterable[tuple[Region, Voice]], sr: int, *, n_samples: int | None = None
) -> np.ndarray:
    """Mix voices into a stereo buffer ``(2, n)`` float32 (equal-power pan).

    Voices are mixed as they are rendered, so memory stays at the size of the output.
    """
    pairs = list(pairs)
    if n_samples is None:
        ends = [v.end + min(max(r.release, 0.002), 10.0) for r, v in pairs]
        cap = int(math.ceil((max(ends) if ends else 0.0) * sr)) + 2
    else:
        cap = n_samples
    out = np.zeros((2, max(cap, 0)), dtype=np.float32)
    last = 0
    for region, voice in pairs:
        start = max(int(round(voice.start * sr)), 0)
        if start >= cap:
            continue
        y = render_voice(region, voice, sr)[: cap - start]
        if not len(y):
            continue
        pan = float(np.clip(region.pan + voice.pan, -1.0, 1.0))
        theta = (pan + 1.0) * math.pi / 4.0
        out[0, start : start + len(y)] += y * math.cos(theta)
        out[1, start : start + len(y)] += y * math.sin(theta)
        last = max(last, start + len(y))
    return out if n_samples is not None else out[:, :last]


# --------------------------------------------------------------------------------------------- SFZ
_NOTE_NAMES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_HEADER = re.compile(r"<(\w+)>")
_OPCODE = re.compile(r"(\w+)=")


def _key(value: str) -> int:
    """SFZ key: a number or a note name like ``c4``/``f#3``/``eb2`` (c4 = 60)."""
    value = value.strip().lower()
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    m = re.fullmatch(r"([a-g])([#b]?)(-?\d+)", value)
    if not m:
        raise ValueError(value)
    shift = {"#": 1, "b": -1, "": 0}[m.group(2)]
    return 12 * (int(m.group(3)) + 1) + _NOTE_NAMES[m.group(1)] + shift


def _parse_sfz(text: str) -> list[tuple[str, dict[str, str]]]:
    """Headers and their opcodes in order, ``[(header, {opcode: value})]``."""
    text = re.sub(r"//[^\n]*", "", text)
    items: list[tuple[str, dict[str, str]]] = []
    pieces = _HEADER.split(text)
    # pieces: [before, header1, body1, header2, body2, ...]
    for header, body in zip(pieces[1::2], pieces[2::2]):
        opcodes: dict[str, str] = {}
        marks = list(_OPCODE.finditer(body))
        for i, m in enumerate(marks):
            stop = marks[i + 1].start() if i + 1 < len(marks) else len(body)
            value = body[m.end() : stop].strip()
            if m.group(1) != "sample":  # sample paths may hold spaces; other values are one word
                value = value.split()[0] if value.split() else ""
            opcodes[m.group(1)] = value
        items.append((header.lower(), opcodes))
    return items


def read_sfz(path: str | Path) -> Instrument:
    """Load an SFZ instrument (a ``.sfz`` file, or a folder holding exactly one).

    Raises :class:`BadInputError` with one line when the folder has no ``.sfz``, the file has no
    regions, or a sample is missing or unreadable.
    """
    import soundfile as sf

    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.sfz"))
        if not found:
            raise BadInputError(f"no .sfz file in {path}: pass a folder written by 'stemscribe capture' or an .sfz file")
        if len(found) > 1:
            raise BadInputError(f"{path} holds several .sfz files ({', '.join(p.name for p in found)}): pass one of them")
        path = found[0]
    if not path.is_file():
        raise BadInputError(f"instrument not found: {path}")
    try:
        items = _parse_sfz(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError) as exc:
        raise BadInputError(f"cannot read SFZ {path}: {exc}") from None
    base = path.parent
    control: dict[str, str] = {}
    glob: dict[str, str] = {}
    master: dict[str, str] = {}
    group: dict[str, str] = {}
    cache: dict[Path, tuple[np.ndarray, int]] = {}
    regions: list[Region] = []
    for header, ops in items:
        if header == "control":
            control = ops
        elif header == "global":
            glob, master, group = ops, {}, {}
        elif header == "master":
            master, group = ops, {}
        elif header == "group":
            group = ops
        elif header == "region":
            merged = {**glob, **master, **group, **ops}
            if merged.get("trigger", "attack") not in ("attack", "first", "legato"):
                continue
            sample = merged.get("sample")
            if not sample:
                continue
            if sample.startswith("*"):
                raise BadInputError(f"{path.name}: generated sample {sample!r} is not supported; use sample files")
            rel = (control.get("default_path", "") + sample).replace("\\", "/")
            file = (base / rel).resolve()
            if file not in cache:
                if not file.is_file():
                    raise BadInputError(f"{path.name}: sample file missing: {rel}")
                try:
                    data, sr = sf.read(str(file), dtype="float32", always_2d=True)
                except Exception as exc:  # soundfile raises several types for bad files
                    raise BadInputError(f"{path.name}: cannot read sample {rel}: {exc}") from None
                if len(data) < 2:
                    raise BadInputError(f"{path.name}: sample {rel} is empty")
                cache[file] = (np.ascontiguousarray(data.mean(axis=1)), int(sr))
            data, sr = cache[file]
            try:
                regions.append(_region_from_opcodes(merged, data, sr, rel))
            except ValueError as exc:
                raise BadInputError(f"{path.name}: bad opcode value ({exc}) in region for {rel}") from None
    if not regions:
        raise BadInputError(f"{path} has no playable <region> with a sample")
    return Instrument(path.stem, regions)


def _region_from_opcodes(ops: dict[str, str], data: np.ndarray, sr: int, rel: str) -> Region:
    num = lambda name, default: float(ops[name]) if name in ops else default  # noqa: E731
    if "key" in ops:
        k = _key(ops["key"])
        lokey = hikey = center = k
    else:
        lokey = _key(ops.get("lokey", "0"))
        hikey = _key(ops.get("hikey", "127"))
        center = _key(ops.get("pitch_keycenter", "60"))
    if "pitch_keycenter" in ops:
        center = _key(ops["pitch_keycenter"])
    offset = int(num("offset", 0))
    end = int(num("end", len(data) - 1))
    if end <= offset:
        raise ValueError("end before offset")
    sample = data[offset : end + 1]
    loop_start = int(num("loop_start", num("loopstart", 0))) - offset
    loop_end = int(num("loop_end", num("loopend", 0))) - offset + 1  # SFZ loop_end is inclusive
    loop_mode = ops.get("loop_mode", ops.get("loopmode", "loop_continuous" if "loop_start" in ops else "no_loop"))
    if loop_mode not in LOOP_MODES:
        raise ValueError(f"loop_mode={loop_mode}")
    return Region(
        data=sample,
        sr=sr,
        pitch_keycenter=center,
        lokey=lokey,
        hikey=hikey,
        lovel=int(num("lovel", 1)),
        hivel=int(num("hivel", 127)),
        tune=num("tune", 0.0) + 100.0 * num("transpose", 0.0),
        volume=num("volume", 0.0),
        pan=num("pan", 0.0) / 100.0,
        amp_veltrack=num("amp_veltrack", 100.0) / 100.0,
        attack=num("ampeg_attack", 0.0),
        hold=num("ampeg_hold", 0.0),
        decay=num("ampeg_decay", 0.0),
        sustain=num("ampeg_sustain", 100.0) / 100.0,
        release=num("ampeg_release", 0.001),
        loop_mode=loop_mode,
        loop_start=max(loop_start, 0),
        loop_end=min(loop_end, len(sample)),
        pitch_keytrack=num("pitch_keytrack", 100.0) / 100.0,
        sample=rel,
        cutoff=num("cutoff", 0.0) or None,
        resonance=num("resonance", 0.0),
        fil_veltrack=num("fil_veltrack", 0.0),
        fileg_depth=num("fileg_depth", 0.0),
        fileg_delay=num("fileg_delay", 0.0),
        fileg_attack=num("fileg_attack", 0.0),
        fileg_hold=num("fileg_hold", 0.0),
        fileg_decay=num("fileg_decay", 0.0),
        fileg_sustain=num("fileg_sustain", 100.0) / 100.0,
        fileg_release=num("fileg_release", 0.0),
    )


def format_sfz(instrument: Instrument, *, comment: str = "") -> str:
    """SFZ text for ``instrument``; every region must have ``sample`` set (path relative to the .sfz)."""
    lines = [f"// {line}" for line in comment.splitlines() if line.strip()]
    lines.append("<control>")
    lines.append("<global> amp_veltrack=100")
    for r in instrument.regions:
        if not r.sample:
            raise ValueError("every region needs a sample file name to be written as SFZ")
        ops = [
            f"sample={r.sample}",
            f"lokey={r.lokey}",
            f"hikey={r.hikey}",
            f"pitch_keycenter={r.pitch_keycenter}",
            f"lovel={r.lovel}",
            f"hivel={r.hivel}",
        ]
        if r.tune:
            ops.append(f"tune={int(round(r.tune))}")
        if r.volume:
            ops.append(f"volume={r.volume:.2f}")
        if r.pan:
            ops.append(f"pan={100 * r.pan:.0f}")
        if r.attack:
            ops.append(f"ampeg_attack={r.attack:.4f}")
        ops.append(f"ampeg_release={r.release:.3f}")
        ops.append(f"loop_mode={r.loop_mode}")
        if r.loops:
            ops.append(f"loop_start={r.loop_start}")
            ops.append(f"loop_end={r.loop_end - 1}")  # inclusive in SFZ
        if r.cutoff is not None:
            ops += ["fil_type=lpf_2p", f"cutoff={r.cutoff:.1f}", f"resonance={r.resonance:.1f}"]
            if r.fil_veltrack:
                ops.append(f"fil_veltrack={r.fil_veltrack:.0f}")
            if r.fileg_depth:
                ops += [f"fileg_depth={r.fileg_depth:.0f}", f"fileg_delay={r.fileg_delay:.4f}",
                        f"fileg_attack={r.fileg_attack:.4f}", f"fileg_hold={r.fileg_hold:.4f}",
                        f"fileg_decay={r.fileg_decay:.4f}", f"fileg_sustain={100 * r.fileg_sustain:.1f}",
                        f"fileg_release={r.fileg_release:.4f}"]
        lines.append("<region> " + " ".join(ops))
    return "\n".join(lines) + "\n"


def with_pitch_range(region: Region, lo: int, hi: int) -> Region:
    """A copy of ``region`` answering keys ``lo..hi``."""
    return replace(region, lokey=int(lo), hikey=int(hi))


def voices_for(
    instrument: Instrument, notes: Sequence[Voice], *, reach: int = 0
) -> tuple[list[tuple[Region, Voice]], list[Voice]]:
    """Pair each note with the regions it triggers.

    Notes whose key no region maps are played by the nearest mapped key's regions when they lie
    within ``reach`` semitones of it; the others are returned as the second item.
    """
    keys = np.flatnonzero(instrument.mapped_keys())
    pairs: list[tuple[Region, Voice]] = []
    missing: list[Voice] = []
    for v in notes:
        regions = instrument.regions_for(v.pitch, v.velocity)
        if not regions:
            if len(keys) and np.min(np.abs(keys - v.pitch)) <= reach:
                regions = instrument.nearest_regions(v.pitch, v.velocity)
            if not regions:
                missing.append(v)
                continue
        pairs.extend((r, v) for r in regions)
    return pairs, missing
