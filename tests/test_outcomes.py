"""Outcome measures (steps_to_drop, final_loss_tail, delayed), paired comparisons, diagnoses that
combine the state at init with what training did, and optimizer steps for minibatch runs."""

from __future__ import annotations

import csv
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fakes import fake_result
from scipy import stats

import initlab
from initlab import outcomes
from initlab.config import load_config
from initlab.diagnosis import Evidence, borderline, diagnose, sentence
from initlab.report import document as report

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


# ---------------------------------------------------------------- measures on one curve


def test_steps_to_drop_is_the_first_step_at_or_below_90_percent() -> None:
    steps = np.arange(0, 50, 5)  # points every 5 optimizer steps
    loss = np.array([1.0, 0.99, 0.95, 0.9, 0.5, 0.4, 0.3, 0.3, 0.3, 0.3])
    assert outcomes.steps_to_drop(loss, steps) == 15  # 0.9 is "at most 90%"
    assert outcomes.steps_to_drop(np.full(10, 1.0), steps) is None
    assert outcomes.steps_to_drop(np.r_[np.nan, loss[1:]], steps) is None  # no init value
    assert outcomes.steps_to_drop(np.r_[1.0, np.nan, np.inf, 0.2], np.arange(4)) == 3


def test_final_loss_tail_is_the_mean_of_the_last_10_percent() -> None:
    steps = np.arange(101)
    loss = np.linspace(1.0, 0.0, 101)  # loss = 1 - step / 100
    # steps 90..100: mean of 0.10, 0.09, ..., 0.00
    assert outcomes.final_loss_tail(loss, steps) == pytest.approx(0.05, abs=1e-12)
    assert outcomes.final_loss_tail(np.array([0.7]), np.array([0])) == 0.7  # no training
    loss[95] = np.inf
    assert math.isnan(outcomes.final_loss_tail(loss, steps))


def test_delayed_needs_a_plateau_longer_than_20_percent_then_a_drop() -> None:
    steps = np.arange(1001)
    plateau = np.where(steps < 300, 0.69, 0.01)  # flat for 30% of training, then falls
    assert outcomes.delayed(plateau, steps)
    assert not outcomes.delayed(np.where(steps < 150, 0.69, 0.01), steps)  # 15%: prompt
    assert not outcomes.delayed(np.full(1001, 0.69), steps)  # never falls: not delayed
    rising = np.where(steps < 300, 0.69 * (1 + steps / 100), 0.01)  # leaves the 10% band up
    assert not outcomes.delayed(rising, steps)


def test_medians_count_never_as_never() -> None:
    assert outcomes.median_steps([10, 30, None]) == 30
    assert outcomes.median_steps([10, None, None]) is None
    assert outcomes.median_finite([0.1, None, math.nan, 0.3]) == pytest.approx(0.2)


# ---------------------------------------------------------------- paired comparisons


def test_paired_comparison_matches_scipys_paired_t_interval() -> None:
    rng = np.random.default_rng(3)
    ref = rng.uniform(0.1, 0.5, 7)
    var = ref - 0.05 + rng.normal(0, 0.02, 7)
    c = outcomes.compare(var.tolist(), ref.tolist())
    test = stats.ttest_rel(var, ref)
    lo, hi = test.confidence_interval(0.95)
    assert c["mean_diff"] == pytest.approx(float(np.mean(var - ref)), rel=1e-12)
    assert c["ci95"] == pytest.approx([lo, hi], rel=1e-10)
    assert c["wins"] == int(np.sum(var < ref)) and c["pairs"] == 7


def test_paired_comparison_with_non_finite_seeds_and_one_pair() -> None:
    c = outcomes.compare([0.1, math.nan, 0.3], [0.2, 0.2, None])
    assert c["pairs"] == 1 and c["mean_diff"] == pytest.approx(-0.1)
    assert c["ci95"] == [None, None]  # no interval from one pair
    assert c["wins"] == 2  # seed 0 lower; seed 2 finite against a non-finite reference
    assert outcomes.comparisons([{"label": "a", "final_loss_tail": [1.0]}]) == []


# ---------------------------------------------------------------- diagnoses


def _evidence(**kw: object) -> Evidence:
    base = dict(label="v", activation="tanh", seeds=5, n_diverged=0, first_diverged_step=None,
                symmetric=False, act_ratio=0.3, per_layer_gain=0.8, grad_ratio=1.0,
                saturated=0.0, dead=0.0, loss_init=0.69, loss_final=0.05, epochs=1000,
                steps=1000, steps_to_drop=20.0, loss_tail=0.05, tail_over_init=0.07,
                delayed_seeds=0)
    base.update(kw)
    return Evidence(**base)  # type: ignore[arg-type]


def test_borderline_ratios_do_not_flip_the_diagnosis() -> None:
    """lecun 0.0118 and xavier 0.0097 on the same layers: one label, both said borderline."""
    lecun, xavier = _evidence(act_ratio=0.0118), _evidence(act_ratio=0.0097)
    assert diagnose(lecun) == diagnose(xavier) == ["healthy"]
    assert borderline(lecun) == borderline(xavier) == ["vanishing"]
    text = sentence(xavier, diagnose(xavier))
    assert "borderline vanishing" in text and "0.0097" in text and "0.01 threshold" in text
    assert diagnose(_evidence(act_ratio=0.004)) == ["vanishing"]  # beyond the band
    assert borderline(_evidence(act_ratio=0.004)) == []
    assert diagnose(_evidence(act_ratio=150.0)) == ["healthy"]  # 1e2 / 2 < 150 < 2e2
    assert borderline(_evidence(act_ratio=150.0)) == ["exploding"]
    assert diagnose(_evidence(grad_ratio=1e-5)) == ["vanishing"]


def test_delayed_sentence_says_the_init_state_and_the_wait() -> None:
    slow = _evidence(label="too_small", act_ratio=1.7e-5, per_layer_gain=0.0041,
                     steps_to_drop=480.0, delayed_seeds=4, loss_tail=0.008)
    fast = _evidence(label="appropriate", steps_to_drop=7.0, loss_tail=0.007)
    found = diagnose(slow)
    assert found[:2] == ["delayed", "vanishing"]
    text = sentence(slow, found, [slow, fast])
    assert "0.0041x per layer at init" in text and "waited 480" in text
    assert "1.1x appropriate's 0.007" in text  # 0.008 / 0.007 = 1.14: a ratio, not "the same"
    near = _evidence(label="near", loss_tail=0.0075)
    assert "about the same as appropriate's 0.007" in sentence(near, diagnose(near), [near, fast])
    assert diagnose(_evidence(delayed_seeds=2)) == ["healthy"]  # 2 of 5 seeds: not delayed


def test_stalled_reads_the_loss_tail_not_the_last_step() -> None:
    assert "stalled" in diagnose(_evidence(tail_over_init=0.95))
    assert "stalled" not in diagnose(_evidence(tail_over_init=0.95, steps=0))


def test_playground_too_small_is_delayed_and_appropriate_is_not() -> None:
    """The acceptance test: the shipped playground config (2000 steps x 5 seeds)."""
    s = initlab.run(load_config(CONFIGS / "playground.yaml"), plots=False).summary
    v = {x["label"]: x for x in s["variants"]}
    small, good = v["too_small"], v["appropriate"]
    assert small["diagnosis"] == "delayed" and "vanishing" in small["diagnoses"]
    assert "delayed" not in good["diagnoses"] and good["diagnosis"] == "healthy"
    assert small["steps_to_drop_median"] >= 5 * good["steps_to_drop_median"]  # 550 vs 7
    assert len(small["steps_to_drop"]) == len(small["final_loss_tail"]) == 5
    assert small["final_loss_tail_median"] < 2 * good["final_loss_tail_median"]
    assert f"waited {small['steps_to_drop_median']:g} of 2000 steps" in small["sentence"]
    comps = {c["variant"]: c for c in s["comparisons"]}
    assert set(comps) == {"too_small", "appropriate", "too_large"}
    assert all(c["reference"] == "zero" and c["metric"] == "final_loss_tail"
               for c in comps.values())
    assert comps["appropriate"]["wins"] == 5 and comps["appropriate"]["ci95"][1] < 0


# ---------------------------------------------------------------- optimizer steps


def test_minibatch_runs_count_optimizer_steps(tmp_path: Path) -> None:
    """12 epochs of 100 samples in batches of 30 = 4 steps per epoch, 48 steps."""
    cfg = load_config(CONFIGS / "playground.yaml", overrides=[
        "seeds=2", "train.epochs=12", "train.batch_size=30", "expect=null"])
    result = initlab.run(cfg, tmp_path / "mb", plots=False)
    s = result.summary
    assert s["steps"] == 48
    for v in s["variants"]:
        assert v["loss_curve"]["steps"][-1] == s["steps"]
        assert v["loss_curve"]["steps"][:3] == [0, 4, 8]
    rows = list(csv.DictReader((tmp_path / "mb" / "loss.csv").open()))
    assert max(int(r["step"]) for r in rows) == 48 and max(int(r["epoch"]) for r in rows) == 12
    assert {int(r["step"]) for r in rows} == set(range(0, 49, 4))


# ---------------------------------------------------------------- the report


def test_report_shows_outcomes_and_the_comparison_table() -> None:
    result = fake_result(variants=3, seeds=3, epochs=50)
    md = report.render_markdown(result, [])
    assert "steps to drop (median)" in md and "## Paired comparisons" in md
    assert "95% CI (paired t)" in report.render_html(result, [])
    rows = report.comparison_rows(result)
    assert [r[0] for r in rows] == ["too_small", "appropriate"] and rows[0][1] == "zero"
    two = fake_result(variants=3, seeds=2, epochs=50)
    assert "Paired comparisons" not in report.render_markdown(two, [])


def test_borderline_shows_in_the_results_table() -> None:
    result = fake_result(variants=2, seeds=1, epochs=5, diverge=[])
    result.summary["variants"][1]["borderline"] = ["vanishing"]
    assert report.results_rows(result)[1][-1] == "healthy (borderline vanishing)"


def test_every_sentence_of_a_run_has_both_halves() -> None:
    e = _evidence()
    assert "at init" in sentence(e, diagnose(e)) and "step 20" in sentence(e, diagnose(e))
    untrained = replace(e, steps=0, epochs=0)
    assert "(no training)" in sentence(untrained, diagnose(untrained))


def test_a_few_epochs_are_too_coarse_for_a_plateau() -> None:
    steps = np.arange(4) * 10  # 3 epochs of 10 minibatch steps
    assert not outcomes.delayed(np.array([1.0, 0.99, 0.5, 0.4]), steps)


def test_sweep_cells_compare_within_the_cell(tmp_path: Path) -> None:
    """Cells that differ only in init train as one population; each cell's sentences and
    comparisons speak of its own variants (not the population's c0:/c1: labels)."""
    import json

    from typer.testing import CliRunner

    from initlab.cli import app

    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: s\nseeds: 3\ndata: {name: circle, samples: 40}\n"
                   "model: {widths: [4], activation: tanh}\n"
                   "init: [{label: a, scheme: xavier_normal}, {label: b, scheme: he_normal}]\n"
                   "train: {lr: 0.1, epochs: 30}\nsweep:\n  init.0.scheme: [lecun_normal, "
                   "too_small]\n")
    r = CliRunner().invoke(app, ["sweep", str(cfg), "--out", str(tmp_path / "o"),
                                 "--workers", "0", "-q"])
    assert r.exit_code == 0, r.output
    for p in (tmp_path / "o" / "cells").glob("*/summary.json"):
        s = json.loads(p.read_text())
        assert [c["variant"] for c in s["comparisons"]] == ["b"]
        assert s["comparisons"][0]["reference"] == "a"
        assert all("c0:" not in v["sentence"] and "c1:" not in v["sentence"]
                   for v in s["variants"])
