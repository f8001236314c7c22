"""Sweep plans: a grid of configs ("cells") expanded, validated and grouped into populations.

    plan = make_plan("configs/depth_sweep.yaml", grid=["train.lr=0.01,0.1"])
    plan.cells, plan.populations   # run by initlab.sweep.execute.run_plan

Grid syntax (the `sweep:` section of a config; docs/sweep.md):

    sweep:
      model.depth: [5, 10, 20, 50]                   # an axis: a dotted key and its values
      init: [xavier_normal, he_normal]               # `init` values: what `init:` accepts
      init.scale: {range: [0.5, 4.0, 8], log: true}  # init.<key>: set in every variant
      zip:                                           # axes that move together
        - {model.width: [8, 16], train.lr: [0.1, 0.05]}

Axes combine as a cartesian product (first axis outermost); a zip group is one axis whose keys
take their i-th values together. `--grid key=v1,v2` adds an axis from the command line.

A cell is the config with one value per axis, checked by `load_config` like any config. Its id
is content-addressed: 16 hex chars of sha256 over the canonical JSON of its resolved config
(without `name`) and the results format version. Cells whose resolved configs differ only in
their init variants (scheme, scale, bias, lr), `seed` or `train.lr` share data, architecture and
schedule, so they train as ONE population: the merged config lists every cell's variants (seed
s of variant v draws from SeedSequence([its cell's seed, s]) as in `initlab run`) and the Result
is split back per cell. A member's numbers do not depend on its population mates, so a cell
gets the numbers `initlab run` would give it. `seed` also seeds the data when `data.seed` is
null: cells of different seeds then have different data and cannot share a population.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from initlab.config.positions import SET, line_col
from initlab.errors import ConfigError, Problem

RESULTS_FORMAT = 1  # initlab.results.folder.FORMAT_VERSION; part of every cell id
GRID = "--grid"  # the `file` of problems in --grid axes


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


def _values(raw: Any) -> list[Any]:
    if isinstance(raw, Mapping) and "range" in raw:
        return _range(raw)
    if isinstance(raw, list) and raw:
        return list(raw)
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
    return Axis(tuple(keys), [tuple(t) for t in zip(*columns)], file, nodes), []


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


def parse_grid(options: Sequence[str]) -> tuple[list[Axis], list[Problem]]:
    """`--grid key=v1,v2,...` (each value YAML) or `--grid 'key={range: [lo, hi, n]}'`."""
    axes, problems = [], []
    for text in options:
        key, eq, raw = str(text).partition("=")
        key = key.strip()
        try:
            if not eq or not raw.strip():
                raise ValueError(f"cannot use '{text}'; expected key=v1,v2 (e.g. "
                                 "model.depth=5,10,20)")
            _check_key(key)
            if raw.strip().startswith("{"):
                vals = _values(yaml.safe_load(raw))
            else:
                vals = [yaml.safe_load(p) for p in _split_top(raw)]
        except (ValueError, yaml.YAMLError) as e:
            problems.append(Problem(str(e).splitlines()[0], key, GRID))
            continue
        axes.append(Axis((key,), [(v,) for v in vals], GRID, [[None] * len(vals)]))
    return axes, problems


# ---------------------------------------------------------------- cells and populations


@dataclass
class Cell:
    index: int
    values: dict[str, Any]  # swept key -> value
    config: dict[str, Any]  # resolved (config.schema.resolved_with_hash)
    id: str
    group: str = ""  # population key


@dataclass
class Population:
    cells: list[Cell]
    config: dict[str, Any]  # the merged resolved config
    variant_seeds: list[int]  # base seed of each merged variant
    memory_bytes: int | None = None

    @property
    def members(self) -> int:
        return len(self.config["init"]) * int(self.config["seeds"])


@dataclass
class Plan:
    source: str
    name: str
    axes: list[Axis]
    sets: list[str]
    cells: list[Cell]
    populations: list[Population]

    def grid_doc(self) -> dict[str, Any]:
        return {"axes": [{"keys": list(a.keys), "values": [list(v) for v in a.values]}
                         for a in self.axes],
                "cells": len(self.cells), "populations": len(self.populations)}


def cell_id(resolved: Mapping[str, Any]) -> str:
    """Content address: the resolved config without its name, and the results format."""
    doc = {k: v for k, v in resolved.items() if k not in ("name", "config_hash")}
    text = json.dumps({"config": doc, "results_format": RESULTS_FORMAT}, sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def group_key(resolved: Mapping[str, Any]) -> str:
    """What must be equal for cells to share a population: all but variants, seed and lr."""
    doc = copy.deepcopy({k: v for k, v in resolved.items()
                         if k not in ("name", "config_hash", "init", "seed", "expect")})
    if doc["data"].get("seed") is None:
        doc["data"]["seed"] = resolved.get("seed", 0)
    doc["train"].pop("lr", None)
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _strip_section(path: str) -> tuple[str, Any, Any]:
    """The config text with its `sweep:` entry blanked out (lines keep their numbers), the
    section's value and its YAML node."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return text, None, None  # load_config reports it
    key_node, value_node = _node_at(root, "sweep")
    if key_node is None:
        return text, None, None
    a, b = key_node.start_mark.index, value_node.end_mark.index
    blank = re.sub(r"[^\n]", " ", text[a:b])
    doc = yaml.safe_load(text)
    return text[:a] + blank + text[b:], doc.get("sweep"), value_node


def _override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value, default=str)}"


def _init_count(base_text: str, sets: Sequence[str]) -> int:
    doc = yaml.safe_load(base_text) or {}
    init = doc.get("init") if isinstance(doc, Mapping) else None
    for s in sets:
        k, _, v = s.partition("=")
        if k.strip() == "init":
            init = yaml.safe_load(v)
    return len(init) if isinstance(init, list) else 1


def _replaced(section: list[Axis], grid: Sequence[Axis]) -> list[Axis]:
    """The config's axes, a --grid axis of the same key(s) in place of the config's, then the
    other --grid axes. A zipped axis is replaced only as a whole (part of one is reported as
    swept twice)."""
    given = {a.keys: a for a in grid}
    out = [given.get(a.keys, a) for a in section]
    return out + [a for a in grid if all(a is not b for b in out)]


def make_plan(source: str, grid: Sequence[str] = (), sets: Sequence[str] = (), *,
              memory: bool = False) -> Plan:
    """Expand, validate (every cell, every problem at once: ConfigError) and group."""
    from initlab.config.schema import load_config, resolved_with_hash

    text, section, node = _strip_section(source)
    axes, problems = parse_section(section, node, source)
    grid_axes, grid_problems = parse_grid(grid)
    axes = _replaced(axes, grid_axes)
    problems += grid_problems
    if problems:
        raise ConfigError(problems)
    seen: dict[str, str] = {}
    for a in axes:
        for k in a.keys:
            if k in seen:
                problems.append(Problem(f"'{k}' is swept twice", k, a.file))
            seen[k] = a.name
    if problems:
        raise ConfigError(problems)

    fd, tmp = tempfile.mkstemp(prefix=".sweep-", suffix=".yaml")
    cells: list[Cell] = []
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        points = list(itertools.product(*[range(len(a.values)) for a in axes]))
        for i, point in enumerate(points):
            values: dict[str, Any] = {}
            origin: dict[str, tuple[Axis, int, int]] = {}  # override key -> (axis, key#, value#)
            for a, j in zip(axes, point):
                for ki, k in enumerate(a.keys):
                    values[k] = a.values[j][ki]
            # `init` first, so that init.<key> knows how many variants there are
            order = sorted(values, key=lambda k: (k != "init", list(values).index(k)))
            overrides = []
            n_init = len(values["init"]) if isinstance(values.get("init"), list) else \
                (1 if "init" in values else _init_count(text, sets))
            for k in order:
                a = next(ax for ax in axes if k in ax.keys)
                where = (a, a.keys.index(k), point[axes.index(a)])
                parts = k.split(".")
                if parts[0] == "init" and len(parts) > 1 and not parts[1].isdigit():
                    for v in range(n_init):
                        okey = ".".join(["init", str(v), *parts[1:]])
                        overrides.append(_override(okey, values[k]))
                        origin[okey] = where
                else:
                    overrides.append(_override(k, values[k]))
                    origin[k] = where
            try:
                # `expect:` (for `initlab check`) names the base config's variants: not a
                # cell's business
                cfg = load_config(tmp, overrides=[*sets, "expect=null", *overrides])
                resolved = resolved_with_hash(cfg)
            except ConfigError as e:
                problems += [_reposition(p, origin, source, tmp, values) for p in e.problems]
                continue
            cells.append(Cell(i, values, resolved, cell_id(resolved), group_key(resolved)))
    finally:
        os.unlink(tmp)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return Plan(source, cells[0].config["name"] if cells else "sweep", axes, list(sets), cells,
                group(cells, memory=memory))


def _reposition(p: Problem, origin: Mapping[str, tuple[Axis, int, int]], source: str, tmp: str,
                values: Mapping[str, Any]) -> Problem:
    """A cell's problem: at the swept value that caused it, else in the config file."""
    if p.file == SET:
        for okey, (axis, ki, j) in origin.items():
            if p.path == okey or p.path.startswith(okey + "."):
                node = axis.nodes[ki][j] if axis.nodes else None
                path = p.path.replace(okey, axis.keys[ki], 1) if okey != axis.keys[ki] else \
                    p.path
                line, col = line_col(getattr(node, "start_mark", None))
                shown = json.dumps(values[axis.keys[ki]], default=str)
                return Problem(f"{p.message} (swept value {shown})", path,
                               axis.file if axis.file is not None else source, line, col,
                               p.expected, p.suggestion)
        return p
    if p.file == tmp:
        cell = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in values.items())
        return Problem(p.message + (f" (in the cell {cell})" if cell else ""), p.path, source,
                       p.line, p.col, p.expected, p.suggestion)
    return p


def group(cells: Sequence[Cell], *, memory: bool = False) -> list[Population]:
    """Cells with the same group key -> one Population (in first-cell order)."""
    by_key: dict[str, list[Cell]] = {}
    for c in cells:
        by_key.setdefault(c.group, []).append(c)
    return [merge(cs, memory=memory) for cs in by_key.values()]


def merge(cells: Sequence[Cell], *, memory: bool = False) -> Population:
    """One resolved config whose `init` lists every cell's variants (labels made unique)."""
    base = copy.deepcopy(cells[0].config)
    base["data"]["seed"] = base["data"].get("seed")
    if base["data"]["seed"] is None:
        base["data"]["seed"] = base.get("seed", 0)
    variants, seeds = [], []
    for k, c in enumerate(cells):
        for v in c.config["init"]:
            variants.append({**v, "label": f"c{k}:{v['label']}"})
            seeds.append(int(c.config.get("seed", 0)))
    base["init"] = variants
    base["seed"] = seeds[0]
    base["config_hash"] = None
    pop = Population(list(cells), base, seeds)
    if memory:
        pop.memory_bytes = estimate_memory(base)
    return pop


def estimate_memory(cfg: Mapping[str, Any]) -> int | None:
    """Bytes a population needs: `resources.estimate` when available, else a rough formula
    (params + activations x batch) x M x 8 bytes."""
    try:
        from initlab import resources
        return int(resources.estimate(cfg, resources.data_shape(cfg)).total)
    except Exception:
        pass
    try:
        from initlab.experiment import load_data
        ds = load_data(cfg)
        sizes = [ds.n_in, *cfg["model"]["widths"], ds.n_out]
    except Exception:
        return None
    M = len(cfg["init"]) * int(cfg["seeds"])
    batch = cfg["train"].get("batch_size") or len(ds.x)
    params = sum(a * b + b for a, b in itertools.pairwise(sizes))
    return 8 * M * (params + 3 * sum(sizes[1:]) * batch)
