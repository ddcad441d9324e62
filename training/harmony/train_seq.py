"""Train the bidirectional-GRU chord classifier that feeds the harmonisation HMM.

    python training/harmony/train_seq.py --out src/stemscribe/data/harmony/seq.npz

Several runs (different ``--seed``) can be merged into an ensemble with ``merge_seq.py``.

Same fixed split as ``learn.py``: ids % 10 == 0 are never seen; ids % 10 == 5 are the
validation songs (early stopping). Inputs per half-bar frame are
``stemscribe.accompany.harmony.seq_features`` of the MELODY track in key-relative space (the
annotated key); the target is the annotated chord's key-relative triad (24 classes, N frames
masked). The weights are saved as plain arrays; the package runs the GRU in numpy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learn import frame_states, song_frames
from pop909 import load_all

from stemscribe.accompany import harmony as H


def song_xy(song):
    bounds, starts_bar, w, ends = song_frames(song)
    states, tonics = frame_states(song, bounds)
    w_rel = np.stack([np.roll(w[i], -tonics[i]) for i in range(len(w))])
    sp = H.start_pitch_classes(song.melody, bounds)
    sp = np.stack([np.roll(sp[i], -tonics[i]) for i in range(len(sp))])
    pf = H.pitch_features(song.melody, bounds)
    pf = np.concatenate([H.roll_pitch_features(pf[i:i + 1], int(tonics[i])) for i in range(len(pf))])
    return H.seq_features(w_rel, sp, starts_bar, ends, pf).astype(np.float32), states


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--pop909", type=Path, default=Path("/tmp/pop909/pop909"))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/pop909/songs.pkl"))
    ap.add_argument("--out", type=Path, default=Path("src/stemscribe/data/harmony/seq.npz"))
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dropout", type=float, default=0.25)
    ap.add_argument("--all", action="store_true",
                    help="train on every non-held-out song (validation included) for exactly --epochs epochs "
                         "and keep the last weights (the final models, after choosing settings with the split)")
    ap.add_argument("--basic", action="store_true", help="only the first 39 input features (no pitch details)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)

    songs = load_all(args.pop909, args.cache)
    fit = [song_xy(s) for s in songs if s.sid % 10 != 0 and (args.all or s.sid % 10 != 5)]
    val = [song_xy(s) for s in songs if s.sid % 10 == 5]
    if args.basic:
        fit = [(x[:, :39], y) for x, y in fit]
        val = [(x[:, :39], y) for x, y in val]
    n_in = fit[0][0].shape[1]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = torch.nn.Linear(n_in, args.hidden)
            self.gru = torch.nn.GRU(args.hidden, args.hidden, batch_first=True, bidirectional=True)
            self.out = torch.nn.Linear(2 * args.hidden, H.N_STATES)
            self.drop = torch.nn.Dropout(args.dropout)

        def forward(self, x):
            h, _ = self.gru(self.drop(torch.tanh(self.inp(x))))
            return self.out(self.drop(h))

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-5)

    def batches(data, bs=16, shuffle=True):
        idx = rng.permutation(len(data)) if shuffle else np.arange(len(data))
        for i in range(0, len(idx), bs):
            group = [data[j] for j in idx[i:i + bs]]
            T = max(len(x) for x, _ in group)
            X = np.zeros((len(group), T, n_in), np.float32)
            Y = -np.ones((len(group), T), np.int64)
            for k, (x, y) in enumerate(group):
                X[k, : len(x)] = x
                Y[k, : len(y)] = y
            yield torch.from_numpy(X), torch.from_numpy(Y)

    def val_acc():
        net.eval()
        ok = tot = 0
        with torch.no_grad():
            for X, Y in batches(val, shuffle=False):
                p = net(X).argmax(-1)
                m = Y >= 0
                ok += int((p[m] == Y[m]).sum())
                tot += int(m.sum())
        net.train()
        return ok / tot

    best, best_state, t0 = -1.0, None, time.time()
    for ep in range(args.epochs):
        for X, Y in batches(fit):
            loss = torch.nn.functional.cross_entropy(net(X).reshape(-1, H.N_STATES), Y.reshape(-1), ignore_index=-1)
            opt.zero_grad()
            loss.backward()
            opt.step()
        acc = val_acc()
        print(f"epoch {ep + 1}: loss {loss.item():.3f} validation frame accuracy {acc:.4f} ({time.time() - t0:.0f} s)", flush=True)
        if args.all or acc > best:
            best, best_state = acc, {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    sd = {k: v.numpy() for k, v in net.state_dict().items()}
    arrays = {
        "inp_w": sd["inp.weight"], "inp_b": sd["inp.bias"],
        "out_w": sd["out.weight"], "out_b": sd["out.bias"],
    }
    for d, suf in (("f", ""), ("b", "_reverse")):
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            arrays[f"gru_{d}_{name.split('_l0')[0]}"] = sd[f"gru.{name}{suf}"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **{k: v.astype(np.float32) for k, v in arrays.items()})
    print(f"wrote {args.out}: {'last epoch (validation songs were trained on)' if args.all else 'best validation'} "
          f"frame accuracy {best:.4f}")


if __name__ == "__main__":
    main()
