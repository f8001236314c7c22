"""Drawing a Result: figures (plots, theory_plots), report.md and report.html (document), the
interactive page (interactive), the training GIF (animate), and `write_result` (render), which
renders all of them into a results folder; a Result's HTML in notebooks (notebook).

The plot functions take a Result and return a matplotlib Figure (no pyplot):

    fig = initlab.report.plot_loss(initlab.load_result("results/playground"))
"""

from initlab.report.document import (
    BADGE,
    CAPTIONS,
    CSS,
    RESULTS_HEADER,
    VARIANCE_HEADER,
    mean_std,
    render_html,
    render_markdown,
    results_rows,
    scheme_text,
    variance_rows,
)
from initlab.report.notebook import result_html
from initlab.report.render import (
    figures,
    needs,
    render_files,
    save_all,
    write_result,
)

# the plot functions import matplotlib (half a second): on first use, not at every start
PLOTS = {"plot_loss": "plots", "plot_variance": "plots", "plot_decision_boundary": "plots",
         "plot_variance_steps": "layer_plots", "plot_histograms": "layer_plots",
         "plot_gradients": "layer_plots", "plot_residual": "residual_plots",
         "plot_signal_propagation": "theory_plots"}


def __getattr__(name: str) -> object:
    if name in PLOTS:
        import importlib

        return getattr(importlib.import_module(f"initlab.report.{PLOTS[name]}"), name)
    raise AttributeError(f"module 'initlab.report' has no attribute {name!r}")

__all__ = [
    "BADGE",
    "CAPTIONS",
    "CSS",
    "RESULTS_HEADER",
    "VARIANCE_HEADER",
    "figures",
    "mean_std",
    "needs",
    "plot_decision_boundary",
    "plot_gradients",
    "plot_histograms",
    "plot_loss",
    "plot_residual",
    "plot_signal_propagation",
    "plot_variance",
    "plot_variance_steps",
    "render_files",
    "render_html",
    "render_markdown",
    "result_html",
    "results_rows",
    "save_all",
    "scheme_text",
    "variance_rows",
    "write_result",
]
