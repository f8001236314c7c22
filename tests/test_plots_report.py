"""plots.py and report.py on synthetic Results (2-D binary and non-2-D multiclass)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from fakes import fake_result, written_binary  # noqa: F401 (a shared fixture)

from initlab.report import document as report
from initlab.report import plots, render

ALL_PNGS = {"loss.png", "variance.png", "variance_steps.png", "histograms.png", "gradients.png",
            "signal_propagation.png"}


@pytest.fixture(scope="module")
def binary(written_binary):  # noqa: F811
    result, folder = written_binary
    return result, sorted(folder.glob("*.png"))


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi")
    result = fake_result(variants=2, seeds=2, layers=5, epochs=20, two_d=False,
                         task="multiclass")
    return result, render.save_all(result, folder)


def _is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_plot_is_written_for_2d_binary(binary):
    _, paths = binary
    assert {p.name for p in paths} == ALL_PNGS | {"decision_boundary.png"}
    assert all(_is_png(p) for p in paths)


def test_multiclass_has_no_decision_boundary(multiclass):
    _, paths = multiclass
    assert {p.name for p in paths} == ALL_PNGS
    assert all(_is_png(p) for p in paths)


def test_all_members_diverged_does_not_crash(tmp_path):
    result = fake_result(variants=1, seeds=2, layers=2, epochs=6,
                         diverge=[(0, s, 0) for s in range(2)])
    result.arrays["loss"][0] = np.inf
    paths = render.save_all(result, tmp_path)
    assert len(paths) == 7 and all(_is_png(p) for p in paths)


def test_zero_epochs_and_one_seed(tmp_path):
    result = fake_result(variants=1, seeds=1, epochs=0, layers=1)
    names = {p.name for p in render.save_all(result, tmp_path)}
    assert names == ALL_PNGS - {"variance_steps.png"} | {"decision_boundary.png"}  # no training


def test_palette_is_one_colour_per_label_everywhere():
    labels = [f"v{i}" for i in range(12)]
    colours = plots.palette(labels)
    assert len(set(colours.values())) == 12
    assert plots.palette(labels[:3]) == {k: colours[k] for k in labels[:3]}


@pytest.mark.parametrize("x,text", [(None, "—"), (float("nan"), "—"), (0.000123456, "0.000123"),
                                    (12345.6, "1.23e+04"), (3, "3"), (np.float32(0.5), "0.5")])
def test_fmt(x, text):
    assert plots.fmt(x) == text


def test_html_is_self_contained_and_lists_every_variant(binary):
    result, paths = binary
    page = report.render_html(result, paths)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "http://" not in page and "https://" not in page
    assert page.count('src="data:image/png;base64,') == len(paths)
    for v in result.summary["variants"]:
        assert v["label"] in page and v["sentence"] in page
    assert "diverged" in page and "1/3" in page


def test_html_escapes_every_string_from_config_and_summary():
    evil = "<script>alert(1)</script>"
    result = fake_result(variants=2, epochs=5, labels=[evil, "b&<i>"])
    result.summary["variants"][0]["sentence"] = f"bad {evil}"
    result.summary["variants"][0]["diagnosis"] = evil
    result.summary["variants"][1]["scheme"] = {"name": evil, evil: evil}
    result.summary["name"] = evil
    result.config["name"] = evil
    page = report.render_html(result, [])
    assert evil not in page and "<i>" not in page
    # the only scripts are the interactive section's own: its data (JSON with <, >, & escaped
    # as \u003c...) and its code
    assert page.count("<script") == 2 and '<script type="application/json" id="ip-data">' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "b&amp;&lt;i&gt;" in page


def test_markdown_links_images_and_has_tables(binary):
    result, paths = binary
    text = report.render_markdown(result, [p.name for p in paths])
    for p in paths:
        assert f"]({p.name})" in text
    for v in result.summary["variants"]:
        assert f"**{v['label']}**" in text
    assert "| variant | init | final loss" in text and "```yaml" in text


def test_missing_numbers_show_a_dash_and_float_noise_no_std():
    result = fake_result(variants=2, epochs=5)
    result.summary["variants"][0]["final_loss"] = [None, float("nan"), None]
    result.summary["variants"][1]["final_accuracy"] = [0.7, 0.7000000000000001, 0.7]
    rows = report.results_rows(result)
    assert rows[0][2] == "—" and rows[1][3] == "0.7 ± 0"
    assert rows[0][1] == "normal(std=0.1), lr 0.1"
    assert report.mean_std([1.0, 3.0]) == "2 ± 1"


def test_theory_flags_of_a_deep_net_read_as_one_clause_per_reason():
    """Dozens of per-layer flags become runs of layers and the range of the ratio, per reason;
    a flag not in theory_flags' form is kept as it is."""
    why = "finite width: narrower than 100"
    flags = [f"layer {n}: measured/theory = {r} ({why})" for n, r in
             [(17, 0.61), (19, 0.6), (20, 0.55), (21, 0.53), (40, 0.66)]]
    flags.append("layer 3: measured/theory = 2.5 (saturation: 20% of units)")
    text = report._flags_text({"theory_flags": [*flags, "something else"]})
    assert text == (" Theory and measurement part ways: layers 17, 19-21, 40, measured/theory "
                    f"0.53 to 0.66 ({why}); layer 3, measured/theory 2.5 (saturation: 20% of "
                    "units); something else.")
    many = [f"layer {n}: measured/theory = 0.5 ({why})" for n in range(2, 60, 2)]
    assert report._flags_text({"theory_flags": many}).count("layer") == 1
    assert "and 25 more" in report._flags_text({"theory_flags": many})
    assert report._flags_text({"theory_flags": []}) == ""


@pytest.mark.parametrize("page_bytes", [None, 60_000])
def test_figures_drawn_in_processes_are_the_same_bytes(binary, monkeypatch, page_bytes):
    """options.workers draws each figure in a forked process: the files and report.html's
    images are the bytes one process makes, also when the page images must be resized
    smaller (a small PAGE_IMAGE_BYTES)."""
    result, _ = binary
    if page_bytes is not None:
        monkeypatch.setattr(render, "PAGE_IMAGE_BYTES", page_bytes)
    one = render.render_images(result, render.FigureOptions(formats=("png", "svg")))
    three = render.render_images(result, render.FigureOptions(formats=("png", "svg"),
                                                              workers=3))
    assert [stem for stem, _ in one[0]] == [stem for stem, _ in three[0]]
    assert len(one[0]) >= 5 and {"png", "svg"} == set(one[0][0][1])
    assert one == three
    if page_bytes is not None:  # the page's images were resized, smaller than the files
        from PIL import Image

        assert sum(len(b) for _, b in one[1]) <= page_bytes
        assert sum(len(b) for _, b in one[1]) < sum(len(f["png"]) for _, f in one[0])
        for (_, files), (_, page) in zip(one[0], one[1], strict=True):
            big, small = (Image.open(io.BytesIO(b)) for b in (files["png"], page))
            assert small.format == "PNG" and small.width < big.width
            assert small.width / big.width == pytest.approx(small.height / big.height, rel=0.05)


def test_page_images_first_lose_colours_then_pixels(binary, monkeypatch):
    """Over PAGE_IMAGE_BYTES, report.html's images become 256-colour PNGs at full size when
    that is enough, and smaller ones only when it is not; within it, the written bytes."""
    from PIL import Image

    result, _ = binary
    files, pages = render.render_images(result)
    assert pages == [(f"{stem}.png", f["png"]) for stem, f in files]
    written = sum(len(b) for _, b in pages)
    palette = sum(len(render._shrink(b, 1.0)) for _, b in pages)
    assert palette < 0.8 * written
    monkeypatch.setattr(render, "PAGE_IMAGE_BYTES", (palette + written) // 2)
    fitted = render.render_images(result)[1]
    for (_, big), (_, small) in zip(pages, fitted, strict=True):
        a, b = Image.open(io.BytesIO(big)), Image.open(io.BytesIO(small))
        assert b.mode == "P" and b.size == a.size
        assert np.abs(np.asarray(a.convert("RGB"), float)
                      - np.asarray(b.convert("RGB"), float)).mean() < 2.0  # of 255
    monkeypatch.setattr(render, "PAGE_IMAGE_BYTES", palette // 3)
    fitted = render.render_images(result)[1]
    assert sum(len(b) for _, b in fitted) <= palette // 3
    assert all(Image.open(io.BytesIO(b)).width < Image.open(io.BytesIO(a)).width
               for (_, a), (_, b) in zip(pages, fitted, strict=True))


def test_drawing_processes_are_gone_after_a_failing_figure(binary, monkeypatch):
    """A figure that raises in a drawing process raises in the run, and no process stays."""
    import multiprocessing as mp

    result, _ = binary

    def boom(result):
        raise RuntimeError("boom")

    monkeypatch.setattr(plots, "plot_variance", boom)
    with pytest.raises(RuntimeError, match="boom"):
        render.render_images(result, render.FigureOptions(workers=2))
    assert mp.active_children() == []
