"""Per-member, per-layer statistics of one forward/backward pass (the makemore diagnostics).

Every statistic is an (M, L) array: member m, weight layer l = 1..L at column l-1. Variances
are taken over the batch and the layer's units together. Histograms use fixed bins, the same
for every layer, member and step, so they can be compared side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from initlab.activations import Activation
from initlab.model import Grads, Population, Trace

Array = np.ndarray

STATS = (
    "act_mean", "act_var", "pre_mean", "pre_var", "grad_var", "weight_grad_var", "weight_var",
    "saturated", "dead", "grad_data", "update_data",
)
SATURATION_MARGIN = 0.03  # |h| within 3% of the bound (tanh: |h| > 0.97, as in makemore)
DZ_LOG10_RANGE = (-12.0, 2.0)  # histogram of log10 |dL/dz|; smaller magnitudes fall in bin 0


@dataclass(frozen=True)
class Bins:
    """Fixed histogram bins: `h_edges` over h, `dz_edges` over log10 |dL/dz|."""

    h_edges: Array
    dz_edges: Array


def default_bins(activation: Activation, bins: int = 50) -> Bins:
    """h over the activation's range plus 20% (tanh: [-1.2, 1.2], the article's figure 2);
    unbounded activations over [-4, 4]. Values outside fall into the end bins."""
    if activation.bounds is not None:
        lo, hi = activation.bounds
        pad = 0.1 * (hi - lo)
        h_range = (lo - pad, hi + pad)
    else:
        h_range = (-4.0, 4.0)
    return Bins(np.linspace(*h_range, bins + 1), np.linspace(*DZ_LOG10_RANGE, bins + 1))


def _flat(a: Array) -> Array:
    """(M, ...) -> (M, n) without a copy where possible: the engine's (M, B, width) arrays are
    views of (M, width, B) ones, and these statistics do not depend on the order of elements."""
    if a.ndim == 3 and not a.flags.c_contiguous and np.swapaxes(a, 1, 2).flags.c_contiguous:
        a = np.swapaxes(a, 1, 2)
    return a.reshape(a.shape[0], -1)


def _var(a: Array) -> Array:
    """Variance of each member's slice over all axes but the first: (M, ...) -> (M,)."""
    return _flat(a).var(axis=1)


def _std_ratio(num: Array, den: Array) -> Array:
    d = np.sqrt(_var(den))
    return np.where(d > 0, np.sqrt(_var(num)) / np.where(d > 0, d, 1.0), np.nan)


def histogram(values: Array, edges: Array) -> Array:
    """Counts per member over fixed uniform `edges`, vectorized: (M, ...) -> (M, bins).
    Out-of-range values (and +-inf) are clipped into the end bins; NaN is not counted."""
    M, nb = values.shape[0], len(edges) - 1
    flat = _flat(values)
    finite = ~np.isnan(flat)
    pos = (np.where(finite, flat, edges[0]) - edges[0]) / (edges[-1] - edges[0]) * nb
    idx = np.clip(pos, 0, nb - 1).astype(np.int64)
    idx += (np.arange(M) * nb)[:, None]
    return np.bincount(idx[finite], minlength=M * nb).reshape(M, nb)


def layer_stats(
    pop: Population,
    trace: Trace,
    grads: Grads,
    bins: Bins,
    updates: list[Array] | None = None,
) -> tuple[dict[str, Array], Array, Array]:
    """Statistics of every layer: ({name: (M, L)}, hist_h (M, L, nb), hist_dz (M, L, nb)).

    grad_data = std(dW)/std(W); update_data = std(delta W)/std(W) for the applied update
    (NaN when `updates` is not given); dead = fraction of units with z <= 0 on the whole batch
    (ReLU family only); saturated = fraction of h within 3% of the activation's bound.
    """
    act = pop.activation
    M, L = pop.M, pop.L
    out = {name: np.zeros((M, L)) for name in STATS}
    nb = len(bins.h_edges) - 1
    hist_h = np.zeros((M, L, nb), dtype=np.int64)
    hist_dz = np.zeros((M, L, nb), dtype=np.int64)
    with np.errstate(all="ignore"):
        for l in range(L):
            z, h, dz = trace.zs[l], trace.hs[l + 1], grads.dzs[l]
            W, dW = pop.Ws[l], grads.dWs[l]
            flat_h = _flat(h)
            out["act_mean"][:, l] = flat_h.mean(axis=1)
            out["act_var"][:, l] = flat_h.var(axis=1)
            out["pre_mean"][:, l] = _flat(z).mean(axis=1)
            out["pre_var"][:, l] = _var(z)
            out["grad_var"][:, l] = _var(dz)
            out["weight_grad_var"][:, l] = _var(dW)
            out["weight_var"][:, l] = _var(W)
            out["grad_data"][:, l] = _std_ratio(dW, W)
            out["update_data"][:, l] = (_std_ratio(updates[2 * l], W) if updates is not None
                                        else np.nan)
            hidden = l < L - 1
            if hidden and act.bounds is not None:
                lo, hi = act.bounds
                margin = SATURATION_MARGIN * (hi - lo) / 2
                sat = (h <= lo + margin) | (h >= hi - margin)
                out["saturated"][:, l] = _flat(sat).mean(axis=1)
            if hidden and act.family == "relu":
                out["dead"][:, l] = (z <= 0).all(axis=1).mean(axis=1)
            hist_h[:, l] = histogram(h, bins.h_edges)
            hist_dz[:, l] = histogram(np.log10(np.abs(dz)), bins.dz_edges)
    return out, hist_h, hist_dz
