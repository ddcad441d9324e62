"""The ``lite`` separation network: a causal conv-recurrent mask estimator on the STFT.

PyTorch is imported at the top of this module, so import it lazily (``stemscribe.separate.lite``
does).  The same code serves training (``training/train.py``), offline separation and live
streaming, so block-by-block output equals offline output by construction:

* STFT with a sqrt-Hann window, ``n_fft`` / ``hop`` (75 % overlap, exact overlap-add), the signal
  left-padded with ``n_fft - hop`` zeros so frame ``t`` ends at sample ``(t + 1) * hop``;
* per frame: compressed magnitudes of all channels (with ``side``, also of the left-minus-right
  STFT, which tells centred sources from wide ones) -> encoder -> LayerNorm -> tanh;
* a temporal convolution over ``kernel`` frames that looks ``lookahead`` frames ahead;
* a unidirectional GRU; a decoder on ``[gru, encoder]`` -> per-bin, per-channel logits for each
  stem, softmax across stems, so the stems sum exactly to the mixture;
* stems = mask x mixture STFT, inverse STFT by overlap-add.

Algorithmic latency: ``n_fft + lookahead * hop`` samples (58 ms at the defaults).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

DEFAULT_CONFIG: dict[str, Any] = {
    "sr": 44100,
    "n_fft": 2048,
    "hop": 512,
    "hidden": 256,
    "layers": 2,
    "kernel": 3,
    "lookahead": 1,
    "power": 0.3,
    "channels": 2,
    "stems": ["drums", "bass", "other", "vocals"],
    # softmax temperature applied at inference (< 1 sharpens the masks); tuned after training
    "temperature": 1.0,
    # "dense": linear encoder/decoder over all bins; "crn": per-frame convolutions along frequency
    # (weight sharing across bins) around the same recurrent bottleneck
    "arch": "dense",
    "crn_channels": [8, 16, 32, 32],
    # stereo only: one more input feature channel, the compressed magnitude of the side signal
    # (left minus right); zero for a centred source, as large as the channels for a wide one
    "side": False,
    # crn only: channels of a full-resolution refinement after the decoder (0: none). The encoder's
    # first layer halves the frequency resolution, so without it the decoder never sees which bin of
    # a pair holds a harmonic; the refinement sees the decoder output beside the normalised input
    # features at every bin and adds a correction to the logits (its last layer starts at zero)
    "refine": 0,
    # crn with refine only: past frames the refinement also sees at full resolution (0: none). Its
    # first layer then adds a convolution over the normalised input features of frames
    # t - refine_context .. t + lookahead (the look-ahead frame is there anyway, so no latency is
    # added): a bin's recent history tells a sustained partial from a transient, which the
    # frame-local refinement cannot see. The new weights start at zero (the output is unchanged).
    "refine_context": 0,
    # crn with refine only: frequency ratios at which the refinement also reads the current frame's
    # normalised input features ([]: none). For bin k and ratio r it gets the features at bin k * r
    # (linear interpolation; zero past the top bin), so a bin can tell whether it is an overtone of a
    # lower note (r = 1/2, 1/3, ...) or a fundamental with overtones above (r = 2, 3, ...): which
    # note, hence which instrument, a partial belongs to. Frame-local (no latency, live == offline).
    # The new weights start at zero (the output is unchanged).
    "refine_harmonics": [],
    # input level normalisation of the features (None: off, as in training so far). The network
    # sees the mixture as if it were at ``ref_db`` dBFS (mean square), the level of its training
    # mixtures, whatever the recording's own level: it was trained on inputs around -18.5 dBFS, and
    # a mastered song at -8 dBFS lost 0.7 dB of held-out SDR without it. The level is the mean
    # square of the last ``window_s`` seconds of audible input (hop-long blocks above ``gate_db``),
    # so it also works on a stream; the gain is held within +-``max_gain_db``. Offline, the window
    # starts filled with the whole input's level; a stream starts empty. The masks still multiply
    # the unscaled mixture, so the stems keep the input's level.
    "level": None,
    # units of the recurrent layers (None: ``hidden``). Wider than the bottleneck gives the model
    # more memory of what it has heard without widening the per-frame encoder; ``training/train.py
    # --add-gru-hidden`` widens a trained model without changing its output.
    "gru_hidden": None,
}

#: the input level normalisation shipped with the model (see DEFAULT_CONFIG["level"])
LEVEL_DEFAULTS: dict[str, float] = {"ref_db": -18.5, "window_s": 10.0, "gate_db": -70.0, "max_gain_db": 20.0}


class LiteNet(nn.Module):
    """Mask estimator.  ``forward(x)`` maps ``(batch, channels, n)`` to ``(batch, stems, channels, n)``."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        c = {**DEFAULT_CONFIG, **(config or {})}
        self.config = c
        self.n_fft, self.hop = int(c["n_fft"]), int(c["hop"])
        if self.n_fft % self.hop:
            raise ValueError("n_fft must be a multiple of hop")
        self.n_bins = self.n_fft // 2 + 1
        self.n_stems = len(c["stems"])
        self.channels = int(c["channels"])
        self.kernel, self.lookahead = int(c["kernel"]), int(c["lookahead"])
        if not 0 <= self.lookahead < self.kernel:
            raise ValueError("lookahead must be in [0, kernel)")
        self.power = float(c["power"])
        self.temperature = float(c.get("temperature", 1.0))
        self.side = bool(c.get("side", False))
        if self.side and self.channels != 2:
            raise ValueError("the side feature needs 2 channels")
        self.in_channels = self.channels + int(self.side)  # feature channels of the encoder
        level = c.get("level")
        self.level = {**LEVEL_DEFAULTS, **level} if level is not None else None
        if self.level:
            self.level_ref = 10 ** (float(self.level["ref_db"]) / 10)
            self.level_gate = 10 ** (float(self.level["gate_db"]) / 10)
            self.level_max = 10 ** (float(self.level["max_gain_db"]) / 10)  # as a power ratio
            self.level_frames = max(1, round(float(self.level["window_s"]) * int(c["sr"]) / self.hop))
        h, nf = int(c["hidden"]), self.channels * self.n_bins
        nf_in = self.in_channels * self.n_bins
        window = torch.hann_window(self.n_fft, periodic=True).sqrt()
        self.register_buffer("window", window, persistent=False)
        # overlap-add of analysis x synthesis windows sums to this constant
        self.ola_scale = float((window**2).sum()) / self.hop
        self.hidden = h
        self.arch = str(c.get("arch", "dense"))
        self.n_refine = int(c.get("refine", 0) or 0)
        if self.n_refine and self.arch != "crn":
            raise ValueError("the full-resolution refinement needs arch 'crn'")
        self.in_mean = nn.Parameter(torch.zeros(nf_in))
        self.in_scale = nn.Parameter(torch.ones(nf_in))
        self.enc_norm = nn.LayerNorm(h)
        self.conv = nn.Conv1d(h, h, self.kernel)
        self.gru_hidden = int(c.get("gru_hidden") or h)
        gh = self.gru_hidden
        self.gru = nn.GRU(h, gh, int(c["layers"]), batch_first=True)
        if self.arch == "dense":
            self.enc = nn.Linear(nf_in, h, bias=False)
            self.dec = nn.Linear(gh + h, h)
            self.dec_norm = nn.LayerNorm(h)
            self.out = nn.Linear(h, self.n_stems * nf)
        elif self.arch == "crn":
            chans = [int(v) for v in c["crn_channels"]]
            self.chans = chans
            self.crn_bins = self.n_bins - 1  # the Nyquist bin reuses the mask of the bin below
            if self.crn_bins % (1 << len(chans)):
                raise ValueError("n_fft / 2 must be divisible by 2 ** len(crn_channels)")
            self.crn_low = self.crn_bins >> len(chans)
            ins = [self.in_channels, *chans[:-1]]
            self.fenc = nn.ModuleList(nn.Conv1d(i, o, 5, stride=2, padding=2) for i, o in zip(ins, chans))
            flat = chans[-1] * self.crn_low
            self.enc = nn.Linear(flat, h, bias=False)
            self.dec = nn.Linear(gh + h, flat)
            outs = [*chans[:-1][::-1], chans[0]]
            self.fdec = nn.ModuleList(
                nn.ConvTranspose1d(2 * i, o, 4, stride=2, padding=1) for i, o in zip(chans[::-1], outs))
            self.out = nn.Conv1d(chans[0], self.n_stems * self.channels, 3, padding=1)
            if self.n_refine:
                r = self.n_refine
                self.refine = nn.ModuleList([
                    nn.Conv1d(chans[0] + self.in_channels, r, 5, padding=2),
                    nn.Conv1d(r, r, 5, padding=4, dilation=2),
                    nn.Conv1d(r, self.n_stems * self.channels, 3, padding=1),
                ])
                nn.init.zeros_(self.refine[-1].weight)
                nn.init.zeros_(self.refine[-1].bias)
        else:
            raise ValueError(f"unknown arch {self.arch!r}")
        self.refine_context = int(c.get("refine_context", 0) or 0)
        if self.refine_context:
            if not self.n_refine:
                raise ValueError("refine_context needs the full-resolution refinement (refine > 0)")
            taps = self.refine_context + 1 + self.lookahead
            self.refine_time = nn.Conv2d(self.in_channels, self.n_refine, (taps, 5), padding=(0, 2), bias=False)
            nn.init.zeros_(self.refine_time.weight)
        self.refine_harmonics = [float(r) for r in c.get("refine_harmonics") or []]
        if self.refine_harmonics:
            if not self.n_refine:
                raise ValueError("refine_harmonics needs the full-resolution refinement (refine > 0)")
            if any(r <= 0 for r in self.refine_harmonics):
                raise ValueError("refine_harmonics: frequency ratios must be > 0")
            n = self.crn_bins
            pos = torch.arange(n, dtype=torch.float64)[None, :] * torch.tensor(self.refine_harmonics, dtype=torch.float64)[:, None]
            lo = pos.floor().long().clamp(max=n - 1)
            frac = (pos - pos.floor()).float() * (pos < n - 1)
            inside = (pos <= n - 1).float()
            # (ratios * bins) gather indices and weights; non-persistent: they follow from the config
            self.register_buffer("harm_lo", lo.reshape(-1), persistent=False)
            self.register_buffer("harm_hi", (lo + 1).clamp(max=n - 1).reshape(-1), persistent=False)
            self.register_buffer("harm_w_lo", ((1 - frac) * inside).reshape(-1), persistent=False)
            self.register_buffer("harm_w_hi", (frac * inside).reshape(-1), persistent=False)
            self.refine_harm = nn.Conv1d(self.in_channels * len(self.refine_harmonics), self.n_refine, 3, padding=1,
                                         bias=False)
            nn.init.zeros_(self.refine_harm.weight)

    @property
    def latency(self) -> int:
        """Algorithmic latency in samples."""
        return self.n_fft + self.lookahead * self.hop

    # -- building blocks shared by offline and streaming paths ------------------------------
    def stft(self, xp: torch.Tensor) -> torch.Tensor:
        """``(..., L)`` padded signal -> ``(..., frames, bins)`` complex, frames at ``hop``."""
        frames = xp.unfold(-1, self.n_fft, self.hop) * self.window
        return torch.fft.rfft(frames, dim=-1)

    def features(self, spec: torch.Tensor, gains: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, channels, frames, bins)`` complex -> un-normalised input features
        ``(batch, frames, in_channels * bins)``: compressed magnitudes, channel-major; ``gains``
        ``(batch, frames)`` (:meth:`feature_gains`) scale them (input level normalisation)."""
        return self.features_ri(torch.view_as_real(spec), gains)

    def features_ri(self, spec_ri: torch.Tensor, gains: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`features` of the real view ``(batch, channels, frames, bins, 2)`` of the STFT
        (no complex tensors: the form the ONNX export takes)."""
        if self.side:
            spec_ri = torch.cat([spec_ri, spec_ri[:, :1] - spec_ri[:, 1:2]], dim=1)
        # (re^2 + im^2)^(p/2): complex abs() is slow on CPU
        mag = (spec_ri.square().sum(-1) + 1e-12) ** (self.power / 2)
        b, c, t, f = mag.shape
        feat = mag.permute(0, 2, 1, 3).reshape(b, t, c * f)
        return feat if gains is None else feat * gains[..., :t, None]

    # -- input level (config "level") -------------------------------------------------------
    def hop_powers(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, n)`` -> ``(batch, n // hop)``: mean square of each whole hop-long block."""
        b, c, n = x.shape
        k = n // self.hop
        return x[..., : k * self.hop].reshape(b, c, k, self.hop).double().square().mean(dim=(1, 3))

    def input_level(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, n)`` -> ``(batch,)`` float64: mean square of the audible hop blocks
        (the reference level when none is audible)."""
        return self.level_of(self.hop_powers(x))

    def level_of(self, powers: torch.Tensor) -> torch.Tensor:
        """Gated mean of block powers ``(batch, k)`` -> ``(batch,)``."""
        on = powers > self.level_gate
        n = on.sum(-1)
        total = (powers * on).sum(-1)
        return torch.where(n > 0, total / n.clamp_min(1), torch.full_like(total, self.level_ref))

    def level_history(self, batch: int, level: torch.Tensor | float | None = None) -> torch.Tensor:
        """The level window before the first frame ``(batch, window - 1)``: filled with ``level``
        (offline: the whole input's), or empty (zeros: inaudible) for a stream."""
        hist = torch.zeros(batch, self.level_frames - 1, dtype=torch.float64)
        if level is not None:
            hist += torch.as_tensor(level, dtype=torch.float64).reshape(-1, 1)
        return hist

    def level_gains(self, powers: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
        """Feature gains ``(batch, t)`` float32 for frames whose newest hop blocks have ``powers``
        ``(batch, t)``, after ``hist`` ``(batch, window - 1)`` (a stream uses :class:`_LevelWindow`)."""
        w = self.level_frames
        allp = torch.cat([hist, powers.double()], dim=1)
        on = allp > self.level_gate
        sums = torch.nn.functional.pad(torch.cumsum(allp * on, dim=1), (1, 0))
        counts = torch.nn.functional.pad(torch.cumsum(on, dim=1), (1, 0))
        end = torch.arange(w, allp.shape[1] + 1)  # window of frame j: blocks (end - w, end]
        n = counts[:, end] - counts[:, end - w]
        level = torch.where(n > 0, (sums[:, end] - sums[:, end - w]) / n.clamp_min(1), self.level_ref)
        power_gain = (self.level_ref / level).clamp(1 / self.level_max, self.level_max)
        # features are |X| ** power, so a power gain g scales them by g ** (power / 2)
        return (power_gain ** (self.power / 2)).float()

    def feature_gains(self, x: torch.Tensor) -> torch.Tensor | None:
        """Offline gains ``(batch, frames + lookahead)`` for the frames of ``frame(x)``; None when
        the model has no level normalisation."""
        if not self.level:
            return None
        xp = self.frame(x)
        powers = self.hop_powers(xp[..., self.n_fft - self.hop :])
        return self.level_gains(powers, self.level_history(x.shape[0], self.input_level(x)))

    def encode(self, spec: torch.Tensor, gains: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, channels, frames, bins)`` complex -> ``(batch, frames, hidden)``; ``gains``
        ``(batch, frames)`` scale the features (input level normalisation)."""
        return self.encode_ri(torch.view_as_real(spec), gains)

    def encode_ri(self, spec_ri: torch.Tensor, gains: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`encode` of the real view ``(batch, channels, frames, bins, 2)`` of the STFT."""
        feat = (self.features_ri(spec_ri, gains) - self.in_mean) * self.in_scale
        b, t = feat.shape[:2]
        c, f = self.in_channels, self.n_bins
        if self.arch == "dense":
            return torch.tanh(self.enc_norm(self.enc(feat)))
        # crn: frame-local convolutions along frequency; the skip activations ride along after the
        # first `hidden` features so the streaming code can treat a frame's features as one vector
        x = feat.reshape(b * t, c, f)[..., : self.crn_bins]
        full = [x.reshape(b, t, -1)] if self.n_refine else []  # rides along for the refinement
        skips = []
        for layer in self.fenc:
            x = torch.relu(layer(x))
            skips.append(x.reshape(b, t, -1))
        e = torch.tanh(self.enc_norm(self.enc(x.reshape(b, t, -1))))
        return torch.cat([e, *skips, *full], dim=-1)

    def temporal(self, ebuf: torch.Tensor) -> torch.Tensor:
        """Valid convolution over ``(batch, frames, hidden)`` -> ``(batch, frames - kernel + 1, hidden)``."""
        # as one matrix product over unfolded frames: the same numbers as self.conv, but 3-4 x faster
        # on the few frames of a live block (Conv1d's per-call set-up dominates there), and not slower
        # on long inputs
        x = ebuf[..., : self.hidden]
        b, k, c = x.shape[0], self.kernel, self.hidden
        u = x.unfold(1, k, 1).reshape(-1, c * k)  # one row per output frame, (channel, tap) as the weight
        w = self.conv.weight.reshape(self.conv.out_channels, c * k).t()  # a view: no copy per call
        y = torch.addmm(self.conv.bias, u, w) if self.conv.bias is not None else u @ w
        return torch.relu(y).view(b, -1, self.conv.out_channels)

    def full_context(self, e: torch.Tensor) -> torch.Tensor:
        """The normalised full-resolution input features riding at the end of :meth:`encode`'s
        output ``(batch, frames, ...)`` -> ``(batch, frames, in_channels * crn_bins)``."""
        return e[..., e.shape[-1] - self.in_channels * self.crn_bins :]

    def harmonic_features(self, full: torch.Tensor) -> torch.Tensor:
        """``(rows, in_channels, bins)`` normalised input -> ``(rows, in_channels * ratios, bins)``: the
        features at bin ``k * r`` for each ratio ``r`` of ``refine_harmonics``."""
        rows, n = full.shape[0], self.crn_bins
        y = full[..., self.harm_lo] * self.harm_w_lo + full[..., self.harm_hi] * self.harm_w_hi
        return y.reshape(rows, self.in_channels * len(self.refine_harmonics), n)

    def context_layout(self, full: torch.Tensor) -> torch.Tensor:
        """:meth:`full_context` rows ``(batch, frames, in_channels * bins)`` in the layout the
        ``refine_context`` convolution reads, ``(batch, in_channels, frames, bins)``."""
        b, t = full.shape[:2]
        return full.reshape(b, t, self.in_channels, self.crn_bins).transpose(1, 2)

    def context_term(self, ctx: torch.Tensor, frames: int) -> torch.Tensor:
        """The ``refine_context`` convolution's share of the refinement's first layer
        ``(batch * frames, refine, bins)`` for ``frames`` frames ``t0 ..``: ``ctx`` holds
        :meth:`context_layout` of frames ``t0 - P`` to ``t0 + frames + lookahead`` (zeros before
        the input starts)."""
        if ctx.shape[2] != frames + self.refine_context + self.lookahead:
            raise ValueError(f"the refinement context needs {frames + self.refine_context + self.lookahead} frames, "
                             f"got {ctx.shape[2]}")
        return self.refine_time(ctx).transpose(1, 2).reshape(ctx.shape[0] * frames, self.n_refine, self.crn_bins)

    def masks(self, g: torch.Tensor, e: torch.Tensor, ctx_term: torch.Tensor | None = None) -> torch.Tensor:
        """GRU output and skip ``(batch, frames, hidden)`` -> masks ``(batch, stems, channels, frames, bins)``.

        With ``refine_context``, ``ctx_term`` is :meth:`context_term` of these frames."""
        b, t, _ = g.shape
        if self.arch == "dense":
            z = torch.relu(self.dec_norm(self.dec(torch.cat([g, e], dim=-1))))
            logits = self.out(z).view(b, t, self.n_stems, self.channels, self.n_bins)
        else:
            h = self.hidden
            x = torch.relu(self.dec(torch.cat([g, e[..., :h]], dim=-1))).reshape(b * t, self.chans[-1], self.crn_low)
            sizes = [o * (self.crn_bins >> (i + 1)) for i, o in enumerate(self.chans)]
            if self.n_refine:
                sizes.append(self.in_channels * self.crn_bins)
            skips = torch.split(e[..., h:], sizes, dim=-1)
            for i, layer in enumerate(self.fdec):
                level = len(self.chans) - 1 - i
                skip = skips[level].reshape(b * t, self.chans[level], -1)
                x = torch.relu(layer(torch.cat([x, skip], dim=1)))
            logits = self.out(x)
            if self.n_refine:
                full = skips[-1].reshape(b * t, self.in_channels, -1)
                r = self.refine[0](torch.cat([x, full], dim=1))
                if self.refine_context:
                    if ctx_term is None:
                        raise ValueError("this model's refinement needs the context of the frames around: pass ctx_term")
                    r = r + ctx_term
                if self.refine_harmonics:
                    r = r + self.refine_harm(self.harmonic_features(full))
                r = torch.relu(r)
                for layer in self.refine[1:-1]:
                    r = torch.relu(layer(r))
                logits = logits + self.refine[-1](r)
            logits = torch.cat([logits, logits[..., -1:]], dim=-1).view(b, t, self.n_stems, self.channels, self.n_bins)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return torch.softmax(logits, dim=2).permute(0, 2, 3, 1, 4)

    def synth(self, y: torch.Tensor) -> torch.Tensor:
        """``(..., frames, bins)`` complex -> overlap-added ``(..., (frames - 1) * hop + n_fft)``."""
        frames = torch.fft.irfft(y, n=self.n_fft, dim=-1) * (self.window / self.ola_scale)
        lead = frames.shape[:-2]
        t = frames.shape[-2]
        if self.n_fft % self.hop == 0:
            # overlap-add as R shifted sums of hop-long pieces: about 3 x faster than fold on CPU
            r = self.n_fft // self.hop
            pieces = frames.reshape(*lead, t, r, self.hop)
            out = frames.new_zeros(*lead, t + r - 1, self.hop)
            for q in range(r):
                out[..., q : q + t, :] += pieces[..., q, :]
            return out.reshape(*lead, -1)
        flat = frames.reshape(-1, t, self.n_fft).transpose(1, 2)
        out = torch.nn.functional.fold(
            flat, output_size=(1, (t - 1) * self.hop + self.n_fft), kernel_size=(1, self.n_fft), stride=(1, self.hop)
        )
        return out.reshape(*lead, -1)

    # -- offline -------------------------------------------------------------------------------
    def n_frames(self, n: int) -> int:
        """Mask frames needed to reconstruct ``n`` samples."""
        return (n - 1) // self.hop + self.n_fft // self.hop

    def frame(self, x: torch.Tensor) -> torch.Tensor:
        """Pad a ``(..., n)`` signal so that its STFT has ``n_frames(n) + lookahead`` frames."""
        n = x.shape[-1]
        total = (self.n_frames(n) + self.lookahead - 1) * self.hop + self.n_fft
        return torch.nn.functional.pad(x, (self.n_fft - self.hop, total - n - (self.n_fft - self.hop)))

    def separate_spec(self, spec: torch.Tensor, gains: torch.Tensor | None = None) -> torch.Tensor:
        """Mixture STFT ``(b, ch, T + lookahead, F)`` -> stem STFTs ``(b, stems, ch, T, F)``;
        ``gains``: :meth:`feature_gains` of the mixture (needed when the model normalises level)."""
        t = spec.shape[2] - self.lookahead
        if self.level and gains is None:
            raise ValueError("this model normalises the input level: pass gains=net.feature_gains(mixture)")
        e = self.encode(spec, gains)
        left = self.kernel - 1 - self.lookahead
        ebuf = torch.nn.functional.pad(e[..., : self.hidden], (0, 0, left, 0))
        g, _ = self.gru(self.temporal(ebuf))
        ctx_term = None
        if self.refine_context:  # zeros for the frames before the input
            # detached: in training, the context convolution's gradient into its input (whose only
            # trainable part is the input normalisation, which keeps its gradient through the encoder
            # and the head) cost a third of a step (its backward over a 34 x 5 kernel on 3 channels is
            # slow on CPU: 2.5 instead of 3.4-3.9 s per batch of 4 x 2.5 s); inference is unchanged
            ctx = torch.nn.functional.pad(self.full_context(e).detach(), (0, 0, self.refine_context, 0))
            ctx_term = self.context_term(self.context_layout(ctx), t)
        m = self.masks(g, e[:, :t], ctx_term)
        return m * spec[:, :, :t].unsqueeze(1)

    def forward_spec(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, channels, n)`` -> (stem STFTs ``(b, stems, ch, T, F)``, mixture STFT ``(b, ch, T + lookahead, F)``)."""
        spec = self.stft(self.frame(x))
        return self.separate_spec(spec, self.feature_gains(x)), spec

    def pad_signal(self, x: torch.Tensor) -> torch.Tensor:
        """Pad a ``(..., n)`` signal the way ``forward_spec`` frames it (for target spectra)."""
        n = x.shape[-1]
        t = self.n_frames(n)
        total = (t - 1) * self.hop + self.n_fft
        return torch.nn.functional.pad(x, (self.n_fft - self.hop, total - n - (self.n_fft - self.hop)))

    def istft(self, y: torch.Tensor, n: int) -> torch.Tensor:
        """Stem spectra ``(..., T, F)`` -> signals ``(..., n)`` aligned with the input."""
        out = self.synth(y)
        start = self.n_fft - self.hop
        return out[..., start : start + n]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, n)`` -> ``(batch, stems, channels, n)``."""
        y, _ = self.forward_spec(x)
        return self.istft(y, x.shape[-1])


class TorchEngine:
    """The three stateless steps :class:`LiteStream` runs per block, in PyTorch.

    ``stemscribe.separate.lite_onnx.OnnxEngine`` has the same methods on ONNX Runtime; the
    stream keeps all state, so an engine only computes."""

    def __init__(self, net: LiteNet) -> None:
        self.net = net

    def encode(self, spec: torch.Tensor, gains: torch.Tensor | None) -> torch.Tensor:
        """:meth:`LiteNet.encode`."""
        return self.net.encode(spec, gains)

    def recur(self, ebuf: torch.Tensor, hidden: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Temporal convolution over ``ebuf`` ``(1, frames, hidden)``, then the GRU from state
        ``hidden`` (None: zeros) -> (output ``(1, frames - kernel + 1, gru_hidden)``, new state)."""
        return self.net.gru(self.net.temporal(ebuf), hidden)

    def masks(self, g: torch.Tensor, e: torch.Tensor, ctx_term: torch.Tensor | None) -> torch.Tensor:
        """:meth:`LiteNet.masks`."""
        return self.net.masks(g, e, ctx_term)


class LiteStream:
    """Block-by-block separation with :class:`LiteNet`; output equals ``LiteNet.forward``.

    ``push(block)`` takes ``(channels, m)`` float32 samples and returns the stems
    ``(stems, channels, k)`` that are now final (``k`` may be 0); the output runs
    ``net.latency`` samples behind the input.  ``flush()`` returns the rest, so the total output
    length equals the total input length.  ``last_masks`` holds the masks of the most recent
    frames ``(stems, channels, frames, bins)`` (for vocal-activity estimates).

    A model that normalises the input level starts with an empty level window (the level of what
    it has heard so far), or with ``level`` (a mean square, e.g. ``net.input_level`` of the whole
    input) the way the offline path starts; with it, the output equals ``LiteNet.forward`` exactly.

    ``engine`` computes the network's steps (default :class:`TorchEngine`; an ONNX Runtime engine
    gives the same output to float rounding, faster on a live stream's small blocks).
    """

    def __init__(self, net: LiteNet, level: float | None = None, engine: Any = None) -> None:
        self.net = net
        self.engine = TorchEngine(net) if engine is None else engine
        self._level = _LevelWindow(net, level) if net.level else None
        n, hop = net.n_fft, net.hop
        c = net.channels
        self._inbuf = torch.zeros(c, n - hop)
        self._ebuf = None  # frame features waiting for the temporal convolution (kernel - 1 kept)
        self._skip = None
        self._ctx = None  # refine_context: full-resolution features of the frames already output
        self._spec = torch.zeros(1, c, 0, net.n_bins, dtype=torch.complex64)
        self._hidden: torch.Tensor | None = None
        self._tail = torch.zeros(net.n_stems, c, n - hop)
        self._drop = n - hop
        self._n_in = 0
        self._n_out = 0
        self.last_masks = torch.zeros(net.n_stems, c, 0, net.n_bins)

    @torch.no_grad()
    def push(self, block: torch.Tensor) -> torch.Tensor:
        return self.back(self.front(block))

    @torch.no_grad()
    def front(self, block: torch.Tensor, *, n_in: int | None = None) -> tuple | None:
        """First half of :meth:`push`: analysis, encoder and recurrence of ``block``; returns the
        work for :meth:`back` (None when no frame is complete yet).

        The two halves keep separate state, so :meth:`back` of one block may run in another
        thread while :meth:`front` of the next one runs (``LiteSeparator.separate`` does):
        called in order on each side, the output is the same as :meth:`push`'s.  ``n_in``
        overrides the input count the output is trimmed to (:meth:`flush`'s padding)."""
        net = self.net
        n, hop = net.n_fft, net.hop
        self._n_in += block.shape[-1]
        n_in = self._n_in if n_in is None else n_in
        self._inbuf = torch.cat([self._inbuf, block.to(torch.float32)], dim=-1)
        m = (self._inbuf.shape[-1] - n) // hop + 1 if self._inbuf.shape[-1] >= n else 0
        if m <= 0:
            return None
        spec = net.stft(self._inbuf[:, : (m - 1) * hop + n]).unsqueeze(0)
        gains = None
        if net.level:  # the newest hop of each new frame
            powers = net.hop_powers(self._inbuf[None, :, n - hop : n - hop + m * hop])
            gains = self._level.gains(powers[0])
        self._inbuf = self._inbuf[:, m * hop :]
        e = self.engine.encode(spec, gains)
        if self._ebuf is None:
            self._ebuf = e.new_zeros(1, net.kernel - 1 - net.lookahead, net.hidden)
            self._skip = e[:, :0]
            if net.refine_context:
                # (1, in_channels, frames, bins): the layout the context convolution reads, so each
                # block copies only its new frames into it
                self._ctx = e.new_zeros(1, net.in_channels, net.refine_context, net.crn_bins)
        self._ebuf = torch.cat([self._ebuf, e[..., : net.hidden]], dim=1)
        self._skip = torch.cat([self._skip, e], dim=1)
        self._spec = torch.cat([self._spec, spec], dim=2)
        k = self._ebuf.shape[1] - (net.kernel - 1)
        if k <= 0:
            return None
        g, self._hidden = self.engine.recur(self._ebuf, self._hidden)
        self._ebuf = self._ebuf[:, self._ebuf.shape[1] - (net.kernel - 1) :]
        ctx_term = None
        if net.refine_context:  # computed here: it needs no GRU output, and evens out the halves
            new = net.context_layout(net.full_context(self._skip[:, : k + net.lookahead]))
            ctx = torch.cat([self._ctx, new], dim=2)
            self._ctx = ctx[:, :, k : k + net.refine_context]
            ctx_term = net.context_term(ctx, k)
        work = (g, self._skip[:, :k], ctx_term, self._spec[0, :, :k], n_in)
        self._skip = self._skip[:, k:]
        self._spec = self._spec[:, :, k:]
        return work

    @torch.no_grad()
    def back(self, work: tuple | None) -> torch.Tensor:
        """Second half of :meth:`push`: masks and synthesis of :meth:`front`'s ``work``; returns
        the stems ``(stems, channels, k)`` that are now final."""
        net = self.net
        if work is None:
            return torch.zeros(net.n_stems, net.channels, 0)
        g, skip, ctx_term, spec, n_in = work
        n, hop = net.n_fft, net.hop
        k = g.shape[1]
        masks = self.engine.masks(g, skip, ctx_term)[0]
        y = masks * spec.unsqueeze(0)
        self.last_masks = masks
        out = net.synth(y)
        out[..., : n - hop] += self._tail
        final, self._tail = out[..., : k * hop], out[..., k * hop :]
        if self._drop:
            d = min(self._drop, final.shape[-1])
            final, self._drop = final[..., d:], self._drop - d
        final = final[..., : max(0, n_in - self._n_out)]
        self._n_out += final.shape[-1]
        return final

    @torch.no_grad()
    def flush(self) -> torch.Tensor:
        """Push silence until every input sample has its output; return the remaining stems."""
        return self.back(self.flush_front())

    @torch.no_grad()
    def flush_front(self) -> tuple | None:
        """:meth:`front` of the silence :meth:`flush` pushes (for callers that run the halves)."""
        n_in = self._n_in
        work = self.front(torch.zeros(self.net.channels, self.net.latency + self.net.hop), n_in=n_in)
        self._n_in = n_in
        return work


class _LevelWindow:
    """:meth:`LiteNet.level_gains` for a stream, one frame at a time: a running gated sum over the
    last ``window`` hop powers instead of cumulative sums over the whole window every block (the
    same gains to float64 rounding; a few microseconds per frame instead of 0.3 ms per block)."""

    def __init__(self, net: LiteNet, level: float | None) -> None:
        import collections

        self.gate, self.ref, self.max = net.level_gate, net.level_ref, net.level_max
        self.exponent = net.power / 2
        hist = [float(v) for v in net.level_history(1, level)[0]]
        self.window: collections.deque[float] = collections.deque(hist)
        self.sum = math.fsum(v for v in hist if v > self.gate)
        self.count = sum(v > self.gate for v in hist)

    def gains(self, powers: torch.Tensor) -> torch.Tensor:
        """Gains ``(1, t)`` float32 for the frames whose newest hop blocks have ``powers`` ``(t,)``."""
        out = []
        for p in powers.tolist():
            on = p > self.gate
            total, n = self.sum + (p if on else 0.0), self.count + on
            level = max(total, 0.0) / n if n else self.ref
            gain = min(max(self.ref / level, 1 / self.max), self.max) if level > 0 else self.max
            out.append(gain**self.exponent)
            self.window.append(p)
            self.sum, self.count = total, n
            old = self.window.popleft()
            if old > self.gate:
                self.sum -= old
                self.count -= 1
        return torch.tensor(out, dtype=torch.float64).float()[None]


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters())


def sdr(ref: torch.Tensor, est: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``10 log10(|s|^2 / |s - s_hat|^2)`` over the last two axes (channels, samples)."""
    num = (ref**2).sum(dim=(-2, -1))
    den = ((ref - est) ** 2).sum(dim=(-2, -1))
    return 10 * torch.log10((num + eps) / (den + eps))


__all__ = ["DEFAULT_CONFIG", "LiteNet", "LiteStream", "TorchEngine", "count_parameters", "sdr"]
