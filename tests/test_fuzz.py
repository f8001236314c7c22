"""Config fuzzing (issue 9): random and mutated YAML documents never crash `initlab validate` or
`initlab run --dry-run`. Either the config is accepted (exit 0) or every line on stderr is a
problem positioned at the file (FILE[:LINE:COL]: ...) and the exit code is 2; no traceback, no
warning (pytest turns RuntimeWarning into an error), nothing trained or written.

The example count is bounded by the `initlab-fuzz` hypothesis profile (INITLAB_FUZZ_EXAMPLES
raises it for a longer hunt); deadline=None because the machine is shared.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from initlab.cli import app

settings.register_profile(
    "initlab-fuzz", max_examples=int(os.environ.get("INITLAB_FUZZ_EXAMPLES", "60")),
    deadline=None, derandomize=os.environ.get("INITLAB_FUZZ_RANDOM") is None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large])
FUZZ = settings.get_profile("initlab-fuzz")

runner = CliRunner()

VALID: dict[str, Any] = {
    "name": "fuzz", "seeds": 2, "seed": 0, "dtype": "float64",
    "data": {"name": "circle", "samples": 40},
    "model": {"widths": [4, 3], "activation": "relu", "bias": True},
    "init": [{"label": "a", "scheme": "he_normal"},
             {"label": "b", "scheme": "playground", "v": 0.01, "lr": 0.5},
             {"scheme": "lsuv"}],
    "train": {"loss": "auto", "optimizer": "adam", "lr": 0.1, "epochs": 3, "batch_size": 8},
    "measure": {"every": 1, "batch": 20, "bins": 10},
}
ALT_DATA = [{"name": "teacher", "samples": 30, "n_in": 3, "n_out": 2, "task": "regression"},
            {"name": "linear_chain", "samples": 30, "dim": 3}, {"name": "spiral"},
            {"name": "digits", "samples": 50}, {"name": "mnist", "samples": 100},
            {"name": "xor", "noise": 0.2}]

# ---------------------------------------------------------------- strategies

HUGE = st.sampled_from([10**6, 10**9, 10**12, 10**18, 10**40, 2**63, -(2**63), 10**300])
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 0.0, -0.0])
WORDS = st.sampled_from(["relu", "tanh", "he_normal", "zeros", "adam", "circle", "auto", "mse",
                         "../../etc", "", " ", "nan", ".inf", "~", "null", "yes", "0x10",
                         "1e5", "<script>", "ünïcødé", "名前", "\U0001f600", "a" * 300])
TEXT = st.text(max_size=30) | WORDS
SCALARS = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | HUGE | FLOATS | TEXT)
KEYS = st.sampled_from([*VALID, "widths", "depth", "width", "scheme", "lr", "epochs", "samples",
                        "activation", "bias", "label", "every", "bins", "scale", "mode",
                        "unknown_key", "Name", "trian"]) | st.text(min_size=1, max_size=12)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a document (mappings and lists)."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for p in path:
        doc = doc[p]
    return doc


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A valid config after 1-4 mutations: set a value (wrong type, huge, NaN, unicode, a
    nested structure), delete a key, add an unknown key, or bury a value deep in lists."""
    doc = yaml.safe_load(yaml.safe_dump(VALID))
    if draw(st.booleans()):
        doc["data"] = dict(draw(st.sampled_from(ALT_DATA)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        op = draw(st.sampled_from(["set", "set", "delete", "unknown", "deep"]))
        if op == "set":
            parent[key] = draw(VALUES)
        elif op == "delete":
            del parent[key]
        elif op == "unknown" and isinstance(parent, dict):
            parent[draw(KEYS)] = draw(VALUES)
        elif op == "deep":
            value = parent[key]
            for _ in range(draw(st.integers(10, 80))):
                value = [value]
            parent[key] = value
    return doc


def _dump(doc: Any) -> str:
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, RecursionError, ValueError):
        return repr(doc)


DOCUMENTS = st.one_of(
    mutated().map(_dump),
    VALUES.map(_dump),
    st.text(max_size=200),  # arbitrary text, mostly broken YAML
    st.sampled_from(["", "\n", "---\n", "~", "[]", "{}", "--- !!python/object:os.system {}",
                     "name: &a [*a]", "a: &x [1]\nb: *x\n" * 3, "{" * 200, "[" * 5000,
                     "init: !!binary aGVsbG8=", "data: {name: circle}\nmodel: {width: 1e999}",
                     "key: value\nkey: other", "\ufeffname: bom", "x: !!float nan",
                     "init:", "init: 5"]),  # found by a longer hunt: a TypeError traceback
)
BYTES = st.binary(max_size=200) | st.sampled_from([b"\xff\xfe\x00n\x00a", b"\x00" * 10,
                                                    b"name: \xc3\x28"])

# ---------------------------------------------------------------- the property

POSITIONED = r"^{file}(:\d+:\d+)?: "


def _check(path: Path, args: list[str]) -> int:
    r = runner.invoke(app, args)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception  # a traceback: the bug this test hunts
    assert r.exit_code in (0, 2), (r.exit_code, r.output)
    assert "Traceback" not in r.output
    if r.exit_code == 2:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert lines, r.output
        start = re.compile(POSITIONED.format(file=re.escape(str(path))))
        # a problem's own text may run over several lines (a multi-line YAML value)
        assert start.match(lines[0]), r.stderr
    return r.exit_code


def _both(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    out = tmp_path / "never"
    valid = _check(path, ["validate", str(path)])
    planned = _check(path, ["run", str(path), "--dry-run", "--out", str(out), "-q"])
    if planned == 0:
        assert valid == 0  # a plan only for a valid config
    assert not out.exists()


@FUZZ
@given(doc=DOCUMENTS)
def test_fuzzed_yaml_is_accepted_or_refused_with_a_position(tmp_path: Path, doc: str) -> None:
    _both(tmp_path, doc.encode("utf-8", "surrogatepass"))


@FUZZ
@given(data=BYTES)
def test_fuzzed_bytes_are_refused_with_a_position(tmp_path: Path, data: bytes) -> None:
    _both(tmp_path, data)


@pytest.mark.parametrize("text", [
    "data: {name: circle, samples: 1000000000000}\nmodel: {widths: [4]}\ninit: zeros\n",
    "data: {name: circle}\nmodel: {widths: [100000000]}\ninit: zeros\nseeds: 1000\n",
    "data: {name: circle}\nmodel: {widths: [4]}\ninit: zeros\ntrain: {epochs: 10000000000000}\n",
    "data: {name: teacher, n_in: 10000000000000, samples: 10}\nmodel: {widths: [4]}\n"
    "init: zeros\n",
    "data: {name: digits, samples: 100000}\nmodel: {widths: [4]}\ninit: zeros\n",
])
def test_huge_numbers_are_refused_before_allocating(tmp_path: Path, text: str) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(text)
    assert _check(path, ["run", str(path), "--dry-run"]) == 2


def test_the_valid_seed_document_is_accepted(tmp_path: Path) -> None:
    for data in [VALID["data"], *ALT_DATA]:
        path = tmp_path / "ok.yaml"
        path.write_text(_dump({**VALID, "data": data}))
        assert _check(path, ["validate", str(path)]) == 0
        assert _check(path, ["run", str(path), "--dry-run"]) == 0
