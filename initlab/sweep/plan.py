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

import contextlib
import copy
import hashlib
import itertools
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from initlab.config.positions import SET, YamlReader, line_col, read_text
from initlab.errors import ConfigError, Problem
from initlab.sweep.grid import (  # re-exported: the grid was part of this module
    GRID,
    MAX_CELLS,
    Axis,
    _node_at,
    _range,
    canonical,
    parse_grid,
    parse_section,
    unique,
)

RESULTS_FORMAT = 1  # initlab.results.folder.FORMAT_VERSION; part of every cell id

__all__ = ["GRID", "MAX_CELLS", "RESULTS_FORMAT", "Axis", "Cell", "Plan", "Population",
           "_node_at", "_range", "canonical", "cell_id", "estimate_memory", "group", "group_key",
           "make_plan", "merge", "parse_grid", "parse_section", "unique"]


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


def _strip_section(path: str) -> tuple[str, Any, Any, Any]:
    """The config text with its `sweep:` entry blanked out (lines keep their numbers), the
    section's value, its YAML node and the whole document, read by the same bounded safe
    reader as `load_config` (tags, duplicate keys, alias bombs, deep nesting: ConfigError)."""
    text, unreadable = read_text(path)
    if unreadable is not None:
        raise ConfigError([unreadable])
    reader = YamlReader(path)
    doc = reader.read(text)
    if reader.problems:
        raise ConfigError(reader.problems)
    if not isinstance(doc, dict) or "sweep" not in doc:
        return text, None, None, doc  # load_config reports an empty or odd document
    key_node, value_node = reader.nodes[("sweep",)]
    assert key_node is not None
    a, b = key_node.start_mark.index, value_node.end_mark.index
    blank = re.sub(r"[^\n]", " ", text[a:b])
    return text[:a] + blank + text[b:], doc["sweep"], value_node, doc


def _override(key: str, value: Any) -> str:
    return f"{key}={canonical(value)}"


def _init_count(doc: Any, sets: Sequence[str]) -> int:
    init = doc.get("init") if isinstance(doc, Mapping) else None
    for s in sets:
        k, _, v = s.partition("=")
        if k.strip() == "init":
            init = YamlReader(SET).read(v)
    return len(init) if isinstance(init, list) else 1


def _size(axes: Sequence[Axis]) -> int:
    return math.prod(len(a.values) for a in axes)


def _replaced(section: list[Axis], grid: Sequence[Axis]) -> list[Axis]:
    """The config's axes, a --grid axis of the same key(s) in place of the config's, then the
    other --grid axes. A zipped axis is replaced only as a whole (part of one is reported as
    swept twice)."""
    given = {a.keys: a for a in grid}
    out = [given.get(a.keys, a) for a in section]
    return out + [a for a in grid if all(a is not b for b in out)]


def _remove_stale_copies() -> None:
    """Remove the config copies (`.sweep-<pid>-*.yaml` in the temp folder) of planning
    processes that died before their `finally` (SIGKILL)."""
    from initlab.processes import pid_alive

    for p in Path(tempfile.gettempdir()).glob(".sweep-*-*.yaml"):
        pid = p.name.split("-")[1]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                p.unlink()


def make_plan(source: str, grid: Sequence[str] = (), sets: Sequence[str] = (), *,
              memory: bool = False) -> Plan:
    """Expand, validate (every cell, every problem at once: ConfigError) and group."""
    from initlab.config.schema import load_config, resolved_with_hash

    text, section, node, doc = _strip_section(source)
    axes, problems = parse_section(section, node, source)
    grid_axes, grid_problems = parse_grid(grid)
    axes = _replaced(axes, grid_axes)
    problems += grid_problems
    problems += [Problem("the sweep section cannot be set with --set", "sweep", SET,
                         expected="--grid key=v1,v2 to add an axis")
                 for s in sets if s.partition("=")[0].strip().split(".")[0] == "sweep"]
    if not problems and _size(axes) > MAX_CELLS:
        sizes = " x ".join(f"{len(a.values)} ({a.name})" for a in axes)
        problems.append(Problem(f"the grid has {_size(axes)} cells ({sizes})", "sweep",
                                source, expected=f"at most {MAX_CELLS} cells"))
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

    _remove_stale_copies()
    fd, tmp = tempfile.mkstemp(prefix=f".sweep-{os.getpid()}-", suffix=".yaml")
    cells: list[Cell] = []
    ids: set[str] = set()
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
                (1 if "init" in values else _init_count(doc, sets))
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
            cid = cell_id(resolved)
            if cid not in ids:  # two grid points that resolve to one config are one cell
                ids.add(cid)
                cells.append(Cell(i, values, resolved, cid, group_key(resolved)))
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
                shown = canonical(values[axis.keys[ki]])
                return Problem(f"{p.message} (swept value {shown})", path,
                               axis.file if axis.file is not None else source, line, col,
                               p.expected, p.suggestion)
        return p
    if p.file == tmp:
        cell = ", ".join(f"{k}={canonical(v)}" for k, v in values.items())
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
