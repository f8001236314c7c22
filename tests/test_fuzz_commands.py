"""Fuzzing of `sweep`, `report`, `check` and `theory` (issue 15): random and mutated configs,
`sweep:` sections, `--grid` values, damaged results folders and baselines, random bytes.
Whatever the input, the exit code is 0, 1, 2 or 3 and nothing prints a traceback.

Bounded like tests/test_fuzz.py (the `initlab-fuzz` profile, at most 25 examples per test
here; INITLAB_FUZZ_EXAMPLES raises both for a longer hunt), deadline=None (shared machine)."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from test_fuzz import BYTES, DOCUMENTS, FUZZ, KEYS, VALID, VALUES, _dump, _get, _paths, mutated
from test_sweep import TINY, write
from typer.testing import CliRunner

from initlab.cli import app

runner = CliRunner()
# no shrinking in the suite: a failure is reported as found (shrinking took minutes here);
# INITLAB_FUZZ_SHRINK=1 shrinks it
FAST = settings(FUZZ, max_examples=int(os.environ.get("INITLAB_FUZZ_EXAMPLES", "25")),
                phases=list(Phase) if os.environ.get("INITLAB_FUZZ_SHRINK") else
                [Phase.explicit, Phase.reuse, Phase.generate])
CODES = (0, 1, 2, 3)


def _exit(args: list[str]) -> int:
    r = runner.invoke(app, args)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception  # a traceback: the bug this test hunts
    assert r.exit_code in CODES, (r.exit_code, r.output)
    assert "Traceback" not in r.output, r.output
    if r.exit_code:
        assert r.stderr.strip(), r.output  # a refusal says why
    return r.exit_code


def _mutate(draw: st.DrawFn, doc: Any, times: int) -> Any:
    """Set, delete or add keys at random paths of a JSON-like document."""
    doc = copy.deepcopy(doc)
    for _ in range(times):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            if draw(st.booleans()):
                doc = draw(VALUES)
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        op = draw(st.sampled_from(["set", "set", "delete", "add"]))
        if op == "set":
            parent[key] = draw(VALUES)
        elif op == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(KEYS)] = draw(VALUES)
    return doc


# ---------------------------------------------------------------- theory


@FAST
@given(doc=DOCUMENTS)
def test_fuzzed_configs_through_theory(tmp_path: Path, doc: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(doc.encode("utf-8", "surrogatepass"))
    _exit(["theory", str(path)])


@FAST
@given(data=BYTES)
def test_fuzzed_bytes_through_theory_and_sweep(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    assert _exit(["theory", str(path)]) == 2 or data.strip() == b""
    _exit(["sweep", str(path), "--dry-run", "--out", str(tmp_path / "never")])
    assert not (tmp_path / "never").exists()


# ---------------------------------------------------------------- sweep

GRID_KEYS = st.sampled_from(["train.lr", "seed", "model.widths", "init", "init.gain",
                             "model.activation", "data.samples", "train.epochs", "zip",
                             "sweep", "name", "nope.key"]) | st.text(max_size=10)
GRID = st.builds(lambda k, v: f"{k}={v}", GRID_KEYS, st.text(max_size=40) | st.sampled_from(
    ["0.1,0.2", "1e-3", "{range: [0.1, 1, 5]}", "{range: [0, .inf, 3]}",
     "{range: [0.1, 1, 100000000]}", "[[4], [8]]", "{a: [1, 2]}", "he_normal,zeros",
     "&a [*a]", "!!python/object:os.system {}", "0.1,0.1,0.10", "{" * 100]))


@st.composite
def sweep_docs(draw: st.DrawFn) -> str:
    doc = draw(mutated()) if draw(st.booleans()) else yaml.safe_load(yaml.safe_dump(VALID))
    if isinstance(doc, dict):
        section = draw(st.dictionaries(GRID_KEYS, VALUES, max_size=3) | VALUES)
        doc["sweep"] = section
    return _dump(doc)


@FAST
@given(doc=sweep_docs(), grid=st.lists(GRID, max_size=2))
def test_fuzzed_sweep_sections_and_grids_through_sweep_dry_run(tmp_path: Path, doc: str,
                                                                grid: list[str]) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(doc, encoding="utf-8", errors="surrogatepass")
    args = ["sweep", str(path), "--dry-run", "--out", str(tmp_path / "never")]
    for g in grid:
        args += ["--grid", g]
    _exit(args)
    _exit(["validate", str(path)])
    assert not (tmp_path / "never").exists()


# ---------------------------------------------------------------- report and check


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("fuzzres")
    cfg = write(tmp, TINY.replace("init: xavier_normal", "init: [xavier_normal, he_normal]")
                + "expect:\n  - {variant: he_normal, metric: final_loss, max: 100}\n")
    r = runner.invoke(app, ["run", str(cfg), "--out", str(tmp / "r"), "--no-plots", "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["check", str(tmp / "r"), "--baseline", str(tmp / "base.yaml"),
                            "--update-baseline"])
    assert r.exit_code == 0, r.output
    return tmp / "r"


@st.composite
def damage(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file name, new content) for one file of a results folder."""
    name = draw(st.sampled_from(["summary.json", "summary.json", "config.yaml", "arrays.npz"]))
    how = draw(st.sampled_from(["mutate", "bytes", "truncate"]))
    return name, b"" if how == "mutate" else draw(BYTES) if how == "bytes" else b"\0"


@FAST
@given(hit=damage(), data=st.data())
def test_fuzzed_results_folders_through_report_and_check(tmp_path: Path, result: Path,
                                                         hit: tuple[str, bytes],
                                                         data: st.DataObject) -> None:
    folder = tmp_path / "r"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(result, folder)
    name, content = hit
    target = folder / name
    if content == b"\0":  # truncated at a random place
        raw = target.read_bytes()
        target.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1))])
    elif content:
        target.write_bytes(content)
    elif name == "summary.json":
        doc = _mutate(data.draw, json.loads(target.read_text()), data.draw(st.integers(1, 4)))
        target.write_text(json.dumps(doc, default=str))
    elif name == "config.yaml":
        doc = _mutate(data.draw, yaml.safe_load(target.read_text()), data.draw(st.integers(1, 3)))
        target.write_text(_dump(doc), encoding="utf-8", errors="surrogatepass")
    else:
        target.write_bytes(data.draw(BYTES))
    _exit(["report", str(folder), "--no-plots"])
    _exit(["check", str(folder)])
    _exit(["check", str(folder), "--baseline", str(result.parent / "base.yaml")])


@FAST
@given(data=st.data())
def test_fuzzed_baselines_and_tolerances_through_check(tmp_path: Path, result: Path,
                                                       data: st.DataObject) -> None:
    base = yaml.safe_load((result.parent / "base.yaml").read_text())
    kind = data.draw(st.sampled_from(["mutate", "mutate", "text", "bytes"]))
    path = tmp_path / "b.yaml"
    if kind == "mutate":
        path.write_text(_dump(_mutate(data.draw, base, data.draw(st.integers(1, 4)))),
                        encoding="utf-8", errors="surrogatepass")
    elif kind == "text":
        path.write_text(data.draw(DOCUMENTS), encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(data.draw(BYTES))
    args = ["check", str(result), "--baseline", str(path)]
    number = st.floats(allow_nan=True, allow_infinity=True).map(repr) | st.text(max_size=8)
    for opt in data.draw(st.lists(st.sampled_from(["--rtol", "--atol", "--tol"]), max_size=2)):
        value = data.draw(number)
        args += [opt, f"final_loss=rtol:{value}" if opt == "--tol" else value]
    _exit(args)
