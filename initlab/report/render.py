"""Draw a Result into a folder: every figure it has data for (in the chosen formats), report.md,
report.html and, on request, training.gif; `write_result` writes the numbers (initlab.results)
and then these, as one atomic replacement of the results folder.

Every image is at most MAX_PIXELS wide and tall (the resolution is lowered for a figure that
would be larger). report.html embeds PNGs (the written ones, or PNG renderings of the figures
when only SVG or PDF is written), at a lower resolution when they would make the page large
(`page_images`).
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from initlab.report import document, style
from initlab.results import folder as results_folder
from initlab.results.folder import Result, atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn, not at every start
    from matplotlib.figure import Figure

FORMATS = ("png", "svg", "pdf")
PAGE_IMAGE_BYTES = 1_400_000  # the PNGs embedded in report.html, together (before base64)


@dataclass(frozen=True)
class FigureOptions:
    """How figures are written: `formats` (png, svg, pdf; several allowed), `dpi` (raster
    resolution, lowered per figure to stay within MAX_PIXELS), `layers` (1-based layers of the
    histograms; None: the config's measure.layers or the default spread) and `plots` (False:
    no figure at all, only the numbers and the reports)."""

    formats: tuple[str, ...] = ("png",)
    dpi: int = style.DPI
    layers: tuple[int, ...] | None = None
    plots: bool = True


def parse_formats(values: Sequence[str] | None) -> tuple[str, ...]:
    """['png,svg', 'pdf'] -> ('png', 'svg', 'pdf'); ValueError naming what is allowed."""
    out: list[str] = []
    for value in values or ["png"]:
        for part in str(value).split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in FORMATS:
                from initlab.errors import suggest

                hint = suggest(name, FORMATS)
                raise ValueError(f"unknown figure format {name!r}; expected one of: "
                                 f"{', '.join(FORMATS)}" + (f"; did you mean '{hint}'?"
                                                             if hint else ""))
            if name not in out:
                out.append(name)
    return tuple(out) or ("png",)


def parse_layers(text: str | None) -> tuple[int, ...] | None:
    """'1,10,50' -> (1, 10, 50); ValueError for anything but positive integers."""
    if text is None or not str(text).strip():
        return None
    try:
        layers = tuple(int(p) for p in str(text).split(",") if p.strip())
    except ValueError:
        raise ValueError(f"cannot read {text!r} as layers; expected positive integers "
                         "separated by commas, e.g. 1,10,50") from None
    if not layers or min(layers) < 1:
        raise ValueError(f"{text!r}: layers are numbered from 1 (the first weight layer)")
    return layers


def figures() -> list[tuple[str, Callable[..., Figure | None]]]:
    """(file stem, function) of every plot, looked up at call time (tests monkeypatch them)."""
    from initlab.report import layer_plots, plots, residual_plots, theory_plots

    return [("loss", plots.plot_loss), ("variance", plots.plot_variance),
            ("variance_steps", layer_plots.plot_variance_steps),
            ("histograms", layer_plots.plot_histograms),
            ("gradients", layer_plots.plot_gradients),
            ("decision_boundary", plots.plot_decision_boundary),
            ("signal_propagation", theory_plots.plot_signal_propagation),
            ("residual", residual_plots.plot_residual)]


LAYERED = {"histograms", "gradients"}  # figures that take the chosen layers


def needs(name: str, result: Result) -> bool:
    stem = name.rsplit(".", 1)[0] if name.endswith((".png", ".svg", ".pdf")) else name
    keys = {"loss": ("loss", "loss_steps"), "variance": ("stat_act_var", "stat_grad_var"),
            "variance_steps": ("stat_act_var", "stat_steps"),
            "histograms": ("hist_h", "hist_h_edges"),
            "gradients": ("hist_dz", "hist_dz_edges"), "decision_boundary": ("boundary",),
            "residual": ("stat_branch_var",)}
    return all(k in result.arrays for k in keys.get(stem, ()))


def figure_bytes(fig: Figure, fmt: str, dpi: float) -> bytes:
    """The figure in `fmt`, at `dpi` or less: at most MAX_PIXELS in each direction."""
    width, height = fig.get_size_inches()
    dpi = min(float(dpi), (style.MAX_PIXELS - 1) / max(width, height, 1e-9))
    buf = io.BytesIO()
    metadata = {"Software": None} if fmt == "png" else None  # no version: same bytes per run
    fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata)
    return buf.getvalue()


def draw_all(result: Result, options: FigureOptions | None = None
             ) -> list[tuple[str, Figure]]:
    """(stem, figure) of every plot the result has data for (none without options.plots)."""
    options = options or FigureOptions()
    drawn: list[tuple[str, Figure]] = []
    if not options.plots:
        return drawn
    for stem, draw in figures():
        if not needs(stem, result):
            continue
        fig = draw(result, layers=options.layers) if stem in LAYERED else draw(result)
        if fig is not None:
            drawn.append((stem, fig))
    return drawn


def _write(drawn: list[tuple[str, Figure]], folder: Path, options: FigureOptions
           ) -> tuple[list[Path], dict[str, bytes]]:
    written, pngs = [], {}
    for stem, fig in drawn:
        for fmt in options.formats:
            data = figure_bytes(fig, fmt, options.dpi)
            if fmt == "png":
                pngs[stem] = data
            written.append(atomic_write_bytes(folder / f"{stem}.{fmt}", data))
    return written, pngs


def save_all(result: Result, folder: str | Path,
             options: FigureOptions | None = None) -> list[Path]:
    """Draw every plot the result has data for and write it as `folder/<stem>.<format>` for
    each format of `options` (default: PNG at DPI). Returns the paths, figure by figure."""
    options = options or FigureOptions()
    return _write(draw_all(result, options), Path(folder), options)[0]


def page_images(drawn: list[tuple[str, Figure]], pngs: dict[str, bytes],
                dpi: float) -> list[tuple[str, bytes]]:
    """The PNGs report.html embeds: the written ones (or PNG renderings when no PNG is
    written), drawn again at a lower resolution while they hold more than PAGE_IMAGE_BYTES
    together (the files keep the full resolution)."""
    images = [(stem, pngs.get(stem) or figure_bytes(fig, "png", dpi)) for stem, fig in drawn]
    scale = 1.0
    for _ in range(4):
        total = sum(len(data) for _, data in images)
        if total <= PAGE_IMAGE_BYTES:
            break
        scale *= 0.92 * math.sqrt(PAGE_IMAGE_BYTES / total)  # bytes grow like pixels: dpi²
        images = [(stem, figure_bytes(fig, "png", _dpi(fig, dpi) * scale))
                  for stem, fig in drawn]
    return [(f"{stem}.png", data) for stem, data in images]


def _dpi(fig: Figure, dpi: float) -> float:
    width, height = fig.get_size_inches()
    return min(float(dpi), (style.MAX_PIXELS - 1) / max(width, height, 1e-9))


def render_files(result: Result, folder: Path, *, plots: bool = True, animate: bool = False,
                 options: FigureOptions | None = None) -> None:
    """Write the figures (unless `plots` is false), report.md and report.html of `result` into
    `folder`; with `animate`, also training.gif."""
    options = options or FigureOptions()
    if not plots:
        options = FigureOptions(options.formats, options.dpi, options.layers, plots=False)
    drawn = draw_all(result, options)
    images, pngs = _write(drawn, folder, options)
    first = options.formats[0] if options.formats else "png"
    names = [p.name for p in images if p.suffix == f".{first}"]
    atomic_write_text(folder / "report.md",
                      document.render_markdown(result, names, options.layers))
    atomic_write_text(folder / "report.html", document.render_html(
        result, page_images(drawn, pngs, options.dpi), layers=options.layers))
    if animate:
        from initlab.report.animate import write_gif

        write_gif(result, folder / "training.gif")


def write_result(result: Result, out_dir: str | Path, *, plots: bool = True,
                 animate: bool = False, options: FigureOptions | None = None) -> Path:
    """Write every file of `result` into `out_dir`, replacing a previous result of that name
    only once the new one is complete (with `animate`, also training.gif; `options`: formats,
    dpi, layers of the figures). Returns `out_dir`."""
    return results_folder.write_result(
        result, out_dir, render=functools.partial(render_files, plots=plots, animate=animate,
                                                  options=options))
