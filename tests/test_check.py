"""`initlab check` and `expect:`: metric expressions, aggregates and bounds, baselines with
tolerances (NaN equals only NaN), and the CI outputs (JUnit XML, GitHub annotations, JSON),
with the documented exit codes: 0 pass, 1 failure, 2 usage/config error, 3 not found."""

from __future__ import annotations

import copy
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import small_config
from typer.testing import CliRunner

from initlab.check import expect as check
from initlab.cli import app
from initlab.cli.check import annotation, gh_escape
from initlab.config.schema import load_config
from initlab.errors import ConfigError

runner = CliRunner()


def _layer(i: int, var: float) -> dict[str, Any]:
    return {"layer": i, "width": 4, "act_mean": 0.1, "act_var": var, "pre_var": var,
            "grad_var": 1e-3, "weight_grad_var": 2e-3, "saturated": 0.0, "dead": 0.25,
            "act_var_theory": var}


def _variant(label: str, losses: list[Any], diverged: list[bool], vars_: list[float],
             diagnosis: str = "healthy") -> dict[str, Any]:
    return {"label": label, "scheme": {"scheme": label}, "lr": 0.1, "seeds": [0, 1, 2],
            "final_loss": losses, "final_accuracy": [0.9, 0.8, 1.0], "test_accuracy": None,
            "diverged": diverged, "diverged_step": [None if not d else 7 for d in diverged],
            "loss_curve": {"steps": [0, 1], "mean": [1.0, 0.5], "std": [0, 0], "min": [1, 0.5],
                           "max": [1, 0.5]},
            "diagnosis": diagnosis, "diagnoses": [diagnosis], "sentence": "words",
            "act_ratio": vars_[-1] / vars_[0] if vars_[0] else 0.0, "per_layer_gain": 1.0,
            "grad_ratio": 1.0,
            "layers": [_layer(i + 1, v) for i, v in enumerate(vars_)],
            "layers_final": [{k: v for k, v in _layer(i + 1, v).items() if k != "act_var_theory"}
                             for i, v in enumerate(vars_)]}


SUMMARY = {
    "format_version": 1, "name": "toy", "config_hash": "0123456789abcdef", "seeds": 3,
    "variants": [
        _variant("zero", [0.6931471805599453] * 3, [False] * 3, [0.0, 0.0, 0.0], "symmetric"),
        _variant("appropriate", [0.01, 0.02, 0.9], [False] * 3, [1.0, 0.8, 1.2]),
        _variant("too_large", [None, 0.5, None], [True, False, True], [100.0, 1e4, 1e6],
                 "diverged"),
    ]}
LABELS = ["zero", "appropriate", "too_large"]
EXPECT = [
    {"variant": "appropriate", "metric": "final_loss", "aggregate": "median", "max": 0.05},
    {"variant": "zero", "metric": "final_loss", "aggregate": "all", "equals": 0.693147,
     "tol": 1e-5},
    {"variant": "appropriate", "metric": "layers[-1].act_var / layers[0].act_var",
     "aggregate": "mean", "between": [0.5, 2]},
    {"variant": "too_large", "metric": "diverged", "aggregate": "any", "equals": True},
]


def _cases(expect: list[dict[str, Any]], summary: dict[str, Any] = SUMMARY) -> list[check.Case]:
    found, problems = check.parse_expectations(expect, LABELS)
    assert not problems, problems
    return check.check_expectations(found, summary)


# ---------------------------------------------------------------- metrics and expectations


def test_the_issue_examples_hold() -> None:
    cases = _cases(EXPECT)
    assert [c.passed for c in cases] == [True, True, True, True]


@pytest.mark.parametrize(("metric", "variant", "expected"), [
    ("final_loss", "appropriate", [0.01, 0.02, 0.9]),
    ("final_loss[-1]", "appropriate", [0.9]),
    ("layers[2].act_var / layers[0].act_var", "appropriate", [1.2]),
    ("-(final_loss - 1) * 2", "appropriate", [1.98, 1.96, pytest.approx(0.2)]),
    ("2 * final_loss + layers[0].act_var", "appropriate", [1.02, 1.04, 2.8]),
    ("1 - 2 - 3", "zero", [-4.0]),  # left-associative
    ("2 * 3 + 4 / 2", "zero", [8.0]),  # precedence
    ("loss_curve.mean[-1]", "zero", [0.5]),
    ("layers_final[0].dead", "zero", [0.25]),
    ("diverged", "too_large", [True, False, True]),
])
def test_metric_expressions(metric: str, variant: str, expected: list[Any]) -> None:
    v = next(x for x in SUMMARY["variants"] if x["label"] == variant)
    assert check.evaluate(check.parse_metric(metric), v) == expected


def test_null_is_nan_and_division_by_zero_is_quiet() -> None:
    big = SUMMARY["variants"][2]
    values = check.evaluate(check.parse_metric("final_loss"), big)
    assert math.isnan(values[0]) and values[1] == 0.5
    zero = SUMMARY["variants"][0]
    assert math.isnan(check.evaluate(check.parse_metric("layers[1].act_var / "
                                                        "layers[0].act_var"), zero)[0])


@pytest.mark.parametrize(("metric", "words"), [
    ("final_los", "did you mean 'final_loss'"),
    ("layers.act_var", "is a list: index it"),
    ("layers[0]", "is a group"),
    ("layers[0].act_vr", "did you mean 'act_var'"),
    ("layers_final[0].act_var_theory", "unknown metric 'act_var_theory'"),
    ("loss_curve.mean", "index it"),
    ("final_loss +", "ends too early"),
    ("(final_loss", "ends too early"),
    ("final_loss )", "unexpected ')'"),
    ("final_loss; import os", "cannot read"),
    ("__import__('os')", "cannot read"),
    ("diagnosis + 1", "no arithmetic"),
    ("", "non-empty"),
])
def test_bad_metrics(metric: str, words: str) -> None:
    with pytest.raises(check.MetricError, match=words.replace("(", r"\(").replace(")", r"\)")):
        check.parse_metric(metric)


def test_aggregates_and_bounds() -> None:
    def one(**entry: Any) -> bool | None:
        cases = _cases([{"variant": "appropriate", "metric": "final_loss", **entry}])
        return cases[0].passed

    assert one(aggregate="mean", max=0.32) and not one(aggregate="mean", max=0.30)
    assert one(aggregate="median", between=[0.02, 0.02])
    assert one(aggregate="min", min=0.01) and not one(aggregate="min", min=0.011)
    assert one(aggregate="max", equals=0.9) and not one(aggregate="max", equals=0.9001)
    assert one(aggregate="max", equals=0.9001, tol=1e-3)
    assert not one(aggregate="all", max=0.5) and one(aggregate="any", max=0.015)
    assert one(max=1.0)  # aggregate defaults to all


def test_nan_satisfies_no_bound_and_equals_only_nan() -> None:
    def one(**entry: Any) -> bool | None:
        return _cases([{"variant": "too_large", "metric": "final_loss[0]", **entry}])[0].passed

    assert not one(max=math.inf) and not one(min=-math.inf) and not one(equals=0.0, tol=1e9)
    assert one(equals=math.nan) and one(equals=None)  # null is NaN, as in summary.json
    assert not _cases([{"variant": "too_large", "metric": "final_loss[1]",
                        "equals": math.nan}])[0].passed
    assert not _cases([{"variant": "too_large", "metric": "final_loss",
                        "aggregate": "mean", "max": 10}])[0].passed  # NaN propagates


def test_omitted_variant_means_every_variant_and_text_metrics() -> None:
    cases = _cases([{"metric": "diagnosis", "equals": "healthy", "aggregate": "any"}])
    assert [(c.variant, c.passed) for c in cases] == [
        ("zero", False), ("appropriate", True), ("too_large", False)]
    fraction = _cases([{"variant": "too_large", "metric": "diverged", "aggregate": "mean",
                        "between": [0.6, 0.7]}])
    assert fraction[0].passed  # 2 of 3 seeds diverged


def test_a_failure_names_the_metric_values_and_bound() -> None:
    case = _cases([{"variant": "appropriate", "metric": "final_loss", "aggregate": "median",
                    "max": 0.015}])[0]
    assert not case.passed
    assert case.message == "appropriate: final_loss: median = 0.02, expected max 0.015"
    case = _cases([{"variant": "zero", "metric": "final_loss", "equals": 0.69, "tol": 1e-4}])[0]
    assert "0.6931471806 (seed 0)" in case.message and "equals 0.69 ± 0.0001" in case.message


@pytest.mark.parametrize(("entry", "words"), [
    ({"metric": "final_loss", "max": 1, "maximum": 2}, "unknown key 'maximum'"),
    ({"variant": "apropriate", "metric": "final_loss", "max": 1}, "did you mean 'appropriate'"),
    ({"metric": "final_loss", "min": 0, "max": 1}, "two bounds at once: min and max"),
    ({"metric": "final_loss"}, "no bound"),
    ({"max": 1}, "missing key 'metric'"),
    ({"metric": "final_loss", "max": 1, "tol": 0.1}, "'tol' goes with 'equals' only"),
    ({"metric": "final_loss", "equals": 1, "tol": -1}, "tol must be a number >= 0"),
    ({"metric": "final_loss", "between": [2, 1]}, "low <= high"),
    ({"metric": "final_loss", "max": "low"}, "max must be a number"),
    ({"metric": "final_loss", "aggregate": "avg", "max": 1}, "unknown aggregate"),
    ({"metric": "diagnosis", "aggregate": "mean", "equals": "x"}, "of a text metric"),
    ({"metric": "diagnosis", "equals": 1}, "compare text metrics"),
])
def test_malformed_expectations(entry: dict[str, Any], words: str) -> None:
    _, problems = check.parse_expectations([entry], LABELS)
    text = " | ".join(f"{p.message}; expected {p.expected}; did you mean '{p.suggestion}'"
                      for p in problems)
    assert words in text


# ---------------------------------------------------------------- config positions

CONFIG = small_config(epochs=5, every=5)


def test_config_positions_every_expectation_problem(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG + """\
expect:
  - {variant: zero, metric: final_loss, equals: 0.6931471805599453, tol: 1e-9}
  - {variant: apropriate, metric: final_loss, max: 1}
  - {metric: final_los, max: 1}
  - {metric: final_loss, min: 0, max: 1}
  - {metric: final_loss, max: 1, bound: 2}
""")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    lines = [p.format() for p in e.value.problems]
    assert lines[0].startswith(f"{path}:14:15: expect.1.variant: unknown variant 'apropriate'")
    assert lines[1].startswith(f"{path}:15:14: expect.2.metric: unknown metric 'final_los'")
    assert lines[2].startswith(f"{path}:16:34: expect.3.max: two bounds at once")
    assert lines[3].startswith(f"{path}:17:34: expect.4.bound: unknown key 'bound'")
    assert len(lines) == 4
    path.write_text(CONFIG + "expect:\n  - {variant: zero, metric: final_loss, max: 1}\n")
    assert load_config(path).expect == [{"variant": "zero", "metric": "final_loss", "max": 1}]


def test_run_evaluates_expectations_and_keeps_results(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG + """\
expect:
  - {variant: zero, metric: final_loss, aggregate: all, equals: 0.6931471805599453, tol: 1e-9}
  - {variant: appropriate, metric: final_loss, aggregate: max, max: 1e-6}
""")
    out = tmp_path / "res"
    r = runner.invoke(app, ["run", str(path), "--out", str(out), "--quiet"])
    assert r.exit_code == 1, r.output
    assert (out / "summary.json").is_file()
    assert "appropriate: final_loss: max =" in r.stdout and "expected max 1e-06" in r.stdout
    assert "expectations: 1 passed, 1 failed" in r.stderr
    # `check` re-evaluates the stored results without training: same verdict
    r = runner.invoke(app, ["check", str(out)])
    assert r.exit_code == 1 and "1 passed, 1 failed" in r.stderr
    # a baseline of these results, then a check against it passes
    base = tmp_path / "base.yaml"
    r = runner.invoke(app, ["check", str(out), "--baseline", str(base), "--update-baseline"])
    assert r.exit_code == 1 and base.is_file()  # the failing expectation still fails
    doc = yaml.safe_load(base.read_text())
    assert doc["cells"]["small"]["config_hash"] == json.loads(
        (out / "summary.json").read_text())["config_hash"]


# ---------------------------------------------------------------- check command


def _results(folder: Path, summary: dict[str, Any] = SUMMARY,
             expect: list[dict[str, Any]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "config.yaml").write_text(yaml.safe_dump({"name": summary["name"],
                                                        "expect": expect}, sort_keys=False))
    return folder


def _check(*args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, ["check", *args], env=env)


def test_check_passes_and_writes_junit(tmp_path: Path) -> None:
    res = _results(tmp_path / "res", expect=EXPECT)
    junit = tmp_path / "j.xml"
    r = _check(str(res), "--junit-xml", str(junit))
    assert r.exit_code == 0, r.output
    assert "check: 4 passed, 0 failed" in r.stderr
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "4" and suite.get("failures") == "0"


def test_baseline_round_trip_and_regression(tmp_path: Path) -> None:
    res = _results(tmp_path / "res")
    base = tmp_path / "baselines" / "toy.yaml"
    r = _check(str(res), "--baseline", str(base), "--update-baseline")
    assert r.exit_code == 0, r.output
    text = base.read_text()
    assert text.startswith("# initlab baseline") and "config_hash: 0123456789abcdef" in text
    assert "final_loss[0]: 0.01" in text and "layers[2].act_var: 1.2" in text
    r = _check(str(res), "--baseline", str(base))
    assert r.exit_code == 0, r.output
    n = len(check.flatten(SUMMARY["variants"][0])) * 3
    assert f"check: {n + 1} passed, 0 failed" in r.stderr  # + the config hash

    moved = copy.deepcopy(SUMMARY)
    moved["variants"][1]["final_loss"][1] = 0.02 * (1 + 1e-4)
    _results(res, moved)
    junit = tmp_path / "j.xml"
    r = _check(str(res), "--baseline", str(base), "--junit-xml", str(junit))
    assert r.exit_code == 1
    assert ("appropriate/final_loss[1]" in r.stdout or "final_loss[1]" in r.stdout)
    assert "0.020002" in r.stdout and "baseline 0.02" in r.stdout and "rtol 1e-06" in r.stdout
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    failed = [tc for tc in suite.iter("testcase") if tc.find("failure") is not None]
    assert [tc.get("name") for tc in failed] == ["final_loss[1]"]
    assert failed[0].get("classname") == "initlab.baseline.toy.appropriate"
    # a wider tolerance for that metric (by name without the seed index) lets it pass
    r = _check(str(res), "--baseline", str(base), "--tol", "final_loss=rtol:1e-3")
    assert r.exit_code == 0, r.output
    r = _check(str(res), "--baseline", str(base), "--rtol", "1e-3")
    assert r.exit_code == 0, r.output


def test_nan_equals_only_nan_against_a_baseline(tmp_path: Path) -> None:
    res = _results(tmp_path / "res")
    base = tmp_path / "b.yaml"
    assert _check(str(res), "--baseline", str(base), "--update-baseline").exit_code == 0
    assert "final_loss[0]: null" in base.read_text()  # too_large's NaN
    assert _check(str(res), "--baseline", str(base)).exit_code == 0  # NaN == NaN
    finite = copy.deepcopy(SUMMARY)
    finite["variants"][2]["final_loss"][0] = 0.5
    _results(res, finite)
    r = _check(str(res), "--baseline", str(base), "--format", "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    bad = [c for c in doc["cases"] if c["status"] == "fail"]
    assert [(c["variant"], c["name"], c["value"], c["expected"]) for c in bad] == [
        ("too_large", "final_loss[0]", 0.5, None)]
    assert check.equal(math.nan, math.nan) and check.equal(None, math.nan)
    assert not check.equal(math.nan, 0.0, atol=math.inf) and not check.equal(1.0, math.nan)
    assert check.equal(math.inf, math.inf) and not check.equal(math.inf, 1e308, rtol=1)


def test_missing_and_extra_variants_cells_and_config_change(tmp_path: Path) -> None:
    res = _results(tmp_path / "res")
    base = tmp_path / "b.yaml"
    assert _check(str(res), "--baseline", str(base), "--update-baseline").exit_code == 0
    other = copy.deepcopy(SUMMARY)
    other["variants"][0]["label"] = "zeros"
    _results(res, other)
    r = _check(str(res), "--baseline", str(base), "--format", "json")
    assert r.exit_code == 1
    messages = [c["message"] for c in json.loads(r.stdout)["cases"] if c["status"] == "fail"]
    assert any("zero: variant missing from the results" in m for m in messages)
    assert any("zeros: variant not in the baseline" in m for m in messages)
    # a baseline of another config: one line, exit 2, no list of FAILs
    other["config_hash"] = "fedcba9876543210"
    _results(res, other)
    r = _check(str(res), "--baseline", str(base))
    assert r.exit_code == 2 and "FAIL" not in r.output
    assert r.stderr.count("\n") == 1 and "made for another config" in r.stderr
    assert "config_hash 0123456789abcdef != fedcba9876543210" in r.stderr
    # a sweep's folder: one cell per cells/<id>/, compared by cell id
    sweep = tmp_path / "sweep"
    _results(sweep / "cells" / "aaaa")
    _results(sweep / "cells" / "bbbb")
    sb = tmp_path / "sb.yaml"
    assert _check(str(sweep), "--baseline", str(sb), "--update-baseline").exit_code == 0
    assert set(yaml.safe_load(sb.read_text())["cells"]) == {"aaaa", "bbbb"}
    (sweep / "cells" / "bbbb" / "summary.json").rename(sweep / "cells" / "bbbb" / "gone")
    _results(sweep / "cells" / "cccc")
    r = _check(str(sweep), "--baseline", str(sb))
    assert r.exit_code == 1
    assert "bbbb: missing from the results" in r.stdout
    assert "cccc: not in the baseline" in r.stdout


def test_exit_codes_for_missing_and_malformed_input(tmp_path: Path) -> None:
    res = _results(tmp_path / "res")
    r = _check(str(tmp_path / "nothing"))
    assert r.exit_code == 3 and "no results folder" in r.stderr
    r = _check(str(res), "--baseline", str(tmp_path / "none.yaml"))
    assert r.exit_code == 3 and "no such baseline" in r.stderr
    r = _check(str(res))
    assert r.exit_code == 2 and "nothing to check" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("cells: [1, 2\n")
    r = _check(str(res), "--baseline", str(bad))
    assert r.exit_code == 2 and f"{bad}:2:1: invalid YAML" in r.stderr
    bad.write_text("just: text\n")
    assert _check(str(res), "--baseline", str(bad)).exit_code == 2
    for args in (["--tol", "final_loss"], ["--tol", "final_loss=rtol:x"],
                 ["--tol", "final_loss=btol:1"], ["--format", "xml"], ["--update-baseline"],
                 ["--rtol", "-1"]):
        assert _check(str(res), *args).exit_code == 2, args
    # a malformed expectation stored with the results: exit 2 at FILE:LINE
    _results(res, expect=[{"metric": "final_loss", "max": 1},
                          {"metric": "final_loss", "min": 0, "max": 1}])
    r = _check(str(res))
    assert r.exit_code == 2
    assert f"{res / 'config.yaml'}:" in r.stderr and "expect.1.max: two bounds" in r.stderr
    line = int(r.stderr.split(f"{res / 'config.yaml'}:")[1].split(":")[0])
    assert "max: 1" in (res / "config.yaml").read_text().splitlines()[line - 1]


def test_github_annotations_and_step_summary(tmp_path: Path) -> None:
    failing = [*EXPECT, {"variant": "appropriate", "metric": "final_loss", "aggregate": "max",
                         "max": 0.5}]
    res = _results(tmp_path / "res", expect=failing)
    summary_md = tmp_path / "summary.md"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary_md)}
    r = _check(str(res), env=env)
    assert r.exit_code == 1
    notes = [line for line in r.stdout.splitlines() if line.startswith("::error")]
    assert len(notes) == 1
    root = yaml.compose((res / "config.yaml").read_text())
    entries = next(v for k, v in root.value if k.value == "expect")
    line = entries.value[4].start_mark.line + 1  # the failing (fifth) expectation
    assert notes[0].startswith(f"::error file={res / 'config.yaml'},line={line},")
    assert "title=initlab check%3A appropriate%3A max final_loss max 0.5::" in notes[0]
    assert notes[0].endswith("::appropriate: final_loss: max = 0.9, expected max 0.5")
    md = summary_md.read_text()
    assert "| ❌ FAIL | appropriate: max final_loss max 0.5 |" in md and "4 passed, 1 failed" in md
    r = _check(str(res), env={"GITHUB_ACTIONS": "false"})
    assert "::error" not in r.stdout


def test_github_escaping() -> None:
    assert gh_escape("50%\r\nnext") == "50%25%0D%0Anext"
    assert gh_escape("a:b,c%", prop=True) == "a%3Ab%2Cc%25"
    case = check.Case("baseline", "c", "v", "m", False, "line1\nline2 100%")
    assert annotation(case, "base, line.yaml", 7) == (
        "::error file=base%2C line.yaml,line=7,title=initlab check%3A c/v%3A m::"
        "line1%0Aline2 100%25")


def test_tolerance_patterns() -> None:
    d = check.Tolerance(1e-6, 0.0)
    tols = [check.parse_tol("final_loss=rtol:1e-3", d), check.parse_tol(
        "layers.act_var=atol:1e-9", d), check.parse_tol("layers_final*=rtol:0.1,atol:2", d)]
    assert tols[0] == ("final_loss", check.Tolerance(1e-3, 0.0))
    assert check.tolerance_for("final_loss[3]", d, tols).rtol == 1e-3
    assert check.tolerance_for("layers[2].act_var", d, tols) == check.Tolerance(1e-6, 1e-9)
    assert check.tolerance_for("layers_final[0].dead", d, tols) == check.Tolerance(0.1, 2.0)
    assert check.tolerance_for("act_ratio", d, tols) == d
