"""The memory estimate (initlab/resources.py, `initlab run --dry-run`, the guard) is an upper
bound of the peak RSS of `initlab run`, and not a uselessly loose one: measured over a range of
shapes whose estimate is mostly its variable part (not the 200 MB base).

Each run is started by a small launcher process that reads its peak RSS from os.wait4: a child
forked straight from pytest would report pytest's own high-water mark (Linux keeps the larger of
the old and new address space's peak across fork and exec).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import initlab
import initlab.api
from initlab import resources
from initlab.cli import app
from initlab.data import datasets

PY = sys.executable
LAUNCHER = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:]); "
            "_, status, ru = os.wait4(p.pid, 0); "
            "print(ru.ru_maxrss, os.waitstatus_to_exitcode(status))")
LOOSE = 3  # the estimate is at most LOOSE x the measured peak

TEACHER = {"name": "teacher", "samples": 1000, "n_in": 10}
SHAPES: dict[str, dict[str, Any]] = {
    # one member of two 2000-wide layers, full batch
    "wide": {"data": TEACHER, "model": {"widths": [2000, 2000], "activation": "tanh"},
             "init": ["xavier_normal"], "train": {"epochs": 2}},
    # 200 layers of width 2 (was estimated at 337 MB and peaked at 765 MB)
    "deep": {"data": {**TEACHER, "samples": 256},
             "model": {"depth": 200, "width": 2, "activation": "relu"},
             "init": ["he_normal"], "train": {"epochs": 2}},
    # 64 members
    "members": {"seeds": 16, "data": {**TEACHER, "samples": 500, "n_in": 20},
                "model": {"widths": [128, 128], "activation": "relu"},
                "init": ["he_normal", "xavier_normal", "lecun_normal", "zeros"],
                "train": {"epochs": 2}},
    # minibatches (and their evaluation chunks) with Adam's state, against full-batch SGD
    "minibatch_adam": {"seeds": 4, "data": {**TEACHER, "samples": 3000, "n_in": 50},
                       "model": {"widths": [512, 512], "activation": "tanh"},
                       "init": ["xavier_normal", "he_normal"],
                       "train": {"epochs": 1, "batch_size": 500, "optimizer": "adam"},
                       "measure": {"batch": 2000}},
    "fullbatch_sgd": {"seeds": 4, "data": {**TEACHER, "samples": 2000, "n_in": 50},
                      "model": {"widths": [512, 512], "activation": "tanh"},
                      "init": ["xavier_normal", "he_normal"], "train": {"epochs": 2}},
    # a teacher whose own hidden layers dwarf the net (counted in the `data` part)
    "teacher_big": {"data": {**TEACHER, "samples": 3000, "n_in": 100, "hidden": [3000, 3000]},
                    "model": {"widths": [16], "activation": "relu"},
                    "init": ["he_normal"], "train": {"epochs": 1}},
    # 2-D binary data: the decision boundary, its frames and the figures (plots on)
    "boundary": {"seeds": 2, "data": {"name": "circle", "samples": 400},
                 "model": {"widths": [512, 512], "activation": "relu"},
                 "init": ["he_normal", "xavier_normal", "zeros", "lecun_normal"],
                 "train": {"epochs": 2}},
    # residual blocks (nn.residual.residual_memory_bytes)
    "residual": {"seeds": 2, "data": {"name": "teacher", "samples": 512, "n_in": 16,
                                      "n_out": 4, "task": "classes"},
                 "model": {"depth": 16, "width": 256, "activation": "relu",
                           "residual": {"branch": 2}},
                 "init": ["he_normal", "fixup"],
                 "train": {"optimizer": "adam", "epochs": 1, "batch_size": 256},
                 "measure": {"batch": 512}},
}
PLOTS = {"boundary", "deep"}  # the others run with --no-plots


def _config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    if name == "digits":  # configs/digits.yaml (12 members of [64, 300 x 4, 10]), one epoch
        doc = yaml.safe_load((Path(__file__).parents[1] / "configs/digits.yaml").read_text())
        doc["train"]["epochs"] = 1
    else:
        doc = {"name": name, "seeds": 1, **SHAPES[name]}
    path.write_text(yaml.safe_dump(doc))
    return path


def _peak_rss(args: list[str]) -> int:
    """Bytes: the peak RSS of the command (the largest of its processes), run by a launcher."""
    env = {**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1"}  # one BLAS thread: the same peaks, steadier times (2 cores)
    r = subprocess.run([PY, "-c", LAUNCHER, *args], capture_output=True, text=True, env=env,
                       timeout=300)
    kib, code = (int(v) for v in r.stdout.split()[-2:])
    assert code == 0, r.stderr[-2000:]
    return kib * 1024


@pytest.mark.parametrize("name", [*SHAPES, "digits"])
def test_the_memory_estimate_bounds_the_peak_rss_of_a_run(tmp_path: Path, name: str) -> None:
    if name == "digits" and not (datasets.needs("digits") or ("", "", False))[2]:
        pytest.skip("digits needs scikit-learn")
    cfg = _config(tmp_path, name)
    resolved = initlab.api.resolve(initlab.load_config(cfg))
    plan = resources.estimate(resolved, resources.data_shape(resolved))
    dry = CliRunner().invoke(app, ["run", str(cfg), "--dry-run", "--workers", "1"])  # printed
    assert dry.exit_code == 0, dry.output
    shown = re.search(r"memory:\s+about (\S+ \S+)", dry.stdout)
    assert shown is not None and shown.group(1) == resources.format_size(plan.total)
    args = [PY, "-m", "initlab.cli", "run", str(cfg), "-q", "--workers", "1",
            "--out", str(tmp_path / "out")] + ([] if name in PLOTS else ["--no-plots"])
    peak = _peak_rss(args)
    assert (tmp_path / "out" / "summary.json").is_file()
    assert (plan.parts["loader"] > 0) == (name == "digits")  # scikit-learn's import
    # the shape is big enough for the variable part to matter
    assert plan.total - plan.parts["base"] > 0.5 * plan.parts["base"] or name == "deep"
    print(f"{name}: peak {resources.format_size(peak)}, estimate "
          f"{resources.format_size(plan.total)}")  # shown with pytest -s
    assert peak <= plan.total, (
        f"{name}: peak RSS {resources.format_size(peak)} above the estimate "
        f"{resources.format_size(plan.total)} ({plan.parts})")
    assert plan.total <= LOOSE * peak, (
        f"{name}: the estimate {resources.format_size(plan.total)} is more than {LOOSE}x the "
        f"peak RSS {resources.format_size(peak)} ({plan.parts})")


# ---------------------------------------------------------------- several processes

def _peak_pss_of_tree(args: list[str]) -> int:
    """Bytes: the largest sum of PSS (each shared page split among its processes) over the
    command's process tree, sampled every 10 ms while it runs."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = 0
    while proc.poll() is None:
        total, todo, seen = 0, [proc.pid], set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    total += sum(int(line.split()[1]) * 1024 for line in f
                                 if line.startswith("Pss:"))
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except (OSError, ValueError):
                pass  # ended meanwhile
        peak = max(peak, total)
        time.sleep(0.01)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    return peak


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("name", ["small", "figures"])
def test_the_estimate_bounds_every_process_of_a_run_with_workers(tmp_path: Path,
                                                                 name: str) -> None:
    """`run --workers 2`: training chunks and figure processes at once. The playground's
    default run took 304 MB of PSS over its processes against a 255 MB estimate, deep50's
    702 MB against 632 MB: the estimate now counts each process beyond the first."""
    doc = {"small": {"name": "small", "seeds": 5, "data": {"name": "circle", "samples": 200},
                     "model": {"widths": [6, 3], "activation": "relu"},
                     "init": ["zeros", "he_normal", "xavier_normal", "lecun_normal"],
                     "train": {"epochs": 50}},
           "figures": {"name": "figures", "seeds": 2,
                       "data": {"name": "circle", "samples": 256},
                       "model": {"depth": 40, "width": 32, "activation": "tanh"},
                       "init": ["xavier_normal", "he_normal", "lecun_normal", "orthogonal",
                                "xavier_uniform", "zeros"],
                       "train": {"epochs": 4, "batch_size": 64}}}[name]
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    dry = CliRunner().invoke(app, ["run", str(cfg), "--dry-run", "--workers", "2"])
    assert dry.exit_code == 0, dry.output
    assert "processes 150 MB" in dry.stdout
    resolved = initlab.api.resolve(initlab.load_config(cfg))
    total = resources.guard(resolved, processes=2).total
    peak = _peak_pss_of_tree([PY, "-m", "initlab.cli", "run", str(cfg), "-q", "--workers",
                              "2", "--out", str(tmp_path / "out")])
    print(f"{name} --workers 2: peak PSS {resources.format_size(peak)}, estimate "
          f"{resources.format_size(total)}")
    assert (tmp_path / "out" / "variance.png").is_file()
    assert peak <= total, (resources.format_size(peak), resources.format_size(total))
    assert total <= LOOSE * peak
