"""Sweep grids: the `sweep:` section and `--grid` options -> axes (initlab.sweep.plan expands
them into cells). Values are read by the bounded safe reader of configs (`YamlReader`), repeated
values are dropped, and no axis (range) or grid has more than MAX_CELLS values or cells.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from initlab.config.positions import YamlReader, line_col
from initlab.errors import Problem

GRID = "--grid"  # the `file` of problems in --grid axes
MAX_CELLS = 10_000  # a grid (and a range) larger than this is refused before it is expanded


# ---------------------------------------------------------------- the grid


@dataclass
class Axis:
    """One dimension of the grid: `keys` take their i-th values together (one key unless
    zipped). `nodes[i]` is the YAML node of value i, for positioned errors (None for --grid)."""

    keys: tuple[str, ...]
    values: list[tuple[Any, ...]]
    file: str | None = None
    nodes: list[list[Any]] = field(default_factory=list)  # [key][i] -> yaml node or None

    @property
    def name(self) -> str:
        return "+".join(self.keys)


def _range(spec: Mapping[str, Any]) -> list[Any]:
    """{range: [lo, hi, n], log: bool} -> n values from lo to hi inclusive (ints stay ints)."""
    extra = set(spec) - {"range", "log"}
    if extra:
        raise ValueError(f"unknown key(s) {sorted(extra)} in a range; expected range and log")
    r: Any = spec.get("range")
    log = spec.get("log", False)
    ok = isinstance(r, list) and len(r) == 3 and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in r)
    if not ok or not isinstance(r[2], int) or r[2] < 1 or not isinstance(log, bool):
        raise ValueError("a range is {range: [lo, hi, n], log: true|false} with n >= 1")
    lo, hi, n = float(r[0]), float(r[1]), int(r[2])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("a range needs finite lo and hi (not .inf or .nan)")
    if n > MAX_CELLS:
        raise ValueError(f"a range of {n} values; at most {MAX_CELLS} values per axis")
    if log and (lo <= 0 or hi <= 0):
        raise ValueError("a log range needs lo > 0 and hi > 0")
    if n == 1:
        pts = [lo]
    elif log:
        pts = [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / (n - 1))
               for i in range(n)]
    else:
        pts = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
    vals = [float(f"{p:.12g}") for p in pts]
    if isinstance(r[0], int) and isinstance(r[1], int) and all(v == int(v) for v in vals):
        return [int(v) for v in vals]
    return vals


def canonical(value: Any) -> str:
    """A value as one line of YAML flow text that YamlReader reads back as the same value
    (JSON, with .inf/-.inf/.nan for non-finite floats, which JSON spells as strings)."""
    try:
        return json.dumps(value, allow_nan=False, default=str, sort_keys=True)
    except ValueError:
        text = yaml.safe_dump(value, default_flow_style=True, width=2**30)
        return text.removesuffix("\n").removesuffix("\n...").strip()


def unique(values: Sequence[Any]) -> list[Any]:
    """`values` without repeats (0.1, 0.1 and 0.10 are one value), first occurrence kept."""
    return list({canonical(v): v for v in reversed(values)}.values())[::-1]


def _values(raw: Any) -> list[Any]:
    if isinstance(raw, Mapping) and "range" in raw:
        return unique(_range(raw))
    if isinstance(raw, list) and raw:
        return unique(raw)
    raise ValueError("expected a non-empty list of values or {range: [lo, hi, n], log: bool}")


KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")


def _check_key(key: str) -> None:
    if not KEY_RE.match(key):
        raise ValueError(f"'{key}' is not a dotted config key (e.g. model.depth, init.scale)")
    if key.split(".")[0] in ("name", "sweep", "seeds"):
        raise ValueError(f"'{key}' cannot be swept (name and seeds are the same for every cell; "
                         "sweep `seed` instead of `seeds`)")


def _node_at(node: Any, key: str) -> tuple[Any, Any]:
    """(key node, value node) of `key` in a YAML mapping node, or (None, None)."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return k, v
    return None, None


def _items(node: Any, n: int) -> list[Any]:
    """The node of each value (the list items; the range node for every value of a range)."""
    if isinstance(node, yaml.SequenceNode) and len(node.value) == n:
        return list(node.value)
    return [node] * n


def _problem(message: str, path: str, file: str | None, node: Any,
             expected: str | None = None) -> Problem:
    line, col = line_col(getattr(node, "start_mark", None))
    return Problem(message, path, file, line, col, expected)


def parse_section(section: Any, node: Any, file: str | None) -> tuple[list[Axis], list[Problem]]:
    """The `sweep:` mapping -> axes, with every problem positioned in `file`."""
    axes: list[Axis] = []
    problems: list[Problem] = []
    if section is None:
        return axes, problems
    if not isinstance(section, Mapping):
        return axes, [_problem("the sweep section must be a mapping of dotted keys to values",
                               "sweep", file, node, "e.g. {model.depth: [5, 10]}")]
    for key, raw in section.items():
        key_node, value_node = _node_at(node, str(key))
        if key == "zip":
            groups = raw if isinstance(raw, list) else [raw]
            gnodes = value_node.value if isinstance(value_node, yaml.SequenceNode) else \
                [value_node] * len(groups)
            for gi, (group, gnode) in enumerate(zip(groups, gnodes)):
                where = f"sweep.zip.{gi}" if isinstance(raw, list) else "sweep.zip"
                if not isinstance(group, Mapping) or len(group) < 1:
                    problems.append(_problem("a zip group maps dotted keys to equal-length "
                                             "lists", where, file, gnode))
                    continue
                axis, found = _axis(group, gnode, file, where)
                problems += found
                if axis is not None:
                    axes.append(axis)
            continue
        axis, found = _axis({key: raw}, node, file, "sweep")
        problems += found
        if axis is not None:
            axes.append(axis)
        del key_node
    return axes, problems


def _axis(group: Mapping[str, Any], node: Any, file: str | None,
          where: str) -> tuple[Axis | None, list[Problem]]:
    keys, columns, nodes, problems = [], [], [], []
    for key, raw in group.items():
        _, value_node = _node_at(node, str(key))
        try:
            _check_key(str(key))
            vals = _values(raw)
        except ValueError as e:
            problems.append(_problem(str(e), f"{where}.{key}", file, value_node or node))
            continue
        keys.append(str(key))
        columns.append(vals)
        nodes.append(_items(value_node, len(vals)))
    if problems:
        return None, problems
    lengths = {len(c) for c in columns}
    if len(lengths) > 1:
        sizes = ", ".join(f"{k}: {len(c)}" for k, c in zip(keys, columns))
        return None, [_problem(f"zipped axes need the same number of values ({sizes})", where,
                               file, node)]
    values = [tuple(t) for t in zip(*columns)]
    if len(keys) > 1:  # a zip group: repeated tuples are one
        values = unique(values)
    return Axis(tuple(keys), values, file, nodes), []


def _split_top(text: str) -> list[str]:
    """'1,[2,3],{a: 4}' -> ['1', '[2,3]', '{a: 4}']: commas outside brackets and quotes."""
    parts, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def _read(text: str) -> Any:
    """One --grid value, read like --set values (bounded safe reader; 1e-3 is a number)."""
    reader = YamlReader(GRID)
    value = reader.read(text)
    if reader.problems:
        raise ValueError(reader.problems[0].message)
    return value


def parse_grid(options: Sequence[str]) -> tuple[list[Axis], list[Problem]]:
    """`--grid key=v1,v2,...` (each value YAML), `--grid 'key={range: [lo, hi, n]}'` or
    `--grid 'zip={key1: [...], key2: [...]}'` (keys that move together)."""
    axes, problems = [], []
    for text in options:
        key, eq, raw = str(text).partition("=")
        key = key.strip()
        try:
            if not eq or not raw.strip():
                raise ValueError(f"cannot use '{text}'; expected key=v1,v2 (e.g. "
                                 "model.depth=5,10,20)")
            if key == "zip":
                group = _read(raw)
                if not isinstance(group, Mapping) or not group:
                    raise ValueError("expected zip={key1: [v1, v2], key2: [w1, w2]}")
                axis, found = _axis(group, None, GRID, "zip")
                problems += found
                if axis is not None:
                    axis.nodes = [[None] * len(axis.values) for _ in axis.keys]
                    axes.append(axis)
                continue
            _check_key(key)
            parts = _split_top(raw)
            vals = [_read(p) for p in parts]
            if len(vals) == 1 and isinstance(vals[0], Mapping) and "range" in vals[0]:
                vals = _values(vals[0])
            vals = unique(vals)
        except ValueError as e:
            problems.append(Problem(str(e).splitlines()[0], key, GRID))
            continue
        axes.append(Axis((key,), [(v,) for v in vals], GRID, [[None] * len(vals)]))
    return axes, problems
