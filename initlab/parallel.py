"""One run's population split across processes: `initlab run --workers N`, `run(workers=N)`.

    result = run_parallel(resolved_cfg, workers=2)   # == run_experiment(resolved_cfg)

Members are independent by design (a member alone gets the numbers it gets in a population),
so the members 0..M-1 are cut into N contiguous chunks, each initialized and trained in a
worker process (the executor of initlab.sweep.execute), and the chunks' Histories are
concatenated along the member axis into the one History that `assemble` turns into the Result,
exactly as for one process. What a population does as a whole is redone here:

- it stops after the epoch in which its last member diverged, so a chunk whose members have
  all diverged trains on (frozen) while others may not have; when every member of the run has
  diverged, the merged History is cut where the whole population would have stopped (loss
  curve, statistics records, boundary frames, steps); frozen members' numbers do not change,
  so the last record and frame of a chunk are the ones the whole population takes there;
- `evaluate` cuts the data set into chunks of samples, and the statistics pack a small net's
  layers together, by the population's size: every chunk decides as the whole population
  (train(population=M)).

The Result is then bit-identical to one process's (tests/test_parallel.py, for N = 1, 2, 3 and
up to one worker per member), as long as every worker's BLAS rounds a product as the one
process's does: the engine's products are one BLAS call per member, and the statistics sum a
row by one product per row, not one matrix-vector product (whose rounding depends on a row's
place in the matrix). A BLAS that splits one member's product across threads differently
per thread count could differ in the last bits (workers run with fewer threads).

Workers: BLAS threads per worker are cores // workers (>= 1), so workers x threads <= cores.
They ignore SIGINT (the driver decides), die with the driver (PR_SET_PDEATHSIG on Linux, and
each watches its parent), and an interrupted or failed run kills them before it returns: no
process is left behind, and nothing is written before every chunk has finished.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from initlab.experiment import Setup, Trained, assemble, run_experiment, setup, train_members
from initlab.nn.train import History, Progress
from initlab.processes import become_worker
from initlab.results.folder import Result

AUTO_MIN_MEMBERS = 8  # members per worker below which a split does not pay (docs: README)
AUTO_MAX_WIDTH = 256  # widest layer at which BLAS threads already use the cores
AUTO_MIN_WORK = 2e8  # members * parameters * samples * steps below which startup dominates


def cores() -> int:
    """The processors this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def chunks(members: int, workers: int) -> list[tuple[int, int]]:
    """`workers` contiguous (lo, hi) ranges of members 0..members-1, sizes within one of each
    other (fewer ranges when there are fewer members than workers)."""
    n = max(1, min(int(workers), members))
    edges = [members * k // n for k in range(n + 1)]
    return [(edges[k], edges[k + 1]) for k in range(n)]


def auto_workers(members: int, sizes: Sequence[int], samples: int, steps: int,
                 n_cores: int | None = None) -> int:
    """How many processes `--workers auto` uses: one where a split cannot pay off (fewer than
    2 x AUTO_MIN_MEMBERS members, a layer wider than AUTO_MAX_WIDTH whose BLAS calls already
    use the cores, or less work than AUTO_MIN_WORK member-parameter-sample-steps: a second
    or so, which the workers' start-up would eat), else min(cores, members // AUTO_MIN_MEMBERS).
    """
    n_cores = cores() if n_cores is None else n_cores
    params = sum(a * b + b for a, b in itertools.pairwise(sizes))
    if n_cores < 2 or members < 2 * AUTO_MIN_MEMBERS or max(sizes[1:]) > AUTO_MAX_WIDTH or \
            members * params * samples * steps < AUTO_MIN_WORK:
        return 1
    return max(1, min(n_cores, members // AUTO_MIN_MEMBERS))


def parse_workers(text: str | int) -> int | str:
    """`--workers`' value: "auto" or an integer >= 1 (ValueError otherwise)."""
    if isinstance(text, str) and text.strip().lower() == "auto":
        return "auto"
    try:
        n = int(text)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or isinstance(text, bool):
        raise ValueError(f"expected an integer >= 1 or 'auto', not {text!r}")
    return n


def resolve_workers(workers: int | str, s: Setup | None) -> int:
    """An int >= 1 from `workers` (an int >= 1, or "auto" for the Setup `s`)."""
    if workers == "auto" and s is not None:
        tr = s.cfg["train"]
        N = len(s.dataset.x)
        B = tr.get("batch_size") or N
        steps = int(tr.get("epochs", 100)) * -(-N // min(int(B), N))
        return auto_workers(len(s.members), s.sizes, min(int(B), N), steps)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1 or 'auto', not {workers!r}")
    return workers


# ---------------------------------------------------------------- the worker side

_progress: Any = None  # the driver's shared array of steps done, one slot per chunk


def _init_worker(progress: Any) -> None:
    global _progress
    become_worker()  # Ctrl-C reaches the driver, which ends us; we die with it
    _progress = progress


def train_chunk(task: Mapping[str, Any]) -> Trained:
    """Worker entry point: train members task["lo"]:task["hi"] of task["config"]."""
    s = setup(task["config"])
    slot = task["slot"]

    def progress(step: int, total: int) -> None:
        if _progress is not None:
            _progress[slot] = step

    return train_members(s, task["lo"], task["hi"], progress, stop_early=False)


# ---------------------------------------------------------------- merging


def _cat(arrays: Sequence[np.ndarray | None], axis: int) -> Any:
    return None if arrays[0] is None else np.concatenate(arrays, axis=axis)  # type: ignore[arg-type]


def merge(parts: Sequence[Trained], per_epoch: int) -> Trained:
    """The Trained of the whole population from its chunks' (in member order), each trained
    with stop_early=False; cut where the whole population would have stopped (see above)."""
    hs = [p.history for p in parts]
    h0 = hs[0]
    h = History(
        loss=_cat([x.loss for x in hs], 1), final_loss=_cat([x.final_loss for x in hs], 0),
        final_accuracy=_cat([x.final_accuracy for x in hs], 0),
        diverged_step=_cat([x.diverged_step for x in hs], 0), stat_steps=h0.stat_steps,
        stats={k: _cat([x.stats[k] for x in hs], 1) for k in h0.stats},
        hist_h=_cat([x.hist_h for x in hs], 1), hist_dz=_cat([x.hist_dz for x in hs], 1),
        steps=h0.steps, symmetric=_cat([x.symmetric for x in hs], 0))
    frames = {}
    if parts[0].frames:
        frames = {**parts[0].frames,
                  "boundary_frames": _cat([p.frames["boundary_frames"] for p in parts], 1)}
    boundary = _cat([p.boundary for p in parts], 0)
    lsuv = {m: i for p in parts for m, i in (p.lsuv_iters or {}).items()}
    scales = {m: f for p in parts for m, f in (p.lsuv_scales or {}).items()}
    out = Trained(h, [_cat(w, 0) for w in zip(*(p.W0 for p in parts))],
                  [_cat(b, 0) for b in zip(*(p.b0 for p in parts))], frames, boundary,
                  lsuv or None, scales or None)
    if (h.diverged_step >= 0).all():
        _stop_where_the_population_stops(out, per_epoch)
    return out


def _stop_where_the_population_stops(t: Trained, per_epoch: int) -> None:
    """Every member diverged: the whole population stops after the epoch of the last divergence
    (train(): `if not alive.any(): break`), at step `stop`. Cut the merged History there."""
    h = t.history
    epoch = int((h.diverged_step // per_epoch).max()) + 1
    stop = epoch * per_epoch
    if stop >= h.steps:
        return
    E = h.loss.shape[0] - 1
    if per_epoch == 1:  # full batch: loss[e] after e updates, loss[E] the final loss
        h.loss[epoch:E] = np.nan
    else:  # minibatch: loss[0] at init, loss[e] epoch e's mean
        h.loss[epoch + 1:] = np.nan
    # records at the steps < stop the population reached, then its last record (taken at `stop`)
    keep = [*np.flatnonzero(h.stat_steps[:-1] < stop).tolist(), len(h.stat_steps) - 1]
    h.stat_steps = np.append(h.stat_steps[keep[:-1]], stop)
    h.stats = {k: a[keep] for k, a in h.stats.items()}
    h.hist_h, h.hist_dz = h.hist_h[keep], h.hist_dz[keep]
    h.steps = stop
    if t.frames:
        steps = t.frames["boundary_steps"]
        keep = np.flatnonzero(steps <= stop).tolist()
        if steps[keep[-1]] < stop:  # the population's final frame at stop: the chunks' last one
            keep.append(len(steps) - 1)
        t.frames["boundary_frames"] = t.frames["boundary_frames"][keep]
        t.frames["boundary_steps"] = np.minimum(steps[keep], stop)


# ---------------------------------------------------------------- the driver


def _kill(ex: cf.Executor) -> None:
    """End a local pool's workers now (an interrupted or failed run)."""
    for p in list((getattr(ex, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            p.kill()


def run_parallel(cfg: Mapping[str, Any], workers: int | str = "auto",
                 progress: Progress | None = None, *, backend: str = "local",
                 address: str | None = None) -> Result:
    """run_experiment(cfg, progress) with the population trained in `workers` processes
    (an int >= 1 or "auto": auto_workers); one worker trains in this process."""
    import multiprocessing as mp

    from initlab.sweep.execute import executor

    t0 = time.perf_counter()
    if cfg["model"].get("residual") is not None:  # residual nets (experiment_residual): one
        if workers != "auto":  # process, whatever `workers` asks
            resolve_workers(workers, None)
        return run_experiment(cfg, progress)
    s = setup(cfg)
    n = resolve_workers(workers, s)
    M = len(s.members)
    ranges = chunks(M, n)
    if len(ranges) == 1 and backend == "local":
        return assemble(s, train_members(s, progress=progress), t0)
    tr = s.cfg["train"]
    N = len(s.dataset.x)
    B = tr.get("batch_size")
    per_epoch = 1 if B is None or int(B) >= N else -(-N // int(B))
    total = int(tr.get("epochs", 100)) * per_epoch
    shared = mp.get_context("fork").Array("q", len(ranges), lock=False) \
        if backend == "local" else None
    tasks = [{"config": dict(cfg), "lo": lo, "hi": hi, "slot": k}
             for k, (lo, hi) in enumerate(ranges)]
    threads = max(1, cores() // len(ranges))
    with executor(backend, len(ranges), address, threads=threads, initializer=_init_worker,
                  initargs=(shared,)) as ex:
        try:
            futures = [ex.submit(train_chunk, task) for task in tasks]
            pending = set(futures)
            while pending:
                _, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_EXCEPTION)
                if progress is not None and shared is not None:
                    progress(min(shared), total)
                for f in futures:
                    if f.done() and f.exception() is not None:
                        raise f.exception()  # type: ignore[misc]
            parts = [f.result() for f in futures]
        except BaseException:
            _kill(ex)
            raise
    if progress is not None:
        progress(max(p.history.steps for p in parts), total)
    return assemble(s, merge(parts, per_epoch), t0)
