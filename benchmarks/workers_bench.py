"""`initlab run --workers 1` against `--workers 2`, side by side: the training of one run
(initlab.parallel.run_parallel: set-up, training, the Result; no files) on bench.py's
seed_tiny, playground_sweep and medium workloads written as configs.

    python benchmarks/workers_bench.py [--repeats R]

Runs alternate (1, 2, 1, 2, ...) so that a drifting machine load hits both alike; the best of
R is kept for each, and the two Results must be equal (summary numbers bit for bit).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from initlab.api import resolve
from initlab.parallel import cores, run_parallel

WORKLOADS: dict[str, dict[str, Any]] = {
    "seed_tiny": {  # [2, 2x9, 1] tanh, 512 samples, 100 steps, 32 members
        "seeds": 32, "data": {"name": "circle", "samples": 512},
        "model": {"depth": 9, "width": 2, "activation": "tanh"}, "init": ["xavier_normal"],
        "train": {"lr": 0.1, "epochs": 100}},
    "playground_sweep": {  # [2, 6, 3, 1] relu, 100 samples, 2000 steps, 4 x 25 members
        "seeds": 25, "data": {"name": "circle", "samples": 100},
        "model": {"widths": [6, 3], "activation": "relu"},
        "init": ["zero", "too_small", "appropriate", "too_large"],
        "train": {"lr": 0.1, "epochs": 2000}},
    "medium": {  # [2, 64x9, 1] tanh, 1024 samples, 50 steps, 16 members
        "seeds": 16, "data": {"name": "circle", "samples": 1024},
        "model": {"depth": 9, "width": 64, "activation": "tanh"}, "init": ["xavier_normal"],
        "train": {"lr": 0.1, "epochs": 50}},
}


def _python_work(n: int = 3_000_000) -> float:
    t = time.perf_counter()
    s = 0
    for i in range(n):
        s += i * i
    return time.perf_counter() - t


def _numpy_work(n: int = 2000) -> float:
    import numpy as np

    a = np.random.default_rng(0).random((64, 2, 512))  # seed_tiny-sized elementwise work
    t = time.perf_counter()
    for _ in range(n):
        np.multiply(a, np.tanh(a), out=np.empty_like(a))
    return time.perf_counter() - t


def core_scaling() -> dict[str, float]:
    """Throughput of two processes at once over one alone, for pure-Python and for NumPy
    elementwise work: ~2 on two real cores; ~1 where the two 'cores' share one core's
    floating-point units (hyperthreads of one core, or a CPU quota)."""
    from concurrent.futures import ProcessPoolExecutor

    out = {}
    with ProcessPoolExecutor(2) as ex:
        for name, fn in (("python", _python_work), ("numpy", _numpy_work)):
            list(ex.map(fn, [10, 10]))  # start both workers
            alone = fn()
            two = list(ex.map(fn, [fn.__defaults__[0]] * 2))  # type: ignore[index]
            out[name] = 2 * alone / max(two)
    return out


def _numbers(summary: dict[str, Any]) -> str:
    s = {k: v for k, v in summary.items() if k != "wall_time_s"}
    return json.dumps(s, sort_keys=True, default=repr)


def workers_workload(repeats: int = 2, names: list[str] | None = None) -> dict[str, Any]:
    """{"cores": n, "workloads": [{name, members, seconds_1, seconds_2, speedup, same}]}."""
    rows = []
    for name, spec in WORKLOADS.items():
        if names and name not in names:
            continue
        cfg = resolve({"name": name, **spec})
        best = {1: float("inf"), 2: float("inf")}
        numbers = {}
        for _ in range(repeats):
            for n in (1, 2):
                t = time.perf_counter()
                r = run_parallel(cfg, n)
                best[n] = min(best[n], time.perf_counter() - t)
                numbers[n] = _numbers(r.summary)
        members = len(cfg["init"]) * int(cfg["seeds"])
        rows.append({"name": name, "members": members, "seconds_1": best[1],
                     "seconds_2": best[2], "speedup": best[1] / best[2],
                     "same": numbers[1] == numbers[2]})
    return {"cores": cores(), "repeats": repeats, "workloads": rows,
            "core_scaling": core_scaling(), "load_average": os.getloadavg()}


def crossover(repeats: int = 2, members: tuple[int, ...] = (8, 16, 32, 64),
              epochs: tuple[int, ...] = (10, 25, 50, 100, 200, 400)) -> list[dict[str, Any]]:
    """Where --workers 2 starts to pay on the primer's 9 x 2 tanh net (512 samples): speed-up
    of 2 processes over 1 (training only, best of `repeats`, alternating) for each members x
    epochs, with auto_workers' choice and the work (members x parameters x samples x steps)
    that auto compares with AUTO_MIN_WORK."""
    import itertools

    from initlab.experiment import setup
    from initlab.parallel import auto_workers

    rows = []
    for m in members:
        for e in epochs:
            inits = ["xavier_normal", "he_normal", "orthogonal", "lecun_normal"][:max(1, m // 16)]
            cfg = resolve({"name": f"x{m}_{e}", "seeds": m // len(inits),
                           "data": {"name": "circle", "samples": 512},
                           "model": {"depth": 9, "width": 2, "activation": "tanh"},
                           "init": inits, "train": {"lr": 0.1, "epochs": e}})
            sizes = setup(cfg).sizes
            params = sum(a * b + b for a, b in itertools.pairwise(sizes))
            best = {1: float("inf"), 2: float("inf")}
            for _ in range(repeats):
                for n in (1, 2):
                    t = time.perf_counter()
                    run_parallel(cfg, n)
                    best[n] = min(best[n], time.perf_counter() - t)
            rows.append({"members": m, "epochs": e, "work": m * params * 512 * e,
                         "seconds_1": best[1], "seconds_2": best[2],
                         "speedup": best[1] / best[2],
                         "auto": auto_workers(m, sizes, 512, e, n_cores=2)})
    return rows


def crossover_table(rows: list[dict[str, Any]]) -> str:
    lines = ["9 x 2 tanh net, 512 samples, full batch: --workers 2 over --workers 1 (training "
             f"only; load average {os.getloadavg()[0]:.1f}):", "",
             "| members | epochs | work | 1 process s | 2 processes s | speed-up | auto |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['members']} | {r['epochs']} | {r['work']:.1e} | "
                     f"{r['seconds_1']:.2f} | {r['seconds_2']:.2f} | {r['speedup']:.2f}x | "
                     f"{r['auto']} |")
    return "\n".join(lines)


def table(res: dict[str, Any]) -> str:
    lines = [f"run --workers 1 vs 2 ({res['cores']} cores, best of {res['repeats']}, "
             "alternating):", "",
             "| workload | members | --workers 1 s | --workers 2 s | speed-up | same numbers |",
             "|---|---:|---:|---:|---:|---|"]
    for r in res["workloads"]:
        lines.append(f"| {r['name']} | {r['members']} | {r['seconds_1']:.2f} | "
                     f"{r['seconds_2']:.2f} | {r['speedup']:.2f}x | "
                     f"{'yes' if r['same'] else 'NO'} |")
    c = res["core_scaling"]
    lines += ["", f"two processes at once vs one: pure Python {c['python']:.2f}x the "
              f"throughput, NumPy elementwise {c['numpy']:.2f}x (load average "
              f"{res['load_average'][0]:.1f})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--crossover", action="store_true",
                    help="measure where --workers 2 starts to pay (members x epochs)")
    a = ap.parse_args(argv)
    if a.crossover:
        print(crossover_table(crossover(a.repeats)))
        return 0
    print(table(workers_workload(a.repeats, a.only)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
