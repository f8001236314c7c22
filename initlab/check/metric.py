"""Metric expressions over one variant of summary.json: parse once, evaluate per variant
(pure functions, no I/O). Used by `expect:` entries and `initlab check`.

A metric is a path into one variant of summary.json, or simple arithmetic between paths:

    expr := term (("+" | "-") term)*      term := unary (("*" | "/") unary)*
    unary := "-" unary | atom             atom := NUMBER | PATH | "(" expr ")"
    PATH := key ("." key | "[" int "]")*  e.g. final_loss, layers[-1].act_var, loss_curve.mean[-1]

Per-seed keys (final_loss, diverged, ...) give one value per seed (index one: final_loss[0]);
everything else is one number, broadcast over seeds. null (a non-finite number in
summary.json) is NaN.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from initlab.errors import suggest

# The per-variant part of summary.json (docs/CONTRACTS.md): what a metric path may name.
SEEDS, NUMBER, TEXT, SERIES = "per-seed", "number", "text", "series"
LAYER_STATS = ("layer", "width", "act_mean", "act_var", "pre_var", "grad_var", "weight_grad_var",
               "saturated", "dead", "act_var_theory")
RESIDUAL_LAYER_STATS = ("chan_sq_mean", "chan_var")  # a residual net's layers only
# the keys only one kind of run writes: the others' checks fail them ("not in this summary")
RESIDUAL_ONLY = ("stream_ratio", "stream_ratio_theory", "stream_growth_per_block_theory",
                 "alpha", "alpha_init", "alpha_trained")
COORDCHECK_ONLY = ("slope", "max_slope", "max_abs_slope", "max_abs_hidden_slope")
SCHEMA: dict[str, Any] = {
    "final_loss": SEEDS, "final_accuracy": SEEDS, "test_accuracy": SEEDS, "diverged": SEEDS,
    "diverged_step": SEEDS, "lr": NUMBER, "act_ratio": NUMBER, "per_layer_gain": NUMBER,
    "grad_ratio": NUMBER, "diagnosis": TEXT, "steps_to_drop": SEEDS, "final_loss_tail": SEEDS,
    "delayed": SEEDS,
    "steps_to_drop_median": NUMBER, "final_loss_tail_median": NUMBER,
    "loss_curve": {k: SERIES for k in ("steps", "mean", "std", "min", "max")},
    "layers": [dict.fromkeys(LAYER_STATS + RESIDUAL_LAYER_STATS, NUMBER)],
    "layers_final": [dict.fromkeys(LAYER_STATS[:-1] + RESIDUAL_LAYER_STATS, NUMBER)],
    # a residual net's variants (initlab.experiment_residual, docs/residual.md)
    "stream_ratio": NUMBER, "stream_ratio_theory": NUMBER,
    "stream_growth_per_block_theory": NUMBER, "alpha_init": NUMBER, "alpha_trained": NUMBER,
    "alpha": {k: SERIES for k in ("blocks", "init", "final")},
    "parametrization": TEXT,
    # a coordcheck's variants (initlab.sweep.coordcheck): slope[t][l - 1] of log l1 on log
    # width; per step t the largest slope, largest |slope|, largest |slope| before the readout
    "slope": [[NUMBER]], "max_slope": [NUMBER], "max_abs_slope": [NUMBER],
    "max_abs_hidden_slope": [NUMBER],
}

class MetricError(ValueError):
    """A metric expression that does not parse or names nothing in summary.json."""


# Bounds that keep the recursive parser and evaluator far from Python's recursion limit
# (2000 nested parentheses or 5000 unary minus signs were a RecursionError).
MAX_DEPTH = 50  # nested parentheses and unary minus signs
MAX_TOKENS = 400  # numbers, paths and operators (a chain of n operators is n deep)


# ---------------------------------------------------------------- metric expressions

_TOKEN = re.compile(r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
                    r"|(?P<path>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[\s*-?\d+\s*\])*)"
                    r"|(?P<op>[-+*/()]))")
_PART = re.compile(r"\.?([A-Za-z_]\w*)|\[\s*(-?\d+)\s*\]")


@dataclass(frozen=True)
class Path:
    text: str
    parts: tuple[str | int, ...]
    kind: str  # SEEDS (a list over seeds), NUMBER or TEXT


Node = tuple[Any, ...]  # ("num", x) | ("path", Path) | ("neg", a) | ("op", "+", a, b)


def _tokens(text: str) -> list[tuple[str, Any, int]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise MetricError(f"cannot read '{text[pos:].strip()[:20]}' (column {pos + 1})")
        kind = m.lastgroup or ""
        value: Any = m.group(kind)
        out.append((kind, float(value) if kind == "num" else value, m.start(kind) + 1))
        pos = m.end()
    return out


def _path(text: str) -> Path:
    """Check a path against SCHEMA: every key known, lists indexed, a number or text at the end."""
    parts: list[str | int] = [int(i) if i else k for k, i in _PART.findall(text)]
    node: Any = SCHEMA
    seen = ""
    for i, part in enumerate(parts):
        if isinstance(node, dict):
            if not isinstance(part, str) or part not in node:
                names = sorted(node)
                hint = suggest(str(part), names)
                where = f" of '{seen}'" if seen else ""
                where += f" in '{text}'" if text != part else ""
                raise MetricError(f"unknown metric '{part}'{where}; expected one of: "
                                  + ", ".join(names)
                                  + (f"; did you mean '{hint}'?" if hint else ""))
            node = node[part]
        elif isinstance(node, list) or node in (SEEDS, SERIES):
            if not isinstance(part, int):
                raise MetricError(f"'{seen}' is a list: index it, e.g. '{seen}[-1]'")
            if node == SEEDS:
                if i != len(parts) - 1:
                    raise MetricError(f"'{seen}[{part}]' is one number; nothing follows it")
                return Path(text, tuple(parts), NUMBER)
            node = node[0] if isinstance(node, list) else NUMBER
        else:
            raise MetricError(f"'{seen}' is {node}; '{text}' goes beyond it")
        seen += f"[{part}]" if isinstance(part, int) else (f".{part}" if seen else part)
    if isinstance(node, dict):
        raise MetricError(f"'{text}' is a group; name one of: " + ", ".join(sorted(node)))
    if isinstance(node, list) or node == SERIES:
        raise MetricError(f"'{text}' is a list: index it, e.g. '{text}[-1]'")
    return Path(text, tuple(parts), node)


def parse_metric(text: str) -> Node:
    """The expression tree of a metric (MetricError on a syntax error or an unknown name)."""
    if not isinstance(text, str) or not text.strip():
        raise MetricError("a metric is a non-empty string, e.g. final_loss")
    toks = _tokens(text)
    if len(toks) > MAX_TOKENS:
        raise MetricError(f"a metric has at most {MAX_TOKENS} numbers, names and operators; "
                          f"this one has {len(toks)}")
    pos = depth = 0

    def peek() -> tuple[str, Any, int] | None:
        return toks[pos] if pos < len(toks) else None

    def take() -> tuple[str, Any, int]:
        nonlocal pos
        tok = peek()
        if tok is None:
            raise MetricError(f"'{text}' ends too early")
        pos += 1
        return tok

    def chain(operand: Callable[[], Node], ops: tuple[str, str]) -> Node:
        """operand (op operand)*, left-associative."""
        node = operand()
        while (t := peek()) is not None and t[1] in ops:
            take()
            node = ("op", t[1], node, operand())
        return node

    def expr() -> Node:
        return chain(term, ("+", "-"))

    def term() -> Node:
        return chain(unary, ("*", "/"))

    def deeper() -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_DEPTH:
            raise MetricError(f"a metric nests at most {MAX_DEPTH} parentheses and minus signs")

    def unary() -> Node:
        nonlocal depth
        t = peek()
        if t is not None and t[1] == "-":
            take()
            deeper()
            node = ("neg", unary())
            depth -= 1
            return node
        return atom()

    def atom() -> Node:
        kind, value, col = take()
        if kind == "num":
            return ("num", value)
        if kind == "path":
            return ("path", _path(value))
        if value == "(":
            nonlocal depth
            deeper()
            node = expr()
            depth -= 1
            if take()[1] != ")":
                raise MetricError(f"missing ')' in '{text}'")
            return node
        raise MetricError(f"unexpected '{value}' at column {col} of '{text}'")

    tree = expr()
    if (t := peek()) is not None:
        raise MetricError(f"unexpected '{t[1]}' at column {t[2]} of '{text}'")
    if tree[0] != "path" and _has_text(tree):
        raise MetricError(f"'{text}': text metrics (diagnosis) take no arithmetic")
    return tree


def _has_text(node: Node) -> bool:
    if node[0] == "path":
        return bool(node[1].kind == TEXT)
    return any(_has_text(n) for n in node[1:] if isinstance(n, tuple))


def _lookup(variant: Mapping[str, Any], path: Path) -> Any:
    node: Any = variant
    for part in path.parts:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            raise MetricError(f"'{path.text}' is not in this summary") from None
    return node


def _number(x: Any) -> float:
    if x is None:
        return math.nan
    if isinstance(x, bool | int | float):
        return float(x)
    raise MetricError(f"expected a number, found {x!r}")


def evaluate(tree: Node, variant: Mapping[str, Any]) -> list[Any]:
    """One value per seed (a single value for a metric without per-seed parts). Values are
    float (NaN for null), bool for a bare per-seed boolean path, or str for text."""
    if tree[0] == "path":
        raw = _lookup(variant, tree[1])
        values = raw if isinstance(raw, list) else [raw]
        if all(isinstance(v, bool) for v in values) or tree[1].kind == TEXT:
            return list(values)
        return [_number(v) for v in values]
    with np.errstate(all="ignore"):
        out = np.atleast_1d(_numeric(tree, variant))
    return [float(v) for v in out]


def _numeric(node: Node, variant: Mapping[str, Any]) -> np.ndarray:
    if node[0] == "num":
        return np.asarray(node[1], dtype=float)
    if node[0] == "path":
        raw = _lookup(variant, node[1])
        return np.asarray([_number(v) for v in raw] if isinstance(raw, list) else _number(raw))
    if node[0] == "neg":
        return -_numeric(node[1], variant)
    a, b = _numeric(node[2], variant), _numeric(node[3], variant)
    if a.shape != b.shape and a.ndim and b.ndim:
        raise MetricError(f"per-seed values of different lengths ({a.size} and {b.size})")
    return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}[node[1]](a, b)
