"""Sweeps: a grid of configs ("cells") expanded, validated, grouped into populations and run.

    plan = make_plan("configs/depth_sweep.yaml", grid=["train.lr=0.01,0.1"])
    for event in run_plan(plan, "results/depth_sweep", workers=2): ...

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
s of variant v draws from default_rng([its cell's seed, s]) as in `initlab run`) and the Result
is split back per cell. A member's numbers do not depend on its population mates, so a cell
gets the numbers `initlab run` would give it. `seed` also seeds the data when `data.seed` is
null: cells of different seeds then have different data and cannot share a population.

Workers (local processes or Dask) get plain dicts and `run_population`, and return Results;
only the driver writes files.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import copy
import hashlib
import itertools
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from initlab.errors import ConfigError, InitlabError, Problem

RESULTS_FORMAT = 1  # initlab.results.FORMAT_VERSION; part of every cell id
GRID = "--grid"  # the `file` of problems in --grid axes
BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
MEMBER_AXIS = {"loss": 1, "hist_h": 1, "hist_dz": 1}  # + every stat_*: (R, M, L)
VARIANT_AXIS = {"theory_act_var": 0, "boundary": 0, "boundary_frames": 1}
SHARED = {"loss_steps", "stat_steps", "hist_h_edges", "hist_dz_edges", "boundary_grid", "data_x",
          "data_y", "boundary_steps", "boundary_frames_grid"}  # the same for every member


class CellError(RuntimeError):
    """A population that failed in a worker, with the original error as text."""


class SweepBusyError(InitlabError):
    """Another sweep holds the lock of this results folder."""

    exit_code = 1


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
    mark = getattr(node, "start_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
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
    config: dict[str, Any]  # resolved (api.resolve), with config_hash
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


def make_plan(source: str, grid: Sequence[str] = (), sets: Sequence[str] = (), *,
              memory: bool = False) -> Plan:
    """Expand, validate (every cell, every problem at once: ConfigError) and group."""
    from initlab.api import resolve
    from initlab.config import load_config

    text, section, node = _strip_section(source)
    axes, problems = parse_section(section, node, source)
    grid_axes, grid_problems = parse_grid(grid)
    axes += grid_axes
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
                resolved = resolve(cfg)
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
    from initlab.config import SET

    if p.file == SET:
        for okey, (axis, ki, j) in origin.items():
            if p.path == okey or p.path.startswith(okey + "."):
                node = axis.nodes[ki][j] if axis.nodes else None
                path = p.path.replace(okey, axis.keys[ki], 1) if okey != axis.keys[ki] else \
                    p.path
                mark = getattr(node, "start_mark", None)
                line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
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


# ---------------------------------------------------------------- the worker side


def limit_threads() -> None:
    """One BLAS thread in this process (run in every local worker)."""
    for var in BLAS_VARS:
        os.environ[var] = "1"
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)


@contextlib.contextmanager
def _member_seeds(variant_seeds: Sequence[int]) -> Iterator[None]:
    """Make seed s of merged variant v draw from (variant_seeds[v], s), as its own cell would.
    `run_experiment` takes one base seed; this adjusts its setup's members in this process."""
    from initlab import experiment
    from initlab.model import MemberInit

    original = experiment.setup
    if len(set(variant_seeds)) <= 1:
        yield
        return

    def setup(cfg: Mapping[str, Any]) -> Any:
        s = original(cfg)
        seeds = int(cfg.get("seeds", 1))
        s.members = [MemberInit(m.weight, m.bias, (variant_seeds[i // seeds], *m.seed[1:]))
                     for i, m in enumerate(s.members)]
        return s

    experiment.setup = setup
    try:
        yield
    finally:
        experiment.setup = original


def run_population(task: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Worker entry point: train the merged config, return [(cell id, Result), ...]."""
    from initlab.experiment import run_experiment
    from initlab.results import json_safe

    try:
        with _member_seeds(task["variant_seeds"]):
            result = run_experiment(task["config"])
    except Exception as e:  # sent back as plain text: any exception pickles as a CellError
        raise CellError(f"{type(e).__name__}: {e}") from None
    out = []
    for cell in task["cells"]:
        part = split(result, cell["variants"], int(task["config"]["seeds"]), cell["config"])
        part.summary = json_safe(part.summary)
        out.append((cell["id"], part))
    return out


def split(result: Any, variants: Sequence[int], seeds: int, config: Mapping[str, Any]) -> Any:
    """The part of a population's Result that belongs to one cell (its merged variants)."""
    import numpy as np

    from initlab.results import Result

    vidx = np.asarray(variants)
    midx = (vidx[:, None] * seeds + np.arange(seeds)[None, :]).ravel()
    V = len(result.summary["variants"])
    M = V * seeds
    arrays = {}
    for k, a in result.arrays.items():
        a = np.asarray(a)
        if k == "member_variant":
            arrays[k] = np.repeat(np.arange(len(vidx)), seeds)
        elif k == "member_seed":
            arrays[k] = np.tile(np.arange(seeds), len(vidx))
        elif k in MEMBER_AXIS or (k.startswith("stat_") and k != "stat_steps"):
            arrays[k] = np.take(a, midx, axis=MEMBER_AXIS.get(k, 1))
        elif k in VARIANT_AXIS:
            arrays[k] = np.take(a, vidx, axis=VARIANT_AXIS[k])
        elif k in SHARED:
            arrays[k] = a
        elif M in a.shape:  # an array added later: its first axis of M members...
            arrays[k] = np.take(a, midx, axis=a.shape.index(M))
        elif V in a.shape:  # ...or of V variants (with one seed, members are variants)
            arrays[k] = np.take(a, vidx, axis=a.shape.index(V))
        else:
            arrays[k] = a
    summary = copy.deepcopy(result.summary)
    labels = [v["label"] for v in config["init"]]
    summary["variants"] = [{**summary["variants"][v], "label": label}
                           for v, label in zip(variants, labels)]
    summary.update(name=config.get("name"), config_hash=config.get("config_hash"),
                   wall_time_s=round(float(summary.get("wall_time_s") or 0) * len(midx) / M, 3),
                   population_members=M)
    return Result(config=dict(config), summary=summary, arrays=arrays)


def task_of(pop: Population) -> dict[str, Any]:
    """Plain data for a worker."""
    cells, start = [], 0
    for c in pop.cells:
        n = len(c.config["init"])
        cells.append({"id": c.id, "config": c.config, "variants": list(range(start, start + n))})
        start += n
    return {"config": pop.config, "variant_seeds": pop.variant_seeds, "cells": cells}


# ---------------------------------------------------------------- executors


class InlineExecutor(cf.Executor):
    """Runs each task in the driver when asked for its result (`--workers 0`): no pool."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        fut.set_running_or_notify_cancel()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            fut.set_exception(e)
        return fut


@contextlib.contextmanager
def _blas_env() -> Iterator[None]:
    """Children started inside inherit one-thread BLAS settings; the driver's are restored."""
    saved = {v: os.environ.get(v) for v in BLAS_VARS}
    os.environ.update({v: "1" for v in BLAS_VARS})
    try:
        yield
    finally:
        for v, x in saved.items():
            if x is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = x


@contextlib.contextmanager
def executor(backend: str = "local", workers: int | None = None,
             address: str | None = None) -> Iterator[cf.Executor]:
    """A concurrent.futures Executor: local processes, inline (workers=0), or Dask."""
    if backend == "dask":
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            from initlab.errors import MissingDependencyError
            raise MissingDependencyError(
                "--backend dask needs dask.distributed: pip install 'initlab[dask]'") from None
        if address:
            client = Client(address, timeout="20s")
            cluster = None
        else:
            cluster = LocalCluster(n_workers=workers or 2, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=None)
            client = Client(cluster)
        try:
            yield client.get_executor(pure=False)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    if backend != "local":
        raise ValueError(f"unknown backend {backend!r}; expected local or dask")
    if workers == 0:
        yield InlineExecutor()
        return
    import multiprocessing as mp
    import threading

    # fork starts a worker in milliseconds with everything imported, but is only safe while this
    # process runs no other thread (all workers are forked at the first submit, before the
    # executor's own thread starts); otherwise forkserver, which imports initlab once
    method = "fork" if threading.active_count() == 1 else "forkserver"
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["initlab.sweep", "initlab.experiment"])
    pool = cf.ProcessPoolExecutor(max_workers=max(1, workers or os.cpu_count() or 1),
                                  mp_context=ctx, initializer=limit_threads)
    try:
        with _blas_env():
            yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------- driver


@dataclass
class Outcome:
    """What happened to one cell."""

    cell: Cell
    status: str  # done | failed | skipped
    error: str | None = None
    seconds: float = 0.0


def finished(folder: Path) -> bool:
    """A cell is finished when its folder holds a readable summary.json of this format."""
    try:
        s = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(s, dict) and s.get("format_version") == RESULTS_FORMAT and \
        isinstance(s.get("variants"), list)


@contextlib.contextmanager
def lock(folder: Path) -> Iterator[None]:
    """Exclusive lock on folder/.sweep.lock; SweepBusyError if another sweep holds it."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".sweep.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip() or "another process"
            raise SweepBusyError(f"{folder}: another sweep is writing here ({who}); wait for it "
                                 "to finish or choose another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
            fcntl.flock(f, fcntl.LOCK_UN)


def run_plan(plan: Plan, out_dir: Path, *, backend: str = "local", workers: int | None = None,
             address: str | None = None, force: bool = False, fail_fast: bool = False,
             cell_plots: bool = False) -> Iterator[Outcome]:
    """Run every unfinished cell; yield an Outcome per cell as it completes. The caller holds
    the lock. Finished cells are skipped (unless `force`), failures are recorded and the rest
    go on (unless `fail_fast`). Each cell's folder is written as soon as its population ends."""
    from initlab.results import write_result

    cells_dir = out_dir / "cells"
    todo: list[Cell] = []
    for c in plan.cells:
        if not force and finished(cells_dir / c.id):
            yield Outcome(c, "skipped")
        else:
            todo.append(c)
    if not todo:
        return
    by_id = {c.id: c for c in todo}
    queue = group(todo)
    t0 = time.perf_counter()

    def handle(pop: Population, parts: Any, e: BaseException | None) -> Iterator[Outcome]:
        """Outcomes of one finished population; a failed one with several cells is queued
        again cell by cell (one bad cell must not fail its population mates)."""
        if e is None:
            for cid, result in parts:
                write_result(result, cells_dir / cid, plots=cell_plots)
                yield Outcome(by_id[cid], "done", None, time.perf_counter() - t0)
        elif len(pop.cells) > 1 and not fail_fast:
            queue.extend(merge([c]) for c in pop.cells)
        else:
            error = str(e) if isinstance(e, CellError) else f"{type(e).__name__}: {e}"
            for c in pop.cells:
                yield Outcome(c, "failed", error, time.perf_counter() - t0)

    with executor(backend, workers, address) as ex:
        if isinstance(ex, InlineExecutor):  # one population at a time, in this process
            while queue:
                pop = queue.pop(0)
                try:
                    parts, error = run_population(task_of(pop)), None
                except Exception as e:
                    parts, error = None, e
                for o in handle(pop, parts, error):
                    yield o
                    if o.status == "failed" and fail_fast:
                        return
            return
        futures: dict[cf.Future[Any], Population] = {}
        try:
            while queue or futures:
                while queue:
                    pop = queue.pop(0)
                    futures[ex.submit(run_population, task_of(pop))] = pop
                done, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    pop = futures.pop(fut)
                    try:
                        parts, error = fut.result(), None
                    except Exception as e:
                        parts, error = None, e
                    for o in handle(pop, parts, error):
                        yield o
                        if o.status == "failed" and fail_fast:
                            return
        finally:
            for f in futures:
                f.cancel()
