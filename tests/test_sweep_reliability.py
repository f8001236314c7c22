"""Reliability, round 2 (issue 15): a sweep survives its workers and its own death, no command
deletes another's results, names are never globbed.

Subprocess tests wait on events (a finished cell, a process gone), never on the clock; the
sleeps only pace polling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_sweep import TINY, rows, write
from typer.testing import CliRunner

from initlab.cli import app
from initlab.report.render import write_result
from initlab.results.folder import load_result
from initlab.sweep import execute as sw

runner = CliRunner()
PY = sys.executable


def finished(cells: Path) -> list[Path]:
    return [p for p in cells.glob("*/summary.json") if not p.parent.name.startswith(".")]


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        kids += [int(x) for x in task.read_text().split()]
    return kids


def _gone(pid: int) -> bool:
    """Dead or a zombie (reaped later by whoever adopted it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def _wait(predicate, limit: float = 120.0) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# ---------------------------------------------------------------- item 1: the driver dies


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_sweep_driver_takes_its_workers_along_and_the_rerun_resumes(tmp_path, sig):
    cfg = write(tmp_path, TINY.replace("epochs: 3", "epochs: 150") +
                "sweep:\n  model.widths: [[3], [4], [5], [6], [7], [8]]\n")
    out = tmp_path / "out"
    proc = subprocess.Popen([PY, "-c", "from initlab.cli import main; main()", "sweep", str(cfg),
                             "--out", str(out),
                             "--workers", "1", "-q"], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait(lambda: len(finished(out / "cells")) >= 1 or proc.poll() is not None)
        workers = _children(proc.pid)
        assert proc.poll() is None and workers, "the sweep ended before it could be killed"
        os.kill(proc.pid, sig)  # the driver alone, not its process group
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 143), stderr
        assert "Traceback" not in stderr, stderr
        # its workers die with it: nothing keeps the lock or goes on computing
        assert _wait(lambda: all(_gone(w) for w in workers), 30), workers
    finally:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    done = {p.parent.name: p.read_bytes() for p in finished(out / "cells")}
    assert 1 <= len(done) < 6
    r = runner.invoke(app, ["sweep", str(cfg), "--out", str(out), "--workers", "0", "-q"])
    assert r.exit_code == 0, r.output
    assert f"{6 - len(done)} done, 0 failed, {len(done)} skipped" in r.stderr
    assert all((out / "cells" / n / "summary.json").read_bytes() == b for n, b in done.items())
    assert not (out / ".sweep.lock").exists()  # released and removed


def test_a_lock_held_in_the_name_of_a_dead_driver_is_taken_over(tmp_path):
    """An orphan that inherited the lock (as forked workers did) holds the flock; the pid in the
    file is dead. The next sweep takes the lock over instead of waiting for a dead pid."""
    cfg = write(tmp_path, TINY + "sweep:\n  seed: [0, 1]\n")
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([PY, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    holder = subprocess.Popen(
        [PY, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
         "fcntl.flock(f, fcntl.LOCK_EX); f.write(sys.argv[2]); f.flush(); print('held', "
         "flush=True); time.sleep(600)", str(out / ".sweep.lock"), f"pid {dead}\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        r = runner.invoke(app, ["sweep", str(cfg), "--out", str(out), "--workers", "0", "-q"])
        assert r.exit_code == 0, r.output
        assert "2 done, 0 failed" in r.stderr
        # a live holder is still respected
        with sw.lock(out):
            r = runner.invoke(app, ["sweep", str(cfg), "--out", str(out), "--workers", "0"])
        assert r.exit_code == 1 and f"another sweep is writing here (pid {os.getpid()})" \
            in r.stderr
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------- item 4: a worker dies

DYING = """\
import json, os, signal, sys
from pathlib import Path
from initlab import experiment
from initlab.sweep import execute as sw
real = experiment.run_experiment

def dying(cfg, progress=None):
    if cfg["model"]["widths"] == [4] and any(v["scheme"] == "he_normal"
                                             for v in cfg["init"]):
        os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does
    return real(cfg, progress)

if sys.argv[3] == "die":
    experiment.run_experiment = dying
plan = sw.make_plan(sys.argv[1])
print(json.dumps([[o.cell.values["model.widths"], o.cell.values["init"], o.status, o.error]
                  for o in sw.run_plan(plan, Path(sys.argv[2]), workers=2)]))
"""


def test_a_dead_worker_fails_only_its_own_cell_and_a_rerun_completes(tmp_path):
    cfg = write(tmp_path, TINY + "sweep:\n  model.widths: [[3], [4], [5]]\n"
                "  init: [xavier_normal, he_normal]\n")
    script = write(tmp_path, DYING, "dying.py")
    out = tmp_path / "out"
    assert len(sw.make_plan(str(cfg)).populations) == 3  # two cells per population
    r = subprocess.run([PY, str(script), str(cfg), str(out), "die"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    outcomes = json.loads(r.stdout)
    assert len(outcomes) == 6
    bad = [o for o in outcomes if o[2] == "failed"]
    assert [(o[0], o[1]) for o in bad] == [([4], "he_normal")], outcomes
    assert "worker process died" in bad[0][3]
    assert sum(o[2] == "done" for o in outcomes) == 5
    r = subprocess.run([PY, str(script), str(cfg), str(out), "live"], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    assert sorted(o[2] for o in again) == ["done"] + ["skipped"] * 5


# ---------------------------------------------------------------- item 2: run vs sweep folders


def test_run_and_sweep_never_replace_or_mix_into_each_others_folders(tmp_path):
    cfg = write(tmp_path, TINY + "sweep:\n  seed: [0, 1]\n")
    swept, ran = tmp_path / "swept", tmp_path / "ran"
    r = runner.invoke(app, ["sweep", str(cfg), "--out", str(swept), "--workers", "0", "-q"])
    assert r.exit_code == 0, r.output
    before = sorted(p.relative_to(swept) for p in swept.rglob("*"))
    r = runner.invoke(app, ["run", str(cfg), "--out", str(swept), "-q"])
    assert r.exit_code == 2 and "a sweep's results folder" in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.relative_to(swept) for p in swept.rglob("*")) == before

    plain = write(tmp_path, TINY, "plain.yaml")
    r = runner.invoke(app, ["run", str(plain), "--out", str(ran), "-q"])
    assert r.exit_code == 0, r.output
    summary = (ran / "summary.json").read_bytes()
    r = runner.invoke(app, ["sweep", str(cfg), "--out", str(ran), "--workers", "0", "-q"])
    assert r.exit_code == 2 and "a run's results folder" in r.stderr, r.output
    assert (ran / "summary.json").read_bytes() == summary
    assert not (ran / "cells").exists() and not (ran / "sweep.yaml").exists()
    load_result(ran)


# ---------------------------------------------------------------- item 3: no globbing


def test_a_glob_character_in_the_output_name_touches_no_other_result(tmp_path):
    import initlab

    res = tmp_path / "results"
    kr = res / "kr"
    result = initlab.run(write(tmp_path, TINY), out_dir=kr, plots=False)
    old = res / ".kr.old-12345-abcd"
    os.rename(kr, old)  # a swap of kr interrupted between its two renames
    for name in ("*", "?r", "[k]r"):
        write_result(result, res / name, plots=False)
        assert (res / name / "summary.json").is_file()
    assert old.is_dir() and (old / "summary.json").is_file()  # kr's only copy, untouched
    load_result(kr)  # and the reader of kr itself recovers it
    assert kr.is_dir() and not old.exists()


# ---------------------------------------------------------------- item 6: the safe reader

BOMB = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdef", "bcdefg"))


@pytest.mark.parametrize("section", [
    "sweep:\n  model.widths: [*g]\n",  # an alias bomb in the sweep section
    "sweep: !!python/object/apply:os.system ['true']\n",
    "sweep:\n  seed: [0, 1]\n  seed: [2, 3]\n",  # duplicate keys
    "sweep:\n" + "  x:\n" * 0 + "  model.widths: " + "[" * 60 + "]" * 60 + "\n",
])
def test_the_sweep_section_is_read_by_the_bounded_safe_reader(tmp_path, section):
    text = TINY + (f"a: &a [x, x, x, x, x, x, x, x, x]\n{BOMB}" if "*g" in section else "")
    cfg = write(tmp_path, text + section)
    r = runner.invoke(app, ["sweep", str(cfg), "--dry-run"])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert lines and all(line.startswith(f"{cfg}:") for line in lines), r.stderr
    assert any(w in r.stderr for w in ("after expanding aliases", "not allowed", "duplicate key",
                                      "nested deeper"))


@pytest.mark.parametrize("option, message", [
    ("train.lr=[" + ", ".join(["*a"] * 9) + "]", "invalid YAML"),  # undefined aliases
    ("train.lr={range: [0.1, 1, 100000000]}", "at most 10000 values per axis"),
    ("train.lr={range: [0.1, .inf, 3]}", "finite lo and hi"),
    ("train.lr=!!python/name:os.system", "not allowed"),
])
def test_grid_options_are_read_safely_and_bounded(tmp_path, option, message):
    cfg = write(tmp_path, TINY)
    r = runner.invoke(app, ["sweep", str(cfg), "--grid", option, "--dry-run"])
    assert r.exit_code == 2 and r.stderr.startswith("--grid: train.lr: ") and message in r.stderr,\
        r.output
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_grid_too_large_is_refused_before_it_is_expanded(tmp_path):
    cfg = write(tmp_path, TINY + "sweep:\n  seed: {range: [0, 999, 1000]}\n")
    r = runner.invoke(app, ["sweep", str(cfg), "--grid", "train.lr={range: [0.1, 1, 1000]}",
                            "--dry-run"])
    assert r.exit_code == 2 and "the grid has 1000000 cells" in r.stderr, r.output


def test_grid_values_read_as_set_values_do(tmp_path):
    cfg = write(tmp_path, TINY)
    plan = sw.make_plan(str(cfg), ["train.lr=1e-3,2.5E-2"])  # YAML 1.2 numbers, as --set
    assert [c.values["train.lr"] for c in plan.cells] == [0.001, 0.025]
    plan = sw.make_plan(str(cfg), ["zip={train.lr: [0.1, 0.2], seed: [1, 2]}"])
    assert [(c.values["train.lr"], c.values["seed"]) for c in plan.cells] == [(0.1, 1), (0.2, 2)]
    plan = sw.make_plan(str(cfg), ["init.bias={scheme: zeros},{scheme: constant, value: 0.1}"])
    assert [c.config["init"][0]["bias"]["scheme"] for c in plan.cells] == ["zeros", "constant"]
    r = runner.invoke(app, ["sweep", str(cfg), "--set", "sweep={seed: [1, 2]}", "--dry-run"])
    assert r.exit_code == 2 and "--set: sweep: " in r.stderr, r.output


# ---------------------------------------------------------------- item 7


def test_duplicate_grid_values_are_one_cell(tmp_path):
    cfg = write(tmp_path, TINY + "sweep:\n  init.gain: [1.5, 1.50, 15e-1]\n")
    plan = sw.make_plan(str(cfg), ["train.lr=0.1,0.1,0.10"])
    assert len(plan.cells) == 1 and len({c.id for c in plan.cells}) == 1
    out = tmp_path / "out"
    r = runner.invoke(app, ["sweep", str(cfg), "--grid", "train.lr=0.1,0.1,0.10", "--out",
                            str(out), "--workers", "0", "-q"])
    assert r.exit_code == 0 and "1 done" in r.stderr, r.output
    assert len(rows(out)) == 1


def test_zero_epochs_with_a_non_finite_loss_at_init_is_diverged(tmp_path):
    import initlab

    cfg = write(tmp_path, TINY.replace("epochs: 3", "epochs: 0").replace(
        "init: xavier_normal", "init: {scheme: normal, std: 1.0e+200}").replace(
        "activation: tanh", "activation: relu"))
    v = initlab.run(cfg).summary["variants"][0]
    assert v["diverged"] == [True, True] and v["diverged_step"] == [0, 0]
    assert v["diagnosis"] == "diverged" and "nan" not in v["sentence"].lower()
    # no step was taken, so none was "too large" (the sentence said so)
    assert "before any optimizer step" in v["sentence"], v["sentence"]
    assert "steps were too large" not in v["sentence"], v["sentence"]


def test_an_infinite_rtol_accepts_every_finite_number_and_zero_equals_zero():
    import math

    from initlab.check import equal

    assert equal(0.0, 0.0, rtol=math.inf) and equal(0, 0, rtol=math.inf, atol=math.inf)
    assert equal(3.0, 1.0, rtol=math.inf) and equal(5.0, 0.0, atol=math.inf)
    assert not equal(1.0, 0.0, rtol=math.inf)  # relative to 0: only atol counts
    assert not equal(math.inf, 1.0, rtol=math.inf) and not equal(math.nan, 1.0, atol=math.inf)


# ---------------------------------------------------------------- item 5: the memory guard


def test_sweep_runs_the_memory_guard_of_run_on_every_population(tmp_path):
    cfg = write(tmp_path, TINY + "sweep:\n  model.widths: [[3], [100000000]]\n")
    for extra in (["--dry-run"], ["--workers", "0", "--out", str(tmp_path / "out")]):
        r = runner.invoke(app, ["sweep", str(cfg), *extra])
        assert r.exit_code == 2 and "population 2 of 2" in r.stderr and "nothing was " \
            "allocated" in r.stderr, r.output
    assert not (tmp_path / "out").exists()
    ok = write(tmp_path, TINY + "sweep:\n  seed: [0, 1]\n", "ok.yaml")
    r = runner.invoke(app, ["sweep", str(ok), "--dry-run", "--max-memory", "1MB"])
    assert r.exit_code == 2 and "more than --max-memory" in r.stderr, r.output


def test_a_teachers_hidden_layers_are_counted_before_the_data_set_is_built(tmp_path):
    teacher = "data: {name: teacher, samples: 40, hidden: [12000, 12000]}"
    cfg = write(tmp_path, TINY.replace("data: {name: circle, samples: 40, seed: 0}", teacher))
    r = runner.invoke(app, ["run", str(cfg), "--dry-run", "--max-memory", "300MB"])
    assert r.exit_code == 2 and "generating the data set needs about" in r.stderr, r.output
    from initlab import resources
    from initlab.api import resolve
    from initlab.config import load_config

    resolved = resolve(load_config(cfg))
    shape = resources.DataShape("teacher", 40, 10, 1, 1, "regression", "mse", "full")
    # the teacher's 12000 x 12000 weights, drawn and scaled: 2 x 1.15 GB
    assert resources.estimate(resolved, shape).parts["data"] > 2 * 12000**2 * 8


# ---------------------------------------------------------------- one line, not a traceback


def test_one_histogram_bin_is_refused_by_the_schema_and_a_tiny_limit_names_its_parts(tmp_path):
    cfg = write(tmp_path, TINY.replace("measure: {every: 1}", "measure: {every: 1, bins: 1}"))
    r = runner.invoke(app, ["validate", str(cfg)])
    assert r.exit_code == 2 and "measure.bins" in r.stderr, r.output
    ok = write(tmp_path, TINY, "ok.yaml")
    r = runner.invoke(app, ["run", str(ok), "--dry-run", "--max-memory", "1"])
    assert r.exit_code == 2 and "()" not in r.stderr and "(base 200 MB" in r.stderr, r.output


def test_a_loss_that_does_not_fit_the_data_lists_every_loss_that_does(tmp_path):
    cfg = write(tmp_path, TINY.replace("train: {lr: 0.1", "train: {loss: mse, lr: 0.1"))
    r = runner.invoke(app, ["run", str(cfg), "--dry-run"])
    assert r.exit_code == 2 and "expected 'bce' or 'softmax_ce' or 'auto'" in r.stderr, r.output
