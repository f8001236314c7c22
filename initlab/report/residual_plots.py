"""residual.png: the signal-propagation plot of a residual net (Brock et al. 2021) and its
learned branch multipliers. Lines only (no per-layer axes or markers), so the cost and the look
do not depend on depth: readable at 10,000 blocks."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from initlab.report.plots import _figure, _finite_mean, _log_series, _members, labels_of, palette
from initlab.results.folder import Result

MARKERS_UP_TO = 40  # entries; deeper nets get plain lines
CAP = 1e100  # larger values are left out (matplotlib's log ticks overflow near 1e300)


def _capped(y: np.ndarray) -> np.ndarray:
    return np.where(np.abs(y) <= CAP, y, np.nan)


def plot_residual(result: Result) -> Figure | None:
    """Left: Var(x_l) of the stream against block l (0 = the input projection), at init (solid),
    at the end (faint) and theory (dashed). Middle: Var(f_l), the branch output before alpha.
    Right: alpha_l at init (dashed) and at the end (solid). Means over seeds."""
    a = result.arrays
    if "stat_branch_var" not in a or "stat_act_var" not in a:
        return None
    labels = labels_of(result)
    colours = palette(labels)
    act = np.asarray(a["stat_act_var"], float)  # (R, M, L + 2)
    branch = np.asarray(a["stat_branch_var"], float)
    alpha = np.asarray(a["stat_alpha"], float) if "stat_alpha" in a else None
    theory = a.get("theory_act_var")
    L = act.shape[-1] - 2
    blocks = np.arange(0, L + 1)
    ends = sorted({0, act.shape[0] - 1})
    marks = dict(marker="o", ms=3) if L + 1 <= MARKERS_UP_TO else {}
    fig = _figure(15, 4.6)
    axes = fig.subplots(1, 3)
    seen: list[list[np.ndarray]] = [[], []]  # what panels 0 and 1 draw: they set the y-range
    lost: dict[str, int] = {}
    for v, label in enumerate(labels):
        rows, c = _members(result, v), colours[label]
        for r in ends:
            style = dict(lw=2, **marks) if r == 0 else dict(lw=1.2, alpha=0.4)
            ys = (_capped(_finite_mean(act[r, rows], 0)[:L + 1]),
                  _capped(_finite_mean(branch[r, rows], 0)[1:L + 1]))
            for k, (x, y) in enumerate(zip((blocks, blocks[1:]), ys)):
                seen[k].append(y)
                bad = _log_series(axes[k], x, y, 0.0, color=c, **style)
                if k == 0 and r == 0 and bad:
                    lost[label] = bad
            if alpha is not None:
                y = _finite_mean(alpha[r, rows], 0)[1:L + 1]
                axes[2].plot(blocks[1:], np.where(np.isfinite(y), y, np.nan), color=c,
                             lw=1.5 if r else 1.2, ls="-" if r else "--")
        if theory is not None:
            y = _capped(np.asarray(theory[v], float)[:L + 1])
            seen[0].append(y)
            _log_series(axes[0], blocks, y, 0.0, color=c, lw=1.2, ls="--")
    for ax, drawn in zip(axes[:2], seen):
        good = np.concatenate([y[np.isfinite(y) & (y > 0)] for y in drawn])
        if ax.get_lines() and good.size:
            ax.set_yscale("log")  # the range of what is finite: an overflow never sets it
            ax.set_ylim(good.min() / 2, good.max() * 2)
    if lost:
        axes[0].text(0.02, 0.02, f"left out at init (non-finite, 0 or > {CAP:.0e}): " + ", ".join(
            f"{k} {n} of {L + 1}" for k, n in lost.items()), transform=axes[0].transAxes,
            fontsize=8, color="0.3")
    axes[0].set(title="Stream variance Var(x_l)", xlabel="block l (0 = input projection)",
                ylabel="Var, mean over seeds (log scale)")
    axes[1].set(title="Branch variance Var(f_l) (before alpha)", xlabel="block l",
                ylabel="Var (log scale)")
    axes[2].set(title="Branch multiplier alpha_l", xlabel="block l", ylabel="alpha")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    styles = [Line2D([], [], color="0.3", lw=2, label="at init"),
              Line2D([], [], color="0.3", lw=1.2, alpha=0.4, label="end of training"),
              Line2D([], [], color="0.3", lw=1.2, ls="--", label="theory (init) / alpha at init")]
    axes[0].legend(handles=styles, fontsize=8, frameon=False)
    fig.legend(handles=[Line2D([], [], color=colours[lab], lw=3, label=lab) for lab in labels],
               loc="outside right upper", fontsize=8, frameon=False)
    fig.suptitle(f"Residual stream, {L} blocks: signal propagation (Brock et al. 2021) and "
                 "learned alphas", fontsize=10)
    return fig
