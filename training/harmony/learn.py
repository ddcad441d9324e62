"""Learn the harmonisation HMM tables from POP909 and evaluate them on held-out songs.

    tar xJf ../shared/data/pop909.tar.xz -C /tmp/pop909
    python training/harmony/learn.py --pop909 /tmp/pop909/pop909 \
        --out src/stemscribe/data/harmony/tables.json

Split (fixed): songs whose id is a multiple of 10 are held out for evaluation and never learned
from; songs with id % 10 == 5 are the validation split used to pick the emission/cadence weights,
after which the tables are relearned on every non-held-out song.

Evaluation: each held-out song's MELODY track alone (no other tracks, no chords, no key) plus its
annotated beats and downbeats (for bar positions) is harmonised; the chords are compared with
``chord_midi.txt`` using mir_eval's ``majmin`` comparison, weighted by duration, over the span of
the annotation. Reported: pooled over all held-out songs (total correct duration / total
comparable duration) and the mean of per-song scores, plus two baselines.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pop909 import Song, chord_root_quality, key_at, load_all, major_tonic

from stemscribe.accompany import harmony as H
from stemscribe.types import BeatGrid


def is_heldout(sid: int) -> bool:
    return sid % 10 == 0


def is_valid(sid: int) -> bool:
    return sid % 10 == 5


def song_grid(song: Song) -> BeatGrid:
    tempo = 60.0 / float(np.median(np.diff(song.beats)))
    return BeatGrid(tempo=tempo, beats=song.beats, downbeats=song.downbeats)


def song_frames(song: Song):
    t_end = song.chords[-1][1]
    bounds, starts_bar = H.frame_times(song_grid(song), t_end)
    w = H.melody_weights(song.melody, bounds)
    ends = H.phrase_ends(song.melody, bounds)
    if song.melody:
        last = max(n.end for n in song.melody)
        ends[min(int(np.searchsorted(bounds, last - 1e-6, side="right")) - 1, len(ends) - 1)] = True
    return bounds, starts_bar, w, ends


def frame_states(song: Song, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Annotated key-relative state per frame (-1 for N) and the major tonic per frame."""
    n = len(bounds) - 1
    states = -np.ones(n, dtype=np.int64)
    tonics = np.zeros(n, dtype=np.int64)
    cs = np.array([c[0] for c in song.chords])
    ce = np.array([c[1] for c in song.chords])
    for i in range(n):
        lo, hi = bounds[i], bounds[i + 1]
        mid = 0.5 * (lo + hi)
        tonics[i] = major_tonic(*key_at(song, mid))
        ov = np.minimum(ce, hi) - np.maximum(cs, lo)
        j = int(np.argmax(ov))
        if ov[j] <= 0:
            continue
        rq = chord_root_quality(song.chords[j][2])
        if rq is None:
            continue
        root, q = rq
        states[i] = (root - tonics[i]) % 12 + (12 if q == "min" else 0)
    return states, tonics


def learn(songs: list[Song], k: float = 0.5) -> dict:
    S = H.N_STATES
    init = np.full(S, k)
    t_in = np.full((S, S), k)
    t_bar = np.full((S, S), k)
    emit = np.full((S, 12), k)
    marg = np.full(S, k)
    endc = np.full(S, k)
    prof = np.full(12, k)
    for song in songs:
        bounds, starts_bar, w, ends = song_frames(song)
        states, tonics = frame_states(song, bounds)
        w_rel = np.stack([np.roll(w[i], -tonics[i]) for i in range(len(w))])
        prof += w_rel.sum(axis=0)
        valid = np.flatnonzero(states >= 0)
        if len(valid):
            init[states[valid[0]]] += 1
        for i in range(len(states)):
            s = states[i]
            if s < 0:
                continue
            emit[s] += w_rel[i]
            marg[s] += 1
            if ends[i]:
                endc[s] += 1
            if i + 1 < len(states) and states[i + 1] >= 0:
                (t_bar if starts_bar[i + 1] else t_in)[s, states[i + 1]] += 1
    norm = lambda a: a / a.sum(axis=-1, keepdims=True)
    cadence = np.log(norm(endc)) - np.log(norm(marg))
    return {
        "init": norm(init), "trans_in": norm(t_in), "trans_bar": norm(t_bar), "emit": norm(emit),
        "cadence": cadence, "key_profile": norm(prof),
    }


SEQ_PATH: Path | None = None  # set from --seq; None means the packaged seq.npz
USE_SEQ = True


def estimate(song: Song, tables: H.HarmonyTables, *, key: str | None = None) -> tuple[list, H.Harmonization]:
    t_end = song.chords[-1][1]
    res = H.harmonize(song.melody, song_grid(song), key=key, t_end=t_end, tables=tables, use_seq=USE_SEQ,
                      seq_path=SEQ_PATH)
    return res.chords, res


def score(song: Song, est: list[tuple[float, float, str]]) -> tuple[float, float]:
    """(correct duration, comparable duration) under mir_eval majmin."""
    import mir_eval

    ref_i = np.array([[c[0], c[1]] for c in song.chords])
    ref_l = [c[2] for c in song.chords]
    est_i = np.array([[c[0], c[1]] for c in est])
    est_l = [c[2] for c in est]
    t0, t1 = ref_i[0, 0], ref_i[-1, 1]
    est_i, est_l = mir_eval.util.adjust_intervals(est_i, est_l, t0, t1, mir_eval.chord.NO_CHORD, mir_eval.chord.NO_CHORD)
    intervals, r, e = mir_eval.util.merge_labeled_intervals(ref_i, ref_l, est_i, est_l)
    dur = mir_eval.util.intervals_to_durations(intervals)
    cmp = mir_eval.chord.majmin(r, e)
    ok = cmp >= 0
    return float(np.sum(dur[ok] * cmp[ok])), float(np.sum(dur[ok]))


def baseline_chords(song: Song, tables: H.HarmonyTables, kind: str, *, true_key: bool) -> list:
    """'tonic': the key's tonic chord everywhere; 'diatonic': best diatonic triad per bar."""
    grid = song_grid(song)
    t_end = song.chords[-1][1]
    bounds, _starts_bar = H.frame_times(grid, t_end, beats_per_frame=4)
    w = H.melody_weights(song.melody, bounds)
    out = []
    for i in range(len(w)):
        mid = 0.5 * (bounds[i] + bounds[i + 1])
        if true_key:
            pc, mode = key_at(song, mid)
        else:
            if i == 0:
                b2, sb2 = H.frame_times(grid, t_end)
                w2 = H.melody_weights(song.melody, b2)
                mt = H.detect_key(w2, sb2, H.phrase_ends(song.melody, b2), tables)
                # mode from the melody's weight on the relative minor tonic vs the major tonic
                tot = np.roll(w2.sum(axis=0), -mt)
                det = (mt, "minor" if tot[9] > tot[0] else "major")
            mt_, mode = det
            pc = (mt_ - 3) % 12 if mode == "minor" else mt_
        mt_k = major_tonic(pc, mode)
        if kind == "tonic":
            lab = f"{H.PITCH_NAMES[pc]}:{'min' if mode == 'minor' else 'maj'}"
        else:
            # diatonic triads of the major scale: I ii iii IV V vi vii°
            triads = [(0, "maj", (0, 4, 7)), (2, "min", (0, 3, 7)), (4, "min", (0, 3, 7)), (5, "maj", (0, 4, 7)),
                      (7, "maj", (0, 4, 7)), (9, "min", (0, 3, 7)), (11, "dim", (0, 3, 6))]
            wr = np.roll(w[i], -mt_k)
            best = max(triads, key=lambda t: sum(wr[(t[0] + iv) % 12] for iv in t[2]))
            lab = f"{H.PITCH_NAMES[(best[0] + mt_k) % 12]}:{best[1]}"
        out.append((float(bounds[i]), float(bounds[i + 1]), lab))
    return out


def evaluate(songs: list[Song], tables: H.HarmonyTables, *, baselines: bool = True) -> dict:
    tot = {"hmm": [0.0, 0.0]}
    per = {"hmm": []}
    key_ok = 0
    if baselines:
        for name in ("tonic_detected", "tonic_truekey", "diatonic_detected", "diatonic_truekey"):
            tot[name] = [0.0, 0.0]
            per[name] = []
    for song in songs:
        est, res = estimate(song, tables)
        c, d = score(song, est)
        tot["hmm"][0] += c
        tot["hmm"][1] += d
        per["hmm"].append(c / max(d, 1e-9))
        pc, mode = key_at(song, song.chords[0][0] + 1.0)
        key_ok += int(major_tonic(res.tonic, res.mode) == major_tonic(pc, mode))
        if baselines:
            for kind in ("tonic", "diatonic"):
                for tk in (False, True):
                    name = f"{kind}_{'truekey' if tk else 'detected'}"
                    c, d = score(song, baseline_chords(song, tables, kind, true_key=tk))
                    tot[name][0] += c
                    tot[name][1] += d
                    per[name].append(c / max(d, 1e-9))
    out = {name: {"pooled": v[0] / v[1], "mean_per_song": float(np.mean(per[name]))} for name, v in tot.items()}
    out["key_accuracy_up_to_relative"] = key_ok / len(songs)
    out["n_songs"] = len(songs)
    return out


def make_tables(counts: dict, alpha: float, beta: float, gamma: float, meta: dict) -> H.HarmonyTables:
    return H.HarmonyTables(**counts, alpha=alpha, beta=beta, gamma=gamma, meta=meta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pop909", type=Path, default=Path("/tmp/pop909/pop909"))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/pop909/songs.pkl"))
    ap.add_argument("--out", type=Path, default=Path("src/stemscribe/data/harmony/tables.json"))
    ap.add_argument("--alphas", default="0,0.5,1,2")
    ap.add_argument("--betas", default="0,0.5,1")
    ap.add_argument("--gammas", default="0.5,1,2")
    ap.add_argument("--seq", type=Path, default=None, help="sequence-classifier weights (default: packaged seq.npz)")
    ap.add_argument("--no-seq", action="store_true", help="generative HMM only (no GRU classifier)")
    ap.add_argument("--results", type=Path, default=None, help="also write the evaluation numbers here (JSON)")
    ap.add_argument("--fixed", default=None, metavar="ALPHA,BETA,GAMMA",
                    help="skip the validation search and use these weights (e.g. for models trained with "
                         "train_seq.py --all, for which the validation split is no longer unseen)")
    args = ap.parse_args()
    global SEQ_PATH, USE_SEQ
    SEQ_PATH, USE_SEQ = args.seq, not args.no_seq

    songs = load_all(args.pop909, args.cache)
    train = [s for s in songs if not is_heldout(s.sid)]
    held = [s for s in songs if is_heldout(s.sid)]
    fit = [s for s in train if not is_valid(s.sid)]
    val = [s for s in train if is_valid(s.sid)]
    print(f"songs: {len(songs)}  train {len(train)} (fit {len(fit)}, validation {len(val)})  held out {len(held)}")

    counts = learn(fit)
    best = (-1.0, 1.0, 1.0, 1.0)
    if args.fixed:
        a, b, g = map(float, args.fixed.split(","))
        best = (0.0, a, b, g)
        args.alphas = ""
    gammas = [0.0] if args.no_seq else list(map(float, args.gammas.split(",")))
    for a in (map(float, args.alphas.split(",")) if args.alphas else []):
        for b in map(float, args.betas.split(",")):
            for g in gammas:
                if a == 0 and g == 0:
                    continue
                r = evaluate(val, make_tables(counts, a, b, g, {}), baselines=False)
                print(f"  validation alpha={a:g} beta={b:g} gamma={g:g}: majmin {r['hmm']['pooled']:.4f}", flush=True)
                if r["hmm"]["pooled"] > best[0]:
                    best = (r["hmm"]["pooled"], a, b, g)
    _, alpha, beta, gamma = best
    meta = {
        "source": "POP909 chord_midi.txt + MELODY tracks (MIT licence)",
        "train_songs": len(train),
        "heldout_rule": "song id % 10 == 0 never learned from",
        "states": "24 triads relative to the major tonic: 0-11 maj roots, 12-23 min roots",
        "frame": "half bar",
    }
    meta["sequence_classifier"] = "none" if args.no_seq else "bidirectional GRU, data/harmony/seq.npz"
    tables = make_tables(learn(train), alpha, beta, gamma, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(tables.to_json(), separators=(",", ":")) + "\n")
    print(f"wrote {args.out} (alpha={alpha:g}, beta={beta:g}, gamma={gamma:g})")

    res = evaluate(held, tables)
    for name, v in res.items():
        print(f"  held-out {name}: {v}")
    if args.results:
        args.results.write_text(json.dumps({"alpha": alpha, "beta": beta, "gamma": gamma, **res}, indent=1) + "\n")


if __name__ == "__main__":
    main()
