"""Expectations and baselines for CI: pure functions over summary.json dicts (no I/O).

An expectation (a config's `expect:` entry) names a metric of a variant (initlab.check.metric: a
path into summary.json or arithmetic between paths) and one bound:

    {variant: appropriate, metric: final_loss, aggregate: median, max: 0.05}
    {metric: "layers[-1].act_var / layers[0].act_var", aggregate: mean, between: [0.5, 2]}

A metric gives one value per seed or one number (initlab.check.metric). `aggregate` reduces over
seeds: mean, median, min, max give one number that must satisfy the bound; all/any require the
bound of every / at least one seed. null (a non-finite number in summary.json) is NaN: NaN
satisfies no bound except `equals: .nan`, and NaN equals only NaN.

A baseline holds every metric of every variant (`flatten`) of every cell; `compare` checks
results against it: |value - baseline| <= atol + rtol * |baseline|, per-metric tolerances
override, booleans and text compare exactly, missing and extra variants/cells are failures.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from initlab.check.metric import (
    COORDCHECK_ONLY,
    RESIDUAL_LAYER_STATS,
    RESIDUAL_ONLY,
    SCHEMA,
    SEEDS,
    MetricError,
    Node,
    Path,
    _has_text,
    _number,
    evaluate,
    parse_metric,
)
from initlab.errors import suggest

KEYS = ("variant", "metric", "aggregate", "min", "max", "between", "equals", "tol")
BOUNDS = ("min", "max", "between", "equals")
AGGREGATES = ("all", "any", "mean", "median", "min", "max")
BASELINE_FORMAT = 1

# Flattened into baselines (loss_curve is summarized by final_loss; sentence is prose).
BASELINE_KEYS = ("final_loss", "final_accuracy", "test_accuracy", "diverged", "diverged_step",
                 "diagnosis", "act_ratio", "per_layer_gain", "grad_ratio", "layers",
                 "layers_final", "steps_to_drop", "final_loss_tail")


# ---------------------------------------------------------------- expectations


@dataclass(frozen=True)
class Problem:
    """Something wrong with one expectation: `key` is the key to point at (None: the entry)."""

    index: int
    key: str | None
    message: str
    expected: str | None = None
    suggestion: str | None = None
    at_key: bool = False


@dataclass(frozen=True)
class Expectation:
    index: int
    metric: str
    tree: Node
    variant: str | None = None
    aggregate: str = "all"
    bound: str = "max"
    value: Any = None
    tol: float = 0.0

    def describe_bound(self) -> str:
        if self.bound == "between":
            return f"between {fmt(self.value[0])} and {fmt(self.value[1])}"
        if self.bound == "equals":
            return f"equals {fmt(self.value)}" + (f" ± {fmt(self.tol)}" if self.tol else "")
        return f"{self.bound} {fmt(self.value)}"

    def holds(self, x: Any) -> bool:
        if self.bound == "equals":
            return equal(x, self.value, atol=self.tol)
        if isinstance(x, str):
            return False
        v = _number(x)
        if self.bound == "min":
            return bool(v >= self.value)
        if self.bound == "max":
            return bool(v <= self.value)
        return bool(self.value[0] <= v <= self.value[1])


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _finite_num(x: Any) -> bool:
    return _is_num(x) and math.isfinite(x)


def parse_expectations(entries: Any, labels: Sequence[str] | None = None
                       ) -> tuple[list[Expectation], list[Problem]]:
    """Validate `expect:` entries (labels: the config's variants, None to skip that check)."""
    if entries is None:
        return [], []
    if not isinstance(entries, list):
        return [], [Problem(-1, None, "expected a list of expectations")]
    found: list[Expectation] = []
    problems: list[Problem] = []
    for i, entry in enumerate(entries):
        e, p = _parse_one(i, entry, labels)
        problems += p
        if e is not None and not p:
            found.append(e)
    return found, problems


def _parse_one(i: int, entry: Any, labels: Sequence[str] | None
               ) -> tuple[Expectation | None, list[Problem]]:
    if not isinstance(entry, Mapping):
        return None, [Problem(i, None, "an expectation is a mapping", "{metric: ..., max: ...}")]
    probs: list[Problem] = []
    for key in entry:
        if key not in KEYS:
            probs.append(Problem(i, str(key), f"unknown key '{key}'", "one of: " + ", ".join(KEYS),
                                 suggest(str(key), KEYS), at_key=True))
    variant = entry.get("variant")
    if variant is not None:
        if not isinstance(variant, str):
            probs.append(Problem(i, "variant", "expected a variant label (a string)"))
        elif labels is not None and variant not in labels:
            probs.append(Problem(i, "variant", f"unknown variant '{variant}'",
                                 "one of: " + ", ".join(labels), suggest(variant, labels)))
    tree: Node | None = None
    if "metric" not in entry:
        probs.append(Problem(i, None, "missing key 'metric'", "e.g. metric: final_loss"))
    else:
        try:
            tree = parse_metric(entry["metric"])
        except MetricError as e:
            probs.append(Problem(i, "metric", str(e)))
    aggregate = entry.get("aggregate", "all")
    if aggregate not in AGGREGATES:
        probs.append(Problem(i, "aggregate", f"unknown aggregate {aggregate!r}",
                             "one of: " + ", ".join(AGGREGATES), suggest(aggregate, AGGREGATES)))
    elif tree is not None and _has_text(tree) and aggregate not in ("all", "any"):
        probs.append(Problem(i, "aggregate", f"'{aggregate}' of a text metric",
                             "all or any"))
    bounds = [b for b in BOUNDS if b in entry]
    if len(bounds) != 1:
        where = bounds[1] if len(bounds) > 1 else None
        probs.append(Problem(i, where, "two bounds at once: " + " and ".join(bounds)
                             if bounds else "no bound", "exactly one of: " + ", ".join(BOUNDS),
                             at_key=bool(where)))
        return None, probs
    bound, value = bounds[0], entry[bounds[0]]
    tol = entry.get("tol", 0.0)
    if "tol" in entry and bound != "equals":
        probs.append(Problem(i, "tol", "'tol' goes with 'equals' only", at_key=True))
    elif not (_finite_num(tol) and tol >= 0):
        probs.append(Problem(i, "tol", f"tol must be a number >= 0, got {tol!r}"))
    if bound in ("min", "max") and not (_is_num(value) and not math.isnan(value)):
        probs.append(Problem(i, bound, f"{bound} must be a number, got {value!r}"))
    elif bound == "between" and not (isinstance(value, list) and len(value) == 2
                                     and all(_is_num(v) and not math.isnan(v) for v in value)
                                     and value[0] <= value[1]):
        probs.append(Problem(i, bound, f"between takes [low, high] numbers, low <= high; "
                             f"got {value!r}"))
    elif bound == "equals" and value is not None and not isinstance(value, bool | int | float
                                                                     | str):
        probs.append(Problem(i, bound, f"equals takes a number, true/false, .nan or a text; "
                             f"got {value!r}"))
    elif bound == "equals" and tree is not None and value is not None \
            and isinstance(value, str) != _has_text(tree):
        probs.append(Problem(i, bound, "compare text metrics (diagnosis) with text and numbers "
                             f"with numbers; got {value!r}"))
    if not probs and tree is not None and _has_text(tree):
        probs += _text_problems(i, entry["metric"], bound, value)
    if probs or tree is None:
        return None, probs
    if bound == "between":
        value = [float(v) for v in value]
    elif value is None:  # null is NaN, as in summary.json (results' config.yaml writes .nan so)
        value = math.nan
    return Expectation(i, entry["metric"], tree, variant, aggregate, bound, value,
                       float(tol)), []


def _text_problems(i: int, metric: Any, bound: str, value: Any) -> list[Problem]:
    """A text metric takes `equals`, and `diagnosis` one of the diagnoses initlab names (`check`
    failed such entries with exit 1; they are config errors, exit 2, in `validate` too)."""
    from initlab.diagnosis import ORDER

    if bound != "equals":
        return [Problem(i, bound, f"{metric} is text: {bound} compares numbers",
                        "equals: TEXT", at_key=True)]
    if metric == "diagnosis" and isinstance(value, str) and value not in ORDER:
        return [Problem(i, bound, f"unknown diagnosis '{value}'", "one of: " + ", ".join(ORDER),
                        suggest(value, ORDER))]
    return []


def index_problems(found: Sequence[Expectation], seeds: int | None, layers: int | None, *,
                   curve: int | None = None, kind: str | None = None) -> list[Problem]:
    """What `check` could only fail ("not in this summary"), known from the config: indices
    past its seeds (final_loss[5] of 2 seeds), its summary's layer rows (layers[10] of 3) or
    loss-curve points (loss_curve.mean[50] of 21), and metrics its kind of run does not write
    (`kind`: "mlp", "residual" or "coordcheck"; None: not known). They are config errors."""
    out: list[Problem] = []

    def not_written(parts: tuple[str | int, ...]) -> str | None:
        head = parts[0]
        if kind == "coordcheck":
            return None if head in (*COORDCHECK_ONLY, "parametrization") else \
                "a coordcheck's variants hold only " + ", ".join(COORDCHECK_ONLY)
        if head in COORDCHECK_ONLY:
            return "only a coordcheck writes it (coordcheck.expect)"
        if kind == "mlp" and (head in RESIDUAL_ONLY or (
                head in ("layers", "layers_final") and parts[-1] in RESIDUAL_LAYER_STATS)):
            return "only residual nets (model.residual) write it"
        return None

    def walk(i: int, node: Node) -> None:
        if node[0] == "path":
            path: Path = node[1]
            parts = path.parts
            reason = not_written(parts) if kind is not None else None
            if reason is not None:
                out.append(Problem(i, "metric", f"'{path.text}': {reason}",
                                   "a metric this config's results hold"))
                return
            at, n, what = 1, seeds, "seeds"
            if SCHEMA.get(str(parts[0])) != SEEDS:
                at, n, what = (1, layers, "layers") if parts[0] in ("layers", "layers_final") \
                    else (2, curve, "loss-curve points") if parts[0] == "loss_curve" \
                    else (0, None, "")
            k = parts[at] if len(parts) > at else None
            if n is not None and isinstance(k, int) and not -n <= k < n:
                out.append(Problem(i, "metric", f"'{path.text}': index {k} of {n} {what}",
                                   f"an index from {-n} to {n - 1}"))
        for sub in node[1:]:
            if isinstance(sub, tuple):
                walk(i, sub)

    for e in found:
        walk(e.index, e.tree)
    return out


# ---------------------------------------------------------------- outcomes


@dataclass
class Case:
    """One checked thing: an expectation on one variant, or one compared metric.
    `passed` None means skipped (shown, never a failure)."""

    kind: str  # "expect" | "baseline"
    cell: str
    variant: str
    name: str
    passed: bool | None
    message: str
    value: Any = None
    expected: Any = None
    index: int | None = None  # the expectation's position in `expect:`
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        where = "/".join(x for x in (self.cell, self.variant) if x)
        return f"{where}: {self.name}" if where else self.name


def fmt(x: Any) -> str:
    if isinstance(x, bool) or x is None:
        return {True: "true", False: "false", None: "null"}[x]
    if isinstance(x, float):
        return "NaN" if math.isnan(x) else f"{x:.10g}"
    if isinstance(x, list):
        return "[" + ", ".join(fmt(v) for v in x) + "]"
    return str(x)


def _aggregate(how: str, values: list[Any]) -> Any:
    nums = np.asarray([_number(v) for v in values], dtype=float)
    if not nums.size:
        return math.nan
    with np.errstate(all="ignore"):
        if how == "mean":
            return float(np.mean(nums))
        if how == "median":
            return float(np.median(nums))
        return float(np.min(nums) if how == "min" else np.max(nums))


def check_expectations(expectations: Sequence[Expectation], summary: Mapping[str, Any],
                       cell: str = "") -> list[Case]:
    variants = {str(v["label"]): v for v in summary.get("variants", [])}
    cases: list[Case] = []
    for e in expectations:
        targets = [e.variant] if e.variant is not None else list(variants)
        for label in targets:
            name = f"{e.aggregate} {e.metric} {e.describe_bound()}"
            case = Case("expect", cell, label, name, False, "", index=e.index)
            cases.append(case)
            if label not in variants:  # an override (--set init=...) removed it: not checked
                case.passed = None
                case.message = f"{label}: skipped: no such variant in these results"
                continue
            try:
                values = evaluate(e.tree, variants[label])
            except MetricError as err:
                case.message = f"{label}: {err}"
                continue
            if e.aggregate in ("all", "any"):
                ok = [e.holds(v) for v in values]
                case.passed = all(ok) if e.aggregate == "all" else any(ok)
                case.value = values if len(values) > 1 else values[0]
                bad = [f"{fmt(v)} (seed {s})" for s, (v, k) in enumerate(zip(values, ok))
                       if not k]
                detail = (f"{', '.join(bad)} not {e.describe_bound()}" if e.aggregate == "all"
                          else f"no seed {e.describe_bound()}: {fmt(values)}")
            else:
                value = _aggregate(e.aggregate, values)
                case.passed, case.value = e.holds(value), value
                detail = f"{e.aggregate} = {fmt(value)}, expected {e.describe_bound()}"
            case.expected = e.describe_bound()
            if case.passed:
                detail = f"{e.aggregate} {fmt(case.value)}, {e.describe_bound()}"
            case.message = f"{label}: {e.metric}: {detail}"
    return cases


# ---------------------------------------------------------------- baselines


def equal(a: Any, b: Any, *, rtol: float = 0.0, atol: float = 0.0) -> bool:
    """|a - b| <= atol + rtol * |b| for numbers (null = NaN; NaN equals only NaN); booleans
    and text exactly."""
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, bool) and isinstance(b, bool):
        return a == b
    try:
        x, y = _number(a), _number(b)
    except MetricError:  # a list or a mapping where a number belongs (a damaged summary)
        return bool(a == b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y) or x == y:
        return x == y
    # rtol x 0 is 0 (not NaN when rtol is inf): against 0 only atol counts
    return abs(x - y) <= atol + (rtol * abs(y) if y != 0 else 0.0)


def flatten(variant: Mapping[str, Any]) -> dict[str, Any]:
    """Every baseline metric of one variant as {path: value}: final_loss[0], layers[2].act_var."""
    out: dict[str, Any] = {}
    for key in BASELINE_KEYS:
        if key not in variant:
            continue
        value = variant[key]
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    for stat, x in item.items():
                        out[f"{key}[{i}].{stat}"] = x
                else:
                    out[f"{key}[{i}]"] = item
        elif value is not None or key not in ("final_accuracy", "test_accuracy"):
            out[key] = value
    return out


def baseline_doc(summaries: Mapping[str, Mapping[str, Any]], version: str = "") -> dict[str, Any]:
    """The baseline of results {cell: summary} (cell "" for a single result is its name)."""
    cells = {}
    for cell, s in summaries.items():
        cells[cell or str(s.get("name", "results"))] = {
            "config_hash": s.get("config_hash"),
            "variants": {str(v["label"]): flatten(v) for v in s.get("variants", [])},
        }
    return {"format_version": BASELINE_FORMAT, "initlab_version": version, "cells": cells}


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


def parse_tol(text: str, default: Tolerance) -> tuple[str, Tolerance]:
    """'final_loss=rtol:1e-3' or 'layers.act_var=rtol:1e-4,atol:1e-12' -> (pattern, Tolerance)."""
    pattern, eq, spec = text.partition("=")
    if not eq or not pattern.strip() or not spec.strip():
        raise ValueError(f"cannot use '{text}'; expected METRIC=rtol:R[,atol:A]")
    values = {"rtol": default.rtol, "atol": default.atol}
    for part in spec.split(","):
        name, colon, raw = part.partition(":")
        name = name.strip()
        if not colon or name not in values:
            raise ValueError(f"cannot use '{part}' in '{text}'; expected rtol:R or atol:A")
        try:
            x = float(raw)
        except ValueError:
            raise ValueError(f"'{raw}' in '{text}' is not a number") from None
        if not (math.isfinite(x) and x >= 0):
            raise ValueError(f"'{raw}' in '{text}': a tolerance is a finite number >= 0")
        values[name] = x
    return pattern.strip(), Tolerance(values["rtol"], values["atol"])


def _generic(key: str) -> str:
    """layers[3].act_var -> layers.act_var; final_loss[0] -> final_loss."""
    return re.sub(r"\[-?\d+\]", "", key)


def tolerance_for(key: str, default: Tolerance,
                  overrides: Sequence[tuple[str, Tolerance]]) -> Tolerance:
    """The last --tol whose pattern matches `key` exactly, without indices, or as a glob."""
    for pattern, tol in reversed(overrides):
        if pattern in (key, _generic(key)) or fnmatch.fnmatchcase(key, pattern) \
                or fnmatch.fnmatchcase(_generic(key), pattern):
            return tol
    return default


def compare(summaries: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Any],
            default: Tolerance, overrides: Sequence[tuple[str, Tolerance]] = ()) -> list[Case]:
    """Results {cell: summary} against a baseline document (see `baseline_doc`)."""
    current = baseline_doc(summaries)["cells"]
    base = baseline.get("cells") or {}
    cases: list[Case] = []
    for cell in [*base, *(c for c in current if c not in base)]:
        if cell not in current:
            cases.append(Case("baseline", cell, "", "cell", False,
                              f"{cell}: missing from the results (the baseline has it)"))
            continue
        if cell not in base:
            cases.append(Case("baseline", cell, "", "cell", False,
                              f"{cell}: not in the baseline (extra cell); update the baseline"))
            continue
        b, c = base[cell] or {}, current[cell]
        ok = b.get("config_hash") == c["config_hash"]
        cases.append(Case("baseline", cell, "", "config_hash", ok,
                          f"{cell}: config_hash {c['config_hash']}" + (
                              "" if ok else f" != baseline {b.get('config_hash')}: the results "
                              "come from a different config; update the baseline if intended"),
                          c["config_hash"], b.get("config_hash")))
        bv, cv = b.get("variants") or {}, c["variants"]
        for label in [*bv, *(v for v in cv if v not in bv)]:
            if label not in cv or label not in bv:
                what = "missing from the results" if label not in cv else "not in the baseline"
                cases.append(Case("baseline", cell, label, "variant", False,
                                  f"{label}: variant {what}"))
                continue
            cases += _compare_variant(cell, label, cv[label], bv[label] or {}, default, overrides)
    return cases


def _compare_variant(cell: str, label: str, cur: Mapping[str, Any], base: Mapping[str, Any],
                     default: Tolerance, overrides: Sequence[tuple[str, Tolerance]]
                     ) -> list[Case]:
    cases = []
    for key in [*base, *(k for k in cur if k not in base)]:
        if key not in cur:
            cases.append(Case("baseline", cell, label, key, False,
                              f"{label}: {key}: missing from the results (baseline "
                              f"{fmt(base[key])})", None, base[key]))
            continue
        if key not in base:
            cases.append(Case("baseline", cell, label, key, None,
                              f"{label}: {key}: new metric, not in the baseline (skipped)",
                              cur[key]))
            continue
        tol = tolerance_for(key, default, overrides)
        a, b = cur[key], base[key]
        ok = equal(a, b, rtol=tol.rtol, atol=tol.atol)
        text = f"{label}: {key} = {fmt(a)}, baseline {fmt(b)}"
        if not ok and _is_num(a) and _is_num(b) and math.isfinite(a) and math.isfinite(b):
            diff = abs(a - b)
            rel = diff / abs(b) if b else math.inf
            text += (f" (|diff| {diff:.3g}, relative {rel:.3g}; tolerance rtol {tol.rtol:g}, "
                     f"atol {tol.atol:g})")
        elif not ok:
            text += f" (tolerance rtol {tol.rtol:g}, atol {tol.atol:g}; NaN equals only NaN)"
        cases.append(Case("baseline", cell, label, key, ok, text, a, b,
                          extra={"rtol": tol.rtol, "atol": tol.atol}))
    return cases
