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
from typing import TYPE_CHECKING, Any

from initlab.sweep.lock import (  # re-exported
    _HELD_LOCKS,
    BLAS_VARS,
    SweepBusyError,
    limit_threads,
    lock,
    worker_init,
)

if TYPE_CHECKING:
    from initlab.report.render import FigureOptions
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
    "finished", "group", "group_key", "guard", "limit_threads", "local_pool", "lock",
    "make_plan", "merge", "parse_grid", "parse_section", "run_plan", "run_population", "split",
    "stop", "task_of", "worker_init",
]

MEMBER_AXIS = {"loss": 1, "hist_h": 1, "hist_dz": 1}  # + every stat_*: (R, M, L)
VARIANT_AXIS = {"theory_act_var": 0, "boundary": 0, "boundary_frames": 1}
SHARED = {"loss_steps", "loss_epochs", "stat_steps", "hist_h_edges", "hist_dz_edges",
          "hist_layers", "boundary_grid", "data_x", "data_y", "boundary_steps",
          "boundary_frames_grid"}  # the same for every member


class CellError(RuntimeError):
    """A population that failed in a worker, with the original error as text."""


# ---------------------------------------------------------------- the worker side


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
        s.members = [MemberInit(m.weight, m.bias, (variant_seeds[i // seeds], *m.seed[1:]),
                                m.readout) for i, m in enumerate(s.members)]
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


def check_scheduler(address: str) -> None:
    """Before anything is written: `--address` parses, and a tcp:// scheduler accepts a
    connection within 5 s (InitlabError, exit 2, one line; was a traceback after sweep.yaml
    had been written)."""
    import socket

    from initlab.errors import InitlabError

    try:
        from distributed.comm import parse_address, parse_host_port
    except ImportError:
        return  # executor() says what to install
    try:
        scheme, loc = parse_address(address)
        from distributed.comm.registry import backends

        if scheme not in backends:
            raise ValueError(f"unknown scheme '{scheme}'; known: {', '.join(sorted(backends))}")
        if scheme == "tcp":
            host, port = parse_host_port(loc)
            socket.create_connection((host, port), timeout=5).close()
    except (ValueError, TypeError) as e:
        raise InitlabError(f"--address {address!r}: not a Dask scheduler address ({e}); "
                           "expected tcp://HOST:PORT") from None
    except OSError as e:
        raise InitlabError(f"--address {address}: cannot reach a Dask scheduler there "
                           f"({e.strerror or e}); nothing was written") from None


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
            try:
                client = Client(address, timeout="20s")
            except (OSError, ValueError) as e:  # TimeoutError is an OSError
                from initlab.errors import InitlabError
                raise InitlabError(f"--address {address}: cannot reach a Dask scheduler there "
                                   f"({e}); rerun the same command once it is up") from None
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
    pool = local_pool(workers, threads, initializer, initargs)
    try:
        with _blas_env(threads):
            yield pool
    except BaseException:
        stop(pool)  # interrupted or failed: do not wait for the running populations
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def local_pool(workers: int | None, threads: int = 1,
               initializer: Callable[..., None] | None = None,
               initargs: tuple[Any, ...] = ()) -> cf.ProcessPoolExecutor:
    """A process pool whose workers die with this driver and never hold its locks; each runs
    at most `threads` BLAS threads, then `initializer(*initargs)`."""
    import multiprocessing as mp
    import threading

    # fork starts a worker in milliseconds with everything imported, but is only safe while this
    # process runs no other thread (all workers are forked at the first submit, before the
    # executor's own thread starts); otherwise forkserver, which imports initlab once
    method = "fork" if threading.active_count() == 1 else "forkserver"
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["initlab.sweep.execute", "initlab.experiment"])
    inherited = tuple(sorted(_HELD_LOCKS)) if method == "fork" else ()
    return cf.ProcessPoolExecutor(max_workers=max(1, workers or os.cpu_count() or 1),
                                  mp_context=ctx, initializer=worker_init,
                                  initargs=(os.getpid(), inherited, threads, initializer,
                                            initargs))


def stop(pool: cf.Executor) -> None:
    """Kill a local pool's workers now (their populations are lost; nothing was written)."""
    procs = getattr(pool, "_processes", None) or {}
    for proc in list(procs.values()):
        with contextlib.suppress(Exception):
            proc.kill()
    with contextlib.suppress(Exception):
        pool.shutdown(wait=False, cancel_futures=True)


# ---------------------------------------------------------------- driver


def guard(plan: Plan, max_memory: int | None = None) -> None:
    """The memory guard of `initlab run` for every population of the plan, before anything
    runs: each population's estimate (`resources.estimate`, stored as `memory_bytes`) must fit
    `max_memory` bytes or, without it, the memory available now; else ResourceError (exit 2)
    naming the population and its cells."""
    from initlab import resources
    from initlab.errors import Problem

    for i, pop in enumerate(plan.populations, 1):
        try:
            pop.memory_bytes = resources.guard(pop.config, max_memory, plan.source).total
        except resources.ResourceError as e:
            where = f"population {i} of {len(plan.populations)} ({len(pop.cells)} cells: " + \
                ", ".join(f"{k}={json.dumps(v, default=str)}"
                          for k, v in pop.cells[0].values.items()) + \
                (", ..." if len(pop.cells) > 1 else "") + ")"
            raise resources.ResourceError(
                [Problem(p.message, where, p.file, p.line, p.col, p.expected, p.suggestion)
                 for p in e.problems]) from None


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


DIED = ("its worker process died (killed from outside, e.g. by the out-of-memory killer); "
        "the other cells went on")


def run_plan(plan: Plan, out_dir: Path, *, backend: str = "local", workers: int | None = None,
             address: str | None = None, force: bool = False, fail_fast: bool = False,
             cell_plots: bool = False, options: FigureOptions | None = None
             ) -> Iterator[Outcome]:
    """Run every unfinished cell; yield an Outcome per cell as it completes (`options`: the
    figure formats, dpi and layers of the cells' figures, with `cell_plots`). The caller holds
    the lock. Finished cells are skipped (unless `force`), failures are recorded and the rest
    go on (unless `fail_fast`). Each cell's folder is written as soon as its population ends.

    A local worker that dies (SIGKILL, the OOM killer) breaks its process pool, and every
    population running in it fails with BrokenProcessPool. Those populations are suspects: a
    fresh pool runs them again one at a time, so a death then names its population. A
    population that dies alone is split into its cells, and a cell that dies alone fails; the
    other cells finish."""
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
    suspects: list[Population] = []  # their worker died beside others: run each alone
    t0 = time.perf_counter()

    def failed(pop: Population, error: str) -> Iterator[Outcome]:
        for c in pop.cells:
            yield Outcome(c, "failed", error, time.perf_counter() - t0)

    def handle(pop: Population, parts: Any, e: BaseException | None) -> Iterator[Outcome]:
        """Outcomes of one finished population; a failed one with several cells is queued
        again cell by cell (one bad cell must not fail its population mates)."""
        if e is None:
            for cid, result in parts:
                try:
                    write_result(result, cells_dir / cid, plots=cell_plots, options=options)
                except Exception as x:  # a cell whose files cannot be written fails alone
                    yield Outcome(by_id[cid], "failed", f"cannot write its results: "
                                  f"{type(x).__name__}: {x}", time.perf_counter() - t0)
                    continue
                yield Outcome(by_id[cid], "done", None, time.perf_counter() - t0)
        elif len(pop.cells) > 1 and not fail_fast:
            queue.extend(merge([c]) for c in pop.cells)
        else:
            yield from failed(pop, str(e) if isinstance(e, CellError) else
                              f"{type(e).__name__}: {e}")

    def died(pop: Population, alone: bool) -> Iterator[Outcome]:
        if not alone and not fail_fast:
            suspects.append(pop)
        elif len(pop.cells) > 1 and not fail_fast:
            suspects.extend(merge([c]) for c in pop.cells)
        else:
            yield from failed(pop, DIED)

    with contextlib.ExitStack() as stack:
        ex = stack.enter_context(executor(backend, workers, address))
        renewable = isinstance(ex, cf.ProcessPoolExecutor)
        # a pool gets as many populations as it has workers (so every one in flight is running
        # when a worker dies); inline, submitting runs the population, so one at a time: its
        # outcomes (and files) come before the next one starts; Dask schedules them all
        size = max(1, workers or os.cpu_count() or 1)
        in_flight = 1 if isinstance(ex, InlineExecutor) else size if renewable else math.inf
        futures: dict[cf.Future[Any], tuple[Population, bool]] = {}
        broken = False

        def submit(pop: Population, alone: bool, source: list[Population]) -> None:
            nonlocal broken
            try:
                futures[ex.submit(run_population, task_of(pop))] = (pop, alone)
            except cf.process.BrokenProcessPool:
                broken = True
                source.insert(0, pop)  # it never ran

        try:
            while queue or suspects or futures:
                if not broken:
                    if suspects:
                        if not futures:
                            submit(suspects.pop(0), True, suspects)
                    else:
                        while queue and len(futures) < in_flight and not broken:
                            submit(queue.pop(0), False, queue)
                if futures:
                    done, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                    for fut in done:
                        pop, alone = futures.pop(fut)
                        try:
                            parts, error = fut.result(), None
                        except cf.process.BrokenProcessPool:
                            broken = True
                            outcomes = list(died(pop, alone))
                        except Exception as e:
                            outcomes = list(handle(pop, None, e))
                        else:
                            outcomes = handle(pop, parts, error)  # type: ignore[assignment]
                        for o in outcomes:
                            yield o
                            if o.status == "failed" and fail_fast:
                                return
                if broken and not futures:
                    if not renewable:
                        raise RuntimeError("the executor broke")  # pragma: no cover
                    ex.shutdown(wait=True)
                    ex = local_pool(size)
                    stack.callback(ex.shutdown, wait=True, cancel_futures=True)
                    broken = False
        except BaseException:
            if renewable:
                stop(ex)
            raise
        finally:
            for f in futures:
                f.cancel()
