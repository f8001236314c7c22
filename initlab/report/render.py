"""Draw a Result into a folder: every figure it has data for (in the chosen formats), report.md,
report.html and, on request, training.gif; `write_result` writes the numbers (initlab.results)
and then these, as one atomic replacement of the results folder.

Every image is at most MAX_PIXELS wide and tall (the resolution is lowered for a figure that
would be larger). report.html embeds PNGs (the written ones, or PNG renderings of the figures
when only SVG or PDF is written), in 256 colours and resized when they would make the page large
(`render_images`), drawn in several processes at once with FigureOptions.workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from initlab.processes import become_worker
from initlab.report import document, style
from initlab.results import folder as results_folder
from initlab.results.folder import Result, atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn, not at every start
    from matplotlib.figure import Figure

FORMATS = ("png", "svg", "pdf")
PAGE_IMAGE_BYTES = 1_000_000  # the PNGs embedded in report.html, together (before base64)


@dataclass(frozen=True)
class FigureOptions:
    """How figures are written: `formats` (png, svg, pdf; several allowed), `dpi` (raster
    resolution, lowered per figure to stay within MAX_PIXELS), `layers` (1-based layers of the
    histograms; None: the config's measure.layers or the default spread), `plots` (False:
    no figure at all, only the numbers and the reports) and `workers` (processes that draw the
    figures at once, one figure each; the same bytes as one process)."""

    formats: tuple[str, ...] = ("png",)
    dpi: int = style.DPI
    layers: tuple[int, ...] | None = None
    plots: bool = True
    workers: int = 1


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
    import matplotlib

    buf = io.BytesIO()
    # no version, no date, no random ids: the same bytes for the same Result, in any process
    metadata = {"png": {"Software": None}, "svg": {"Date": None},
                "pdf": {"CreationDate": None}}.get(fmt)
    with matplotlib.rc_context({"svg.hashsalt": "initlab"}):
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata)
    return buf.getvalue()


def draw_one(stem: str, result: Result, options: FigureOptions) -> Figure | None:
    """The figure `stem` of `result` (None: nothing to show), with the chosen layers for the
    layered ones."""
    draw = dict(figures())[stem]
    return draw(result, layers=options.layers) if stem in LAYERED else draw(result)


def draw_all(result: Result, options: FigureOptions | None = None
             ) -> list[tuple[str, Figure]]:
    """(stem, figure) of every plot the result has data for (none without options.plots)."""
    options = options or FigureOptions()
    if not options.plots:
        return []
    drawn = [(stem, draw_one(stem, result, options)) for stem, _ in figures()
             if needs(stem, result)]
    return [(stem, fig) for stem, fig in drawn if fig is not None]


def save_all(result: Result, folder: str | Path,
             options: FigureOptions | None = None) -> list[Path]:
    """Draw every plot the result has data for and write it as `folder/<stem>.<format>` for
    each format of `options` (default: PNG at DPI). Returns the paths, figure by figure."""
    return _save(render_images(result, options)[0], Path(folder))


def _save(files: list[tuple[str, dict[str, bytes]]], folder: Path) -> list[Path]:
    return [atomic_write_bytes(folder / f"{stem}.{fmt}", content)
            for stem, data in files for fmt, content in data.items()]


# ---------------------------------------------------------------- drawing in processes
# Rendering a figure (Agg rasterizing, PNG encoding) takes longer than training a small net's
# population: with `workers`, each figure is drawn and encoded in a forked process that
# inherits the Result (no copy, no pickling), and only the bytes come back.

_JOB: tuple[Result, FigureOptions] | None = None  # what the drawing processes inherit


def _render(stem: str) -> tuple[str, dict[str, bytes], bytes | None]:
    """(stem, {format: file bytes}, page PNG) of one figure of the inherited _JOB;
    (stem, {}, None) when the figure has nothing to show."""
    assert _JOB is not None
    result, options = _JOB
    fig = draw_one(stem, result, options)
    if fig is None:
        return stem, {}, None
    files = {fmt: figure_bytes(fig, fmt, options.dpi) for fmt in options.formats}
    return stem, files, files.get("png") or figure_bytes(fig, "png", options.dpi)


@contextlib.contextmanager
def _mapper(workers: int, tasks: int) -> Iterator[Callable[..., list]]:
    """map() in `workers` forked processes, or in this one (one worker or task, no fork on
    this platform, or other threads running, which fork must not copy mid-lock)."""
    import multiprocessing as mp

    n = min(int(workers), tasks)
    if n < 2 or "fork" not in mp.get_all_start_methods() or threading.active_count() > 1:
        yield lambda f, xs: list(map(f, xs))
        return
    with mp.get_context("fork").Pool(n, initializer=become_worker) as pool:
        yield lambda f, xs: pool.map(f, xs, chunksize=1)  # leaving terminates the pool


def render_images(result: Result, options: FigureOptions | None = None
                  ) -> tuple[list[tuple[str, dict[str, bytes]]], list[tuple[str, bytes]]]:
    """The figures of `result` as ([(stem, {format: bytes})], report.html's [(name, PNG)]),
    drawn in options.workers processes. The page PNGs are the written ones (or PNG renderings
    when no PNG is written), in fewer colours and smaller while they hold more than
    PAGE_IMAGE_BYTES together (`_fit_pages`; the files keep everything)."""
    global _JOB
    options = options or FigureOptions()
    stems = [stem for stem, _ in figures() if needs(stem, result)] if options.plots else []
    _JOB = (result, options)
    try:
        with _mapper(options.workers, len(stems)) as mapper:
            drawn = [x for x in mapper(_render, stems) if x[2] is not None]
    finally:
        _JOB = None
    pages = _fit_pages([(stem, page) for stem, _, page in drawn if page is not None])
    return ([(stem, files) for stem, files, _ in drawn],
            [(f"{stem}.png", page) for stem, page in pages])


def _shrink(png: bytes, scale: float) -> bytes:
    """A PNG as 256 palette colours (median cut, no dither: the figures' flat colours and
    colormaps survive; about 2.5 times fewer bytes), resized to `scale` of its width and height
    first (Lanczos) when scale < 1; the same bytes every time."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        rgb = image.convert("RGB")
    if scale < 1:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    small = rgb.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    small.save(buf, format="PNG")
    return buf.getvalue()


def _fit_pages(pages: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The page PNGs as they are when together they hold at most PAGE_IMAGE_BYTES; else in 256
    colours, and resized together while still larger (bytes grow about like the area; at most
    4 rounds). Cheap beside drawing the figures again at a lower resolution, and the page shows
    them scaled anyway."""
    scale, small = 1.0, pages
    for _ in range(5):
        total = sum(len(page) for _, page in small)
        if total <= PAGE_IMAGE_BYTES:
            break
        if small is not pages:
            scale *= 0.92 * math.sqrt(PAGE_IMAGE_BYTES / total)
        small = [(stem, _shrink(page, scale)) for stem, page in pages]
    return small


def render_files(result: Result, folder: Path, *, plots: bool = True, animate: bool = False,
                 options: FigureOptions | None = None) -> None:
    """Write the figures (unless `plots` is false), report.md and report.html of `result` into
    `folder`; with `animate`, also training.gif."""
    options = options or FigureOptions()
    if not plots:
        options = dataclasses.replace(options, plots=False)
    files, pages = render_images(result, options)
    first = options.formats[0] if options.formats else "png"
    names = [p.name for p in _save(files, folder) if p.suffix == f".{first}"]
    atomic_write_text(folder / "report.md",
                      document.render_markdown(result, names, options.layers))
    atomic_write_text(folder / "report.html", document.render_html(
        result, pages, layers=options.layers))
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
