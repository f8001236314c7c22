"""The coordinate check's figure and report (mup's plot_coord_data, one column per variant).

    coord.png   a column per variant, a row per step t (one y scale per row): width against l1
                on log-log axes,
                one line per layer (the readout dashed), the seeds' min..max shaded
    report.md   the command, the verdicts per variant and step, the slope table, the figure
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from initlab.sweep.coordcheck import FLAT_SLOPE, CoordCheck


def figure_png(cc: CoordCheck) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    V, T, L = len(cc.labels), cc.steps, cc.layers
    fig = Figure(figsize=(3.3 * V + 1.2, 2.6 * T + 0.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(T, V, squeeze=False, sharex=True, sharey="row")
    import matplotlib as mpl

    cmap = mpl.colormaps["viridis"]
    colours = [cmap(i / max(L - 1, 1) * 0.9) for i in range(L)]
    w = np.asarray(cc.widths, dtype=float)
    slope_of = {(e["variant"], e["step"], e["layer"]): e for e in cc.slopes}
    for v, label in enumerate(cc.labels):
        for t in range(T):
            ax = axes[t, v]
            for l in range(L):
                y = cc.l1[v, :, t, l]
                ok = np.isfinite(y) & (y > 0)
                e = slope_of[(label, t, l + 1)]
                slope = ("= 0" if e["verdict"] == "zero" else "—") if e["slope"] is None \
                    else f"{e['slope']:+.2f}"
                name = "out" if l == L - 1 else f"h{l + 1}"
                ax.plot(w[ok], y[ok], "o-" if l < L - 1 else "s--", ms=3, lw=1.4,
                        color=colours[l], label=f"{name} ({slope})")
                lo, hi = cc.l1_min[v, :, t, l], cc.l1_max[v, :, t, l]
                band = ok & np.isfinite(lo) & np.isfinite(hi) & (lo > 0)
                if band.any():
                    ax.fill_between(w[band], lo[band], hi[band], color=colours[l], alpha=0.15,
                                    lw=0)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{label} ({cc.parametrizations[v]}), t = {t}", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6, loc="best", title="layer (slope)", title_fontsize=6)
            if t == T - 1:
                ax.set_xlabel("width")
            if v == 0:
                ax.set_ylabel("mean |h|")
    fig.suptitle("coordinate check: l1 of every layer's output against width", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _fmt(x: Any) -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:+.2f}"


def report_md(cc: CoordCheck, summary: Mapping[str, Any], command: str) -> str:
    """The verdicts in words, then one slope table per variant (rows: steps, columns: layers)."""
    L = cc.layers
    names = [f"h{l}" for l in range(1, L)] + ["out"]
    md = [f"# Coordinate check {summary.get('name')}", "", f"`{command}`", "",
          f"Widths {', '.join(map(str, cc.widths))}; steps t = 0..{cc.steps - 1} (t = 0 at "
          f"init, before any update); {cc.seeds} seed(s) per variant; {cc.seconds:.1f} s.",
          "", "Slope = least-squares slope of log mean|h| against log width; "
          f"|slope| < {FLAT_SLOPE} is flat.", "", "![coordinate check](coord.png)", ""]
    for v, label in enumerate(cc.labels):
        growing = [e for e in cc.slopes if e["variant"] == label and e["verdict"] in
                   ("growing", "diverged")]
        if growing:
            worst = max(growing, key=lambda e: -math.inf if e["slope"] is None else e["slope"])
            said = (f"**{label}** ({cc.parametrizations[v]}): {len(growing)} layer-step(s) grow "
                    f"with width; the steepest is {names[worst['layer'] - 1]} at t = "
                    f"{worst['step']} (slope {_fmt(worst['slope'])}).")
        else:
            said = (f"**{label}** ({cc.parametrizations[v]}): no layer grows with width at any "
                    "step.")
        md += [said, "", "| step | " + " | ".join(names) + " |", "|---" * (L + 1) + "|"]
        for t in range(cc.steps):
            row = [e for e in cc.slopes if e["variant"] == label and e["step"] == t]
            row.sort(key=lambda e: e["layer"])
            md.append(f"| t = {t} | " + " | ".join(
                f"{_fmt(e['slope'])} {e['verdict']}" for e in row) + " |")
        md.append("")
    md += ["Files: `coord.csv` (variant, width, step, layer, l1 and the seeds' spread), "
           "`summary.json` (`slopes`, per-variant check metrics), `coord.png`.", ""]
    return "\n".join(md)


def write_outputs(folder: Path, cc: CoordCheck, summary: Mapping[str, Any], command: str,
                  config: Mapping[str, Any]) -> list[Path]:
    """coord.csv, summary.json, config.yaml (for `initlab check`), coord.png, report.md."""
    import csv

    import yaml

    from initlab.results.folder import atomic_write_bytes, atomic_write_text, dumps_json
    from initlab.sweep.coordcheck import coord_rows

    folder.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(coord_rows(cc))
    paths = [atomic_write_text(folder / "coord.csv", buf.getvalue()),
             atomic_write_text(folder / "summary.json", dumps_json(dict(summary))),
             atomic_write_text(folder / "config.yaml", yaml.safe_dump(
                 dict(config), sort_keys=False, allow_unicode=True, default_flow_style=None)),
             atomic_write_bytes(folder / "coord.png", figure_png(cc)),
             atomic_write_text(folder / "report.md", report_md(cc, summary, command))]
    return paths
