"""Hyperparameter transfer across widths (Tensor Programs V, Figure 1), from a sweep's rows: for
a sweep over `model.width` x `train.lr` (variants x learning rates of one width train as one
population), final loss against log2 lr, one line per width, a panel per variant (SP beside μP),
and the best learning rate of every width.

    transfer(table)   {variant: {"best": [{width, lr, final_loss}], "shift_points": k,
                                 "wider_is_better": bool, ...}}

`shift_points` is how many grid points the best learning rate moves from the narrowest to the
widest width (log2 of their ratio over the grid's log2 step); `wider_is_better` whether the
best final loss never rises with width. A (width, lr) whose final loss is not finite (a diverged
member) does not compete for best.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

WIDTH_KEY, LR_KEY = "model.width", "train.lr"
TRANSFER_PNG = "sweep_transfer.png"


def applies(keys: Sequence[str]) -> bool:
    return WIDTH_KEY in keys and LR_KEY in keys


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def curves(table: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, list[tuple[float, float]]]]:
    """{variant: {width: [(lr, mean final loss), ...] sorted by lr}} (NaN: not finite)."""
    out: dict[str, dict[int, dict[float, list[float]]]] = {}
    for r in table:
        if r.get("status") != "done":
            continue
        w, lr = _num(r.get(WIDTH_KEY)), _num(r.get(LR_KEY))
        if w is None or lr is None:
            continue
        loss = _num(r.get("final_loss_mean"))
        if r.get("diverged"):
            loss = None
        out.setdefault(str(r.get("variant", "")), {}).setdefault(int(w), {}).setdefault(
            lr, []).append(math.nan if loss is None else loss)
    return {v: {w: sorted((lr, sum(ls) / len(ls)) for lr, ls in by_lr.items())
                for w, by_lr in sorted(ws.items())} for v, ws in out.items()}


def transfer(table: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The best lr per width of every variant, and how far it moves (module docstring)."""
    result: dict[str, dict[str, Any]] = {}
    for variant, ws in curves(table).items():
        best = []
        for w, pts in ws.items():
            finite = [(lr, loss) for lr, loss in pts if math.isfinite(loss)]
            if finite:
                lr, loss = min(finite, key=lambda p: p[1])
                best.append({"width": w, "lr": lr, "final_loss": loss})
        lrs = sorted({lr for pts in ws.values() for lr, _ in pts})
        steps = [math.log2(b / a) for a, b in itertools.pairwise(lrs) if a > 0]
        step = min(steps) if steps else math.nan
        shift = None
        if len(best) >= 2 and step > 0:
            shift = round(abs(math.log2(best[-1]["lr"] / best[0]["lr"])) / step, 2)
        losses = [b["final_loss"] for b in best]
        result[variant] = {
            "best": best, "lr_grid_log2_step": step if math.isfinite(step) else None,
            "shift_points": shift,
            "wider_is_better": all(b <= a for a, b in itertools.pairwise(losses)) if best else None,
        }
    return result


def figure_png(table: Sequence[Mapping[str, Any]]) -> bytes:
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = curves(table)
    best = transfer(table)
    variants = list(data)
    fig = Figure(figsize=(4.4 * len(variants) + 0.8, 3.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(variants), squeeze=False, sharey=True)[0]
    widths = sorted({w for ws in data.values() for w in ws})
    cmap = mpl.colormaps["viridis"]
    colour = {w: cmap(i / max(len(widths) - 1, 1) * 0.9) for i, w in enumerate(widths)}
    for ax, v in zip(axes, variants):
        for w, pts in data[v].items():
            ax.plot([math.log2(lr) for lr, _ in pts], [loss for _, loss in pts], "o-", ms=3,
                    color=colour[w], label=f"width {w}")
        for b in best[v]["best"]:
            ax.plot(math.log2(b["lr"]), b["final_loss"], "*", ms=11, color=colour[b["width"]],
                    mec="black", mew=0.6)
        shift = best[v]["shift_points"]
        ax.set_title(f"{v}: best lr moves {shift if shift is not None else '—'} grid point(s)",
                     fontsize=9)
        ax.set_xlabel("log2 learning rate")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("final training loss")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def section_md(summary: Mapping[str, Mapping[str, Any]]) -> list[str]:
    md = ["## Learning-rate transfer across widths", "",
          "Best learning rate (lowest mean final loss) per width; ★ in the figure.", "",
          "| variant | width | best lr | final loss |",
          "|---|---|---|---|"]
    for v, s in summary.items():
        md += [f"| {v} | {b['width']} | {b['lr']:.4g} | {b['final_loss']:.4g} |"
               for b in s["best"]]
    md.append("")
    for v, s in summary.items():
        md.append(f"- **{v}**: the best lr moves {s['shift_points']} grid point(s) from width "
                  f"{s['best'][0]['width'] if s['best'] else '—'} to "
                  f"{s['best'][-1]['width'] if s['best'] else '—'}; wider is "
                  f"{'always' if s['wider_is_better'] else 'not always'} better at the best lr.")
    return [*md, ""]


def write(folder: Path, table: Sequence[Mapping[str, Any]]) -> tuple[list[Path], list[str],
                                                                      dict[str, Any]]:
    """(images, report lines, summary) of the transfer section."""
    from initlab.results.folder import atomic_write_bytes

    summary = transfer(table)
    if not summary:
        return [], [], {}
    path = atomic_write_bytes(folder / TRANSFER_PNG, figure_png(table))
    return [Path(path)], section_md(summary), summary
