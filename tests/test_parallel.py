"""`run --workers N`: a population trained in N processes gives workers=1's Result, bit for bit;
the auto rule; workers die with the run."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from initlab import parallel
from initlab.api import resolve
from initlab.experiment import run_experiment

ROOT = Path(__file__).resolve().parents[1]

# 3 variants x 3 seeds = 9 members: LSUV (data-dependent), minibatch shuffles, one variant
# that diverges (frozen mid-run: a linear net with a large step), 2-D binary data (boundary
# frames); 2 workers split a variant
MIXED = {
    "name": "mixed", "seeds": 3, "seed": 1,
    "data": {"name": "circle", "samples": 48},
    "model": {"widths": [5, 4], "activation": "linear"},
    "init": ["xavier_normal", "lsuv", {"scheme": "he_normal", "gain": 30.0, "lr": 50.0}],
    "train": {"lr": 0.2, "epochs": 12, "batch_size": 16, "optimizer": "momentum"},
    "measure": {"every": 5},
}


def _cfg(resolved: bool = True, **changes: Any) -> dict[str, Any]:
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in MIXED.items()}
    for key, value in changes.items():
        section, _, name = key.partition(".")
        if name:
            cfg[section][name] = value
        else:
            cfg[section] = value
    return resolve(cfg) if resolved else cfg


def _same(a: Any, b: Any) -> None:
    """The two Results are equal bit for bit (NaN == NaN), but for the wall time."""
    assert a.arrays.keys() == b.arrays.keys()
    for k in a.arrays:
        x, y = np.asarray(a.arrays[k]), np.asarray(b.arrays[k])
        assert x.shape == y.shape, k
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), k
    sa, sb = dict(a.summary), dict(b.summary)
    sa.pop("wall_time_s"), sb.pop("wall_time_s")
    assert repr(sa) == repr(sb)  # repr: nan == nan


@pytest.mark.parametrize("act", ["linear", "tanh"])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_give_the_one_process_result(workers: int, act: str) -> None:
    cfg = _cfg(**{"model.activation": act})  # tanh: the engine's fused tanh path
    ref = run_experiment(cfg)
    v = ref.summary["variants"]
    assert not any(v[0]["diverged"])
    if act == "linear":  # the test sees a frozen member
        assert all(v[2]["diverged"]) and ref.summary["steps"] == 12 * 3
    _same(ref, parallel.run_parallel(cfg, workers))


@pytest.mark.parametrize("workers", [2, 3])
def test_parametrizations_stay_per_member_across_workers(workers: int) -> None:
    """SP, NTK and μP variants in one population (per-member, per-layer multipliers and lr
    multipliers, Adam): split across workers, the same Result bit for bit."""
    cfg = _cfg(**{"model": {"depth": 3, "width": 16, "activation": "relu", "base_width": 8},
                  "init": [{"label": "sp", "scheme": "he_normal"},
                           {"label": "ntk", "scheme": "he_normal", "parametrization": "ntk"},
                           {"label": "mup", "scheme": "he_normal", "parametrization": "mup"}],
                  "train": {"optimizer": "adam", "lr": 0.01, "epochs": 6, "batch_size": 16}})
    ref = run_experiment(cfg)
    assert [v["label"] for v in ref.summary["variants"]] == ["sp", "ntk", "mup"]
    _same(ref, parallel.run_parallel(cfg, workers))


@pytest.mark.parametrize("batch", [None, 16])
def test_every_member_diverges_the_merged_run_stops_where_one_process_stops(batch: Any) -> None:
    """Every member diverges, at different epochs: one process stops after the last one's
    epoch; chunks whose members all diverged earlier train on, and the merge cuts them."""
    cfg = _cfg(**{"init": [{"scheme": "he_normal", "gain": 30.0, "lr": 50.0},
                           {"scheme": "he_normal", "gain": 3.0, "lr": 5.0},
                           {"scheme": "he_normal", "gain": 3.0, "lr": 1.0}],
                  "train.batch_size": batch, "train.epochs": 400, "measure.every": 3})
    ref = run_experiment(cfg)
    steps = ref.summary["steps"]
    per_epoch = 1 if batch is None else 3
    assert all(all(v["diverged"]) for v in ref.summary["variants"])
    assert steps < 400 * per_epoch  # stopped early ...
    first = min(min(v["diverged_step"]) for v in ref.summary["variants"])
    assert first // per_epoch + 1 < steps // per_epoch  # ... after members diverged apart
    for workers in (2, 3, 6):
        _same(ref, parallel.run_parallel(cfg, workers))


def test_api_run_takes_workers(tmp_path: Path) -> None:
    import initlab

    cfg = _cfg(False, **{"train.epochs": 4})
    a = initlab.run(cfg, workers=1)
    b = initlab.run(cfg, tmp_path / "out", workers=2, plots=False)
    _same(a, b)
    with pytest.raises(ValueError, match="workers"):
        initlab.run(cfg, workers=0)


def test_chunks_are_contiguous_and_even() -> None:
    assert parallel.chunks(9, 2) == [(0, 4), (4, 9)]
    assert parallel.chunks(9, 3) == [(0, 3), (3, 6), (6, 9)]
    assert parallel.chunks(2, 4) == [(0, 1), (1, 2)]
    for M, n in [(64, 2), (7, 3), (100, 8)]:
        c = parallel.chunks(M, n)
        assert c[0][0] == 0 and c[-1][1] == M
        assert all(a[1] == b[0] for a, b in itertools.pairwise(c))
        assert max(h - lo for lo, h in c) - min(h - lo for lo, h in c) <= 1


def test_auto_rule() -> None:
    tiny = [2] + [2] * 9 + [1]  # the workload: 64 members, 512 samples, 400 steps
    assert parallel.auto_workers(64, tiny, 512, 400, n_cores=2) == 2
    assert parallel.auto_workers(64, tiny, 512, 400, n_cores=8) == 8
    assert parallel.auto_workers(64, tiny, 512, 400, n_cores=1) == 1
    assert parallel.auto_workers(8, tiny, 512, 400, n_cores=2) == 1  # few members
    assert parallel.auto_workers(64, tiny, 512, 5, n_cores=2) == 1  # a fraction of a second
    assert parallel.auto_workers(64, [2, 1024, 1], 512, 400, n_cores=2) == 1  # wide: BLAS


def _children(pid: int) -> list[int]:
    """Live processes whose parent is pid (Linux /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d.name))
    return out


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        alive = [p for p in pids if Path(f"/proc/{p}").exists()
                 and (Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z")]
        if not alive:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_killing_a_run_leaves_no_worker_and_keeps_the_old_results(tmp_path: Path,
                                                                  sig: int) -> None:
    cfg = yaml.safe_load(yaml.safe_dump(MIXED))
    cfg["train"].update(epochs=100000, batch_size=None)
    cfg["init"] = ["xavier_normal", "he_normal"]
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text('{"kept": true}')  # an earlier result of this name...
    env = {**os.environ, "MPLBACKEND": "Agg"}
    initlab = str(Path(sys.executable).parent / "initlab")
    proc = subprocess.Popen([initlab, "run", str(path), "--out", str(out), "--workers", "2",
                             "-q"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.2)
            workers = _children(proc.pid)
        assert len(workers) >= 2, proc.stderr.read1().decode() if proc.poll() else "no workers"
        time.sleep(0.5)
        os.kill(proc.pid, sig)
        code = proc.wait(30)
        assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL)
        assert _gone(workers), "a worker outlived the run"
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (out / "summary.json").read_text() == '{"kept": true}'  # ... is untouched


def test_cli_workers_value(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from initlab.cli import app

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**MIXED, "train": {**MIXED["train"], "epochs": 2}}))
    runner = CliRunner()
    bad = runner.invoke(app, ["run", str(path), "--workers", "0", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "--workers" in bad.output and not (tmp_path / "o").exists()
    ok = runner.invoke(app, ["run", str(path), "--workers", "2", "-q", "--out",
                             str(tmp_path / "o")])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "o" / "summary.json").is_file()
    assert parallel.parse_workers("auto") == "auto" and parallel.parse_workers("3") == 3
