"""Results in Python and notebooks: `Result._repr_html_` (what Jupyter shows for a Result) and the
public names `initlab.load_result` / `initlab.Result` resolve to.

    result = initlab.load_result("results/playground")   # or initlab.run(cfg)
    result          # in Jupyter: the facts, the results table, one sentence per variant, the
                    # paired comparisons (seeds >= 3) and the loss figure (an inline PNG)
    fig = initlab.report.plot_loss(result)                # a matplotlib Figure

initlab.results never imports initlab.report (the numbers never draw): importing this module
registers `result_html` as the Result's HTML view (initlab.results.folder.HTML_VIEW).
"""

from __future__ import annotations

import base64

from initlab.report import document, style
from initlab.results import folder as results_folder
from initlab.results.folder import Result, load_result

__all__ = ["Result", "load_result", "result_html"]

NOTEBOOK_DPI = 80  # the inline loss figure: about 560 px wide, ~40 KB
CSS = """.initlab-result table{border-collapse:collapse;margin:.4em 0}
.initlab-result th,.initlab-result td{border-bottom:1px solid #ddd;padding:.15em .6em;
text-align:left}
.initlab-result .swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;
margin-right:.4em;vertical-align:middle}
.initlab-result .badge{display:inline-block;padding:0 .5em;border-radius:.7em;color:#fff;
font-size:.82em;font-weight:600;margin:0 .4em}
.initlab-result img{max-width:100%;height:auto}"""


def loss_png(result: Result, dpi: float = NOTEBOOK_DPI) -> bytes:
    """The loss figure (plots.plot_loss) as PNG bytes."""
    from initlab.report import plots  # matplotlib only when a figure is drawn
    from initlab.report.render import figure_bytes

    return figure_bytes(plots.plot_loss(result), "png", dpi)


def result_html(result: Result, *, figure: bool = True) -> str:
    """An HTML fragment of a Result (no page, its CSS scoped to a div): the facts, the results
    table, one sentence per variant, the paired comparisons and (figure=True) the loss figure as
    an embedded PNG."""
    e = document._e
    colours = style.palette(style.labels_of(result))
    facts = "; ".join(f"{k} {v}" for k, v in document._facts(result)
                      if k in ("network", "activation", "epochs / steps", "seeds"))
    story = "".join(
        f"<li>{document._swatch(colours.get(str(v.get('label')), '#777777'))}"
        f"<strong>{e(v.get('label', ''))}</strong>{document._badge(v.get('diagnosis', '—'))}"
        f"{e(str(v.get('sentence', '')) + document._flags_text(v) + document._lsuv_text(v))}"
        "</li>" for v in result.summary.get("variants", []))
    parts = [f"<style>{CSS}</style>", '<div class="initlab-result">',
             f"<h3>{e(document._title(result))}</h3>", f"<p>{e(facts)}</p>",
             document._html_table(document.RESULTS_HEADER, document.results_rows(result),
                                  colours, 7),
             f"<ul>{story}</ul>"]
    rows = document.comparison_rows(result)
    if rows:
        parts += [f"<p>{e(document.comparison_intro(result))}</p>",
                  document._html_table(document.COMPARISON_HEADER, rows, colours)]
    if figure:
        from initlab.report import plots  # matplotlib only for a figure

        if plots.trained(result) and "loss" in result.arrays:
            data = base64.b64encode(loss_png(result)).decode("ascii")
            parts.append(f'<img src="data:image/png;base64,{data}" alt="loss over training">')
    parts.append("</div>")
    return "\n".join(parts)


results_folder.HTML_VIEW = result_html
