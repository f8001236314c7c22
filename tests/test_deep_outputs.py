"""Deep networks in every output (issue 17): figures whose cost and size do not grow with the
depth, bounded pages, formats, the known figure bugs (one test each), chunked boundaries and
progress lines when stderr is not a terminal."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from fakes import fake_result
from typer.testing import CliRunner

from initlab.api import resolve
from initlab.boundary import BOUNDARY_CHUNK, boundary_grid, chunk_points
from initlab.cli import app
from initlab.cli.progress import PlainProgress
from initlab.config.schema import load_config
from initlab.experiment import _boundary, setup
from initlab.nn.model import init_population
from initlab.report import axes as axes_mod
from initlab.report import interactive, layer_plots, plots, render, theory_plots
from initlab.results.folder import json_safe

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _deep_fake(**kw):
    """The fake's variances grow like scale^(l/2): inf beyond a few hundred layers, as in a
    real exploding net."""
    with np.errstate(all="ignore"):
        return fake_result(**kw)


@pytest.fixture(scope="module")
def deep():
    """A fake 400-layer net with 12 variants, 60 recorded steps."""
    return _deep_fake(variants=12, seeds=1, layers=400, epochs=60, every=1, bins=30)


# ---------------------------------------------------------------- bounded drawing and sizes

def test_layer_choice_default_config_and_request():
    assert axes_mod.default_layers(50) == [1, 13, 26, 38, 50]
    assert axes_mod.default_layers(3) == [1, 2, 3]
    assert axes_mod.chosen_layers(51) == [0, 12, 25, 37, 49]  # hidden layers only
    assert axes_mod.chosen_layers(51, [1, 10, 51, 99]) == [0, 9, 50]  # 99 is not a layer
    assert axes_mod.chosen_layers(1) == [0]
    r = fake_result(variants=1, seeds=1, layers=6, epochs=2)
    r.config["measure"]["layers"] = [2, 6]
    assert axes_mod.chosen_layers(6, axes_mod.requested_layers(r)) == [1, 5]
    assert axes_mod.requested_layers(r, [3]) == [3]  # --layers wins over the config


def test_figures_have_a_bounded_number_of_axes_whatever_the_depth(deep):
    V = 12
    hist = layer_plots.plot_histograms(deep)
    assert len(hist.axes) == V * 5
    assert [ax.get_title() for ax in hist.axes[:5]] == [
        "layer 1", "layer 101", "layer 200", "layer 300", "layer 399"]
    assert len(layer_plots.plot_histograms(deep, layers=[1, 101]).axes) == V * 2
    # the output layer's histograms were not recorded (training keeps the chosen layers')
    assert len(layer_plots.plot_histograms(deep, layers=[1, 400]).axes) == V
    steps = layer_plots.plot_variance_steps(deep)
    assert steps is not None and len(steps.axes) == 2 * V + 2  # images + two colour bars
    assert len(plots.plot_variance(deep).axes) == 2
    for fig in (plots.plot_variance(deep), theory_plots.plot_signal_propagation(deep)):
        for ax in fig.axes:  # no tick per layer: at most ~10 labelled layer ticks
            assert len([t for t in ax.get_xticks() if 1 <= t <= 400]) <= 12


def test_every_written_png_is_at_most_4000_px(deep, tmp_path):
    huge = plots._figure(60, 45)  # 6600 x 4950 px at 110 dpi
    huge.add_subplot().plot([0, 1])
    w, h = _png_size(render.figure_bytes(huge, "png", 300))
    assert max(w, h) <= plots.MAX_PIXELS and max(w, h) > 3900
    for p in render.save_all(deep, tmp_path):
        assert max(_png_size(p.read_bytes())) <= plots.MAX_PIXELS, p.name


def test_report_html_stays_under_3_mb_at_depth_1000_with_12_variants(tmp_path):
    result = _deep_fake(variants=12, seeds=2, layers=1000, epochs=300, every=1, bins=50,
                        grid=101)
    frames = np.full((62, 12, 41, 41), 127, dtype=np.uint8)
    result.arrays.update(boundary_frames=frames, boundary_steps=np.arange(62) * 4,
                         boundary_frames_grid=np.linspace(-5, 5, 41))
    data = interactive.payload(result)
    assert data is not None
    assert len(data["var_layers"]) == interactive.MAX_PAGE_LAYERS
    assert data["var_layers"][0] == 1 and data["var_layers"][-1] == 1000
    assert len(data["layers"]) == 5 and data["boundary"]["shape"][0] < 62
    render.write_result(result, tmp_path / "deep", options=render.FigureOptions())
    page = (tmp_path / "deep" / "report.html").read_bytes()
    assert len(page) < 3_000_000
    # the variance table lists the chosen layers (and the output), not all 1000 per variant
    assert page.count(b"<tr>") < 12 * 10 + 20
    assert b"all layers: variance.csv" in page
    # arrays.npz keeps everything
    with np.load(tmp_path / "deep" / "arrays.npz") as npz:
        assert npz["stat_act_var"].shape == (301, 24, 1000)


# ---------------------------------------------------------------- the known figure bugs

@pytest.fixture(scope="module")
def linear_chain():
    from initlab.experiment import run_experiment

    result = run_experiment(resolve(load_config(ROOT / "configs" / "linear_chain.yaml")))
    result.summary = json_safe(result.summary)
    return result


def test_linear_chain_variance_axis_is_finite_and_covers_the_theory(linear_chain):
    a = linear_chain.arrays
    end = np.asarray(a["stat_act_var"])[-1]
    assert np.nanmax(np.where(np.isfinite(end), end, 0)) > 1e100  # 1.5 I ran away in training
    fig = plots.plot_variance(linear_chain)
    lo, hi = fig.axes[0].get_ylim()
    theory = np.asarray(a["theory_act_var"])
    assert math.isfinite(lo) and math.isfinite(hi) and hi < 1e10
    assert lo <= theory.min() and theory.max() <= hi
    init = np.asarray(a["stat_act_var"])[0]
    assert lo <= init.min() and init.max() <= hi  # every at-init point is on the axis
    assert "above" in fig.axes[0].get_title()  # the runaway points are marked and counted


def test_zero_epochs_say_nothing_about_the_end_of_training():
    result = fake_result(variants=2, seeds=1, epochs=0, layers=3)
    for fig in (layer_plots.plot_histograms(result), layer_plots.plot_gradients(result)):
        assert "end of training" not in fig.get_suptitle() and "outline" not in \
            fig.get_suptitle()
    legend = [t.get_text() for t in plots.plot_variance(result).legends[0].get_texts()]
    assert "at init" in legend and "end of training" not in legend
    assert layer_plots.plot_variance_steps(result) is None


def test_loss_axis_hugs_the_data():
    result = fake_result(variants=2, seeds=2, epochs=30, diverge=[])
    loss = np.asarray(result.arrays["loss"])
    ax = plots.plot_loss(result).axes[0]
    lo, hi = ax.get_ylim()
    span = math.log10(loss.max() / loss.min())
    assert math.log10(hi / loss.max()) <= 0.1 * span + 0.2  # was 1.5 decades above the data
    assert math.log10(loss.min() / lo) <= 0.1 * span + 0.2


def test_narrow_loss_range_gets_several_tick_labels():
    result = fake_result(variants=2, seeds=1, epochs=20, diverge=[])
    steps = np.arange(21)
    result.arrays["loss"] = np.stack([2.07 - (2.07 - 0.84) * steps / 20,
                                      1.39 - 0.05 * steps / 20], axis=1)  # he2015's range
    ax = plots.plot_loss(result).axes[0]
    ax.figure.canvas.draw()
    lo, hi = ax.get_ylim()
    shown = [t for t in ax.get_yticks() if lo <= t <= hi]
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert len(shown) >= 3 and len(labels) >= 3  # two labels on he2015's loss before


def test_signal_propagation_has_y_labels_and_a_legend_entry_for_zero_init():
    result = fake_result(variants=3, seeds=1, layers=4, epochs=4)
    result.arrays["sigprop_sq_mean"] = np.zeros((3, 4))
    result.arrays["sigprop_var"] = np.abs(np.random.default_rng(0).normal(size=(3, 4))) + 0.1
    result.arrays["sigprop_var"][0] = 0.0  # the zero init: nothing to draw on a log axis
    fig = theory_plots.plot_signal_propagation(result)
    assert fig is not None
    assert all(ax.get_ylabel() for ax in fig.axes)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["zero", "too_small", "appropriate"]


def test_decision_boundary_grid_spans_the_data():
    x = np.random.default_rng(0).uniform([-1.0, -0.5], [2.0, 1.0], size=(200, 2))
    g = boundary_grid(x)
    assert g[0] < x.min() and g[-1] > x.max()
    assert (x.max() - x.min()) / (g[-1] - g[0]) > 0.8  # two_moons filled a tenth before
    assert np.array_equal(boundary_grid(np.full((3, 2), np.nan)), np.linspace(-5, 5, 101))
    result = fake_result(variants=2, seeds=1, epochs=3)
    title = plots.plot_decision_boundary(result).get_suptitle()
    assert "[-5, 5]" in title  # the fake's grid is [-5, 5]: the title says the real extent


def test_histogram_x_labels_do_not_run_into_the_next_column():
    fig = layer_plots.plot_histograms(fake_result(variants=2, seeds=1, layers=6, epochs=4))
    assert all(ax.get_xlabel() == "" for ax in fig.axes)  # one label for the figure
    assert "activation h" in fig.get_supxlabel()
    for ax in fig.axes:
        assert len(ax.xaxis.get_major_locator()()) <= 6


# ---------------------------------------------------------------- formats and --no-plots

def _tiny(tmp_path: Path) -> Path:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("name: tiny\ndata: {name: circle, samples: 40}\n"
                   "model: {depth: 3, width: 4, activation: tanh}\n"
                   "init: [xavier_normal, zeros]\ntrain: {epochs: 3}\nmeasure: {every: 1}\n")
    return cfg


def test_format_svg_and_pdf_and_no_plots(tmp_path):
    cfg = _tiny(tmp_path)
    out = tmp_path / "svg"
    r = runner.invoke(app, ["run", str(cfg), "--out", str(out), "-q", "--format", "svg,pdf",
                            "--dpi", "80"])
    assert r.exit_code == 0, r.output
    assert {p.suffix for p in out.glob("loss.*")} == {".svg", ".pdf", ".csv"}
    assert not list(out.glob("*.png"))
    assert (out / "loss.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    assert "data:image/png;base64," in (out / "report.html").read_text()  # the page: PNG
    assert "](loss.svg)" in (out / "report.md").read_text()
    r = runner.invoke(app, ["report", str(out), "--no-plots"])
    assert r.exit_code == 0, r.output
    assert not [p for p in out.iterdir() if p.suffix in (".png", ".svg", ".pdf")]
    assert (out / "report.md").is_file() and (out / "summary.json").is_file()
    r = runner.invoke(app, ["report", str(out), "--layers", "1,4"])
    assert r.exit_code == 0 and (out / "histograms.png").is_file()


@pytest.mark.parametrize("args,word", [(["--format", "gif"], "--format"),
                                       (["--layers", "1,x"], "--layers"),
                                       (["--layers", "0"], "--layers")])
def test_bad_figure_options_exit_2(tmp_path, args, word):
    r = runner.invoke(app, ["run", str(_tiny(tmp_path)), "--out", str(tmp_path / "o"), *args])
    assert r.exit_code == 2 and word in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()


def test_measure_layers_beyond_the_depth_is_a_positioned_error(tmp_path):
    cfg = _tiny(tmp_path)
    cfg.write_text(cfg.read_text().replace("measure: {every: 1}",
                                           "measure: {every: 1, layers: [1, 9]}"))
    r = runner.invoke(app, ["validate", str(cfg)])
    assert r.exit_code == 2
    assert "tiny.yaml:6:" in r.output and "measure.layers.1" in r.output
    assert "from 1 to 4" in r.output


def test_config_hash_of_a_config_without_layers_is_unchanged():
    cfg = load_config(ROOT / "configs" / "playground.yaml")
    assert "layers" not in cfg.resolved()["measure"]


# ---------------------------------------------------------------- memory: chunked boundary

def test_boundary_is_evaluated_in_chunks_within_the_estimate():
    from initlab.resources import boundary_bytes

    doc = {"name": "b", "data": {"name": "two_moons", "samples": 64},
           "model": {"depth": 20, "width": 64, "activation": "tanh"},
           "init": ["xavier_normal", "he_normal", "zeros"], "train": {"epochs": 0}}
    s = setup(resolve(load_config(doc)))
    pop = init_population(s.sizes, s.activation, s.members, dtype=s.dtype)
    grid = boundary_grid(s.dataset.x)
    chunk = chunk_points(3, s.sizes, len(grid) ** 2)
    assert 3 * chunk * 6 * max(s.sizes[1:]) <= BOUNDARY_CHUNK and chunk < len(grid) ** 2
    tracemalloc.start()
    p = _boundary(s, pop, grid)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert p is not None and p.shape == (3, 101, 101) and np.isfinite(p).all()
    assert np.all(p[2] == 0.5)  # zero init: P = 1/2 everywhere
    estimate = boundary_bytes(3, s.sizes, 8)
    assert peak <= estimate, (peak, estimate)
    assert peak >= 0.25 * estimate  # the estimate counts what is allocated, not a guess
    # the same numbers as one unchunked pass
    from initlab.nn.model import forward

    xx, yy = np.meshgrid(grid, grid)
    z = forward(pop.select([0, 1, 2]), np.c_[xx.ravel(), yy.ravel()]).out[..., 0]
    assert np.allclose(p.reshape(3, -1), 1 / (1 + np.exp(-z)), rtol=1e-12, atol=1e-15)


def test_boundary_frames_cost_a_bounded_share_of_training():
    """Frames are forward passes over the frame grid: at most FRAME_SHARE of training's passes
    (about 3 per sample and step), never fewer than MIN_FRAMES, never more than MAX_FRAMES."""
    from initlab import boundary as ex
    from initlab.experiment import run_experiment

    # benchmarks/deep50.yaml: 12 members, batch 16, 1280 steps, 6 variants drawn on 41^2
    assert ex.frame_count(1280, 12, 16, 6, 41 ** 2) == ex.MIN_FRAMES
    assert ex.frame_count(4000, 12, 16, 6, 41 ** 2) == math.floor(
        ex.FRAME_SHARE * 3 * 4000 * 12 * 16 / (6 * 41 ** 2))  # 34, between the bounds
    assert ex.frame_count(2000, 8, 200, 4, 41 ** 2) == ex.MAX_FRAMES  # full batch playground
    for epochs in range(0, 300, 7):
        for count in (ex.MIN_FRAMES, 30, ex.MAX_FRAMES):
            e = ex.frame_epochs(epochs, count)
            assert e[0] == 0 and e[-1] == epochs and np.all(np.diff(e) > 0)
            assert 0.9 * min(count, epochs + 1) <= len(e) <= count + 2
    doc = {"name": "f", "seeds": 2, "data": {"name": "circle", "samples": 64},
           "model": {"depth": 6, "width": 8, "activation": "tanh"},
           "init": ["xavier_normal", "he_normal"],
           "train": {"epochs": 30, "batch_size": 8, "optimizer": "sgd"}}
    result = run_experiment(resolve(load_config(doc)))
    steps = result.arrays["boundary_steps"]
    count = ex.frame_count(240, 4, 8, 2, ex.FRAME_POINTS ** 2)  # 0.15*3*240*4*8/(2*1681): 12
    assert count == ex.MIN_FRAMES and len(steps) <= count + 2 < 31
    assert steps[-1] == 240 and np.all(steps % 8 == 0)  # at the end of epochs (8 steps each)


def test_boundary_passes_run_on_one_blas_thread(monkeypatch):
    """A threaded BLAS on a shared machine made the boundary passes 15-20 times slower:
    inside one_blas_thread every BLAS pool has one thread, and after it what it had."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from initlab import boundary as ex

    before = [p["num_threads"] for p in threadpoolctl.threadpool_info()
              if p["user_api"] == "blas"]
    seen = []
    inner = ex.forward

    def spy(*a, **k):
        seen.append([p["num_threads"] for p in threadpoolctl.threadpool_info()
                     if p["user_api"] == "blas"])
        return inner(*a, **k)

    monkeypatch.setattr(ex, "forward", spy)
    doc = {"name": "b", "data": {"name": "two_moons", "samples": 32},
           "model": {"depth": 3, "width": 8, "activation": "tanh"},
           "init": ["xavier_normal"], "train": {"epochs": 0}}
    s = setup(resolve(load_config(doc)))
    pop = init_population(s.sizes, s.activation, s.members, dtype=s.dtype)
    assert _boundary(s, pop) is not None
    assert seen and all(threads == [1] * len(before) for threads in seen)
    assert [p["num_threads"] for p in threadpoolctl.threadpool_info()
            if p["user_api"] == "blas"] == before


# ---------------------------------------------------------------- progress without a terminal

def test_plain_progress_lines_every_tenth_or_ten_seconds():
    now = [0.0]
    lines: list[str] = []
    p = PlainProgress("training x", lines.append, clock=lambda: now[0])
    for step in range(1, 101):
        now[0] = step * 0.05
        p(step, 100)
    assert len(lines) == 10
    assert lines[0] == "training x: 10/100 steps (10%), 0 s elapsed, ETA 4 s"
    assert lines[-1].startswith("training x: 100/100 steps (100%)")
    slow: list[str] = []
    p = PlainProgress("t", slow.append, clock=lambda: now[0])
    for step in range(1, 6):
        now[0] += 11.0  # 11 s per step, 1% per step: a line every step (every 10 s)
        p(step, 500)
    assert len(slow) == 5 and "ETA 1 h 30 min" in slow[-1]


def test_run_prints_plain_progress_when_stderr_is_not_a_terminal(tmp_path):
    r = runner.invoke(app, ["run", str(_tiny(tmp_path)), "--out", str(tmp_path / "o"),
                            "--no-plots"])
    assert r.exit_code == 0, r.output
    assert "training tiny: 3/3 steps (100%)" in r.output and "ETA" in r.output
    assert "wrote the results in" in r.output
