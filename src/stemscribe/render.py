"""MIDI to audio: a General MIDI SoundFont synthesizer in numpy, or a captured SFZ instrument.

``render_midi(path_or_tracks, *, sr=44100, soundfont=None, instrument=None) -> Audio`` plays every
track with its General MIDI program (drum tracks, channel 10, with the standard kit), following the
file's tempo map (note times come from pretty_midi), the sustain pedal (CC 64), channel volume (CC 7),
expression (CC 11) and pan (CC 10) at each note's start. Pitch bends and mid-note controller moves are
not followed. With
``instrument=`` (a folder written by :mod:`stemscribe.capture`, or any ``.sfz``) the pitched tracks
are played by that instrument instead; drum tracks keep the SoundFont kit.

The SoundFont reader handles SF2 files (16-bit samples): presets, instrument and preset zones with
key/velocity ranges, root key and tuning, sample offsets and loops, volume envelope, attenuation,
pan, and the low-pass filter with its modulation envelope and FluidSynth's default velocity-to-cutoff
modulator. LFOs, other modulators and effects (reverb, chorus) are ignored. The default SoundFont, shipped in the package
(``data/soundfonts/sf_GMbank.sf2``, 4.2 MB, public domain, from Csound), covers all 128 General MIDI
programs and a drum kit; see ``docs/timbre.md`` for why.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import BadInputError
from .sfz import Instrument, Region, Voice, read_sfz, render_voices, voices_for
from .types import Audio, Note, NoteTrack, Progress, report_progress

#: The General MIDI SoundFont shipped with the package.
DEFAULT_SOUNDFONT = Path(__file__).resolve().parent / "data" / "soundfonts" / "sf_GMbank.sf2"

#: How far (semitones) past a captured instrument's mapped keys a note may be and still be played
#: by pitch-shifting the nearest sample; notes farther out are a BadInputError.
DEFAULT_REACH = 7

_PHDR = struct.Struct("<20sHHHIII")
_BAG = struct.Struct("<HH")
_GEN = struct.Struct("<Hh")
_INST = struct.Struct("<20sH")
_SHDR = struct.Struct("<20sIIIIIBbHH")

# SF2 generator numbers used here
_G_START, _G_END, _G_LSTART, _G_LEND = 0, 1, 2, 3
_G_START_C, _G_END_C, _G_LSTART_C, _G_LEND_C = 4, 12, 45, 50
_G_PAN = 17
_G_ATTACK, _G_HOLD, _G_DECAY, _G_SUSTAIN, _G_RELEASE = 34, 35, 36, 37, 38
_G_INSTRUMENT, _G_KEYRANGE, _G_VELRANGE = 41, 43, 44
_G_ATTEN, _G_COARSE, _G_FINE, _G_SAMPLE, _G_MODES, _G_SCALE, _G_ROOT = 48, 51, 52, 53, 54, 56, 58
_RANGES = (_G_KEYRANGE, _G_VELRANGE)
_G_FC, _G_Q, _G_MOD_TO_FC = 8, 9, 11
_G_MDELAY, _G_MATTACK, _G_MHOLD, _G_MDECAY, _G_MSUSTAIN, _G_MRELEASE = 25, 26, 27, 28, 29, 30
_INST_DEFAULTS = {
    _G_ATTACK: -12000, _G_HOLD: -12000, _G_DECAY: -12000, _G_SUSTAIN: 0, _G_RELEASE: -12000,
    _G_SCALE: 100, _G_ROOT: -1, _G_FC: 13500, _G_Q: 0,
    _G_MDELAY: -12000, _G_MATTACK: -12000, _G_MHOLD: -12000, _G_MDECAY: -12000, _G_MSUSTAIN: 0, _G_MRELEASE: -12000,
}
# FluidSynth (and the EMU hardware SoundFonts were made for) apply 40% of initialAttenuation.
_ATTEN_FACTOR = 0.4


def _split_chunks(data: bytes, start: int, end: int) -> dict[str, tuple[int, int]]:
    """Sub-chunks of a RIFF LIST body: ``{id: (offset, size)}`` (LIST children keyed by their type)."""
    out: dict[str, tuple[int, int]] = {}
    pos = start
    while pos + 8 <= end:
        cid = data[pos : pos + 4].decode("latin-1")
        size = struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if cid == "LIST":
            out[data[body : body + 4].decode("latin-1")] = (body + 4, size - 4)
        else:
            out[cid] = (body, size)
        pos = body + size + (size & 1)
    return out


def _records(data: bytes, chunk: tuple[int, int], st: struct.Struct) -> list[tuple]:
    off, size = chunk
    return [st.unpack_from(data, off + i * st.size) for i in range(size // st.size)]


@dataclass
class _Zone:
    gens: dict[int, int]
    ranges: dict[int, tuple[int, int]]
    link: int | None  # instrument (preset zone) or sample (instrument zone) index


def _zones(bags: list[tuple], gens: list[tuple], first: int, last: int, link_gen: int) -> tuple[_Zone | None, list[_Zone]]:
    """Global zone (or None) and linked zones of bags ``first..last-1``."""
    glob = None
    zones = []
    for b in range(first, last):
        g0, g1 = bags[b][0], bags[b + 1][0]
        z = _Zone({}, {}, None)
        for oper, amount in gens[g0:g1]:
            if oper in _RANGES:
                raw = struct.pack("<h", amount)
                z.ranges[oper] = (raw[0], raw[1])
            elif oper == link_gen:
                z.link = amount & 0xFFFF
            else:
                z.gens[oper] = amount
        if z.link is None:
            if b == first:
                glob = z
        else:
            zones.append(z)
    return glob, zones


@dataclass
class SoundFont:
    """An SF2 file, parsed lazily into :class:`Instrument` s per (bank, program)."""

    path: Path
    name: str
    _data: bytes = field(repr=False)
    _chunks: dict[str, tuple[int, int]] = field(repr=False)
    presets: dict[tuple[int, int], int] = field(default_factory=dict)  # (bank, program) -> phdr index
    _cache: dict[tuple[int, int], Instrument] = field(default_factory=dict, repr=False)
    _samples: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    def instrument(self, program: int, *, drum: bool = False) -> Instrument:
        """The instrument for a General MIDI ``program`` (0..127), or the drum kit when ``drum``."""
        if drum:
            kits = sorted(k for k in self.presets if k[0] == 128)
            key = (128, program) if (128, program) in self.presets else (kits[0] if kits else None)
        else:
            key = (0, program) if (0, program) in self.presets else None
            if key is None:
                melodic = sorted(k for k in self.presets if k[0] != 128)
                key = min(melodic, key=lambda k: (k[0] != 0, abs(k[1] - program))) if melodic else None
        if key is None:
            raise BadInputError(f"SoundFont {self.path.name} has no {'drum kit' if drum else 'melodic preset'}")
        if key not in self._cache:
            self._cache[key] = self._build(self.presets[key], drum)
        return self._cache[key]

    def _sample(self, start: int, end: int) -> np.ndarray:
        if (start, end) not in self._samples:
            off, size = self._chunks["smpl"]
            n_total = size // 2
            start, end = max(0, min(start, n_total)), max(0, min(end, n_total))
            raw = np.frombuffer(self._data, dtype="<i2", count=max(end - start, 0), offset=off + 2 * start)
            self._samples[(start, end)] = raw.astype(np.float32) / 32768.0
        return self._samples[(start, end)]

    def _build(self, preset_index: int, drum: bool) -> Instrument:
        d, c = self._data, self._chunks
        phdr = _records(d, c["phdr"], _PHDR)
        pbag, pgen = _records(d, c["pbag"], _BAG), _records(d, c["pgen"], _GEN)
        inst, ibag, igen = _records(d, c["inst"], _INST), _records(d, c["ibag"], _BAG), _records(d, c["igen"], _GEN)
        shdr = _records(d, c["shdr"], _SHDR)
        p = phdr[preset_index]
        pglob, pzones = _zones(pbag, pgen, p[3], phdr[preset_index + 1][3], _G_INSTRUMENT)
        regions: list[Region] = []
        for pz in pzones:
            if pz.link is None or pz.link + 1 >= len(inst):
                continue
            i0, i1 = inst[pz.link][1], inst[pz.link + 1][1]
            iglob, izones = _zones(ibag, igen, i0, i1, _G_SAMPLE)
            pgens = {**(pglob.gens if pglob else {}), **pz.gens}
            prange = {**(pglob.ranges if pglob else {}), **pz.ranges}
            for iz in izones:
                if iz.link is None or iz.link >= len(shdr) - 1:
                    continue
                g = {**_INST_DEFAULTS, **(iglob.gens if iglob else {}), **iz.gens}
                for k, v in pgens.items():  # preset generators are offsets
                    if k not in (_G_START, _G_END, _G_LSTART, _G_LEND, _G_START_C, _G_END_C,
                                 _G_LSTART_C, _G_LEND_C, _G_MODES, _G_ROOT):
                        g[k] = g.get(k, 0) + v
                irange = {**(iglob.ranges if iglob else {}), **iz.ranges}
                lo_k = max(irange.get(_G_KEYRANGE, (0, 127))[0], prange.get(_G_KEYRANGE, (0, 127))[0])
                hi_k = min(irange.get(_G_KEYRANGE, (0, 127))[1], prange.get(_G_KEYRANGE, (0, 127))[1])
                lo_v = max(irange.get(_G_VELRANGE, (0, 127))[0], prange.get(_G_VELRANGE, (0, 127))[0])
                hi_v = min(irange.get(_G_VELRANGE, (0, 127))[1], prange.get(_G_VELRANGE, (0, 127))[1])
                if lo_k > hi_k or lo_v > hi_v:
                    continue
                s = shdr[iz.link]
                if s[9] & 0x8000:  # ROM sample
                    continue
                start = s[1] + g.get(_G_START, 0) + 32768 * g.get(_G_START_C, 0)
                end = s[2] + g.get(_G_END, 0) + 32768 * g.get(_G_END_C, 0)
                if end - start < 4:
                    continue
                ls = s[3] + g.get(_G_LSTART, 0) + 32768 * g.get(_G_LSTART_C, 0) - start
                le = s[4] + g.get(_G_LEND, 0) + 32768 * g.get(_G_LEND_C, 0) - start
                mode = g.get(_G_MODES, 0) & 3
                root = g[_G_ROOT] if 0 <= g[_G_ROOT] <= 127 else s[6]
                if root > 127:
                    root = 60
                sustain_cb = min(max(g[_G_SUSTAIN], 0), 1440)
                fc = min(max(g[_G_FC], 1500), 13500)
                mod_fc = float(np.clip(g.get(_G_MOD_TO_FC, 0), -12000, 12000))
                filtered = fc < 13500 or mod_fc != 0
                regions.append(Region(
                    data=self._sample(start, end),
                    sr=int(s[5]) or 44100,
                    pitch_keycenter=int(root),
                    lokey=lo_k, hikey=hi_k, lovel=max(lo_v, 1), hivel=hi_v,
                    tune=100.0 * g.get(_G_COARSE, 0) + g.get(_G_FINE, 0) + s[7],
                    volume=-_ATTEN_FACTOR * max(g.get(_G_ATTEN, 0), 0) / 10.0,
                    pan=float(np.clip(g.get(_G_PAN, 0) / 500.0, -1.0, 1.0)),
                    attack=_tc(g[_G_ATTACK]), hold=_tc(g[_G_HOLD]), decay=_tc(g[_G_DECAY]),
                    sustain=10.0 ** (-sustain_cb / 200.0),
                    release=_tc(g[_G_RELEASE]),
                    loop_mode={1: "loop_continuous", 3: "loop_sustain"}.get(mode, "no_loop"),
                    loop_start=max(ls, 0), loop_end=min(le, end - start),
                    pitch_keytrack=g[_G_SCALE] / 100.0,
                    cutoff=8.176 * 2.0 ** (fc / 1200.0) if filtered else None,
                    resonance=min(max(g[_G_Q], 0), 960) / 10.0,
                    sf2_vel2filter=True,
                    fileg_depth=mod_fc,
                    fileg_delay=_tc(g[_G_MDELAY]), fileg_attack=_tc(g[_G_MATTACK]), fileg_hold=_tc(g[_G_MHOLD]),
                    fileg_decay=_tc(g[_G_MDECAY]),
                    fileg_sustain=1.0 - min(max(g[_G_MSUSTAIN], 0), 1000) / 1000.0,
                    fileg_release=_tc(g[_G_MRELEASE]),
                ))
        name = p[0].split(b"\0")[0].decode("latin-1", "replace").strip()
        return Instrument(name or f"preset {p[2]}:{p[1]}", regions)


def _tc(timecents: int) -> float:
    """SF2 timecents to seconds (``-12000`` and below mean instant)."""
    return 0.0 if timecents <= -12000 else min(2.0 ** (timecents / 1200.0), 100.0)


@lru_cache(maxsize=4)
def _load_soundfont_cached(path: str, mtime: float) -> SoundFont:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise BadInputError(f"cannot read SoundFont {p}: {exc.strerror or exc}") from None
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise BadInputError(f"{p} is not an SF2 SoundFont (no RIFF 'sfbk' header)")
    top = _split_chunks(data, 12, min(len(data), 8 + struct.unpack_from("<I", data, 4)[0]))
    if "pdta" not in top or "sdta" not in top:
        raise BadInputError(f"{p} is not a complete SF2 SoundFont (missing sample or preset data)")
    chunks = {**_split_chunks(data, *_span(top["pdta"])), **_split_chunks(data, *_span(top["sdta"]))}
    needed = ("phdr", "pbag", "pgen", "inst", "ibag", "igen", "shdr", "smpl")
    if any(k not in chunks for k in needed):
        missing = ", ".join(k for k in needed if k not in chunks)
        raise BadInputError(f"{p} is not a usable SF2 SoundFont (missing {missing}; SF3/compressed fonts are not supported)")
    name = ""
    if "INFO" in top:
        info = _split_chunks(data, *_span(top["INFO"]))
        if "INAM" in info:
            o, s = info["INAM"]
            name = data[o : o + s].split(b"\0")[0].decode("latin-1", "replace")
    sf = SoundFont(p, name or p.stem, data, chunks)
    phdr = _records(data, chunks["phdr"], _PHDR)
    for i, rec in enumerate(phdr[:-1]):  # the last record is the terminal 'EOP'
        sf.presets.setdefault((rec[2], rec[1]), i)
    if not sf.presets:
        raise BadInputError(f"{p} has no presets")
    return sf


def _span(chunk: tuple[int, int]) -> tuple[int, int]:
    return chunk[0], chunk[0] + chunk[1]


def load_soundfont(path: str | Path | None = None) -> SoundFont:
    """Parse an SF2 file (the shipped General MIDI font when ``path`` is None); cached per file."""
    p = Path(path) if path is not None else DEFAULT_SOUNDFONT
    if not p.is_file():
        if path is None:
            raise BadInputError(f"the packaged SoundFont is missing ({p}); reinstall stemscribe")
        raise BadInputError(f"SoundFont not found: {p}")
    return _load_soundfont_cached(str(p.resolve()), p.stat().st_mtime)


# ------------------------------------------------------------------------------------------- MIDI
def read_midi_for_render(path: str | Path) -> list[NoteTrack]:
    """Note tracks of a MIDI file with the sustain pedal (CC 64) applied to note ends.

    Times follow the file's tempo map. Raises :class:`BadInputError` for a missing or broken file.
    """
    return [track for track, _ in _read_midi_voices(path)]


def _cc_at(changes: list[tuple[float, int]], t: float, default: int) -> int:
    """Value of a controller at time ``t`` from its sorted ``(time, value)`` changes."""
    value = default
    for time, v in changes:
        if time > t + 1e-6:
            break
        value = v
    return value


def _read_midi_voices(path: str | Path) -> list[tuple[NoteTrack, list[Voice]]]:
    """Tracks and their voices: sustain pedal applied, channel volume (CC 7, relative to the GM default
    100), expression (CC 11) and pan (CC 10) taken at each note's start."""
    from .midi import open_pretty_midi

    pm = open_pretty_midi(path)
    out = []
    for i, inst in enumerate(pm.instruments):
        notes = [Note(int(n.pitch), float(n.start), float(n.end), int(n.velocity)) for n in inst.notes]
        ccs = sorted((c.time, c.number, c.value) for c in inst.control_changes)
        if not inst.is_drum:
            notes = _apply_pedal(notes, [(t, v) for t, num, v in ccs if num == 64])
        by_number = {num: [(t, v) for t, n, v in ccs if n == num] for num in (7, 10, 11)}
        voices = []
        for n in notes:
            volume = _cc_at(by_number[7], n.start, 100) / 100.0
            expression = _cc_at(by_number[11], n.start, 127) / 127.0
            pan = (_cc_at(by_number[10], n.start, 64) - 64) / 63.5
            voices.append(Voice(n.pitch, n.start, max(n.end, n.start + 1e-3), n.velocity,
                                gain=(volume * expression) ** 2, pan=float(np.clip(pan, -1.0, 1.0))))
        name = inst.name or ("drums" if inst.is_drum else f"track{i + 1}")
        out.append((NoteTrack(name, notes, int(inst.program), bool(inst.is_drum)), voices))
    return out


def _apply_pedal(notes: list[Note], pedal: list[tuple[float, int]]) -> list[Note]:
    """Extend notes released while the sustain pedal is down to the pedal release."""
    if not pedal:
        return notes
    downs: list[tuple[float, float]] = []
    down_at = None
    for t, v in sorted(pedal):
        if v >= 64 and down_at is None:
            down_at = t
        elif v < 64 and down_at is not None:
            downs.append((down_at, t))
            down_at = None
    if down_at is not None:
        downs.append((down_at, math.inf))
    out = []
    for n in notes:
        end = n.end
        for a, b in downs:
            if a <= n.end < b:
                end = b if math.isfinite(b) else n.end + 2.0
                break
        out.append(Note(n.pitch, n.start, end, n.velocity))
    # a re-struck key cuts the previous sustained copy of that key
    out.sort(key=lambda n: (n.pitch, n.start))
    for a, b in zip(out, out[1:]):
        if a.pitch == b.pitch and a.end > b.start:
            a.end = max(b.start, a.start + 0.01)
    return out


# ----------------------------------------------------------------------------------------- render
def render_midi(
    midi: str | Path | Sequence[NoteTrack],
    *,
    sr: int = 44100,
    soundfont: str | Path | None = None,
    instrument: str | Path | Instrument | None = None,
    reach: int = DEFAULT_REACH,
    progress: Progress | None = None,
) -> Audio:
    """Render a MIDI file (or note tracks) to stereo audio ``(2, n)`` at ``sr``.

    Tracks use their General MIDI program from ``soundfont`` (the packaged GM font by default); drum
    tracks use its drum kit. With ``instrument`` (an SFZ file/folder or an :class:`Instrument`), every
    pitched track is played by that instrument; notes more than ``reach`` semitones outside its
    mapped keys raise :class:`BadInputError`. The result is scaled down only if it would clip.
    """
    if not isinstance(sr, int) or not 8000 <= sr <= 192000:
        raise BadInputError(f"sample rate must be 8000..192000 Hz, got {sr}")
    if isinstance(midi, (str, Path)):
        parts = _read_midi_voices(midi)
    else:
        parts = [(t, [Voice(n.pitch, n.start, max(n.end, n.start + 1e-3), n.velocity) for n in t.notes]) for t in midi]
    parts = [(t, v) for t, v in parts if t.notes]
    tracks = [t for t, _ in parts]
    if not tracks:
        raise BadInputError("the MIDI has no notes to render")
    inst = read_sfz(instrument) if isinstance(instrument, (str, Path)) else instrument
    need_font = inst is None or any(t.is_drum for t in tracks)
    font = load_soundfont(soundfont) if need_font else None
    pairs: list[tuple[Region, Voice]] = []
    for k, (track, voices) in enumerate(parts):
        if inst is not None and not track.is_drum:
            found, missing = voices_for(inst, voices, reach=reach)
            if missing:
                lo, hi = np.flatnonzero(inst.mapped_keys())[[0, -1]]
                pitches = sorted({v.pitch for v in missing})
                raise BadInputError(
                    f"{len(missing)} note(s) of track {track.name!r} (pitches {pitches[0]}..{pitches[-1]}) are too far "
                    f"from the instrument's keys {lo}..{hi} (reach {reach} semitones); transpose the MIDI or capture a wider range"
                )
        else:
            assert font is not None
            ins = font.instrument(track.program, drum=track.is_drum)
            found, _ = voices_for(ins, voices, reach=127)
        pairs.extend(found)
        report_progress(progress, "render", 0.5 * (k + 1) / len(tracks))
    if not pairs:
        raise BadInputError("no note of the MIDI found a sample to play")
    end = max(v.end for _, v in pairs)
    y = render_voices(pairs, sr)
    # keep the tail of the longest release, but never more than 3 s past the last note-off
    y = y[:, : int(round((end + 3.0) * sr))]
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 0.99:
        y *= 0.99 / peak
    report_progress(progress, "render", 1.0)
    return Audio(y, sr)
