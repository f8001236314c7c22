"""Python and notebooks: initlab.load_result, Result._repr_html_ (the summary table, the sentences,
the paired comparisons and the loss figure inline) and the plot functions of initlab.report,
each taking a Result and returning a matplotlib Figure."""

from __future__ import annotations

import base64
import html
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.figure import Figure

import initlab
from initlab import report

CFG = {"name": "nb", "seeds": 3, "data": {"name": "circle", "samples": 64},
       "model": {"widths": [6, 6], "activation": "tanh"},
       "init": [{"label": "he [fan_out]", "scheme": "he_normal", "mode": "fan_out"},
                {"label": "too_small", "scheme": "too_small"}],
       "train": {"epochs": 40}, "measure": {"every": 10, "batch": 64}}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nb") / "nb"
    initlab.run(initlab.load_config(CFG), out_dir=out)
    return out


def _png_size(raw: bytes) -> tuple[int, int]:
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", raw[16:24])


def test_repr_html_shows_the_table_sentences_comparisons_and_the_loss_figure(
        folder: Path) -> None:
    result = initlab.load_result(folder)
    page = result._repr_html_()
    assert page is not None and page.count("<table>") == 2  # results, paired comparisons
    for header in report.RESULTS_HEADER:
        assert html.escape(header) in page
    for v in result.summary["variants"]:
        assert f"<strong>{html.escape(v['label'])}</strong>" in page  # brackets verbatim
        assert html.escape(v["sentence"]) in page
    assert "he [fan_out]" in page
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 1
    raw = base64.b64decode(images[0])
    from initlab.report.notebook import NOTEBOOK_DPI, loss_png

    assert raw == loss_png(result)  # the loss figure, nothing else
    fig = report.plot_loss(result)
    w, h = fig.get_size_inches()
    assert _png_size(raw) == (round(w * NOTEBOOK_DPI), round(h * NOTEBOOK_DPI))
    # the fragment does not restyle the notebook: every CSS rule is scoped to its div
    css = re.search(r"<style>(.*)</style>", page, re.S)
    assert css is not None and all(rule.strip().startswith(".initlab-result")
                                   for rule in css.group(1).split("}") if rule.strip())


def test_no_figure_and_no_comparisons_when_there_is_nothing_to_show() -> None:
    cfg = {**CFG, "seeds": 1, "train": {"epochs": 0}}
    page = initlab.run(initlab.load_config(cfg))._repr_html_()
    assert page is not None and "<img" not in page and page.count("<table>") == 1


def test_result_repr_is_one_line(folder: Path) -> None:
    text = repr(initlab.load_result(folder))
    assert text.startswith("Result(") and "nb" in text and "\n" not in text and len(text) < 300


def test_a_fresh_process_gets_the_html_view_from_initlab_load_result(folder: Path) -> None:
    code = ("import sys, initlab; r = initlab.load_result(sys.argv[1]); "
            "assert isinstance(r, initlab.Result); page = r._repr_html_(); "
            "print(page is not None and 'base64' in page)")
    proc = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


PLOTS = ["plot_loss", "plot_variance", "plot_variance_steps", "plot_histograms",
         "plot_gradients", "plot_decision_boundary", "plot_signal_propagation"]


@pytest.mark.parametrize("name", PLOTS)
def test_plot_functions_take_a_result_and_return_a_figure(folder: Path, name: str) -> None:
    result = initlab.load_result(folder)
    fig = getattr(report, name)(result)
    assert isinstance(fig, Figure) and fig.axes


def test_plot_loss_of_a_loaded_result_is_the_written_loss_png(folder: Path) -> None:
    from initlab.report.render import figure_bytes

    fig = report.plot_loss(initlab.load_result(folder))
    assert figure_bytes(fig, "png", 110) == (folder / "loss.png").read_bytes()


def test_the_readme_documents_load_result_repr_html_and_the_plot_functions() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in ("initlab.load_result(", "_repr_html_", "report.plot_loss(result)", *PLOTS):
        assert name in readme, name
