"""Figures of the mean-field theory: the (sigma_w2, sigma_b2) phase diagram with the critical
line and the correlation depth scale xi_c (optionally with xi_c measured in simulated nets), and
Brock et al. (2021)'s signal-propagation plot of a Result (per layer, the average channel
squared mean and the average channel variance at init, one line per variant).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from initlab import theory
from initlab.nn.activations import Activation, get_activation
from initlab.report.axes import finish_layer_axes, log_limits, log_series
from initlab.report.plots import (
    DPI,
    MARKER_LAYERS,
    _figure,
    _finite_mean,
    _members,
    labels_of,
    palette,
)
from initlab.results.folder import Result, atomic_write_bytes
from initlab.theory import gauss

SIGMA_W2 = np.geomspace(0.1, 16.0, 25)  # the range
SIGMA_B2 = np.linspace(0.0, 1.0, 11)
XI_CAP = 1e3  # xi_c above this is drawn as the cap (the critical line has xi_c = inf)


def phase_grid(activation: str | Activation, sigma_w2: np.ndarray = SIGMA_W2,
               sigma_b2: np.ndarray = SIGMA_B2) -> dict[str, np.ndarray]:
    """chi1, xi_c, c* on the grid (arrays (len(sigma_b2), len(sigma_w2))) and the critical
    line sigma_w2(sigma_b2) where chi1 = 1."""
    act = activation if isinstance(activation, Activation) else get_activation(activation)
    shape = (len(sigma_b2), len(sigma_w2))
    chi, xi, cs = np.empty(shape), np.empty(shape), np.empty(shape)
    with np.errstate(all="ignore"), gauss.coarse_quadrature():
        for i, sb in enumerate(sigma_b2):
            for j, sw in enumerate(sigma_w2):
                p = theory.analyze(act, float(sw), float(sb))
                chi[i, j], xi[i, j], cs[i, j] = p.chi1, p.xi_c, p.c_star
        line = np.array([theory.critical_sigma_w2(act, float(sb)) for sb in sigma_b2])
    return {"sigma_w2": np.asarray(sigma_w2), "sigma_b2": np.asarray(sigma_b2), "chi1": chi,
            "xi_c": xi, "c_star": cs, "critical": line}


def measure_grid(activation: str | Activation, sigma_w2: np.ndarray, sigma_b2: np.ndarray,
                 c_star: np.ndarray, *, width: int = 128, depth: int = 30,
                 seed: int = 0) -> np.ndarray:
    """xi_c measured in simulated random nets (one per grid point, all in one batch): inputs
    start at correlation 0 where c* is near 1 and at 0.99 otherwise; see
    `theory.measured_xi_c`. Shape (len(sigma_b2), len(sigma_w2))."""
    sw, sb = np.meshgrid(sigma_w2, sigma_b2)
    cs = np.asarray(c_star, dtype=float)
    c0 = np.where(cs > 0.5, 0.0, 0.99)
    c = theory.simulate_correlation(activation, sw.ravel(), sb.ravel(), c0.ravel(), depth,
                                    width, np.random.default_rng(seed))
    return theory.measured_xi_c(c, cs.ravel()).reshape(sw.shape)


def plot_phase_diagram(activation: str | Activation, *, measure: bool = False,
                       sigma_w2: np.ndarray = SIGMA_W2, sigma_b2: np.ndarray = SIGMA_B2,
                       grid: dict[str, np.ndarray] | None = None) -> Figure:
    """xi_c over (sigma_w2, sigma_b2) (colour, log scale), the critical line chi1 = 1 (black),
    ordered on its left and chaotic on its right; with `measure`, xi_c measured in simulated
    nets (width 128, depth 30) written on a coarser sub-grid."""
    act = activation if isinstance(activation, Activation) else get_activation(activation)
    g = grid or phase_grid(act, sigma_w2, sigma_b2)
    xi = np.clip(np.where(np.isfinite(g["xi_c"]), g["xi_c"], XI_CAP), 0.1, XI_CAP)
    fig = _figure(7.5, 5.0)
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(g["sigma_w2"], g["sigma_b2"], xi, shading="nearest", cmap="viridis",
                         norm=LogNorm(vmin=max(float(np.nanmin(xi)), 0.1), vmax=XI_CAP))
    fig.colorbar(mesh, ax=ax, label="ξ_c = −1 / log χ_c  (layers; capped at 1000)")
    ok = np.isfinite(g["critical"])
    ax.plot(g["critical"][ok], g["sigma_b2"][ok], color="black", lw=2.2,
            label="critical line χ₁ = 1")
    if measure:
        step_w, step_b = max(1, len(g["sigma_w2"]) // 6), max(1, len(g["sigma_b2"]) // 4)
        sw, sb = g["sigma_w2"][::step_w], g["sigma_b2"][::step_b]
        m = measure_grid(act, sw, sb, g["c_star"][::step_b, ::step_w])
        for i, b in enumerate(sb):
            for j, w in enumerate(sw):
                text = "—" if not math.isfinite(m[i, j]) else f"{m[i, j]:.2g}"
                ax.text(w, b, text, ha="center", va="center", fontsize=7, color="white",
                        bbox=dict(boxstyle="round,pad=0.15", fc="black", alpha=0.45, lw=0))
        ax.plot([], [], ls="none", marker="s", color="0.3",
                label="measured ξ_c (simulated nets, width 128, depth 30; — not measurable)")
    ax.set_xscale("log")
    ax.set(xlabel="σ_w² = fan_in · Var(W)", ylabel="σ_b² = Var(b)",
           title=f"{act.name}: ordered (left of the line) vs chaotic (right); "
                 "trainable depth ≈ 6 ξ_c")
    ax.legend(fontsize=8, loc="upper left", framealpha=0.85)
    return fig


def save_phase_diagram(activation: str | Activation, path: str | Path, *,
                       measure: bool = False) -> Path:
    fig = plot_phase_diagram(activation, measure=measure)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return atomic_write_bytes(Path(path), buf.getvalue())


def plot_signal_propagation(result: Result) -> Figure | None:
    """Brock et al. 2021: per layer, the average channel squared mean (left) and the average
    channel variance (right) of h at init, one line per variant (mean over seeds). Uses the
    arrays sigprop_sq_mean / sigprop_var (M, L); older results without them fall back to
    stat_act_mean^2 / stat_act_var at step 0 (means over all units, said in the title)."""
    a, labels = result.arrays, labels_of(result)
    if "sigprop_var" in a:
        sq, var = np.asarray(a["sigprop_sq_mean"], float), np.asarray(a["sigprop_var"], float)
        note = ""
    elif "stat_act_var" in a and "stat_act_mean" in a:
        with np.errstate(all="ignore"):  # a huge mean squares to inf: drawn as ▲
            sq = np.asarray(a["stat_act_mean"], float)[0] ** 2
        var = np.asarray(a["stat_act_var"], float)[0]
        note = " (approximation: over all units)"
    else:
        return None
    colours = palette(labels)
    fig = _figure(11, 4.6)
    axes = fig.subplots(1, 2)
    L = sq.shape[-1]
    layers = np.arange(1, L + 1)
    marker = L <= MARKER_LAYERS
    panels = ((axes[0], sq, "Average channel squared mean", "E_c[mean_x(h)²]"),
              (axes[1], var, "Average channel variance", "E_c[Var_x(h)]"))
    for ax, values, title, ylabel in panels:
        means = [_finite_mean(values[_members(result, v)], axis=0) for v in range(len(labels))]
        limits = log_limits(means)
        hidden = 0
        for v, label in enumerate(labels):
            hidden += log_series(ax, layers, means[v], limits, color=colours[label], lw=2,
                                 marker="o" if marker else None, ms=4)
        finish_layer_axes(ax, limits, hidden, title, "layer l (last = output)", ylabel, L)
    handles = [Line2D([], [], color=colours[lab], lw=2, marker="o" if marker else None, ms=4,
                      label=lab) for lab in labels]  # every variant, drawn or at zero (▼)
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle("Signal propagation at init (Brock et al. 2021)" + note, fontsize=10)
    return fig
