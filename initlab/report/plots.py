"""Figures of a Result: loss curves, per-layer variances, histograms (Glorot's figures 6 and 7,
the article's figure 2) and decision boundaries (the article's figure 1).

Every function takes a Result and returns a matplotlib Figure drawn on an Agg canvas (no
pyplot, no global state); initlab.report.render writes them as PNGs. One variant keeps one
colour in every figure (`palette`, Okabe-Ito, colour-blind safe). Diverged members (NaN/inf)
never break a plot: non-finite losses are clipped to the top of the loss axis, non-finite or
non-positive values are left out of log axes and counted in the title.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from initlab.results.folder import Result, loss_steps

DPI = 110
LOG_AXIS_MAX = 1e200  # beyond ~1e±280 matplotlib's log tick locator overflows (OverflowError)
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
             "#F0E442")  # yellow last: it is hard to see on white
TAB10 = tuple(to_hex(f"tab:{c}") for c in ("blue", "orange", "green", "red", "purple", "brown",
                                          "pink", "gray", "olive", "cyan"))


def fmt(x: object) -> str:
    """Compact number: 3 significant digits; '—' for None/NaN; ints as they are."""
    if x is None:
        return "—"
    if isinstance(x, bool | int | np.integer):
        return str(int(x))
    try:
        value = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(x)
    return "—" if math.isnan(value) else f"{value:.3g}"


def labels_of(result: Result) -> list[str]:
    return [str(v["label"]) for v in result.summary.get("variants", [])]


def palette(labels: Sequence[str]) -> dict[str, str]:
    """Label -> colour, by position: Okabe-Ito first, then tab10 for variants 9 and up."""
    colours = OKABE_ITO + TAB10
    return {label: colours[i % len(colours)] for i, label in enumerate(labels)}


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


# ---------------------------------------------------------------- loss

def plot_loss(result: Result) -> Figure:
    """Mean loss per variant vs step (finite seeds), min-max band over seeds, log y. Non-finite
    losses are drawn at the top of the axis; x marks where a seed diverged."""
    a, labels = result.arrays, labels_of(result)
    colours = palette(labels)
    loss, steps = np.asarray(a["loss"], dtype=float), loss_steps(result)[0]
    # losses beyond 1e±200 are drawn at the top (or bottom), like inf
    drawable = np.isfinite(loss) & (loss < LOG_AXIS_MAX)
    good = loss[drawable & (loss > 1 / LOG_AXIS_MAX)]
    top = 10 ** math.ceil(math.log10(good.max()) + 0.3) if good.size else 1.0
    floor = good.min() if good.size else top * 1e-6
    shown = np.clip(np.where(drawable, loss, top), floor, top)
    fig = _figure(7.5, 4.4)
    ax = fig.add_subplot()
    for v, label in enumerate(labels):
        members = _members(result, v)
        raw, clipped = loss[:, members], shown[:, members]
        mean = np.clip(np.nan_to_num(_finite_mean(raw, axis=1), nan=top), floor, top)
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
    ax.set_ylim(floor / 1.5, top * 1.5)
    if (~drawable).any():
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

def _log_series(ax, x: np.ndarray, y: np.ndarray, floor: float = 0.0, **style) -> int:
    """Plot y on a log axis leaving out non-finite points and those <= floor, which are returned
    as a count; the latter (zeros, in effect) get a ▼ on the bottom edge in the line's colour."""
    ok = np.isfinite(y) & (y > floor)
    if ok.any():
        ax.plot(x, np.where(ok, y, np.nan), **style)
    zero = np.isfinite(y) & (y <= floor)
    if zero.any():
        ax.scatter(x[zero], np.full(zero.sum(), 0.0), marker="v", s=40, clip_on=False,
                   color=style.get("color"), alpha=style.get("alpha", 1.0), zorder=4,
                   transform=ax.get_xaxis_transform())
    return int((~ok).sum())


def plot_variance(result: Result) -> Figure:
    """Left: Var(h) per layer at init (solid), end of training (faint) and theory (dashed).
    Right: Var(dL/dz) per layer, same styles."""
    a, labels = result.arrays, labels_of(result)
    colours = palette(labels)
    theory = a.get("theory_act_var")
    fig = _figure(11, 4.4)
    axes = fig.subplots(1, 2, sharex=True)
    panels = (("act_var", "Activation variance Var(h)", "Var(h)"),
              ("grad_var", "Back-propagated gradient variance Var(dL/dz)", "Var(dL/dz)"))
    for ax, (stat, title, ylabel) in zip(axes, panels):
        values = np.asarray(a[f"stat_{stat}"], dtype=float)  # (R, M, L)
        layers = np.arange(1, values.shape[-1] + 1)
        series = [(_finite_mean(values[r, _members(result, v)], axis=0), v, r)
                  for v in range(len(labels)) for r in sorted({0, values.shape[0] - 1})]
        curves = [y for y, _, _ in series]
        if stat == "act_var" and theory is not None:
            curves += list(np.asarray(theory, dtype=float))
        good = np.concatenate([y[np.isfinite(y) & (y > 0)] for y in curves])
        floor = float(good.max()) * 1e-24 if good.size else 0.0  # keep the axis readable
        hidden = 0
        for y, v, r in series:
            c = colours[labels[v]]
            style = (dict(lw=2, **layer_marks(len(layers))) if r == 0
                     else dict(lw=1.2, marker=".", alpha=0.35))
            hidden += _log_series(ax, layers, y, floor, color=c, **style)
            if stat == "act_var" and theory is not None and r == 0:
                _log_series(ax, layers, np.asarray(theory[v], dtype=float), floor, color=c,
                            lw=1.2, ls="--")
        if good.size:
            ax.set_yscale("log")
        note = f"\n({hidden} points ≈ 0 (▼) or non-finite)" if hidden else ""
        ax.set(title=title + note, xlabel="layer l (1 = first weight layer)",
               ylabel=f"{ylabel}, mean over seeds (log scale)", **layer_ticks(layers))
        ax.grid(True, alpha=0.3)
    styles = [Line2D([], [], color="0.3", lw=2, marker="o", ms=4, label="at init"),
              Line2D([], [], color="0.3", lw=1.2, alpha=0.35, marker=".", label="end of training"),
              Line2D([], [], color="0.3", lw=1.2, ls="--", label="theory (init)")]
    variants = [Line2D([], [], color=colours[lab], lw=3, label=lab) for lab in labels]
    axes[0].legend(handles=styles, fontsize=8, frameon=False)
    fig.legend(handles=variants, loc="outside right upper", fontsize=8, frameon=False)
    return fig


# ---------------------------------------------------------------- histogram grids

def _variant_grid(result: Result, key: str, xlabel: str, title: str,
                  zero_bin: bool = False) -> Figure:
    """Rows = variants, columns = hidden layers; each cell the histogram `hist_<key>` summed
    over the variant's seeds and normalized: filled at init, outline at the end. With
    `zero_bin`, the first bin (where zeros land) is left out of the bars and its share written
    in the cell, so dead units do not flatten the rest."""
    a, labels = result.arrays, labels_of(result)
    colours = palette(labels)
    hist = np.asarray(a[f"hist_{key}"], dtype=float)  # (R, M, L, bins)
    hist = np.where(np.isfinite(hist), hist, 0.0)
    edges = np.asarray(a[f"hist_{key}_edges"], dtype=float)
    n_layers = hist.shape[2]
    cols = spread_layers(n_layers - 1) if n_layers > 1 else [0]
    fig = _figure(1.2 + 2.1 * len(cols), 0.9 + 1.35 * len(labels))
    axes = fig.subplots(len(labels), len(cols), sharex=True, squeeze=False)
    for v, label in enumerate(labels):
        members = _members(result, v)
        for j, l in enumerate(cols):
            ax = axes[v, j]
            init, final = hist[0, members, l].sum(0), hist[-1, members, l].sum(0)
            first = 1 if zero_bin else 0
            if init.sum() > 0:
                ax.stairs(init[first:] / init.sum(), edges[first:], fill=True,
                          color=colours[label], alpha=0.45)
            if hist.shape[0] > 1 and final.sum() > 0:
                ax.stairs(final[first:] / final.sum(), edges[first:], color=colours[label],
                          lw=1.3)
            if zero_bin and init.sum() + final.sum() > 0:
                shares = [f"{h[0] / h.sum():.0%}" if h.sum() > 0 else "—" for h in (init, final)]
                ax.text(0.02, 0.95, f"≈0: {shares[0]} → {shares[1]}", transform=ax.transAxes,
                        va="top", fontsize=7, color="0.3")
            if init.sum() == 0 and final.sum() == 0:
                ax.text(0.5, 0.5, "no finite values", ha="center", va="center",
                        transform=ax.transAxes, fontsize=8, color="0.4")
            ax.set_ylim(bottom=0)
            ax.tick_params(labelsize=7)
            if v == 0:
                ax.set_title(f"layer {l + 1}", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{label}\nfraction", fontsize=8, color=colours[label])
            if v == len(labels) - 1:
                ax.set_xlabel(xlabel, fontsize=8)
    fig.suptitle(title + "\nfilled: at init, outline: end of training (all seeds)", fontsize=10)
    return fig


def plot_histograms(result: Result) -> Figure:
    """The article's figure 2 / Glorot's figure 6: activations h per hidden layer."""
    return _variant_grid(result, "h", "activation h (end bins include values beyond)",
                         "Activation histograms per hidden layer")


def plot_gradients(result: Result) -> Figure:
    """Glorot's figure 7: back-propagated gradients log10 |dL/dz| per hidden layer."""
    low = float(np.asarray(result.arrays["hist_dz_edges"])[0])
    return _variant_grid(result, "dz", "log10 |dL/dz|",
                         "Back-propagated gradient histograms per hidden layer\n"
                         f"≈0: share of |dL/dz| < 1e{low:.0f} (or 0), init → end", zero_bin=True)


# ---------------------------------------------------------------- decision boundary

def plot_decision_boundary(result: Result) -> Figure | None:
    """The article's figure 1: P(class 1) on [-5, 5]^2 for each variant's first seed, the data
    on top. `boundary[v, i, j]` is the value at (x1 = grid[j], x2 = grid[i]). None without
    boundary arrays."""
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
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(labels):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7, loc="lower left", framealpha=0.8)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="P(class 1)   (grey: NaN)")
    fig.suptitle("Decision boundary on [−5, 5]² (x1 across, x2 up)", fontsize=10)
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
