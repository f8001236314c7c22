"""Axis helpers every figure shares, so that depth never sets a figure's cost or its look.

- `chosen_layers`: which layers get their own histogram (the first, 1/4, 1/2, 3/4 and the last
  hidden layer by default; `measure.layers` or `--layers` to choose): initlab.results.layers,
  re-exported here.
- `log_limits`: the range of a log axis, set by reference values only (measurements at init,
  theory) and by other values that lie near them; non-finite values, zeros and values beyond
  1e+-200 never set an axis.
- `log_series`: a line on a log axis whose points outside the axis are marked on its edges
  (down triangles for values below it and zeros, up triangles for values above it and inf).
- `log_ticks`: readable ticks of a log axis (decades, or 1-2-5 within less than two decades).
- `layer_ticks`: at most ~10 integer layer ticks, whatever the depth.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from initlab.results.layers import (  # noqa: F401 (re-exported: the figures' layer choice)
    DEFAULT_FRACTIONS,
    MAX_LAYERS,
    chosen_layers,
    config_layers,
    default_layers,
    even,
)

LOG_AXIS_MAX = 1e200  # beyond ~1e+-280 matplotlib's log tick locator overflows (OverflowError)
MAX_DECADES = 100  # a log axis spans at most this many decades (below: marked on the edge)
NEAR_DECADES = 6  # non-reference values within this many decades of the references widen it


def requested_layers(result: Any, layers: Sequence[int] | None = None) -> list[int] | None:
    """`layers` if given, else the config's measure.layers (1-based), else None (default)."""
    if layers:
        return [int(l) for l in layers]
    return config_layers(result.config)


def _drawable(values: Iterable[Any]) -> np.ndarray:
    parts = [np.asarray(v, dtype=float).ravel() for v in values]
    x = np.concatenate(parts) if parts else np.zeros(0)
    return x[np.isfinite(x) & (x > 1 / LOG_AXIS_MAX) & (x < LOG_AXIS_MAX)]


def log_limits(reference: Sequence[Any], others: Sequence[Any] = (),
               pad: float = 0.06) -> tuple[float, float] | None:
    """(lo, hi) of a log axis: the drawable reference values, widened by the other values that
    lie within NEAR_DECADES of them, at most MAX_DECADES tall (the top kept), padded by `pad`
    of the span in log space. None when nothing is drawable."""
    ref = _drawable(reference)
    rest = _drawable(others)
    if ref.size:
        lo_r, hi_r = math.log10(ref.min()), math.log10(ref.max())
        near = rest[(np.log10(rest) >= lo_r - NEAR_DECADES) & (np.log10(rest) <= hi_r
                                                                + NEAR_DECADES)]
        values = np.concatenate([ref, near])
    else:
        values = rest
    if not values.size:
        return None
    lo, hi = math.log10(values.min()), math.log10(values.max())
    lo = max(lo, hi - MAX_DECADES)
    span = max(hi - lo, 0.3)
    margin = pad * span
    mid = (lo + hi) / 2
    lo, hi = min(lo, mid - 0.15) - margin, max(hi, mid + 0.15) + margin
    return 10.0 ** lo, 10.0 ** hi


def log_series(ax: Any, x: np.ndarray, y: np.ndarray, limits: tuple[float, float] | None,
               **style: Any) -> int:
    """Plot y on a log axis with `limits`: points inside as a line (NaN points are gaps),
    points below (and exact zeros) as down triangles on the bottom edge, points above (and
    +inf) as up triangles on the top edge, in the line's colour. Returns the number of points
    not drawn on the line (outside, zero or not finite)."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x)
    lo, hi = limits if limits is not None else (0.0, math.inf)
    inside = np.isfinite(y) & (y >= lo) & (y <= hi) & (y > 0)
    marker_style = {"color": style.get("color"), "alpha": style.get("alpha", 1.0),
                    "clip_on": False, "zorder": 4, "transform": ax.get_xaxis_transform()}
    if inside.any():
        ax.plot(x, np.where(inside, y, np.nan), **style)
    below = ~np.isnan(y) & ((y < lo) | (y <= 0)) & (y != np.inf)
    above = (y > hi) & ~np.isnan(y)
    if below.any():
        ax.scatter(x[below], np.zeros(int(below.sum())), marker="v", s=28, **marker_style)
    if above.any():
        ax.scatter(x[above], np.ones(int(above.sum())), marker="^", s=28, **marker_style)
    return int((~inside).sum())


def _nice_steps(lo: float, hi: float, mantissas: Sequence[float]) -> list[float]:
    out = []
    for d in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in mantissas:
            t = m * 10.0 ** d
            if lo <= t <= hi:
                out.append(float(f"{t:.6g}"))
    return out


def log_ticks(axis: Any, lo: float, hi: float) -> None:
    """Major ticks of a log axis on [lo, hi]: decades (every k-th for tall axes) or, within
    two decades, the 1-2-5 (or 1..9) steps with plain labels; no minor labels."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    decades = math.log10(hi / lo)
    if decades >= 2:
        step = max(1, math.ceil(decades / 8))
        first = math.ceil(math.log10(lo))
        ticks = [10.0 ** e for e in range(first, math.floor(math.log10(hi)) + 1)
                 if (e - first) % step == 0]
        axis.set_major_locator(FixedLocator(ticks))
        if step > 1:
            axis.set_minor_locator(NullLocator())
        axis.set_minor_formatter(NullFormatter())
        return
    for mantissas in ((1, 2, 5), (1, 2, 3, 5, 7), (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = _nice_steps(lo, hi, mantissas)
        if len(ticks) >= 3:
            break
    if len(ticks) < 2:  # a very narrow range: evenly spaced values
        ticks = [float(f"{t:.3g}") for t in np.geomspace(lo, hi, 4)[1:-1]]
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(_plain_formatter())
    axis.set_minor_formatter(NullFormatter())


def _plain_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: f"{v:.3g}")


def layer_ticks(axis: Any) -> None:
    """At most ~10 integer ticks on a layer axis (no tick per layer: deep nets overlap)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(nbins=10, integer=True, min_n_ticks=1))


def finish_layer_axes(ax: Any, limits: tuple[float, float] | None, hidden: int, title: str,
                      xlabel: str, ylabel: str, L: int) -> None:
    """A per-layer log-scale panel's common end: the log axis on `limits` (None: linear, no
    finite positive value), the count of `hidden` points in the title (log_series' markers on
    the edges), labels, the layer axis from 1 to L, a light grid."""
    if limits is not None:
        ax.set_yscale("log")
        ax.set_ylim(*limits)
        log_ticks(ax.yaxis, *limits)
    note = f"\n({hidden} points off the axis: ▼ ≈ 0 or below, ▲ above)" if hidden else ""
    ax.set(title=title + note, xlabel=xlabel, ylabel=f"{ylabel}, mean over seeds (log scale)",
           xlim=(0.5, L + 0.5) if L < 10 else (1, L))
    layer_ticks(ax.xaxis)
    ax.grid(True, alpha=0.3)
