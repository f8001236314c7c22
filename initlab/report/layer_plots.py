"""Per-layer figures whose cost does not grow with the depth.

- histograms.png / gradients.png: rows = variants, columns = a chosen set of layers (the first,
  1/4, 1/2, 3/4 and the last hidden layer by default; `measure.layers` / `--layers`): the
  article's figure 2, Glorot & Bengio's figures 6 and 7.
- variance_steps.png: per variant one image of log10 Var(h) and one of log10 Var(dL/dz) over
  layers (up) and training steps (across): every layer and every recorded step in two images
  per variant, whatever the depth (at most MAX_IMAGE cells each way, evenly subsampled).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from initlab.report.axes import LOG_AXIS_MAX, even, requested_layers
from initlab.report.plots import _figure, _finite_mean, _members, labels_of, palette, trained
from initlab.results.folder import Result
from initlab.results.layers import hist_columns


def n_layer_axis(result: Result) -> int:
    """Entries of the result's layer axis (weight layers; a residual net's input projection,
    blocks and readout): the per-layer statistics', else the histograms' (all layers then)."""
    a = result.arrays
    if "stat_act_var" in a:
        return int(np.asarray(a["stat_act_var"]).shape[-1])
    return int(np.asarray(a["hist_h"]).shape[2])

MAX_IMAGE = 1000  # cells of a layer x step image in each direction


def _variant_grid(result: Result, key: str, xlabel: str, title: str, zero_bin: bool = False,
                  layers: Sequence[int] | None = None) -> Figure:
    """Rows = variants, columns = the chosen layers; each cell the histogram `hist_<key>`
    summed over the variant's seeds and normalized: filled at init, outline at the end (if the
    run trained). With `zero_bin`, the first bin (where zeros land) is left out of the bars and
    its share written in the cell, so dead units do not flatten the rest."""
    a, labels = result.arrays, labels_of(result)
    colours = palette(labels)
    hist = np.asarray(a[f"hist_{key}"], dtype=float)  # (R, M, K, bins): K recorded layers
    edges = np.asarray(a[f"hist_{key}_edges"], dtype=float)
    n_layers = n_layer_axis(result)
    wanted = requested_layers(result, layers)
    picked = hist_columns(a, n_layers, wanted)
    cols, at = [l for l, _ in picked], [i for _, i in picked]
    missing = [l for l in wanted or [] if 1 <= l <= n_layers and l - 1 not in cols]
    end = trained(result) and hist.shape[0] > 1
    V = len(labels)
    fig = _figure(1.0 + 2.3 * len(cols), 1.2 + 1.45 * V)
    axes = fig.subplots(V, len(cols), squeeze=False)
    first = 1 if zero_bin else 0
    init_all = np.where(np.isfinite(hist[0][:, at]), hist[0][:, at], 0.0)  # (M, k, bins)
    final_all = np.where(np.isfinite(hist[-1][:, at]), hist[-1][:, at], 0.0)
    for v, label in enumerate(labels):
        members = _members(result, v)
        inits, finals = init_all[members].sum(0), final_all[members].sum(0)  # (k, bins)
        for j, l in enumerate(cols):
            ax = axes[v, j]
            init, final = inits[j], finals[j]
            if init.sum() > 0:
                ax.stairs(init[first:] / init.sum(), edges[first:], fill=True,
                          color=colours[label], alpha=0.45)
            if end and final.sum() > 0:
                ax.stairs(final[first:] / final.sum(), edges[first:], color=colours[label],
                          lw=1.3)
            if zero_bin and init.sum() + final.sum() > 0:
                shares = [f"{h[0] / h.sum():.0%}" if h.sum() > 0 else "—" for h in (init, final)]
                text = f"≈0: {shares[0]} → {shares[1]}" if end else f"≈0: {shares[0]}"
                ax.text(0.02, 0.95, text, transform=ax.transAxes, va="top", fontsize=7.5,
                        color="0.3")
            if init.sum() == 0 and final.sum() == 0:
                ax.text(0.5, 0.5, "no finite values", ha="center", va="center",
                        transform=ax.transAxes, fontsize=8, color="0.4")
            ax.set_xlim(edges[first], edges[-1])
            ax.set_ylim(bottom=0)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
            ax.yaxis.set_major_locator(MaxNLocator(nbins=3))
            ax.tick_params(labelsize=8)
            if v == 0:
                ax.set_title(f"layer {l + 1}" + (" (output)" if l == n_layers - 1 > 0 else ""),
                             fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{label}\nfraction", fontsize=8.5, color=colours[label])
    fig.supxlabel(xlabel, fontsize=9)
    which = ("filled: at init, outline: end of training (all seeds)" if end
             else "at init (all seeds)")
    depth = f"; {len(cols)} of {n_layers} layers" if len(cols) < n_layers else ""
    if missing:  # training recorded the histograms of its chosen layers only
        depth += f" (not recorded: layer {', '.join(map(str, missing[:6]))})"
    fig.suptitle(f"{title}\n{which}{depth}", fontsize=10)
    return fig


def plot_histograms(result: Result, layers: Sequence[int] | None = None) -> Figure:
    """The article's figure 2 / Glorot's figure 6: activations h of the chosen layers."""
    return _variant_grid(result, "h", "activation h (end bins include values beyond)",
                         "Activation histograms", layers=layers)


def plot_gradients(result: Result, layers: Sequence[int] | None = None) -> Figure:
    """Glorot's figure 7: back-propagated gradients log10 |dL/dz| of the chosen layers."""
    low = float(np.asarray(result.arrays["hist_dz_edges"])[0])
    return _variant_grid(result, "dz", "log10 |dL/dz|",
                         "Back-propagated gradient histograms "
                         f"(≈0: share of |dL/dz| < 1e{low:.0f} or 0)", zero_bin=True,
                         layers=layers)


# ---------------------------------------------------------------- layer x step images

def _log_image(values: np.ndarray) -> np.ndarray:
    """log10 of drawable values; NaN for zeros, non-finite and beyond 1e±200 (grey)."""
    ok = np.isfinite(values) & (values > 1 / LOG_AXIS_MAX) & (values < LOG_AXIS_MAX)
    with np.errstate(all="ignore"):
        return np.where(ok, np.log10(np.where(ok, values, 1.0)), np.nan)


def _colour_range(images: list[np.ndarray]) -> tuple[float, float]:
    """Colour limits from the 1st and 99th percentiles of the finite cells (a few diverged
    cells do not wash the rest out); at least one decade."""
    cells = np.concatenate([im[np.isfinite(im)] for im in images]) if images else np.zeros(0)
    if not cells.size:
        return -1.0, 1.0
    lo, hi = np.percentile(cells, [1, 99])
    if hi - lo < 1:
        mid = (hi + lo) / 2
        lo, hi = mid - 0.5, mid + 0.5
    return float(lo), float(hi)


def plot_variance_steps(result: Result) -> Figure | None:
    """Per variant (rows): log10 Var(h) (left) and log10 Var(dL/dz) (right), mean over seeds,
    as an image over training steps (x) and layers (y). None for runs without training."""
    a, labels = result.arrays, labels_of(result)
    if not trained(result) or "stat_act_var" not in a:
        return None
    import matplotlib

    steps = np.asarray(a["stat_steps"], dtype=float)
    # columns on an even step grid, each showing the latest record at or before its step
    grid = np.linspace(steps[0], steps[-1], min(len(steps), MAX_IMAGE))
    cols = np.clip(np.searchsorted(steps, grid, side="right") - 1, 0, len(steps) - 1)
    keys = [k for k in ("act_var", "grad_var") if f"stat_{k}" in a]
    names = {"act_var": "log10 Var(h)", "grad_var": "log10 Var(dL/dz)"}
    L = int(np.asarray(a[f"stat_{keys[0]}"]).shape[-1])
    rows = even(L, MAX_IMAGE)
    images: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for k in keys:
        values = np.asarray(a[f"stat_{k}"], dtype=float)[cols][:, :, rows]  # (C, M, Lk)
        for v in range(len(labels)):
            images[k].append(_log_image(_finite_mean(values[:, _members(result, v)], axis=1).T))
    V = len(labels)
    fig = _figure(1.6 + 4.6 * len(keys), 1.0 + 2.0 * V)
    axes = fig.subplots(V, len(keys), squeeze=False)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.82")
    extent = (steps[0], steps[-1], 0.5, L + 0.5)
    colours = palette(labels)
    for j, k in enumerate(keys):
        vmin, vmax = _colour_range(images[k])
        mesh = None
        for v, label in enumerate(labels):
            ax = axes[v, j]
            mesh = ax.imshow(images[k][v], origin="lower", aspect="auto", extent=extent,
                             cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
            ax.tick_params(labelsize=8)
            if j == 0:
                ax.set_ylabel(f"{label}\nlayer", fontsize=8.5, color=colours[label])
            if v == 0:
                ax.set_title(names[k] + ", mean over seeds", fontsize=9)
            if v == V - 1:
                ax.set_xlabel("training step", fontsize=9)
        if mesh is not None:
            fig.colorbar(mesh, ax=axes[:, j], shrink=0.9 if V > 1 else 1.0,
                         label=names[k] + " (grey: 0 or not finite)")
    fig.suptitle("Variance of every layer over training (layer up, step across)", fontsize=10)
    return fig
