"""Reliability, round 2 (issue 15), group B: every bad input or damaged file is one line and an
exit code (2: bad input, 3: damaged results), never a traceback; huge finite numbers, inf and
NaN are results."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_sweep import TINY, write
from typer.testing import CliRunner

from initlab.cli import app
from initlab.results.numbers import mean_std

runner = CliRunner()


def one_line(r, code: int) -> str:
    """The result exited `code` with exactly one line on stderr and no traceback."""
    assert r.exit_code == code, (r.exit_code, r.output, r.exception)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output, r.stderr
    return lines[0]


# ---------------------------------------------------------------- huge finite numbers

HUGE = """\
name: huge
seeds: 2
data: {name: teacher, samples: 40, task: regression}
model: {widths: [16, 16, 16], activation: relu}
init: [{scheme: normal, std: 10000.0}]
train: {epochs: 1, lr: 1, loss: mse}
"""


def test_mean_std_of_huge_finite_numbers_is_finite_and_exact_elsewhere():
    xs = [0.1, 0.2, 0.7]
    m = sum(xs) / 3
    assert mean_std(xs) == (m, math.sqrt(sum((x - m) ** 2 for x in xs) / 3))  # same numbers
    m, s = mean_std([1e300, 3e300])
    assert (m, s) == pytest.approx((2e300, 1e300), rel=1e-15)
    m, s = mean_std([1.7e308, -1.7e308, 1.7e308])
    assert math.isfinite(m) and math.isfinite(s) and s == pytest.approx(np.std([1.7, -1.7, 1.7])
                                                                          * 1e308, rel=1e-12)
    assert mean_std([float("inf"), None, "x", True, 2.0]) == (2.0, 0.0)
    assert all(math.isnan(x) for x in mean_std([float("nan")]))


def test_huge_finite_losses_are_results_in_run_report_and_sweep(tmp_path):
    cfg = write(tmp_path, HUGE)
    r = runner.invoke(app, ["run", str(cfg), "--out", str(tmp_path / "run"), "--no-plots"])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    losses = json.loads((tmp_path / "run" / "summary.json").read_text())["variants"][0]
    assert max(losses["final_loss"]) > 1e200  # the numbers the old (x - m)**2 overflowed on
    r = runner.invoke(app, ["report", str(tmp_path / "run"), "--no-plots"])
    assert r.exit_code == 0, r.output
    assert "e+" in (tmp_path / "run" / "report.md").read_text()
    r = runner.invoke(app, ["sweep", str(cfg), "--grid", "train.lr=1,2", "--workers", "0",
                            "--out", str(tmp_path / "sw"), "--no-plots", "-q"])
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "sw" / "summary.json").read_text())["rows"]
    assert len(rows) == 2 and all(row["final_loss_mean"] > 1e200 for row in rows), rows


@pytest.mark.parametrize("init", ["{scheme: constant, value: 1e200}",
                                  "{scheme: normal, std: 1e200}",
                                  "{scheme: orthogonal, gain: 1e200}",
                                  "{scheme: uniform, low: -1e200, high: 1e300}",
                                  "{scheme: sparse, std: 1e200}"])
def test_theory_of_an_init_beyond_the_float_range_is_a_result(tmp_path, init):
    cfg = write(tmp_path, TINY.replace("init: xavier_normal", f"init: [{init}]"))
    r = runner.invoke(app, ["theory", str(cfg)])
    assert r.exit_code == 0 and r.exception is None, (r.output, r.exception)
    r = runner.invoke(app, ["theory", str(cfg), "--out", str(tmp_path / "th")])
    assert r.exit_code == 0 and r.exception is None, (r.output, r.exception)


def test_a_gain_whose_square_overflows_is_one_line(tmp_path):
    cfg = write(tmp_path, TINY.replace("init: xavier_normal", "init: [{scheme: he_normal, "
                                                              "gain: 1e200}]"))
    line = one_line(runner.invoke(app, ["theory", str(cfg)]), 2)
    assert "finite" in line and "34" not in line, line


# ---------------------------------------------------------------- damaged results folders


def _summary(edit):
    def apply(folder: Path) -> None:
        s = json.loads((folder / "summary.json").read_text())
        edit(s)
        (folder / "summary.json").write_text(json.dumps(s))
    return apply


def _arrays(edit):
    def apply(folder: Path) -> None:
        with np.load(folder / "arrays.npz") as npz:
            a = {k: npz[k] for k in npz.files}
        edit(a)
        np.savez(folder / "arrays.npz", **a)
    return apply


def _text(name: str, data: bytes):
    return lambda folder: (folder / name).write_bytes(data)


DAMAGE = {
    "summary {}": _text("summary.json", b"{}"),
    "summary []": _text("summary.json", b"[]"),
    "summary binary": _text("summary.json", b"\xff\xfe\x00"),
    "variants 5": _summary(lambda s: s.update(variants=5)),
    "fewer variants": _summary(lambda s: s.update(variants=s["variants"][:1])),
    "string loss": _summary(lambda s: s["variants"][0].update(final_loss="abc")),
    "string median": _summary(lambda s: s["variants"][0].update(final_loss_tail_median="x")),
    "string curve": _summary(lambda s: s["variants"][0].update(loss_curve="x")),
    "string sizes": _summary(lambda s: s.update(sizes="x")),
    "truncated npz": lambda f: (f / "arrays.npz").write_bytes((f / "arrays.npz").read_bytes()
                                                              [:3000]),
    "config list": _text("config.yaml", b"[1, 2]\n"),
    "config broken": _text("config.yaml", b"x: [\n"),
    "loss columns": _arrays(lambda a: a.update(loss=a["loss"][:, :1])),
    "stat records": _arrays(lambda a: a.update(stat_act_var=a["stat_act_var"][:1])),
    "no loss": _arrays(lambda a: a.pop("loss")),
    "boundary": _arrays(lambda a: a.update(boundary=a["boundary"][:1])),
}


@pytest.fixture(scope="module")
def good_result(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("good")
    cfg = write(tmp, TINY.replace("init: xavier_normal", "init: [xavier_normal, he_normal]"))
    r = runner.invoke(app, ["run", str(cfg), "--out", str(tmp / "r"), "--no-plots", "-q"])
    assert r.exit_code == 0, r.output
    return tmp / "r"


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_report_on_a_damaged_folder_is_one_line_exit_3(tmp_path, good_result, damage):
    folder = tmp_path / "d"
    shutil.copytree(good_result, folder)
    DAMAGE[damage](folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    line = one_line(runner.invoke(app, ["report", str(folder), "--format", "png", "--dpi", "30"]),
                    3)
    assert str(folder) in line, line
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing replaced


# ---------------------------------------------------------------- metric expressions, baselines


@pytest.mark.parametrize("metric", ["(" * 2000 + "final_loss" + ")" * 2000,
                                    "-" * 5000 + "final_loss",
                                    "+".join(["final_loss"] * 3000),
                                    "(" * 51 + "final_loss" + ")" * 51])
def test_a_deeply_nested_metric_is_one_line_in_validate_and_check(tmp_path, good_result, metric):
    expect = f"expect:\n  - {{variant: xavier_normal, metric: '{metric}', max: 1}}\n"
    cfg = write(tmp_path, TINY + expect)
    line = one_line(runner.invoke(app, ["validate", str(cfg)]), 2)
    assert "expect.0.metric" in line and "at most" in line, line
    folder = tmp_path / "r"
    shutil.copytree(good_result, folder)
    (folder / "config.yaml").write_text((folder / "config.yaml").read_text() + expect)
    line = one_line(runner.invoke(app, ["check", str(folder)]), 2)
    assert "at most" in line, line


def test_fifty_nested_parentheses_and_minus_signs_still_parse():
    from initlab.check.metric import evaluate, parse_metric

    tree = parse_metric("(" * 25 + "-" * 24 + "final_loss[0]" + ")" * 25)
    assert evaluate(tree, {"final_loss": [2.0]}) == [2.0]


def _baseline(good_result: Path, tmp_path: Path) -> str:
    bl = tmp_path / "good.yaml"
    r = runner.invoke(app, ["check", str(good_result), "--baseline", str(bl),
                            "--update-baseline"])
    assert r.exit_code == 0, r.output
    return bl.read_text()


@pytest.mark.parametrize("edit", [
    lambda t: t.split("    variants:")[0] + "    variants: 5\n",
    lambda t: t.split("  tiny:")[0] + "  tiny: 3\n",
    lambda t: t.split("      xavier_normal:")[0] + "      xavier_normal: [1, 2]\n",
    lambda t: t.replace("final_loss[0]: ", "final_loss[0]: [", 1).replace("\n", "]\n", 4)
    .split("final_loss[1]")[0],
    lambda t: t.split("cells:")[0] + "cells: " + "[" * 3000 + "]" * 3000 + "\n",
    lambda t: "name: \udcc3(\n",
], ids=["variants 5", "cell 3", "variant list", "metric list", "deep", "not UTF-8"])
def test_a_malformed_baseline_is_one_line_naming_the_file(tmp_path, good_result, edit):
    text = _baseline(good_result, tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(edit(text).encode("utf-8", "surrogateescape"))
    line = one_line(runner.invoke(app, ["check", str(good_result), "--baseline", str(bad)]), 2)
    assert line.startswith(str(bad)), line


def test_an_alias_bomb_in_a_baseline_is_read_in_linear_time(tmp_path, good_result):
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"] + [
        f"{b}: &{b} [{', '.join(['*' + a] * 10)}]" for a, b in zip("abcdefg", "bcdefgh")]
    bad = tmp_path / "bomb.yaml"
    bad.write_text(_baseline(good_result, tmp_path) + "\n".join(levels) + "\n")  # 10^8 leaves
    r = runner.invoke(app, ["check", str(good_result), "--baseline", str(bad)])
    assert r.exit_code == 0, r.output


# ------------------------------------------------ group C: validate, usage, leftovers


def test_validate_checks_the_sweep_section_as_sweep_does(tmp_path):
    bad = write(tmp_path, TINY + "sweep:\n  train.lrr: [0.1, 0.2]\n")
    r = runner.invoke(app, ["validate", str(bad)])
    assert r.exit_code == 2 and "train.lrr: unknown key 'lrr'" in r.stderr, r.output
    assert "did you mean 'lr'" in r.stderr and "ok " not in r.stdout
    for section in ("train.lr: 5", "train.lr: [-1, abc]"):
        r = runner.invoke(app, ["validate", str(write(tmp_path, TINY + f"sweep:\n  {section}\n"))])
        assert r.exit_code == 2 and f"{tmp_path}/c.yaml:9:" in r.stderr, r.output
    good = write(tmp_path, TINY + "sweep:\n  train.lr: [0.1, 0.2, 0.3]\n", "good.yaml")
    r = runner.invoke(app, ["validate", str(good)])
    assert r.exit_code == 0 and "sweep: 3 cells" in r.stdout, r.output


@pytest.mark.parametrize("entry, message", [
    ("{metric: diagnosis, max: 1}", "expect.0.max: diagnosis is text: max compares numbers"),
    ("{metric: diagnosis, equals: helthy}", "did you mean 'healthy'"),
    ("{metric: 'layers[10].act_var', max: 1}", "index 10 of 3 layers"),
    ("{metric: 'final_loss[5]', max: 1}", "index 5 of 2 seeds"),
])
def test_validate_refuses_expectations_that_check_could_only_fail(tmp_path, entry, message):
    cfg = write(tmp_path, TINY + f"expect:\n  - {entry}\n")
    line = one_line(runner.invoke(app, ["validate", str(cfg)]), 2)
    assert message in line and line.startswith(f"{cfg}:9:"), line


def test_fitting_indices_and_text_equals_still_validate(tmp_path):
    cfg = write(tmp_path, TINY + "expect:\n  - {metric: 'layers[-3].act_var', max: 1e9}\n"
                "  - {metric: 'final_loss[1]', max: 1e9}\n"
                "  - {metric: diagnosis, equals: healthy}\n")
    r = runner.invoke(app, ["validate", str(cfg)])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("args", [["run"], ["run", "x.yaml", "--bogus"], ["frob"],
                                  ["sweep", "x.yaml", "--backend", "foo"],
                                  ["sweep", "x.yaml", "--workers", "-1"]])
def test_usage_errors_are_one_line_with_a_hint(args):
    r = runner.invoke(app, args)
    line = one_line(r, 2)
    assert line.startswith("error: ") and "--help'" in line and "╭" not in r.output, r.output


def test_no_lock_file_is_left_beside_results(tmp_path):
    cfg = write(tmp_path, TINY)
    for _ in range(2):
        r = runner.invoke(app, ["run", str(cfg), "--out", str(tmp_path / "res" / "a"),
                                "--no-plots", "-q"])
        assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == ["a"]


def test_a_killed_planning_leaves_no_config_copy_behind(tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile

    from initlab.sweep.plan import make_plan

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f".sweep-{dead.pid}-abc.yaml"  # what a SIGKILLed planner left
    stale.write_text("name: x\n")
    make_plan(str(write(tmp_path, TINY + "sweep:\n  train.lr: [0.1, 0.2]\n")))
    assert not stale.exists()
    assert not list(tmp_path.glob(".sweep-*"))  # its own copy is gone too


# ---------------------------------------------------------------- write paths


def test_a_name_too_long_for_a_file_name_is_refused_by_validate(tmp_path):
    cfg = write(tmp_path, TINY.replace("name: tiny", "name: " + "a" * 240))
    line = one_line(runner.invoke(app, ["validate", str(cfg)]), 2)
    assert line.startswith(f"{cfg}:1:") and "200" in line, line
    r = runner.invoke(app, ["sweep", str(cfg), "--dry-run", "--out", str(tmp_path / "never")])
    assert r.exit_code == 2 and not (tmp_path / "never").exists(), r.output
    ok = write(tmp_path, TINY.replace("name: tiny", "name: " + "a" * 200), "ok.yaml")
    r = runner.invoke(app, ["run", str(ok), "--out", str(tmp_path / "res"), "--no-plots", "-q"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("out", ["afile/sub", "/proc/x"])
def test_an_output_under_a_file_or_in_proc_is_one_line_and_nothing_trains(tmp_path, out,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("mine\n")
    cfg = write(tmp_path, TINY)
    for command in ("run", "sweep"):
        line = one_line(runner.invoke(app, [command, str(cfg), "--out", out, "-q"]), 2)
        assert "cannot write" in line and out in line, line
        # run said "File exists" (mkdir of the parent), as if the output itself existed
        assert ("a file is on the path" in line) == out.startswith("afile"), line
    assert (tmp_path / "afile").read_text() == "mine\n"


def test_check_outputs_that_cannot_be_written_are_one_line_before_checking(
        tmp_path, good_result, monkeypatch):
    bl = tmp_path / "bl.yaml"
    assert runner.invoke(app, ["check", str(good_result), "--baseline", str(bl),
                               "--update-baseline"]).exit_code == 0
    kept = bl.read_bytes()
    folder = tmp_path / "dir"
    folder.mkdir()
    (tmp_path / "afile").write_text("x")
    cases = [(["--junit-xml", str(folder)], "--junit-xml names a folder"),
             (["--junit-xml", str(tmp_path / "afile" / "j.xml")], "afile is not a folder"),
             (["--update-baseline", "--baseline", str(folder)], "--baseline names a folder"),
             (["--update-baseline", "--baseline", str(tmp_path / "afile" / "b.yaml")],
              "is not a folder")]
    for extra, message in cases:
        args = ["check", str(good_result), *(["--baseline", str(bl)] if "--baseline" not in extra
                                             else []), *extra]
        line = one_line(runner.invoke(app, args), 2)
        assert message in line, (extra, line)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    for summary in (folder, tmp_path / "no" / "such" / "file.md"):
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
        r = runner.invoke(app, ["check", str(good_result), "--baseline", str(bl)])
        line = one_line(r, 2)
        assert line.startswith(f"error: GITHUB_STEP_SUMMARY={summary}: cannot be written"), line
    assert bl.read_bytes() == kept and sorted(p.name for p in folder.iterdir()) == []
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    r = runner.invoke(app, ["check", str(good_result), "--baseline", str(bl), "--junit-xml",
                            str(tmp_path / "new" / "j.xml")])
    assert r.exit_code == 0 and (tmp_path / "new" / "j.xml").is_file(), r.output
    assert "passed" in (tmp_path / "summary.md").read_text()


# ---------------------------------------------------------------- signals


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("previous", [True, False], ids=["over-a-result", "fresh"])
def test_sigterm_on_run_cleans_up_like_ctrl_c_and_exits_143(tmp_path, previous):
    import signal

    from test_reliability import _complete, _long_run, _siblings, _wait_for

    proc, out, before = _long_run(tmp_path, previous)
    try:
        _wait_for(proc, r"\b[1-9]\d*/1000000 steps")  # training: a condition, not a sleep
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and "terminated: nothing was replaced" in stderr, stderr
    assert _siblings(out) == [] and not (tmp_path / f".{out.name}.lock").exists()
    if previous:
        assert _complete(out) and (out / "summary.json").read_bytes() == before
    else:
        assert not out.exists()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_double_ctrl_c_during_a_sweep_prints_no_traceback(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from test_sweep_reliability import _wait, finished

    cfg = write(tmp_path, TINY.replace("epochs: 3", "epochs: 150") +
                "sweep:\n  model.widths: [[3], [4], [5], [6], [7], [8], [9], [10]]\n")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", "from initlab.cli import main; main()",
                             "sweep", str(cfg), "--out", str(out), "--workers", "2", "-q"],
                            cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert _wait(lambda: len(finished(out / "cells")) >= 1 or proc.poll() is not None)
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        for _ in range(3):  # as a terminal does: the whole foreground group, twice and more
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:  # the group ended after an earlier Ctrl-C: fine
                break
            _wait(lambda: proc.poll() is not None, 0.3)
        _, stderr = proc.communicate(timeout=60)
    finally:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "interrupted: finished cells are kept" in stderr, stderr


@pytest.mark.parametrize("address", ["closed", "garbage::", "tcp://", "foo://x:1"])
def test_an_unreachable_or_malformed_dask_address_is_one_line_and_writes_nothing(tmp_path,
                                                                               address):
    pytest.importorskip("distributed")
    import socket

    if address == "closed":  # a port nobody listens on
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    cfg = write(tmp_path, TINY + "sweep:\n  train.lr: [0.1, 0.2]\n")
    out = tmp_path / "out"
    line = one_line(runner.invoke(app, ["sweep", str(cfg), "--backend", "dask", "--address",
                                        address, "--out", str(out), "-q"]), 2)
    assert line.startswith(f"error: --address {address}") or "--address '" in line, line
    assert not out.exists()


@pytest.mark.parametrize("out", ["afile/x.png", "/proc/x.png", "nodir/x.png", "."])
def test_a_phase_diagram_that_cannot_be_written_names_the_users_path(tmp_path, monkeypatch, out):
    """Checked before drawing; the error named mkstemp's '.x.png.<rand>.tmp' beside it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    line = one_line(runner.invoke(app, ["theory", "phase-diagram", "--out", out]), 2)
    assert line.startswith(f"error: {out}: --out ") and ".tmp" not in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # no probe left


def test_an_atomic_write_error_names_the_target_not_its_temporary_file(tmp_path):
    from initlab.results.folder import atomic_write_bytes

    target = tmp_path / "afile" / "x.png"
    (tmp_path / "afile").write_text("")
    with pytest.raises(NotADirectoryError) as e:
        atomic_write_bytes(target, b"x")
    assert e.value.filename == str(target)


RESIDUAL_TINY = """\
name: r
seeds: 2
data: {name: teacher, samples: 32, n_in: 4, n_out: 2, task: classes}
model: {depth: 3, width: 8, activation: relu, residual: {branch: 2}}
init: [he_normal, fixup]
train: {optimizer: adam, epochs: 3, batch_size: 16}
"""
REFUSED = [  # what `check` fails ("not in this summary") on the results of the config
    (RESIDUAL_TINY, "{metric: 'layers[5].act_var', max: 1e9}", "index 5 of 5 layers"),
    (RESIDUAL_TINY, "{metric: 'layers_final[-6].act_var', max: 1e9}", "index -6 of 5 layers"),
    (RESIDUAL_TINY, "{metric: 'loss_curve.mean[4]', max: 1e9}",
     "index 4 of 4 loss-curve points"),
    (RESIDUAL_TINY, "{metric: 'slope[0][0]', max: 1e9}", "only a coordcheck writes it"),
    (TINY, "{metric: 'loss_curve.steps[-5]', max: 1e9}", "index -5 of 4 loss-curve points"),
    (TINY, "{metric: stream_ratio, max: 1e9}", "only residual nets (model.residual) write it"),
    (TINY, "{metric: 'layers[0].chan_var', max: 1e9}", "only residual nets"),
]


@pytest.mark.parametrize("base, entry, message", REFUSED)
def test_validate_refuses_residual_and_loss_curve_metrics_that_check_could_only_fail(
        tmp_path, base, entry, message):
    cfg = write(tmp_path, base + f"expect:\n  - {entry}\n")
    line = one_line(runner.invoke(app, ["validate", str(cfg)]), 2)
    assert message in line and line.startswith(f"{cfg}:{base.count(chr(10)) + 2}:"), line


def test_what_validate_refuses_check_fails_and_what_it_accepts_check_evaluates(tmp_path):
    """validate agrees with check on real results: the refused entries are 'not in this
    summary' for every variant; a residual net's own metrics (stream_ratio, alpha, chan_var)
    and the last fitting indices validate and pass."""
    import yaml

    from initlab.check.expect import check_expectations, parse_expectations

    accepted = ["{metric: stream_ratio, max: 1e9}", "{metric: 'alpha.final[0]', max: 1e9}",
                "{metric: 'layers[4].chan_var', max: 1e9}",
                "{metric: 'layers[-5].act_var', max: 1e9}",
                "{metric: 'loss_curve.mean[3]', max: 1e9}",
                "{metric: stream_ratio_theory, min: 0}"]
    cfg = write(tmp_path, RESIDUAL_TINY + "expect:\n" + "".join(f"  - {e}\n" for e in accepted))
    assert runner.invoke(app, ["validate", str(cfg)]).exit_code == 0
    r = runner.invoke(app, ["run", str(cfg), "-q", "--no-plots", "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["check", str(tmp_path / "r")]).exit_code == 0
    tiny = runner.invoke(app, ["run", str(write(tmp_path, TINY, "t.yaml")), "-q", "--no-plots",
                               "--out", str(tmp_path / "t")])
    assert tiny.exit_code == 0, tiny.output
    for base, entry, _ in REFUSED:
        summary = json.loads((tmp_path / ("r" if base is RESIDUAL_TINY else "t")
                              / "summary.json").read_text())
        found, problems = parse_expectations([yaml.safe_load(entry.replace("1e9", "1.0e+9"))])
        assert not problems
        cases = check_expectations(found, summary)
        assert cases and all(c.passed is False and "not in this summary" in c.message
                             for c in cases), (entry, [c.message for c in cases])


# ---------------------------------------------------------------- validate agrees with run

MSE_ON_BINARY = """\
name: mse
data: {name: circle, samples: 40}
model: {widths: [4], activation: tanh}
init: [xavier_normal]
train: {epochs: 2, loss: mse}
"""


def test_validate_refuses_what_run_refuses_at_the_key_line(tmp_path):
    """A loss that does not fit the data set, or data parameters the generator refuses, were
    'ok' for validate and refused by run without a line: both now say FILE:LINE:COL."""
    cfg = tmp_path / "mse.yaml"
    cfg.write_text(MSE_ON_BINARY)
    for args in (["validate", str(cfg)], ["run", str(cfg), "--dry-run"]):
        line = one_line(runner.invoke(app, args), 2)
        assert line.startswith(f"{cfg}:5:26: train.loss: loss 'mse' does not fit"), line
        assert "'bce' or 'softmax_ce' or 'auto'" in line
    bad = tmp_path / "noise.yaml"
    bad.write_text(MSE_ON_BINARY.replace("{name: circle, samples: 40}",
                                         "{name: two_moons, samples: 40, noise: -1}")
                   .replace(", loss: mse", ""))
    line = one_line(runner.invoke(app, ["validate", str(bad)]), 2)
    assert line.startswith(f"{bad}:2:7: data: ") and "noise" in line, line


def test_a_set_override_is_named_as_such_not_the_files_line(tmp_path):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(MSE_ON_BINARY.replace(", loss: mse", ", loss: bce"))
    line = one_line(runner.invoke(app, ["run", str(cfg), "--set", "train.loss=mse",
                                        "--dry-run"]), 2)
    assert line.startswith("--set: train.loss: loss 'mse' does not fit"), line


def test_validate_does_not_build_a_large_data_set(tmp_path):
    """A teacher with 12000 x 12000 hidden layers would take 1.2 GB to generate: validate
    leaves it to run's memory guard instead of allocating it."""
    import tracemalloc

    cfg = tmp_path / "big.yaml"
    cfg.write_text(MSE_ON_BINARY.replace(
        "{name: circle, samples: 40}", "{name: teacher, samples: 200, n_in: 4, "
        "hidden: [12000, 12000]}").replace(", loss: mse", ""))
    tracemalloc.start()
    r = runner.invoke(app, ["validate", str(cfg)])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert r.exit_code == 0, r.output
    assert peak < 100 * 2**20, peak
