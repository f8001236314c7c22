"""A sweep's table, pictures and report, from its cells' summary.json files (re-rendered on
every run, so a resumed sweep reports every cell it has).

    results/<name>/summary.csv, summary.json   one row per cell (per variant if a cell has
                                               several): swept values, final loss mean/spread,
                                               accuracy, diverged count, diagnosis, variance ratio
    results/<name>/sweep_*.png                 lines for one varying axis, heatmaps for two
    results/<name>/report.md, report.html      the table, the pictures, the best cells

The variance ratio `var_ratio` is the run's `act_ratio`, with the one definition the run, the
sweep and the reports share: Var(h) of the last hidden layer over the input's mean square E[x^2],
at init (mean over seeds); below 1 the signal shrinks on its way through the net, above 1 it
grows. grad_ratio is the run's too: Var(dL/dz) of the first layer over the last, at init.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from initlab.results.folder import atomic_write_text, dumps_json
from initlab.results.numbers import finite_values, mean_std

MAX_FACETS = 6
COLUMNS = ("final_loss_mean", "final_loss_std", "accuracy_mean", "diverged", "seeds",
           "diagnosis", "var_ratio", "log10_var_ratio", "grad_ratio", "log10_grad_ratio",
           "final_loss_tail_median", "steps_to_drop_median")


def _mean_std(values: Sequence[Any]) -> tuple[float | None, float | None]:
    if not finite_values(values):
        return None, None
    return mean_std(values)


def show(value: Any) -> str:
    """A swept value as a short string: scalars as they are, an init spec by its label/scheme."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        if "label" in value or "scheme" in value:
            return str(value.get("label") or value.get("scheme"))
        return json.dumps(value, default=str)
    if isinstance(value, list) and all(isinstance(v, str | Mapping) for v in value):
        return "+".join(show(v) for v in value)
    return json.dumps(value, default=str)


def _positive(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) and x > 0 else None


def _log10(x: Any) -> float | None:
    p = _positive(x)
    return math.log10(p) if p is not None else None


def var_ratio(variant: Mapping[str, Any]) -> float | None:
    """A variant's act_ratio (Var(h) of the last hidden layer / E[x^2] at init), None if it is
    missing or not finite."""
    x = variant.get("act_ratio")
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def rows(plan: Any, outcomes: Mapping[str, Any], cells_dir: Path) -> list[dict[str, Any]]:
    """One row per cell (and variant), in grid order; failed/missing cells have status and
    error only."""
    out = []
    for cell in plan.cells:
        base: dict[str, Any] = {"cell": cell.id, **{k: show(v) for k, v in cell.values.items()}}
        o = outcomes.get(cell.id)
        try:
            summary = json.loads((cells_dir / cell.id / "summary.json").read_text("utf-8"))
        except (OSError, ValueError):
            summary = None
        if summary is None or (o is not None and o.status == "failed"):
            status = o.status if o is not None else "missing"
            out.append({**base, "variant": "", "status": status,
                        "error": (o.error if o is not None else None) or ""})
            continue
        for v in summary["variants"]:
            m, sd = _mean_std(v.get("final_loss", []))
            acc, _ = _mean_std(v.get("final_accuracy") or [])
            ratio = var_ratio(v)
            out.append({**base, "variant": v["label"], "status": "done", "error": "",
                        "final_loss_mean": m, "final_loss_std": sd, "accuracy_mean": acc,
                        "diverged": sum(bool(d) for d in v.get("diverged", [])),
                        "seeds": len(v.get("final_loss", [])), "diagnosis": v.get("diagnosis"),
                        "var_ratio": ratio,
                        "log10_var_ratio": _log10(ratio),
                        "grad_ratio": _positive(v.get("grad_ratio")),
                        "log10_grad_ratio": _log10(v.get("grad_ratio")),
                        "final_loss_tail_median": v.get("final_loss_tail_median"),
                        "steps_to_drop_median": v.get("steps_to_drop_median")})
    return out


def axes_of(plan: Any, table: Sequence[Mapping[str, Any]]) -> list[str]:
    """The columns that vary: the swept keys with more than one value, then `variant` if a
    cell holds several variants."""
    keys = [k for a in plan.axes for k in a.keys]
    varying = [k for k in keys if len({r.get(k) for r in table}) > 1]
    cells = {r["cell"] for r in table}
    if len(table) > len(cells) and len({r["variant"] for r in table}) > 1:
        varying.append("variant")
    # zipped keys move together: keep the first of each zip group
    out: list[str] = []
    for k in varying:
        axis = next((a for a in plan.axes if k in a.keys), None)
        if axis is None or axis.keys[0] == k or axis.keys[0] not in varying:
            out.append(k)
    return out


def write_tables(folder: Path, table: Sequence[Mapping[str, Any]], columns: Sequence[str],
                 extra: Mapping[str, Any]) -> None:
    header = ["cell", *columns, "variant", "status", *COLUMNS, "error"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in table:
        w.writerow(["" if r.get(h) is None else (f"{r[h]:.6g}" if isinstance(r[h], float)
                                                 else r[h]) for h in header])
    atomic_write_text(folder / "summary.csv", buf.getvalue())
    atomic_write_text(folder / "summary.json", dumps_json({**extra, "rows": list(table)}))


def _order(values: Sequence[str], plan: Any, key: str | None) -> list[str]:
    """Distinct values in grid order (numbers sorted as numbers)."""
    seen: list[str] = list(dict.fromkeys(values))
    try:
        return sorted(seen, key=float)
    except ValueError:
        return seen


def plots(folder: Path, plan: Any, table: Sequence[Mapping[str, Any]]) -> list[Path]:
    """Lines for one varying axis; heatmaps for two or more: the first axis down, the second
    across, one panel per value of the others (up to MAX_FACETS)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from initlab.report.style import palette

    done = [r for r in table if r["status"] == "done"]
    axes = axes_of(plan, done)
    if not done or not axes:
        return []
    metrics = [("final_loss_mean", "final loss"), ("log10_var_ratio", "log10 Var ratio")]
    grads = ("log10_grad_ratio", "log10 grad Var ratio (first/last)")
    if any(r.get("accuracy_mean") is not None for r in done):
        metrics.insert(1, ("accuracy_mean", "accuracy"))
    if all(int(c.config["train"]["epochs"]) == 0 for c in plan.cells):
        metrics = [m for m in metrics if m[0] == "log10_var_ratio"] + [grads]
    written = []
    if len(axes) == 1:  # lines over the one axis
        x_key = axes[0]
        series_key = axes[1] if len(axes) > 1 else None
        xs = _order([r[x_key] for r in done], plan, x_key)
        series = _order([r[series_key] for r in done], plan, series_key) if series_key else [""]
        colours = palette(series)
        fig = Figure(figsize=(5 * len(metrics), 3.8), dpi=110, layout="constrained")
        FigureCanvasAgg(fig)
        for i, (m, title) in enumerate(metrics):
            ax = fig.add_subplot(1, len(metrics), i + 1)
            for s in series:
                points: list[float] = []
                for x in xs:
                    vals = [r[m] for r in done if r[x_key] == x and
                            (not series_key or r[series_key] == s) and r.get(m) is not None]
                    points.append(float(np.mean(vals)) if vals else np.nan)
                ax.plot(range(len(xs)), points, "o-", color=colours[s], label=s or None)
            ax.set_xticks(range(len(xs)), xs, rotation=30 if len(xs) > 6 else 0)
            ax.set_xlabel(x_key)
            ax.set_title(title)
            if series_key and i == 0:
                ax.legend(title=series_key, fontsize=8)
        path = folder / "sweep_lines.png"
        _save(fig, path)
        written.append(path)
        return written
    x_key, y_key, rest = axes[1], axes[0], axes[2:]
    xs = _order([r[x_key] for r in done], plan, x_key)
    ys = _order([r[y_key] for r in done], plan, y_key)
    facets = list(dict.fromkeys(tuple(r[k] for k in rest) for r in done))[:MAX_FACETS]
    for m, title in metrics:
        fig = Figure(figsize=(len(facets) * (1.5 + 0.6 * len(xs)) + 1.5, 1.6 + 0.4 * len(ys)),
                     dpi=110, layout="constrained")
        FigureCanvasAgg(fig)
        grids = []
        for facet in facets:
            grid = np.full((len(ys), len(xs)), np.nan)
            for i, y in enumerate(ys):
                for j, x in enumerate(xs):
                    vals = [r[m] for r in done if r[x_key] == x and r[y_key] == y and
                            tuple(r[k] for k in rest) == facet and r.get(m) is not None]
                    if vals:
                        grid[i, j] = float(np.mean(vals))
            grids.append(grid)
        finite = np.concatenate([g[np.isfinite(g)] for g in grids])
        diverging = m.startswith("log10")
        lim = float(np.max(np.abs(finite))) if diverging and finite.size else None
        lo, hi = (-lim, lim) if lim else (float(finite.min()), float(finite.max())) \
            if finite.size else (None, None)
        for n, (facet, grid) in enumerate(zip(facets, grids)):
            ax = fig.add_subplot(1, len(facets), n + 1)
            im = ax.imshow(grid, origin="lower", aspect="auto", vmin=lo, vmax=hi,
                           cmap="coolwarm" if diverging else "viridis")
            for i in range(len(ys)):
                for j in range(len(xs)):
                    if np.isfinite(grid[i, j]):
                        ax.text(j, i, f"{grid[i, j]:.2g}", ha="center", va="center", fontsize=7)
            ax.set_xticks(range(len(xs)), xs, rotation=30 if len(xs) > 4 else 0)
            ax.set_yticks(range(len(ys)), ys)
            ax.set_xlabel(x_key)
            if n == 0:
                ax.set_ylabel(y_key)
            where = ", ".join(f"{k}={v}" for k, v in zip(rest, facet))
            ax.set_title(f"{title}{': ' + where if where else ''}", fontsize=9)
        fig.colorbar(im, ax=fig.axes)
        path = folder / f"sweep_heatmap_{m}.png"
        _save(fig, path)
        written.append(path)
    return written


def _save(fig: Any, path: Path) -> None:
    from initlab.results.folder import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def best(table: Sequence[Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    """The best cell per question: lowest final loss, highest accuracy, Var ratio nearest 1."""
    done = [r for r in table if r["status"] == "done"]
    out = []
    trained = [r for r in done if r.get("final_loss_mean") is not None and not r["diverged"]]
    if trained:
        out.append(("lowest final loss", min(trained, key=lambda r: r["final_loss_mean"])))
    acc = [r for r in done if r.get("accuracy_mean") is not None]
    if acc:
        out.append(("highest accuracy", max(acc, key=lambda r: r["accuracy_mean"])))
    stable = [r for r in done if r.get("log10_var_ratio") is not None]
    if stable:
        out.append(("variance kept most steady (ratio nearest 1)",
                    min(stable, key=lambda r: abs(r["log10_var_ratio"]))))
    return out


def _cellstr(r: Mapping[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={r.get(k)}" for k in keys if k != "variant") + \
        (f" [{r['variant']}]" if r.get("variant") else "")


def _fmt(x: Any) -> str:
    if x is None:
        return "—"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def reports(folder: Path, plan: Any, table: Sequence[Mapping[str, Any]],
            images: Sequence[Path], command: str, sections: Sequence[str] = ()) -> None:
    keys = [k for a in plan.axes for k in a.keys]
    cols = ["cell", *keys, "variant", "status", "final_loss_mean", "final_loss_std",
            "accuracy_mean", "diverged", "diagnosis", "var_ratio"]
    counts = {s: sum(r["status"] == s for r in table) for s in ("done", "failed", "missing")}
    head = (f"{len(plan.cells)} cells in {len(plan.populations)} population(s): "
            f"{counts['done']} rows done, {counts['failed']} failed, {counts['missing']} missing")
    md = [f"# Sweep {plan.name}", "", f"`{command}`", "", head, ""]
    for q, r in best(table):
        md.append(f"- **{q}**: {_cellstr(r, keys)} (cell `{r['cell']}`, final loss "
                  f"{_fmt(r.get('final_loss_mean'))}, Var ratio {_fmt(r.get('var_ratio'))})")
    md += [""] + [f"![{p.stem}]({p.name})" for p in images] + [""] + list(sections)
    md.append("| " + " | ".join(cols) + " |")
    md.append("|" + "---|" * len(cols))
    for r in table:
        md.append("| " + " | ".join(_fmt(r.get(c)).replace("|", "/") for c in cols) + " |")
    errors = [r for r in table if r["status"] == "failed"]
    if errors:
        md += ["", "## Failed cells", ""] + [f"- `{r['cell']}`: {r['error']}" for r in errors]
    atomic_write_text(folder / "report.md", "\n".join(md) + "\n")

    e = html.escape
    h = [f"<!doctype html><meta charset='utf-8'><title>Sweep {e(plan.name)}</title>",
         "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
         "font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}"
         "img{max-width:100%}</style>",
         f"<h1>Sweep {e(plan.name)}</h1><p><code>{e(command)}</code></p><p>{e(head)}</p><ul>"]
    h += [f"<li><b>{e(q)}</b>: {e(_cellstr(r, keys))} (final loss "
          f"{e(_fmt(r.get('final_loss_mean')))})</li>" for q, r in best(table)]
    h.append("</ul>")
    h += [f"<p><img src='{e(p.name)}' alt='{e(p.stem)}'></p>" for p in images]
    if sections:
        h.append("<pre>" + e("\n".join(sections)) + "</pre>")
    h.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>")
    for r in table:
        link = f"<a href='cells/{e(r['cell'])}/report.html'>{e(r['cell'])}</a>"
        tds = [link] + [e(_fmt(r.get(c))) for c in cols[1:]]
        h.append("<tr>" + "".join(f"<td>{t}</td>" for t in tds) + "</tr>")
    h.append("</table>")
    if errors:
        h.append("<h2>Failed cells</h2><ul>" + "".join(
            f"<li><code>{e(r['cell'])}</code>: {e(r['error'])}</li>" for r in errors) + "</ul>")
    atomic_write_text(folder / "report.html", "\n".join(h) + "\n")


def write_all(folder: Path, plan: Any, outcomes: Mapping[str, Any], command: str,
              draw: bool = True) -> list[dict[str, Any]]:
    """summary.csv/json, plots and reports of a sweep; returns the rows."""
    from initlab.sweep import transfer

    table = rows(plan, outcomes, folder / "cells")
    keys = [k for a in plan.axes for k in a.keys]
    extra: dict[str, Any] = {}
    sections: list[str] = []
    t_images: list[Path] = []
    if transfer.applies(keys):  # widths x learning rates (Tensor Programs V, Figure 1)
        if draw:
            t_images, sections, extra["transfer"] = transfer.write(folder, table)
        else:
            extra["transfer"] = transfer.transfer(table)
    write_tables(folder, table, keys, {"name": plan.name, "command": command,
                                       "axes": keys, "cells": len(plan.cells),
                                       "populations": len(plan.populations), **extra})
    images = plots(folder, plan, table) if draw else []
    reports(folder, plan, table, [*t_images, *images], command, sections)
    return table
