"""Sweeps, run: the populations of a plan (initlab.sweep.plan) trained by workers, resumably.

    plan = make_plan("configs/depth_sweep.yaml", grid=["train.lr=0.01,0.1"])
    for event in run_plan(plan, "results/depth_sweep", workers=2): ...

Workers (local processes, inline in the driver, or Dask) get plain dicts and `run_population`,
and return Results, one per cell of the population; only the driver writes files. A cell whose
folder already holds a summary is skipped, so a killed sweep resumes where it stopped.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import copy
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from initlab.errors import InitlabError
from initlab.sweep.plan import (  # re-exported: initlab.sweep.execute was one module
    GRID,
    RESULTS_FORMAT,
    Axis,
    Cell,
    Plan,
    Population,
    cell_id,
    estimate_memory,
    group,
    group_key,
    make_plan,
    merge,
    parse_grid,
    parse_section,
)

__all__ = [
    "BLAS_VARS", "GRID", "RESULTS_FORMAT", "Axis", "Cell", "CellError", "InlineExecutor",
    "Outcome", "Plan", "Population", "SweepBusyError", "cell_id", "estimate_memory", "executor",
    "finished", "group", "group_key", "limit_threads", "lock", "make_plan", "merge",
    "parse_grid", "parse_section", "run_plan", "run_population", "split", "task_of",
]

BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
MEMBER_AXIS = {"loss": 1, "hist_h": 1, "hist_dz": 1}  # + every stat_*: (R, M, L)
VARIANT_AXIS = {"theory_act_var": 0, "boundary": 0, "boundary_frames": 1}
SHARED = {"loss_steps", "loss_epochs", "stat_steps", "hist_h_edges", "hist_dz_edges",
          "boundary_grid", "data_x", "data_y", "boundary_steps",
          "boundary_frames_grid"}  # the same for every member


class CellError(RuntimeError):
    """A population that failed in a worker, with the original error as text."""


class SweepBusyError(InitlabError):
    """Another sweep holds the lock of this results folder."""

    exit_code = 1


# ---------------------------------------------------------------- the worker side


def limit_threads(threads: int = 1) -> None:
    """At most `threads` BLAS threads in this process (run in every local worker)."""
    for var in BLAS_VARS:
        os.environ[var] = str(threads)
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)


def _init_worker(threads: int, initializer: Callable[..., None] | None,
                 initargs: tuple[Any, ...]) -> None:
    limit_threads(threads)
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def _member_seeds(variant_seeds: Sequence[int]) -> Iterator[None]:
    """Make seed s of merged variant v draw from (variant_seeds[v], s), as its own cell would.
    `run_experiment` takes one base seed; this adjusts its setup's members in this process."""
    from initlab import experiment
    from initlab.nn.model import MemberInit

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
    from initlab.results.folder import json_safe

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

    from initlab.diagnosis import describe
    from initlab.results.folder import Result

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
    describe(summary)  # sentences and comparisons among this cell's variants only
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
    """Runs each task in the driver as it is submitted (`--workers 0`): no pool; `submit`
    returns an already-completed future, so pool and inline runs share one results loop."""

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
def _blas_env(threads: int = 1) -> Iterator[None]:
    """Children started inside inherit `threads`-thread BLAS settings; the driver's are
    restored."""
    saved = {v: os.environ.get(v) for v in BLAS_VARS}
    os.environ.update({v: str(threads) for v in BLAS_VARS})
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
             address: str | None = None, *, threads: int = 1,
             initializer: Callable[..., None] | None = None,
             initargs: tuple[Any, ...] = ()) -> Iterator[cf.Executor]:
    """A concurrent.futures Executor: local processes, inline (workers=0), or Dask. Local
    workers run with at most `threads` BLAS threads each, then `initializer(*initargs)`."""
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
        ctx.set_forkserver_preload(["initlab.sweep.execute", "initlab.experiment"])
    pool = cf.ProcessPoolExecutor(max_workers=max(1, workers or os.cpu_count() or 1),
                                  mp_context=ctx, initializer=_init_worker,
                                  initargs=(threads, initializer, initargs))
    try:
        with _blas_env(threads):
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
    from initlab.report.render import write_result

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
        # a pool gets every population at once; inline, submitting runs the population, so one
        # at a time: its outcomes (and files) come before the next one starts
        in_flight = 1 if isinstance(ex, InlineExecutor) else math.inf
        futures: dict[cf.Future[Any], Population] = {}
        try:
            while queue or futures:
                while queue and len(futures) < in_flight:
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
