"""`initlab sweep`: grid expansion, validation, grouping (exact), backends, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from initlab.cli import app
from initlab.errors import ConfigError
from initlab.experiment import run_experiment
from initlab.sweep import execute as sw
from initlab.sweep import plan as sweep_plan

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]

TINY = """\
name: tiny
seeds: 2
data: {name: circle, samples: 40, seed: 0}
model: {widths: [4, 3], activation: tanh}
init: xavier_normal
train: {lr: 0.1, epochs: 3}
measure: {every: 1}
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def rows(folder: Path) -> list[dict]:
    return json.loads((folder / "summary.json").read_text())["rows"]


def numbers(folder: Path) -> list[tuple]:
    keys = ("cell", "variant", "status", "final_loss_mean", "final_loss_std", "accuracy_mean",
            "diverged", "diagnosis", "var_ratio", "grad_ratio")
    return [tuple(r.get(k) for k in keys) for r in rows(folder)]


def finished(cells: Path) -> list[Path]:
    """summary.json of complete cell folders (not the hidden temp folders being written)."""
    return [p for p in cells.glob("*/summary.json") if not p.parent.name.startswith(".")]


# ---------------------------------------------------------------- grid


def test_ranges_zip_and_grid_expand_as_documented(tmp_path):
    cfg = write(tmp_path, TINY + """\
sweep:
  init.gain: {range: [0.5, 2.0, 3], log: true}
  zip: {model.widths: [[4], [5, 5]], train.lr: [0.1, 0.05]}
""")
    plan = sw.make_plan(str(cfg), grid=["seed=0,1"])
    assert len(plan.cells) == 3 * 2 * 2
    scales = sorted({c.values["init.gain"] for c in plan.cells})
    assert scales == pytest.approx([0.5, 1.0, 2.0])
    c = plan.cells[0]
    assert c.config["init"][0]["gain"] == 0.5 and c.config["train"]["lr"] == 0.1
    assert c.config["model"]["widths"] == [4]
    assert {(tuple(c.config["model"]["widths"]), c.config["train"]["lr"]) for c in plan.cells} \
        == {((4,), 0.1), ((5, 5), 0.05)}  # zipped: never (4,) with 0.05
    assert sweep_plan._range({"range": [5, 50, 10]}) == list(range(5, 51, 5))
    assert len({c.id for c in plan.cells}) == len(plan.cells)


def test_cell_ids_are_content_addresses(tmp_path):
    a = sw.make_plan(str(write(tmp_path, TINY + "sweep: {seed: [0, 1]}\n")))
    b = sw.make_plan(str(write(tmp_path, TINY.replace("tiny", "renamed"), "d.yaml")),
                     grid=["seed=1,0"])
    assert {c.id for c in a.cells} == {c.id for c in b.cells}  # the name is not content
    c = sw.make_plan(str(write(tmp_path, TINY + "sweep: {seed: [0, 1]}\n", "e.yaml")),
                     sets=["train.epochs=4"])
    assert not {x.id for x in a.cells} & {x.id for x in c.cells}


def test_every_cell_is_validated_up_front_with_positions(tmp_path):
    cfg = write(tmp_path, TINY + """\
sweep:
  model.depth: [2, 3]
  init: [xavier_normal, he_nomal]
""")
    with pytest.raises(ConfigError) as e:
        sw.make_plan(str(cfg))
    text = str(e.value)
    assert f"{cfg}:10:" in text and "he_nomal" in text and "he_normal" in text  # did you mean
    r = runner.invoke(app, ["sweep", str(cfg), "--dry-run"])
    assert r.exit_code == 2
    bad = write(tmp_path, TINY + "sweep:\n  zip: {seed: [1, 2], train.lr: [0.1]}\n", "z.yaml")
    with pytest.raises(ConfigError, match="same number of values"):
        sw.make_plan(str(bad))
    r = runner.invoke(app, ["sweep", str(write(tmp_path, TINY, "t.yaml")), "--grid", "nokey"])
    assert r.exit_code == 2 and "--grid" in r.stderr


# ---------------------------------------------------------------- populations


def test_playground_4_inits_x_25_seeds_is_one_population():
    plan = sw.make_plan(str(ROOT / "configs" / "playground.yaml"),
                        grid=["init=zero,too_small,appropriate,too_large",
                              "seed=" + ",".join(map(str, range(25)))],
                        sets=["seeds=1", "data.seed=0"])
    assert len(plan.cells) == 100
    assert len(plan.populations) == 1 and plan.populations[0].members == 100
    # without a fixed data seed, `seed` also draws the data: 25 data sets, 25 populations
    plan = sw.make_plan(str(ROOT / "configs" / "playground.yaml"), grid=["seed=0,1"])
    assert len(plan.populations) == 2


def test_a_cell_split_from_its_population_equals_the_cell_run_alone(tmp_path):
    cfg = write(tmp_path, TINY + """\
sweep:
  init: [xavier_normal, {scheme: he_normal, lr: 0.05}, lecun_normal]
  seed: [0, 3]
""")
    plan = sw.make_plan(str(cfg))
    assert len(plan.populations) == 1
    parts = dict(sw.run_population(sw.task_of(plan.populations[0])))
    for cell in plan.cells:
        alone, part = run_experiment(cell.config), parts[cell.id]
        assert alone.arrays.keys() == part.arrays.keys()
        for k in alone.arrays:
            np.testing.assert_array_equal(alone.arrays[k], part.arrays[k], err_msg=k)
        a, b = alone.summary["variants"], part.summary["variants"]
        assert [v["final_loss"] for v in a] == [v["final_loss"] for v in b]
        assert [v["label"] for v in a] == [v["label"] for v in b]
        assert [v["layers"] for v in a] == [v["layers"] for v in b]


# ---------------------------------------------------------------- runs


def test_run_resume_force_failures_and_lock(tmp_path, monkeypatch):
    cfg = write(tmp_path, TINY + "sweep:\n  model.widths: [[3], [4]]\n  seed: [0, 1]\n")
    out = tmp_path / "out"
    r = runner.invoke(app, ["sweep", str(cfg), "--out", str(out), "--workers", "0", "-q"])
    assert r.exit_code == 0, r.output
    assert "4 done, 0 failed, 0 skipped" in r.stderr
    first = numbers(out)
    assert len(first) == 4 and all(row[2] == "done" for row in first)
    for f in ("sweep.yaml", "summary.csv", "report.md", "report.html"):
        assert (out / f).is_file()
    assert list(out.glob("sweep_heatmap_*.png"))
    r = runner.invoke(app, ["sweep", str(cfg), "--out", str(out), "--workers", "0", "-q"])
    assert "0 done, 0 failed, 4 skipped" in r.stderr and numbers(out) == first

    real = run_experiment

    def flaky(cfg, progress=None):
        if cfg["model"]["widths"] == [4]:
            raise FloatingPointError("boom")
        return real(cfg, progress)

    monkeypatch.setattr("initlab.experiment.run_experiment", flaky)
    r = runner.invoke(app, ["sweep", str(cfg), "--out", str(out), "--workers", "0", "-q",
                            "--force"])
    assert r.exit_code == 1 and "2 done, 2 failed" in r.stderr  # --force: all redone
    failed = [x for x in rows(out) if x["status"] == "failed"]
    assert len(failed) == 2 and all("FloatingPointError: boom" in x["error"] for x in failed)
    r = runner.invoke(app, ["sweep", str(cfg), "--out", str(out), "--workers", "0", "-q",
                            "--force", "--fail-fast"])
    assert r.exit_code == 1 and "1 failed" in r.stderr

    with sw.lock(out):
        r = runner.invoke(app, ["sweep", str(cfg), "--out", str(out), "--workers", "0", "-q"])
    assert r.exit_code == 1 and "another sweep is writing" in r.stderr


def test_inline_runs_one_population_at_a_time(tmp_path, monkeypatch):
    """`--workers 0`: a population's cells are written and reported before the next one runs."""
    plan = sw.make_plan(str(write(tmp_path, TINY + "sweep:\n  model.widths: [[3], [4]]\n")))
    assert len(plan.populations) == 2
    events: list[str] = []
    real = sw.run_population

    def recorded(task):
        events.append("run")
        return real(task)

    monkeypatch.setattr(sw, "run_population", recorded)
    for o in sw.run_plan(plan, tmp_path / "out", workers=0):
        events.append(o.status)
    assert events == ["run", "done", "run", "done"]


def test_local_processes_and_dask_give_identical_numbers(tmp_path):
    pytest.importorskip("distributed")
    cfg = write(tmp_path, TINY + "sweep:\n  model.widths: [[3], [4, 4]]\n"
                "  init: [xavier_normal, orthogonal]\n")
    a, b = tmp_path / "local", tmp_path / "dask"
    r = runner.invoke(app, ["sweep", str(cfg), "--out", str(a), "--workers", "2", "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["sweep", str(cfg), "--out", str(b), "--backend", "dask",
                            "--workers", "1", "-q"])  # a real LocalCluster on 127.0.0.1
    assert r.exit_code == 0, r.output
    assert numbers(a) == numbers(b) and len(numbers(a)) == 4
    for cell in (a / "cells").iterdir():
        if cell.is_dir() and not cell.name.startswith("."):
            sa = json.loads((cell / "summary.json").read_text())
            sb = json.loads((b / "cells" / cell.name / "summary.json").read_text())
            assert [v["final_loss"] for v in sa["variants"]] == \
                [v["final_loss"] for v in sb["variants"]]


def test_a_killed_sweep_resumes_without_losing_finished_cells(tmp_path):
    cfg = write(tmp_path, TINY.replace("epochs: 3", "epochs: 150") +
                "sweep:\n  model.widths: [[3], [4], [5], [6], [7], [8], [9], [10]]\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from initlab.cli import main; main()", "sweep", str(cfg),
           "--out", str(out),
           "--workers", "1", "-q"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cells = out / "cells"
    try:
        for _ in range(1200):  # wait for the first two cells, at most ~120 s on a busy machine
            if len(finished(cells)) >= 2 or proc.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = {p.parent.name: p.read_bytes() for p in finished(cells)}
    assert 2 <= len(done) < 8, "the sweep should have been killed mid-way"
    stamps = {n: (cells / n / "summary.json").stat().st_mtime_ns for n in done}

    r = runner.invoke(app, ["sweep", str(cfg), "--out", str(out), "--workers", "0", "-q"])
    assert r.exit_code == 0, r.output
    assert f"{8 - len(done)} done, 0 failed, {len(done)} skipped" in r.stderr
    for n, text in done.items():  # finished cells: not redone, not damaged
        assert (cells / n / "summary.json").read_bytes() == text
        assert (cells / n / "summary.json").stat().st_mtime_ns == stamps[n]
        json.loads(text)
    assert len(rows(out)) == 8 and all(x["status"] == "done" for x in rows(out))
    assert all(sw.finished(cells / c) for c in (x["cell"] for x in rows(out)))
    assert not [p for p in cells.iterdir() if p.is_dir() and ".tmp-" in p.name]
