"""Output sizes that do not grow with the depth (issue 17): summary.json and the reports list a
bounded set of layers, histograms are recorded for the chosen layers only, variance.csv and
arrays.npz keep every layer's statistics. Real runs at depth 1000 and 10,000 residual blocks,
at width 2 and one or two steps so that they take seconds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from fakes import fake_result
from typer.testing import CliRunner

from initlab.api import resolve
from initlab.cli import app
from initlab.config.schema import load_config
from initlab.experiment import run_experiment
from initlab.nn import inits
from initlab.nn.activations import get_activation
from initlab.nn.losses import get_loss
from initlab.nn.model import MemberInit, backward, forward, init_population
from initlab.nn.stats import default_bins, layer_stats
from initlab.report import layer_plots, render
from initlab.results import layers as layers_mod
from initlab.results.folder import config_yaml, json_safe, load_result

runner = CliRunner()


def _run(doc: dict, out: Path) -> dict:
    result = run_experiment(resolve(load_config(doc)))
    result.summary = json_safe(result.summary)
    render.write_result(result, out, options=render.FigureOptions())
    return {p.name: p.stat().st_size for p in out.iterdir()}


@pytest.fixture(scope="module")
def deep_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("deep") / "d1000"
    doc = {"name": "d1000", "data": {"name": "circle", "samples": 24},
           "model": {"depth": 1000, "width": 2, "activation": "tanh"},
           "init": ["xavier_normal", "he_normal"], "train": {"epochs": 2},
           "measure": {"every": 1}}
    return out, _run(doc, out)


@pytest.fixture(scope="module")
def residual_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("deep") / "r10k"
    doc = {"name": "r10k", "dtype": "float32",
           "data": {"name": "teacher", "samples": 16, "n_in": 2, "n_out": 2, "task": "classes"},
           "model": {"depth": 10000, "width": 2, "activation": "relu",
                     "residual": {"branch": 1}},
           "init": [{"label": "rezero", "scheme": "rezero"},
                    {"label": "he", "scheme": "he_normal"}],
           "train": {"optimizer": "adam", "lr": 0.002, "epochs": 1},
           "measure": {"every": 1, "bins": 20}}
    return out, _run(doc, out)


def test_layer_sets_are_bounded():
    assert layers_mod.recorded_layers(9) == list(range(9))  # small nets: every layer
    assert layers_mod.recorded_layers(1000) == [0, 250, 499, 749, 998]
    assert layers_mod.recorded_layers(1000, [3, 7]) == [2, 6]
    assert layers_mod.summary_layers(50) == list(range(50))
    rows = layers_mod.summary_layers(10_002, [77])
    assert len(rows) <= layers_mod.SUMMARY_LAYERS + 1 and 76 in rows
    assert rows[0] == 0 and rows[-1] == 10_001


def test_depth_1000_outputs_stay_small_and_keep_every_layer_where_promised(deep_run):
    out, sizes = deep_run
    assert sizes["summary.json"] < 400_000, sizes  # 1.6 MB before (every layer, every flag)
    assert sizes["report.html"] < 3_000_000 and sizes["report.md"] < 30_000, sizes
    assert sizes["config.yaml"] < 10_000, sizes  # widths on wrapped lines, not 1000 lines
    summary = json.loads((out / "summary.json").read_text())
    for v in summary["variants"]:
        numbers = [row["layer"] for row in v["layers"]]
        assert numbers[0] == 1 and numbers[-1] == 1001 and len(numbers) <= 105
        assert [row["layer"] for row in v["layers_final"]] == numbers
        assert all(int(f.split(":")[0].split()[1]) in numbers for f in v["theory_flags"])
    result = load_result(out)
    a = result.arrays
    assert list(a["hist_layers"]) == [1, 251, 501, 750, 1000]
    assert a["hist_h"].shape[2] == a["hist_dz"].shape[2] == 5
    assert a["stat_act_var"].shape[-1] == 1001  # every layer's statistics
    with (out / "variance.csv").open() as f:
        assert len({row["layer"] for row in csv.DictReader(f)}) == 1001
    # the histogram figure draws the recorded layers
    fig = layer_plots.plot_histograms(result)
    assert [ax.get_title() for ax in fig.axes[:5]] == [
        "layer 1", "layer 251", "layer 501", "layer 750", "layer 1000"]


def test_residual_10k_blocks_outputs_stay_small(residual_run):
    out, sizes = residual_run
    assert sizes["summary.json"] < 400_000, sizes  # 23 MB before
    assert sizes["report.html"] < 3_000_000 and sizes["report.md"] < 60_000, sizes
    summary = json.loads((out / "summary.json").read_text())
    for v in summary["variants"]:
        numbers = [row["layer"] for row in v["layers"]]
        assert numbers[0] == 1 and numbers[-1] == 10_002 and len(numbers) <= 105
        alpha = v["alpha"]
        assert len(alpha["blocks"]) == len(alpha["init"]) == len(alpha["final"]) < 105
        assert alpha["blocks"][0] == 1 and alpha["blocks"][-1] == 10_000
    assert summary["variants"][0]["alpha"]["init"] == [0.0] * len(alpha["init"])  # ReZero
    a = load_result(out).arrays
    assert a["hist_h"].shape[2] == len(a["hist_layers"]) == 5
    assert a["stat_branch_var"].shape[-1] == 10_002


def test_histograms_of_chosen_layers_equal_the_full_ones():
    """Both paths of layer_stats (a small net packed in one pass, a big one layer by layer)."""
    for widths, batch in (([2, 3, 3, 3, 1], 8), ([2, 300, 300, 300, 1], 600)):
        act = get_activation("tanh")
        pop = init_population(widths, act, [MemberInit(inits.resolve("xavier_normal"), None,
                                                       (0, s)) for s in range(2)])
        x = np.random.default_rng(0).normal(size=(batch, 2))
        y = (x[:, 0] > 0).astype(float)
        trace = forward(pop, x)
        _, dout = get_loss("bce").fn(trace.out, y)
        grads = backward(pop, trace, dout)
        bins = default_bins(act, 20)
        full = layer_stats(pop, trace, grads, bins)
        part = layer_stats(pop, trace, grads, bins, hist_layers=[0, 3])
        for k in full[0]:
            assert np.array_equal(full[0][k], part[0][k], equal_nan=True), k
        assert np.array_equal(part[1], full[1][:, [0, 3]])
        assert np.array_equal(part[2], full[2][:, [0, 3]])


def test_report_layers_that_were_not_recorded_draw_the_recorded_ones(deep_run):
    out, _ = deep_run
    result = load_result(out)
    fig = layer_plots.plot_histograms(result, layers=[7, 251])
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "layer 251"
    assert "not recorded: layer 7" in fig.get_suptitle()
    r = runner.invoke(app, ["report", str(out), "--layers", "7"])
    assert r.exit_code == 0, r.output
    assert (out / "histograms.png").is_file()


def test_results_written_before_hist_layers_still_render():
    result = fake_result(variants=2, seeds=1, layers=6, epochs=3)
    del result.arrays["hist_layers"]  # as written before histograms of chosen layers only
    assert layers_mod.hist_layer_numbers(result.arrays) == [1, 2, 3, 4, 5, 6]
    fig = layer_plots.plot_histograms(result, layers=[2, 6])
    assert [ax.get_title() for ax in fig.axes[:2]] == ["layer 2", "layer 6 (output)"]


def test_config_yaml_wraps_long_number_lists_and_loads_back():
    import yaml

    text = config_yaml({"model": {"widths": [8] * 1000, "bias": True}, "init": ["a", "b"]})
    assert text.count("\n") < 40 and yaml.safe_load(text)["model"]["widths"] == [8] * 1000
    assert "- a\n" in text  # short and non-number lists as before


@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu"])
def test_forward_without_the_trace_gives_the_same_output_in_two_layers_of_memory(activation):
    import tracemalloc

    act = get_activation(activation)
    x = np.random.default_rng(1).normal(size=(500, 2))
    peaks = []
    for depth in (10, 80):
        pop = init_population([2, *[16] * depth, 1], act, [
            MemberInit(inits.resolve("xavier_normal"), None, (0, s)) for s in range(2)])
        full = forward(pop, x).out
        tracemalloc.start()
        out = forward(pop, x, keep=False).out
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert np.array_equal(out, full)
    layer = 2 * 500 * 16 * 8  # one layer's z of both members
    assert peaks[1] < 12 * layer and peaks[1] < 1.5 * peaks[0] + layer, peaks


def test_the_page_budgets_add_up_to_less_than_3_mb():
    """report.html's parts are each bounded (base64 adds a third to binary parts; a number of
    the variance curves is at most ~10 characters of JSON); together under 3 MB with room for
    the tables and text (a real 50-layer run with 6 variants was 2.72 MB with 1.4 MB of images:
    the images' budget is now 1 MB)."""
    from initlab.report import interactive

    binary = render.PAGE_IMAGE_BYTES + interactive.HIST_BYTES + interactive.MAX_FRAME_BYTES
    assert 4 / 3 * binary + 10 * interactive.VAR_NUMBERS + 300_000 < 3_000_000
