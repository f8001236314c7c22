"""Figures of a Result: loss curves, per-layer variances and decision boundaries (the article's
figure 1); the histograms and the layer x step images are in layer_plots.

Every function takes a Result and returns a matplotlib Figure drawn on an Agg canvas (no
pyplot, no global state); initlab.report.render writes them (PNG, SVG or PDF, at most
MAX_PIXELS in each direction). One variant keeps one colour in every figure (`palette`,
Okabe-Ito, colour-blind safe). The cost of a figure does not grow with the depth: per-layer
quantities are one line per variant (or one image per variant), never one axes per layer.
Diverged members (NaN/inf) never break a plot and never set an axis: non-finite losses are
clipped to the top of the loss axis; on log axes, values far from the references (at init,
theory) are marked on the axis' edges and counted in the title.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from initlab.report.axes import LOG_AXIS_MAX, finish_layer_axes, log_limits, log_series, log_ticks
from initlab.report.style import DPI, MAX_PIXELS, OKABE_ITO, TAB10, fmt, labels_of, palette  # noqa: F401 (re-exported: initlab.report.plots.fmt etc.)
from initlab.results.folder import Result, loss_steps

MARKER_LAYERS = 30  # per-layer lines get a marker per layer up to this depth


MAX_TICKED_LAYERS = 30  # deeper nets: matplotlib's own ticks, lines without markers
MAX_GRID_LAYERS = 8  # histogram grids of deeper nets show this many layers spread over depth


def layer_ticks(layers: np.ndarray) -> dict:
    """xticks at every layer for shallow nets only (10,000 tick labels would not be read)."""
    return {"xticks": layers} if len(layers) <= MAX_TICKED_LAYERS else {}


def layer_marks(n: int) -> dict:
    return dict(marker="o", ms=4) if n <= MAX_TICKED_LAYERS else {}


def spread_layers(n: int, k: int = MAX_GRID_LAYERS) -> list[int]:
    """All of range(n), or k indices spread evenly over it (first and last included)."""
    if n <= k:
        return list(range(n))
    return sorted({round(float(i)) for i in np.linspace(0, n - 1, k)})


def _log_series(ax, x: np.ndarray, y: np.ndarray, floor: float = 0.0, **style) -> int:
    """`axes.log_series` with only a floor: points <= floor (zeros) get a ▼ on the bottom
    edge; returns the number of points not on the line."""
    return log_series(ax, x, y, (floor, math.inf), **style)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _members(result: Result, v: int) -> np.ndarray:
    return np.asarray(result.arrays["member_variant"]) == v


def _finite_mean(x: np.ndarray, axis: int) -> np.ndarray:
    """Mean over `axis` of the finite entries; NaN where there are none (no warnings)."""
    ok = np.isfinite(x)
    n = ok.sum(axis=axis)
    total = np.where(ok, x, 0.0).sum(axis=axis)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def trained(result: Result) -> bool:
    """Whether the result has statistics after some training (not only at init)."""
    steps = result.arrays.get("stat_steps")
    return bool(result.summary.get("steps") or 0) and steps is not None and len(steps) > 1


# ---------------------------------------------------------------- loss

def plot_loss(result: Result) -> Figure:
    """Mean loss per variant vs step (finite seeds), min-max band over seeds, log y. Non-finite
    losses (and those beyond 1e±200) are drawn on a dotted line at the top of the axis; x marks
    where a seed diverged. The axis spans the data with a small margin."""
    a, labels = result.arrays, labels_of(result)
    colours = palette(labels)
    loss, steps = np.asarray(a["loss"], dtype=float), loss_steps(result)[0]
    drawable = np.isfinite(loss) & (loss < LOG_AXIS_MAX)
    good = loss[drawable & (loss > 1 / LOG_AXIS_MAX)]
    limits = log_limits([good], pad=0.04) or (0.1, 10.0)
    bad_any = bool((~drawable).any())
    lo, hi = limits
    top = hi  # where non-finite losses are drawn
    if bad_any:  # room above the data for the clipped values' line
        hi = hi * (hi / lo) ** 0.08
    shown = np.clip(np.where(drawable, loss, top), lo, top)
    fig = _figure(7.5, 4.4)
    ax = fig.add_subplot()
    for v, label in enumerate(labels):
        members = _members(result, v)
        raw, clipped = loss[:, members], shown[:, members]
        mean = np.clip(np.nan_to_num(_finite_mean(raw, axis=1), nan=top), lo, top)
        bad = ~np.isfinite(raw)
        n_div = int(bad.any(axis=0).sum())
        text = label + (f"  ({n_div}/{members.sum()} diverged)" if n_div else "")
        ax.plot(steps, mean, color=colours[label], lw=1.8, label=text)
        if members.sum() > 1:
            ax.fill_between(steps, clipped.min(axis=1), clipped.max(axis=1),
                            color=colours[label], alpha=0.18, lw=0)
        first = bad.argmax(axis=0)[bad.any(axis=0)]
        ax.scatter(steps[first], np.full(first.shape, top), marker="x", s=70, lw=2,
                   color=colours[label], zorder=5, clip_on=False)
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    log_ticks(ax.yaxis, lo, hi)
    if len(steps) > 1:
        ax.set_xlim(steps[0], steps[-1])
    if bad_any:
        ax.axhline(top, color="0.5", ls=":", lw=0.9)
        ax.annotate("NaN/inf (clipped)", (0.99, top), xycoords=("axes fraction", "data"),
                    ha="right", va="bottom", fontsize=8, color="0.35")
    name, seeds = result.summary.get("loss", "loss"), result.summary.get("seeds", "?")
    ax.set(xlabel="training step (parameter updates)", ylabel=f"{name} loss (log scale)",
           title=f"Training loss: mean over seeds, band = min–max ({seeds} seeds), × = diverged")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="best")
    return fig


# ---------------------------------------------------------------- variance per layer

def plot_variance(result: Result) -> Figure:
    """Left: Var(h) per layer at init (solid), end of training (faint) and theory (dashed).
    Right: Var(dL/dz) per layer, same styles. The axes are set by the values at init and the
    theory; end-of-training values far from them are marked on the edges (▲ ▼)."""
    a, labels = result.arrays, labels_of(result)
    colours = palette(labels)
    theory = a.get("theory_act_var")
    end = trained(result)
    fig = _figure(11, 4.6)
    axes = fig.subplots(1, 2)
    panels = (("act_var", "Activation variance Var(h)", "Var(h)"),
              ("grad_var", "Back-propagated gradient variance Var(dL/dz)", "Var(dL/dz)"))
    for ax, (stat, title, ylabel) in zip(axes, panels):
        values = np.asarray(a[f"stat_{stat}"], dtype=float)  # (R, M, L)
        L = values.shape[-1]
        layers = np.arange(1, L + 1)
        rows = [0, values.shape[0] - 1] if end else [0]
        means = {(v, r): _finite_mean(values[r, _members(result, v)], axis=0)
                 for v in range(len(labels)) for r in rows}
        reference = [means[v, 0] for v in range(len(labels))]
        if stat == "act_var" and theory is not None:
            reference += list(np.asarray(theory, dtype=float))
        limits = log_limits(reference, [means[v, rows[-1]] for v in range(len(labels))])
        hidden = 0
        marker = L <= MARKER_LAYERS
        for (v, r), y in means.items():
            c = colours[labels[v]]
            style = (dict(lw=2, marker="o" if marker else None, ms=4) if r == 0
                     else dict(lw=1.2, marker="." if marker else None, alpha=0.45))
            hidden += log_series(ax, layers, y, limits, color=c, **style)
            if stat == "act_var" and theory is not None and r == 0:
                log_series(ax, layers, np.asarray(theory[v], dtype=float), limits, color=c,
                           lw=1.2, ls="--")
        finish_layer_axes(ax, limits, hidden, title, "layer l (1 = first weight layer)", ylabel, L)
    styles = [Line2D([], [], color="0.3", lw=2, marker="o", ms=4, label="at init")]
    if end:
        styles.append(Line2D([], [], color="0.3", lw=1.2, alpha=0.45, marker=".",
                             label="end of training"))
    if theory is not None:
        styles.append(Line2D([], [], color="0.3", lw=1.2, ls="--", label="theory (init)"))
    variants = [Line2D([], [], color=colours[lab], lw=3, label=lab) for lab in labels]
    fig.legend(handles=[*styles, *variants], loc="outside right upper", fontsize=8,
               frameon=False)
    return fig


# ---------------------------------------------------------------- decision boundary

def plot_decision_boundary(result: Result) -> Figure | None:
    """The article's figure 1: P(class 1) over the data's extent (`boundary_grid`) for each
    variant's first seed, the data on top. `boundary[v, i, j]` is the value at
    (x1 = grid[j], x2 = grid[i]). None without boundary arrays."""
    a, labels = result.arrays, labels_of(result)
    if "boundary" not in a or not labels:
        return None
    grid = np.asarray(a["boundary_grid"], dtype=float)
    extent = (grid[0], grid[-1], grid[0], grid[-1])
    x, y = np.asarray(a["data_x"], dtype=float), np.asarray(a["data_y"], dtype=float) > 0.5
    n_cols = min(len(labels), 4)
    n_rows = math.ceil(len(labels) / n_cols)
    fig = _figure(0.9 + 3.0 * n_cols, 0.5 + 3.1 * n_rows)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    import matplotlib

    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.75")
    image = None
    for v, label in enumerate(labels):
        ax = axes.flat[v]
        image = ax.imshow(np.ma.masked_invalid(a["boundary"][v]), extent=extent, origin="lower",
                          cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.scatter(*x[y].T, marker="^", s=22, c="white", edgecolors="black", lw=0.7,
                   label="class 1")
        ax.scatter(*x[~y].T, marker="o", s=16, c="black", edgecolors="white", lw=0.6,
                   label="class 0")
        ax.set_title(f"{label}\n{_first_seed_outcome(result, v)}", fontsize=9,
                     color=palette(labels)[label])
        ax.set(xlim=extent[:2], ylim=extent[2:], aspect="equal")
        ax.tick_params(labelsize=8)
    for ax in axes.flat[len(labels):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7, loc="lower left", framealpha=0.8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="P(class 1)   (grey: NaN)")
    fig.suptitle(f"Decision boundary on [{fmt(grid[0])}, {fmt(grid[-1])}]² "
                 "(x1 across, x2 up)", fontsize=10)
    return fig


def _first_seed_outcome(result: Result, v: int) -> str:
    """'final loss 0.123' or 'diverged at step 40' for the variant's first member."""
    first = np.flatnonzero(_members(result, v))[:1]
    if not first.size:
        return "no members"
    curve = np.asarray(result.arrays["loss"][:, first[0]], dtype=float)
    bad = np.flatnonzero(~np.isfinite(curve))
    if bad.size:
        return f"diverged at step {int(loss_steps(result)[0][bad[0]])} (first seed)"
    return f"final loss {fmt(curve[-1])} (first seed)"
