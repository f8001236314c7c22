"""The decision boundary of 2-D binary data: the grid over the data's extent, P(class 1) on it
in chunks of points (memory bounded at any depth, on one BLAS thread), and how many frames of it
a run takes during training. Pure NumPy, no I/O; experiment.py draws the members it needs.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np

from initlab.nn.model import Population, forward

BOUNDARY_POINTS = 101  # decision-boundary grid points per axis, over the data's extent
FRAME_POINTS = 41  # boundary frames during training: a coarser grid over the same extent
BOUNDARY_CHUNK = 1 << 21  # a boundary pass holds members x points x 6 max(widths) <= this
BOUNDARY_MARGIN = 0.1  # the grid reaches this fraction of the data's range beyond it
MAX_FRAMES = 60
MIN_FRAMES = 12  # the frames' forward passes are at most FRAME_SHARE of training's, but at least
FRAME_SHARE = 0.15  # this many frames (a minibatch-trained deep net's would otherwise dominate)


def boundary_grid(x: np.ndarray, points: int = BOUNDARY_POINTS) -> np.ndarray:
    """The decision-boundary grid of 2-D data x (N, 2): `points` values from the smallest to
    the largest finite coordinate (both axes share it, so panels stay square), widened by
    BOUNDARY_MARGIN of the range on each side; [-5, 5] when there is no finite point."""
    finite = np.asarray(x, dtype=float)
    finite = finite[np.isfinite(finite).all(axis=1)] if finite.ndim == 2 else finite[:0]
    if not finite.size:
        return np.linspace(-5.0, 5.0, points)
    lo, hi = float(finite.min()), float(finite.max())
    pad = BOUNDARY_MARGIN * max(hi - lo, 1e-3)
    return np.linspace(lo - pad, hi + pad, points)


def chunk_points(members: int, sizes: list[int], points: int) -> int:
    """Grid points per boundary pass: members x points x 6 max(widths) (z, h, phi' of two layers
    in turn: forward(keep=False), whatever the depth) at most BOUNDARY_CHUNK elements."""
    return max(1, min(points, BOUNDARY_CHUNK // max(members * 6 * max(sizes[1:]), 1)))


def frame_count(steps: int, members: int, batch: int, drawn: int, points: int) -> int:
    """How many boundary frames a run takes: MAX_FRAMES, or fewer when their forward passes
    (frames x drawn members x grid points, each one pass through the net) would cost more than
    FRAME_SHARE of training's (steps x members x batch samples, a forward and a backward pass
    at about three forward passes), but never fewer than MIN_FRAMES. The net's shape cancels:
    both sides are passes through the same layers. E.g. depth 50, 12 members, batch 16, 1280
    steps, 6 variants on 41^2 points: 0.15 x 3 x 1280 x 12 x 16 / (6 x 1681) = 11 -> 12."""
    affordable = FRAME_SHARE * 3 * steps * members * batch / max(drawn * points, 1)
    return int(min(MAX_FRAMES, max(MIN_FRAMES, math.floor(affordable))))


def frame_epochs(epochs: int, count: int) -> np.ndarray:
    """About `count` distinct epochs from 0..epochs (at most count + 2; the frames are taken
    at the end of an epoch), always 0 and the last, the others half spaced evenly, half
    geometrically (the early epochs change most); every epoch when there are no more."""
    if epochs + 1 <= count:
        return np.arange(epochs + 1)
    picked = np.array([0, epochs])
    for half in range(max(count // 2, 1), epochs + 2):
        more = np.unique(np.round(np.concatenate(
            [[0, epochs], np.linspace(0, epochs, half), np.geomspace(1, epochs, half)])))
        if len(more) > count + 2:
            break
        picked = more
        if len(picked) >= count:
            break
    return picked.astype(int)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """NumPy's BLAS at one thread inside (threadpoolctl), whatever it was before."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


def probabilities(members: Population, g: np.ndarray, sizes: list[int],
                  dtype: type = np.float64, sized_for: int | None = None) -> np.ndarray:
    """P(class 1) of every member on the grid g x g, (M, len(g), len(g)); row i is x2 = g[i],
    column j is x1 = g[j]. Forward passes over `chunk_points` grid points at a time (no trace
    kept: little memory at any depth), on one BLAS thread (`one_blas_thread`): these are a side
    product of training, and a BLAS that spreads its (width x width) @ (width x points)
    products over the cores of a shared machine made each pass 15-20 times slower whenever
    another process held a core. One logit: sigmoid; two: softmax's second class.
    `sized_for`: the members the chunks are sized for (default members.M): a run's worker that
    draws a few of the members passes the run's count, so that it cuts the same chunks and
    BLAS rounds every product as the one process does (the chunk's width changes OpenBLAS's
    rounding in the last bit)."""
    xx, yy = np.meshgrid(g, g)
    grid: np.ndarray = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(dtype)
    p = np.empty((members.M, len(grid)))
    step = chunk_points(members.M if sized_for is None else sized_for, sizes, len(grid))
    with np.errstate(all="ignore"), one_blas_thread():
        for start in range(0, len(grid), step):
            z = forward(members, grid[start:start + step], keep=False).out
            p[:, start:start + step] = 1 / (1 + np.exp(-z[..., 0])) if z.shape[-1] == 1 else \
                np.exp(z[..., 1] - np.logaddexp(z[..., 0], z[..., 1]))
    return p.reshape(members.M, len(g), len(g))
