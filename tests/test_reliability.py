"""Reliability and safety (issue 9): hostile configs run nothing, names stay inside the results
folder, reports escape what configs say, a killed run or two writers at once lose nothing,
numerical faults become diagnosed outcomes without a floating-point warning on the terminal,
and a population too large for the machine is refused before anything is allocated.

Subprocess tests wait on events (a line on stderr, a blocked lock in /proc/locks), never on
the clock; the sleeps only pace polling."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import initlab
from initlab import resources
from initlab.cli import app
from initlab.results.folder import load_result

runner = CliRunner()
PY = sys.executable

SMALL = """\
name: small
seeds: 2
data: {name: circle, samples: 40}
model: {widths: [4, 3], activation: relu}
init:
  - {label: zero, scheme: zeros}
  - {label: appropriate, scheme: appropriate}
train: {epochs: 5}
measure: {every: 5}
"""

# Every fault the issue names, one variant each; run with `python -W error`.
FAULTS = """\
name: faults
seeds: 2
data: {name: circle, samples: 60}
model: {widths: [8, 8], activation: relu}
init:
  - {label: overflow, scheme: normal, std: 1.0e+30, lr: 1.0}
  - {label: inf_at_init, scheme: normal, std: 1.0e+200}
  - {label: zero_variance, scheme: zeros}
  - {label: all_dead, scheme: he_normal, bias: {scheme: constant, value: -100.0}}
  - {label: healthy, scheme: he_normal}
train: {epochs: 30, lr: 0.1}
measure: {every: 10, bins: 10}
"""


def _write(folder: Path, text: str, name: str = "c.yaml") -> Path:
    p = folder / name
    p.write_text(text)
    return p


def _cli(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    """`initlab ARGS` in a fresh interpreter with every warning turned into an error."""
    return subprocess.Popen([PY, "-W", "error", "-m", "initlab.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1", **(env or {})}, **kw)


def _complete(folder: Path) -> bool:
    """A results folder that load_result reads back whole, with a report."""
    r = load_result(folder)
    return bool(r.summary["variants"]) and (folder / "report.html").is_file()


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir()
                  if p.name.startswith(f".{folder.name}.") and not p.name.endswith(".lock"))


# ---------------------------------------------------------------- hostile YAML


@pytest.mark.parametrize("payload", [
    '!!python/object/apply:os.system ["touch {marker}"]',
    '!!python/object/apply:subprocess.check_call [["touch", "{marker}"]]',
    '!!python/object/new:os.system ["touch {marker}"]',
    '!!python/name:os.system',
])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_unsafe_tag_is_refused_and_nothing_runs(tmp_path: Path, payload: str,
                                                command: str) -> None:
    marker = tmp_path / "PWNED"
    text = SMALL.replace("name: small", "name: " + payload.format(marker=marker))
    cfg = _write(tmp_path, text)
    out = tmp_path / "res"
    args = [command, str(cfg)] + (["--out", str(out), "-q"] if command == "run" else [])
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert re.search(rf"{re.escape(str(cfg))}:1:7: name: tag '!!python/\S+' not allowed",
                     r.stderr), r.stderr
    assert "Traceback" not in r.output
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("override", [None, "name=../../etc", "name=/etc", "name=a/../../b"])
def test_names_cannot_escape_the_results_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                override: str | None) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = _write(tmp_path, SMALL.replace("name: small", "name: ../../etc"))
    if override is not None:
        cfg = _write(tmp_path, SMALL)
    r = runner.invoke(app, ["run", str(cfg), "-q"] + (["--set", override] if override else []))
    assert r.exit_code == 2, r.output
    assert "cannot name a results folder" in r.stderr
    assert (f"{cfg}:1:7: name:" in r.stderr) if override is None else ("--set: name:" in r.stderr)
    assert not (tmp_path / "results").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_report_html_escapes_every_config_string(tmp_path: Path) -> None:
    evil = "<script>alert('x')</script>"
    text = SMALL.replace("label: zero", f'label: "{evil}"').replace(
        "label: appropriate", 'label: "<img src=x onerror=alert(1)>&amp;"')
    out = tmp_path / "res"
    initlab.run(_write(tmp_path, text), out_dir=out, plots=False)
    page = (out / "report.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;amp;" in page
    assert json.loads((out / "summary.json").read_text())["variants"][0]["label"] == evil


# ---------------------------------------------------------------- a killed run


def _wait_for(proc: subprocess.Popen, pattern: str, limit: float = 120.0) -> str:
    """Read proc's stderr until `pattern` appears (rich redraws the bar with CR)."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    seen, end = "", time.monotonic() + limit
    while time.monotonic() < end:
        try:
            chunk = os.read(fd, 1 << 16).decode("utf-8", "replace")
        except BlockingIOError:
            chunk = ""
        if chunk:
            seen += chunk
            if re.search(pattern, seen):
                return seen
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.05)
    raise AssertionError(f"never saw {pattern!r}; stderr: {seen[-2000:]}")


def _long_run(tmp_path: Path, previous: bool) -> tuple[subprocess.Popen, Path, bytes | None]:
    """`initlab run` of a million epochs into tmp_path/res (over a finished result when
    `previous`: its summary.json bytes returned), its progress bar drawn into the pipe."""
    out, before = tmp_path / "res", None
    if previous:
        initlab.run(_write(tmp_path, SMALL, "small.yaml"), out_dir=out, plots=False)
        before = (out / "summary.json").read_bytes()
    long = _write(tmp_path, SMALL.replace("epochs: 5", "epochs: 1000000")
                  .replace("every: 5", "every: 100000"))
    # TTY_COMPATIBLE makes rich draw the progress bar into the pipe: "<step>/<total> steps"
    return _cli("run", str(long), "--out", str(out),
                env={"TTY_COMPATIBLE": "1", "COLUMNS": "120"}), out, before


@pytest.mark.parametrize("previous", [True, False], ids=["over-a-result", "fresh"])
def test_sigkill_mid_training_leaves_the_previous_result_or_nothing(tmp_path: Path,
                                                                    previous: bool) -> None:
    proc, out, before = _long_run(tmp_path, previous)
    try:
        _wait_for(proc, r"\b[1-9]\d*/1000000 steps")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    if previous:
        assert _complete(out) and (out / "summary.json").read_bytes() == before
    else:
        assert not out.exists()
    # the next writer sweeps up whatever the killed one left and writes a complete folder
    initlab.run(_write(tmp_path, SMALL, "small.yaml"), out_dir=out, plots=False)
    assert _complete(out) and _siblings(out) == []


# ---------------------------------------------------------------- two writers


def _blocked_on_lock(pid: int) -> bool:
    """/proc/locks lists a waiter as `N: -> FLOCK ... PID ...`."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/locks").read_text().splitlines():
            parts = line.split()
            if "->" in parts and str(pid) in parts:
                return True
    return False


@contextlib.contextmanager
def _holding_lock(out: Path) -> Iterator[None]:
    with open(out.parent / f".{out.name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks")
def test_a_second_writer_waits_for_the_lock_then_replaces_whole(tmp_path: Path) -> None:
    out = tmp_path / "res"
    initlab.run(_write(tmp_path, SMALL, "small.yaml"), out_dir=out, plots=False)
    before = (out / "summary.json").read_bytes()
    cfg = _write(tmp_path, SMALL.replace("epochs: 5", "epochs: 7"))
    with _holding_lock(out):  # the first writer, mid-swap
        # a second process, as `initlab run` but without drawing plots (seconds on a busy CI)
        proc = subprocess.Popen(
            [PY, "-W", "error", "-c", "import sys, initlab; "
             "initlab.run(sys.argv[1], out_dir=sys.argv[2], plots=False)", str(cfg), str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while not _blocked_on_lock(proc.pid):
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        # the second writer trained and now waits: the folder is still the first one's
        assert (out / "summary.json").read_bytes() == before and _complete(out)
    _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert json.loads((out / "summary.json").read_text())["epochs"] == 7
    assert _complete(out) and _siblings(out) == []


def test_concurrent_writers_to_one_folder_are_serialized(tmp_path: Path) -> None:
    """Four writers at once (threads: flock locks an open file, so two opens in one process
    exclude each other as two processes do). Each swap happens alone: every writer finds a
    complete folder or none, and one whole result is left."""
    from concurrent.futures import ThreadPoolExecutor

    from initlab.report.render import write_result
    out = tmp_path / "res"
    results = []
    for e in (2, 3, 4, 5):
        r = initlab.run(_write(tmp_path, SMALL.replace("epochs: 5", f"epochs: {e}")))
        results.append(r)
    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(write_result, r, out, plots=False) for r in results]:
            f.result()
    assert json.loads((out / "summary.json").read_text())["epochs"] in (2, 3, 4, 5)
    assert _complete(out) and _siblings(out) == []


# ---------------------------------------------------------------- determinism


def test_same_config_and_seed_give_the_same_numbers_in_a_fresh_process(tmp_path: Path) -> None:
    """Two fresh interpreters, minibatches, adam and LSUV: arrays equal bit for bit, summaries
    equal but for the wall time."""
    text = SMALL.replace("train: {epochs: 5}",
                         "train: {epochs: 3, batch_size: 8, optimizer: adam}").replace(
        "{label: zero, scheme: zeros}", "{label: lsuv, scheme: lsuv}")
    cfg = _write(tmp_path, text)
    code = "import sys, initlab; initlab.run(sys.argv[1], out_dir=sys.argv[2], plots=False)"
    procs = [subprocess.Popen([PY, "-W", "error", "-c", code, str(cfg), str(tmp_path / f"r{i}")],
                              stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    for p in procs:
        assert p.wait() == 0, p.communicate()[1]
    a, b = load_result(tmp_path / "r1"), load_result(tmp_path / "r2")
    assert sorted(a.arrays) == sorted(b.arrays)
    for k in a.arrays:
        assert a.arrays[k].tobytes() == b.arrays[k].tobytes(), k
    a.summary.pop("wall_time_s")
    b.summary.pop("wall_time_s")
    assert a.summary == b.summary


# ---------------------------------------------------------------- numerical faults


def _diagnoses(summary: dict) -> dict[str, list[str]]:
    return {v["label"]: v["diagnoses"] for v in summary["variants"]}


def _check_faults(summary: dict, float64: bool = True) -> None:
    d = _diagnoses(summary)
    assert "diverged" in d["overflow"] and "diverged" in d["inf_at_init"]
    assert "symmetric" in d["zero_variance"] and "vanishing" in d["zero_variance"]
    assert "dead" in d["all_dead"]
    assert d["healthy"] == ["healthy"]
    by = {v["label"]: v for v in summary["variants"]}
    assert all(by["overflow"]["diverged"]) and not any(by["healthy"]["diverged"])
    assert by["inf_at_init"]["diverged_step"] == [0, 0]
    if float64:  # overflowed during training (float32 overflows at the first step)
        assert all(step > 0 for step in by["overflow"]["diverged_step"])
    for v in summary["variants"]:
        assert v["sentence"]


def test_numerical_faults_are_outcomes_and_no_warning_reaches_the_terminal(
        tmp_path: Path) -> None:
    """`python -W error`: any warning would be a traceback and exit 1."""
    out = tmp_path / "res"
    proc = _cli("run", str(_write(tmp_path, FAULTS)), "--out", str(out))
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert "Warning" not in stderr and "Traceback" not in stderr, stderr
    assert "Warning" not in stdout
    _check_faults(json.loads((out / "summary.json").read_text()))
    assert (out / "loss.png").is_file()


def test_numerical_faults_through_the_api_raise_no_runtime_warning(tmp_path: Path) -> None:
    """pytest turns RuntimeWarning into an error here, and the API has no blanket errstate:
    the library itself keeps faults quiet (minibatches, adam, mse and tanh included)."""
    from initlab.config.schema import load_config
    cfg = _write(tmp_path, FAULTS)
    _check_faults(initlab.run(load_config(cfg, overrides=["dtype=float32"])).summary, float64=False)
    regression = FAULTS.replace("{name: circle, samples: 60}",
                                "{name: linear_chain, samples: 64, dim: 3}") \
        .replace("activation: relu", "activation: tanh") \
        .replace("train: {epochs: 30, lr: 0.1}",
                 "train: {epochs: 6, lr: 0.01, optimizer: adam, batch_size: 16}")
    s = initlab.run(load_config(_write(tmp_path, regression, "r.yaml"),
                                overrides=["init.3.bias.value=0.0"])).summary
    assert "diverged" in _diagnoses(s)["inf_at_init"]


def test_a_loss_too_large_for_a_log_axis_still_plots(tmp_path: Path) -> None:
    """Losses near the float limit made matplotlib's log ticks raise OverflowError."""
    import io

    from initlab.report.plots import plot_loss
    r = initlab.run(_write(tmp_path, SMALL))
    r.arrays["loss"] = r.arrays["loss"].copy()
    r.arrays["loss"][2:, 1] = 1.7e308
    r.arrays["loss"][1, 0] = 1e-310
    buf = io.BytesIO()
    with np.errstate(all="ignore"):  # as write_result draws
        plot_loss(r).savefig(buf, format="png")
    assert buf.getvalue()


# ---------------------------------------------------------------- resource guard


def test_a_population_too_large_for_the_machine_is_refused_up_front(tmp_path: Path) -> None:
    cfg = _write(tmp_path, SMALL.replace("widths: [4, 3]", "widths: [200000, 200000]")
                 .replace("seeds: 2", "seeds: 100"))
    out = tmp_path / "res"
    r = runner.invoke(app, ["run", str(cfg), "--out", str(out)])
    stderr = r.stderr
    assert r.exit_code == 2, r.output
    assert stderr.startswith(f"{cfg}: the population of 200 members needs about ")
    assert "more than the memory available" in stderr and "--max-memory" in stderr
    assert "model.widths" in stderr and "seeds" in stderr
    assert not out.exists() and "Traceback" not in stderr


def test_max_memory_refuses_and_allows(tmp_path: Path) -> None:
    cfg = _write(tmp_path, SMALL)
    r = runner.invoke(app, ["run", str(cfg), "--dry-run", "--max-memory", "1MB"])
    assert r.exit_code == 2 and "more than --max-memory (1 MB)" in r.stderr, r.output
    r = runner.invoke(app, ["run", str(cfg), "--dry-run", "--max-memory", "lots"])
    assert r.exit_code == 2 and "--max-memory" in r.output
    huge = _write(tmp_path, SMALL.replace("widths: [4, 3]", "widths: [100000, 100000]"), "h.yaml")
    r = runner.invoke(app, ["run", str(huge), "--dry-run", "--max-memory", "2TB"])
    assert r.exit_code == 0, r.output
    assert "members: 2 variants x 2 seeds = 4" in r.stdout


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = _write(tmp_path, SMALL)
    r = runner.invoke(app, ["run", str(cfg), "--dry-run"])
    assert r.exit_code == 0, r.output
    for line in ("plan for small", "data:    circle, 40 samples, binary, loss bce",
                 "model:   sizes 2 → 4 → 3 → 1, 31 parameters per member, float64",
                 "members: 2 variants x 2 seeds = 4",
                 "steps:   5 epochs, full batch: 5 optimizer steps, 2 recorded",
                 "memory:  about", "dry run: nothing trained or written"):
        assert line in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


@pytest.mark.parametrize(("old", "new", "s", "k"), [
    ("", "", 8, 0), ("seeds: 2", "seeds: 2\ndtype: float32", 4, 0),
    ("train: {epochs: 5}", "train: {epochs: 5, optimizer: adam}", 8, 2)])
def test_dry_run_states_the_population_formula_with_its_numbers(
        tmp_path: Path, old: str, new: str, s: int, k: int) -> None:
    """--dry-run prints model.population_memory_bytes' formula, then the same formula with the
    config's numbers (s M [P (3 + k) + B_t (n_in + 4 sum(hidden) + 3 n_out + 2 n_max)]),
    whose value is the plan's population figure."""
    cfg = _write(tmp_path, SMALL.replace(old, new) if old else SMALL)
    r = runner.invoke(app, ["run", str(cfg), "--dry-run"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    i = next(j for j, line in enumerate(lines) if "population = s M [P (3 + k)" in line)
    values = [int(v) for v in re.findall(r"\d+", lines[i + 1].split(" B = ")[0])]
    assert values == [s, 4, 31, 3 + k, 40, 2, 4, 7, 3, 1, 2, 4]
    s_, M, P, c, B, n_in, _, hidden, _, n_out, _, n_max = values
    resolved = initlab.api.resolve(initlab.load_config(cfg))
    plan = resources.estimate(resolved, resources.data_shape(resolved))
    assert plan.parts["population"] == s_ * M * (P * c + B * (n_in + 4 * hidden + 3 * n_out
                                                               + 2 * n_max))
    assert lines[i + 1].endswith(resources.format_size(plan.parts["population"]))


def test_memory_estimate_follows_the_formula() -> None:
    cfg = initlab.api.resolve(SMALL_DICT)
    plan = resources.estimate(cfg, resources.data_shape(cfg))
    sizes, M, s = [2, 4, 3, 1], 4, 8
    P = 2 * 4 + 4 + 4 * 3 + 3 + 3 * 1 + 1
    assert plan.sizes == sizes and plan.params_per_member == P == 31
    # sgd: no optimizer state; full batch B = 40; 3 copies of params; per sample:
    # n_in + 4 sum(hidden) + 3 n_out + 2 n_max
    assert plan.parts["population"] == s * M * (3 * P + 40 * (2 + 4 * 7 + 3 * 1 + 2 * 4))
    # the weights at init, before a recorded update and the update; statistics' temporaries
    assert plan.parts["snapshots"] == 3 * M * P * s + 3 * M * 40 * 4 * 8
    assert plan.parts["evaluation"] == 0  # full batch: no chunked evaluation
    assert plan.parts["loader"] == 0  # circle needs no library
    assert plan.records == 2 and plan.steps == 5
    assert plan.parts["statistics"] == 3 * 8 * 2 * M * 3 * (11 + 2 * 50)
    assert plan.parts["curves"] == 3 * 8 * 6 * M
    assert plan.parts["data"] == 2 * 8 * 40 * (2 + 1)
    assert plan.total == sum(plan.parts.values())


def test_memory_estimate_of_a_minibatch_run_counts_its_evaluation_chunks() -> None:
    """Minibatches: the step's buffers of B_t = max(B, B_m) samples stay alive while
    train.evaluate passes chunks of C samples (two layers' z, h, phi' in turn)."""
    from initlab.nn.train import eval_chunk
    cfg = initlab.api.resolve({**SMALL_DICT, "data": {"name": "circle", "samples": 400},
                               "train": {"epochs": 5, "batch_size": 50},
                               "measure": {"every": 5, "batch": 100}})
    plan = resources.estimate(cfg, resources.data_shape(cfg))
    M, s, n_max, n_out = 4, 8, 4, 1
    C = min(400, eval_chunk(M, plan.sizes))
    assert plan.batch_eff == 100  # B_t = max(50, 100)
    assert plan.parts["evaluation"] == s * M * C * (6 * n_max + 3 * n_out)
    assert plan.parts["population"] == s * M * (3 * 31 + 100 * (2 + 4 * 7 + 3 * 1 + 2 * 4))


def test_memory_estimate_bounds_what_a_run_allocates() -> None:
    """The parts that scale (parameters, activations, statistics) cover the arrays a run
    really keeps; measured with tracemalloc, which sees NumPy's allocations."""
    import tracemalloc
    text = SMALL.replace("widths: [4, 3]", "widths: [64, 64]").replace("samples: 40",
                                                                       "samples: 400")
    import yaml
    cfg = initlab.api.resolve(yaml.safe_load(text))
    plan = resources.estimate(cfg, resources.data_shape(cfg))
    from initlab.experiment import run_experiment
    tracemalloc.start()
    try:
        run_experiment(cfg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= plan.total - resources.BASE_BYTES, (peak, plan.parts)


@pytest.mark.parametrize(("text", "expected"), [
    ("2GB", 2 * 10**9), ("512MB", 512 * 10**6), ("1.5GiB", int(1.5 * 2**30)), ("100000", 10**5),
    ("3 g", 3 * 10**9), ("1e3kB", 10**6)])
def test_parse_size(text: str, expected: int) -> None:
    assert resources.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "-1GB", "2XB", "0", "nan", "inf GB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        resources.parse_size(text)


def test_available_memory_is_positive() -> None:
    avail = resources.available_memory()
    assert avail is None or avail > 0
    assert resources.format_size(2.5e9) == "2.5 GB" and resources.format_size(10**400)


SMALL_DICT = {"name": "small", "seeds": 2, "data": {"name": "circle", "samples": 40},
              "model": {"widths": [4, 3], "activation": "relu"},
              "init": [{"label": "zero", "scheme": "zeros"},
                       {"label": "appropriate", "scheme": "appropriate"}],
              "train": {"epochs": 5}, "measure": {"every": 5}}
