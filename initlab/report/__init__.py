"""Drawing a Result: figures (plots, theory_plots), report.md and report.html (document), the
interactive page (interactive), the training GIF (animate), and `write_result` (render), which
renders all of them into a results folder."""

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
from initlab.report.render import (
    figures,
    needs,
    render_files,
    save_all,
    write_result,
)

__all__ = [
    "BADGE",
    "CAPTIONS",
    "CSS",
    "RESULTS_HEADER",
    "VARIANCE_HEADER",
    "figures",
    "mean_std",
    "needs",
    "render_files",
    "render_html",
    "render_markdown",
    "results_rows",
    "save_all",
    "scheme_text",
    "variance_rows",
    "write_result",
]
