"""Draw a Result into a folder: every figure it has data for, report.md, report.html and, on
request, training.gif; `write_result` writes the numbers (initlab.results) and then these, as
one atomic replacement of the results folder."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path

from matplotlib.figure import Figure

from initlab.report import document, plots, residual_plots, theory_plots
from initlab.results import folder as results_folder
from initlab.results.folder import Result, atomic_write_bytes, atomic_write_text


def figures() -> list[tuple[str, Callable[[Result], Figure | None]]]:
    """(file name, function) of every plot, looked up at call time (tests monkeypatch them)."""
    return [("loss.png", plots.plot_loss), ("variance.png", plots.plot_variance),
            ("histograms.png", plots.plot_histograms), ("gradients.png", plots.plot_gradients),
            ("decision_boundary.png", plots.plot_decision_boundary),
            ("signal_propagation.png", theory_plots.plot_signal_propagation),
            ("residual.png", residual_plots.plot_residual)]


def needs(name: str, result: Result) -> bool:
    keys = {"loss.png": ("loss", "loss_steps"), "variance.png": ("stat_act_var", "stat_grad_var"),
            "histograms.png": ("hist_h", "hist_h_edges"),
            "gradients.png": ("hist_dz", "hist_dz_edges"), "decision_boundary.png": ("boundary",),
            "residual.png": ("stat_branch_var",)}
    return all(k in result.arrays for k in keys.get(name, ()))


def save_all(result: Result, folder: str | Path) -> list[Path]:
    """Draw every plot the result has data for and write it as `folder/<name>.png`."""
    folder = Path(folder)
    written = []
    for name, draw in figures():
        if not needs(name, result):
            continue
        fig = draw(result)
        if fig is None:
            continue
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=plots.DPI)
        written.append(atomic_write_bytes(folder / name, buf.getvalue()))
    return written


def render_files(result: Result, folder: Path, *, plots: bool = True,
                 animate: bool = False) -> None:
    """Write the figures (unless `plots` is false), report.md and report.html of `result` into
    `folder`; with `animate`, also training.gif."""
    images = save_all(result, folder) if plots else []
    names = [p.name for p in images]
    atomic_write_text(folder / "report.md", document.render_markdown(result, names))
    atomic_write_text(folder / "report.html", document.render_html(result, images))
    if animate:
        from initlab.report.animate import write_gif

        write_gif(result, folder / "training.gif")


def write_result(result: Result, out_dir: str | Path, *, plots: bool = True,
                 animate: bool = False) -> Path:
    """Write every file of `result` into `out_dir`, replacing a previous result of that name
    only once the new one is complete (with `animate`, also training.gif). Returns `out_dir`."""
    return results_folder.write_result(
        result, out_dir, render=functools.partial(render_files, plots=plots, animate=animate))
