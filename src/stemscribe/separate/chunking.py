"""Run a model over a long signal in overlapping chunks and crossfade the results (bounded memory).

The signal is cut into spans of at most ``chunk`` samples that overlap their neighbours by
``overlap`` samples. Each span is processed with ``context`` extra samples on each side (so the
model sees real audio, not a hard edge, where its output is kept), the context is trimmed off,
and neighbouring outputs are crossfaded linearly over the overlap. The two crossfade weights sum
to exactly one at every sample, so an identity "model" gives back its input (to float rounding).
Only one chunk's input and output exist at a time besides the full output array.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["chunk_spans", "overlap_add"]


def chunk_spans(n: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """Half-open spans ``[start, end)`` covering ``0..n``; neighbours share ``overlap`` samples.

    Uses as few spans as possible, all of (nearly) equal length and at most ``chunk`` samples, so
    no short last chunk wastes a model call on padding.
    """
    if chunk <= 0 or overlap < 0 or overlap >= chunk:
        raise ValueError(f"need chunk > overlap >= 0, got chunk={chunk}, overlap={overlap}")
    if n <= chunk:
        return [(0, n)]
    k = -(-(n - overlap) // (chunk - overlap))  # fewest spans of <= chunk samples
    length = -(-(n + (k - 1) * overlap) // k)  # equal lengths that still cover n
    return [(i * (length - overlap), min(i * (length - overlap) + length, n)) for i in range(k)]


def overlap_add(
    process: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    *,
    chunk: int,
    overlap: int,
    context: int = 0,
    on_chunk: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Apply ``process`` chunk by chunk to ``x`` ``(..., n)`` and crossfade the results.

    ``process(block)`` gets ``x[..., a:b]`` (a span plus up to ``context`` samples each side) and
    returns an array ``(..., b - a)`` (any leading shape, the same for every call). The result has
    that leading shape and ``n`` samples, float32. ``on_chunk(done, total)`` is called after each
    chunk.
    """
    n = x.shape[-1]
    spans = chunk_spans(n, chunk, overlap)
    out: np.ndarray | None = None
    prev_end = 0
    for i, (s, e) in enumerate(spans):
        a, b = max(0, s - context), min(n, e + context)
        y = np.asarray(process(x[..., a:b]))
        if y.shape[-1] != b - a:
            raise ValueError(f"process returned {y.shape[-1]} samples for a block of {b - a}")
        y = y[..., s - a:e - a]
        if out is None:
            out = np.zeros(y.shape[:-1] + (n,), dtype=np.float32)
        fade_in = prev_end - s if i else 0  # samples shared with the previous span
        if fade_in > 0:
            w = ((np.arange(fade_in, dtype=np.float64) + 0.5) / fade_in)
            out[..., s:prev_end] = (out[..., s:prev_end] * (1.0 - w) + y[..., :fade_in] * w).astype(np.float32)
            out[..., prev_end:e] = y[..., fade_in:]
        else:
            out[..., s:e] = y
        prev_end = e
        if on_chunk is not None:
            on_chunk(i + 1, len(spans))
    assert out is not None
    return out
