"""The figure options shared by `run`, `report` and `sweep`: --format, --dpi, --no-plots,
--layers, turned into a report.render.FigureOptions (bad values: exit 2, one line)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from initlab.report.render import FigureOptions

FormatOpt = Annotated[list[str] | None, typer.Option(
    "--format", metavar="png|svg|pdf",
    help="Figure formats (repeat or comma-separate: --format png,svg); default png.")]
DpiOpt = Annotated[int | None, typer.Option(
    "--dpi", min=10, max=1200, help="Raster resolution of the figures (default 110); lowered "
    "per figure to stay within 4000 px.")]
NoPlotsOpt = Annotated[bool, typer.Option(
    "--no-plots", help="Write the numbers and report.md/report.html only, no figure.")]
LayersOpt = Annotated[str | None, typer.Option(
    "--layers", metavar="L1,L2,...", help="Layers whose histograms are drawn (1 = first "
    "weight layer), e.g. 1,10,50; default: measure.layers or first, 1/4, 1/2, 3/4, last.")]


def figure_options(formats: list[str] | None, dpi: int | None, no_plots: bool,
                   layers: str | None) -> FigureOptions:
    """The options, or typer.BadParameter naming the option and what is allowed."""
    from initlab.report.render import FigureOptions, parse_formats, parse_layers
    from initlab.report.style import DPI

    try:
        fmts = parse_formats(formats)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--format") from None
    try:
        chosen = parse_layers(layers)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--layers") from None
    return FigureOptions(fmts, dpi or DPI, chosen, plots=not no_plots)
