"""initlab's trainer against a NumPy loop over seeds, a PyTorch eager loop and PyTorch batched.

    python benchmarks/bench.py [--only NAME ...] [--repeats R] [--memory] [--out FILE]

Every library runs at one thread (threadpoolctl for NumPy's BLAS, torch.set_num_threads(1)).
Each workload trains S independent MLPs full batch with SGD (binary cross-entropy, float64) on
the article's circle data, from the same initial weights in every implementation, and checks
that all of them reach the same final loss (same math). It reports seconds, ratios measured in
this one run, achieved GFLOP/s (6 * parameters * samples * steps per member) and the
single-thread large-GEMM GFLOP/s of the machine. `initlab` is the trainer with statistics
recorded at the configs' default interval (every 10 steps); the time spent recording is
measured inside that run (`stats_overhead` = recording time / the rest of training).

`make bench` also runs `initlab run benchmarks/deep50.yaml` end to end in a fresh process (a
50-layer x 32 tanh net, 6 variants x 2 seeds, 40 epochs: benchmarks/deep_bench.py) and reports
its training time beside its total time, peak RSS, report.html's size and the largest PNG
(`--only deep1000`: the 1000-layer x 8 net of benchmarks/deep1000.yaml).

`make bench` also times `initlab run --workers 1` against `--workers 2` side by side on
seed_tiny, playground_sweep and medium (benchmarks/workers_bench.py; the machine's core count
is printed with them).

Loops over members are linear in the number of members: on `playground_sweep` (100 members x
2000 steps) and `medium` (half its members) the two loop implementations train a subset of the
members and their time is scaled to all of them (marked "extrapolated" in the JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import gzip
import itertools
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from initlab.data.datasets import load
from initlab.nn import inits
from initlab.nn import train as train_mod
from initlab.nn.activations import get_activation
from initlab.nn.losses import get_loss
from initlab.nn.model import MemberInit, Population, init_population, population_memory_bytes
from initlab.nn.stats import default_bins
from initlab.nn.train import Schedule, train

try:
    import torch
except ImportError:  # the optional extra initlab[bench]
    torch = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
Array = np.ndarray


@dataclass(frozen=True)
class Workload:
    name: str
    sizes: list[int]
    activation: str
    samples: int
    steps: int
    seeds: int
    schemes: tuple[str, ...] = ("xavier_normal",)
    lr: float = 0.1
    every: int = 10  # the configs' default recording interval
    loop_subset: int | None = None  # loops train this many members and are scaled up
    repeats: int = 3  # rounds of initlab and torch batched (best kept)
    loop_rounds: int = 2  # rounds of the loops over members (slow: fewer where they are long)
    dtype: str = "float64"  # the configs' default; a float32 twin shows the other precision

    @property
    def rtol(self) -> tuple[float, float]:
        """(after 3 steps, final): how closely implementations must agree in this precision."""
        return (1e-9, 1e-4) if self.dtype == "float64" else (1e-4, 1e-2)


WORKLOADS = [
    Workload("seed_tiny", [2] + [2] * 9 + [1], "tanh", 512, 100, 32),
    Workload("medium", [2] + [64] * 9 + [1], "tanh", 1024, 50, 16, loop_subset=8, repeats=2,
             loop_rounds=1),  # the loops' half of the members, scaled up: bench < 5 min
    Workload("wide", [2] + [512] * 5 + [1], "tanh", 1024, 20, 2, lr=0.01, repeats=2,
             loop_rounds=1),
    Workload("playground_sweep", [2, 6, 3, 1], "relu", 100, 2000, 25,
             schemes=("zero", "too_small", "appropriate", "too_large"), loop_subset=8,
             repeats=2, loop_rounds=1),
    Workload("seed_tiny_float32", [2] + [2] * 9 + [1], "tanh", 512, 100, 32, dtype="float32"),
]


# --------------------------------------------------------------------------- implementations
def _bce(z: Array, y: Array) -> tuple[float, Array]:
    """Mean BCE with logits of one member, z (B, 1), y (B, 1); and dL/dz."""
    loss = float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))
    return loss, (1 / (1 + np.exp(-z)) - y) / z.size


def numpy_member(Ws: list[Array], bs: list[Array], x: Array, y: Array, act: str, steps: int,
                 lr: float) -> float:
    """The straightforward per-member NumPy trainer: (B, width) layout, 2-D matmuls."""
    relu = act == "relu"
    y = y[:, None]
    with np.errstate(all="ignore"):
        for _ in range(steps + 1):
            hs, zs = [x], []
            for l, (W, b) in enumerate(zip(Ws, bs)):
                z = hs[-1] @ W + b
                zs.append(z)
                if l < len(Ws) - 1:
                    hs.append(np.maximum(z, 0) if relu else np.tanh(z))
            loss, dz = _bce(zs[-1], y)
            if _ == steps:
                return loss
            for l in range(len(Ws) - 1, -1, -1):
                dW, db = hs[l].T @ dz, dz.sum(0, keepdims=True)
                if l:
                    dz = dz @ Ws[l].T
                    dz *= (zs[l - 1] > 0) if relu else (1 - hs[l] ** 2)
                Ws[l] -= lr * dW
                bs[l] -= lr * db
    raise AssertionError


def run_numpy_loop(pop: Population, x: Array, y: Array, w: Workload, members: list[int]
                   ) -> list[float]:
    return [numpy_member([W[m].copy() for W in pop.Ws], [b[m].copy() for b in pop.bs], x, y,
                         w.activation, w.steps, w.lr) for m in members]


def run_torch_eager(pop: Population, x: Array, y: Array, w: Workload, members: list[int]
                    ) -> list[float]:
    """What most users write: one nn.Sequential per seed, torch.optim.SGD, a loop over seeds."""
    nn = torch.nn
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)[:, None]
    out = []
    for m in members:
        layers: list[Any] = []
        for l, (W, b) in enumerate(zip(pop.Ws, pop.bs)):
            lin = nn.Linear(W.shape[1], W.shape[2], dtype=getattr(torch, w.dtype))
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(W[m].T))
                lin.bias.copy_(torch.from_numpy(b[m, 0]))
            layers.append(lin)
            if l < pop.L - 1:
                layers.append(nn.ReLU() if w.activation == "relu" else nn.Tanh())
        net = nn.Sequential(*layers)
        opt = torch.optim.SGD(net.parameters(), lr=w.lr)
        lossf = nn.BCEWithLogitsLoss()
        for _ in range(w.steps):
            opt.zero_grad(set_to_none=True)
            loss = lossf(net(xt), yt)
            loss.backward()
            opt.step()
        with torch.no_grad():
            out.append(float(lossf(net(xt), yt)))
    return out


def run_torch_batched(pop: Population, x: Array, y: Array, w: Workload, members: list[int]
                      ) -> list[float]:
    """Stacked weights (M, fan_in, fan_out), bmm, autograd, a hand-written SGD step."""
    idx = np.asarray(members)
    Ws = [torch.from_numpy(W[idx].copy()).requires_grad_() for W in pop.Ws]
    bs = [torch.from_numpy(b[idx].copy()).requires_grad_() for b in pop.bs]
    M = len(members)
    xt = torch.from_numpy(x).expand(M, *x.shape)
    yt = torch.from_numpy(y)[None, :, None].expand(M, -1, -1)
    act = torch.relu if w.activation == "relu" else torch.tanh

    def member_losses() -> Any:
        h = xt
        for l, (W, b) in enumerate(zip(Ws, bs)):
            h = torch.baddbmm(b, h, W)
            if l < len(Ws) - 1:
                h = act(h)
        return torch.nn.functional.binary_cross_entropy_with_logits(
            h, yt, reduction="none").mean(dim=(1, 2))

    for _ in range(w.steps):
        member_losses().sum().backward()
        with torch.no_grad():
            for p in (*Ws, *bs):
                p -= w.lr * p.grad
                p.grad = None
    with torch.no_grad():
        return member_losses().tolist()


STATS_SECONDS = [0.0]


def _timed_record(*args: Any, **kw: Any) -> Any:
    t = time.perf_counter()
    try:
        return _record_stats(*args, **kw)
    finally:
        STATS_SECONDS[0] += time.perf_counter() - t


_record_stats = train_mod.record_stats
train_mod.record_stats = _timed_record


def run_initlab(pop: Population, x: Array, y: Array, w: Workload, every: int) -> list[float]:
    act = get_activation(w.activation)
    sched = Schedule(loss=get_loss("bce"), epochs=w.steps, every=every)
    h = train(pop, x, y, sched, np.full(pop.M, w.lr), default_bins(act))
    return [float(v) for v in h.final_loss]


# --------------------------------------------------------------------------- measurement
def gemm_gflops(n: int = 2048, repeats: int = 3) -> float:
    """Single-thread float64 GEMM rate of NumPy's BLAS: the machine's physical reference."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(n, n)), rng.normal(size=(n, n))
    c = np.empty((n, n))
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def params_per_member(sizes: list[int]) -> int:
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def _same(a: list[float], b: list[float], rtol: float = 1e-6) -> tuple[bool, float]:
    a_, b_ = np.asarray(a), np.asarray(b)
    fa, fb = np.isfinite(a_), np.isfinite(b_)
    if (fa != fb).any():
        return False, float("inf")
    if not fa.any():
        return True, 0.0
    rel = np.abs(a_[fa] - b_[fa]) / np.maximum(np.abs(b_[fa]), 1e-12)
    return bool((rel <= rtol).all()), float(rel.max())


def exp_seconds(n: int, dtype: str, repeats: int = 5) -> float:
    """Seconds NumPy's exp takes over n elements of O(1) values: the one transcendental each
    tanh unit needs per step (NumPy's float64 exp is scalar libm on AVX2 machines)."""
    a = np.random.default_rng(0).normal(size=n).astype(dtype)
    out = np.empty_like(a)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.exp(a, out=out)
        best = min(best, time.perf_counter() - t)
    return best


def floor_seconds(w: Workload, M: int, flop: float, gemm: float) -> dict[str, float]:
    """What no NumPy implementation can beat: every multiply-add at the single-thread GEMM rate
    (6 * parameters * samples * steps * members flop) and, for tanh, one exp per hidden unit
    per sample per step."""
    gemm_s = flop / (gemm * 1e9)
    units = sum(w.sizes[1:-1]) * M * w.samples
    exp_s = w.steps * exp_seconds(units, w.dtype) if w.activation == "tanh" else 0.0
    return {"gemm_seconds": gemm_s, "exp_seconds": exp_s, "seconds": gemm_s + exp_s}


def run_workload(w: Workload, repeats: int | None, gemm: float) -> dict[str, Any]:
    reps = repeats or w.repeats
    ds = load("circle", rng=np.random.default_rng(0), samples=w.samples)
    x, y = ds.x.astype(w.dtype), ds.y.astype(w.dtype)
    act = get_activation(w.activation)
    members = [MemberInit(inits.resolve(s, activation=w.activation), None, (0, k))
               for s in w.schemes for k in range(w.seeds)]
    pop0 = init_population(w.sizes, act, members, dtype=np.dtype(w.dtype))
    M = pop0.M
    if w.loop_subset:  # spread over the variants: k seeds of each
        per = max(1, w.loop_subset // len(w.schemes))
        subset = [v * w.seeds + s for v in range(len(w.schemes)) for s in range(per)]
    else:
        subset = list(range(M))
    scale = M / len(subset)
    flop = 6 * params_per_member(w.sizes) * w.samples * w.steps * M

    impls: dict[str, dict[str, Any]] = {}
    runs: dict[str, Callable[[Workload], list[float]]] = {
        "initlab": lambda v: run_initlab(copy.deepcopy(pop0), x, y, v, v.every),
        "numpy_loop": lambda v: run_numpy_loop(pop0, x, y, v, subset),
    }
    if torch is not None:
        runs["torch_eager"] = lambda v: run_torch_eager(pop0, x, y, v, subset)
        runs["torch_batched"] = lambda v: run_torch_batched(pop0, x, y, v, list(range(M)))
    # same math: after 3 steps every implementation has the same loss to 1e-9 (over many steps
    # rounding differences grow in chaotic members: final losses are compared loosely)
    short = replace(w, steps=3)
    ref3 = runs["initlab"](short)
    # rounds interleave the implementations, so that a load that comes and goes on a shared
    # machine weighs on all of them alike; each keeps its best round
    loops = ("numpy_loop", "torch_eager")
    rounds = {n: min(w.loop_rounds, reps) if n in loops else reps for n in runs}
    best: dict[str, tuple[float, list[float], float]] = {}
    for rnd in range(max(rounds.values())):
        for name in runs:
            if rnd < rounds[name]:
                STATS_SECONDS[0] = 0.0
                t = time.perf_counter()
                losses = runs[name](w)
                t = time.perf_counter() - t
                if name not in best or t < best[name][0]:
                    best[name] = (t, losses, STATS_SECONDS[0])
    for name, (t, losses, _) in best.items():
        t_all = t * scale if name in loops else t
        impls[name] = {"seconds": t_all, "gflops": flop / t_all / 1e9, "final_loss": losses,
                       "extrapolated": name in loops and scale != 1, "members_run": len(losses),
                       "rounds": rounds[name]}
    stats_seconds = best["initlab"][2]  # inside the best initlab round
    ref = impls["initlab"]["final_loss"]
    for name, r in impls.items():
        n_run = r["members_run"]
        pick = (lambda a: a) if n_run == M else (lambda a: [a[m] for m in subset])
        mine3 = runs[name](short) if name != "initlab" else ref3
        r["same_math"], r["rel_diff_3_steps"] = _same(mine3, pick(ref3), w.rtol[0])
        _ok, r["max_rel_diff"] = _same(r["final_loss"], pick(ref), w.rtol[1])
        rel = np.abs(np.asarray(r["final_loss"]) - pick(ref)) / np.maximum(np.abs(pick(ref)),
                                                                            1e-12)
        r["final_agree"] = float(np.mean(np.where(np.isnan(rel), 1.0, rel) <= w.rtol[1]))
        r["same_loss"] = r["same_math"]
    t0 = impls["initlab"]["seconds"]
    for r in impls.values():
        r["speedup_of_initlab"] = r["seconds"] / t0
    stats_cost = stats_seconds / (t0 - stats_seconds)
    floor = floor_seconds(w, M, flop, gemm)
    floor["initlab_over_floor"] = t0 / floor["seconds"]
    return {"workload": w.__dict__ | {"schemes": list(w.schemes)}, "members": M, "floor": floor,
            "params_per_member": params_per_member(w.sizes), "flop": flop,
            "stats_overhead": stats_cost, "impls": impls}


# --------------------------------------------------------------------------- memory
def _idx(path: Path, magic: int, arr: Array) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def mnist_memory(epochs: int = 1) -> dict[str, Any]:
    """Peak RSS of `initlab run configs/mnist.yaml` on a synthetic IDX stand-in of MNIST's test
    split (10,000 x 28 x 28), in a fresh process; and the formula's estimate of the population."""
    with tempfile.TemporaryDirectory() as d:
        rng = np.random.default_rng(0)
        _idx(Path(d) / "t10k-images-idx3-ubyte.gz", 0x803,
             rng.integers(0, 256, size=(10_000, 28, 28)))
        _idx(Path(d) / "t10k-labels-idx1-ubyte.gz", 0x801, rng.integers(0, 10, size=10_000))
        code = (
            "import resource, sys, time\n"
            "import initlab\nfrom initlab.config.schema import load_config\n"
            "t = time.perf_counter()\n"
            f"cfg = load_config({str(ROOT / 'configs/mnist.yaml')!r}, overrides=["
            f"'data.path={d}', 'train.epochs={epochs}'])\n"
            "initlab.run(cfg)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - t)\n"
        )
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, env=env).stdout.split()
    sizes, M, batch = [784, 300, 300, 300, 300, 10], 8, 100
    return {"config": "configs/mnist.yaml", "epochs": epochs, "peak_rss_bytes": int(out[0]) * 1024,
            "seconds": float(out[1]),
            "population_memory_bytes": population_memory_bytes(sizes, M, batch, np.float64),
            "measure_memory_bytes": population_memory_bytes(sizes, M, 1000, np.float64)}


# --------------------------------------------------------------------------- report
def machine() -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    blas = [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for i in threadpool_info()]
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "torch": getattr(torch, "__version__", None),
            "blas": blas, "platform": platform.platform(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}


NAMES = ("initlab", "numpy_loop", "torch_eager", "torch_batched")


def table(results: list[dict[str, Any]]) -> str:
    head = ("| workload | members | implementation | seconds | initlab speedup | GFLOP/s "
            "| same loss (3 steps; final) |\n|---|---:|---|---:|---:|---:|---|")
    rows = [head]
    for r in results:
        for name in NAMES:
            if name not in r["impls"]:
                continue
            i = r["impls"][name]
            mark = " (extrap.)" if i["extrapolated"] else ""
            rows.append(f"| {r['workload']['name']} | {r['members']} | {name} | "
                        f"{i['seconds']:.3f}{mark} | {i['speedup_of_initlab']:.2f}x | "
                        f"{i['gflops']:.2f} | {'yes' if i['same_loss'] else 'NO'} "
                        f"({i['rel_diff_3_steps']:.0e}; {i['final_agree']:.0%}) |")
    return "\n".join(rows)


def summary(run: dict[str, Any]) -> str:
    """The README's table: one row a workload, initlab's seconds and its speed-up over each of
    the others (> 1: initlab is faster), from a JSON file this script wrote."""
    gemm = run["gemm_gflops"]
    rows = ["| workload | members | initlab s | vs NumPy loop | vs torch eager | vs torch batched "
            "| % of GEMM | x NumPy floor | statistics |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in run["results"]:
        i = r["impls"]
        x = [f"{i[n]['speedup_of_initlab']:.2f}x" if n in i else "-" for n in NAMES[1:]]
        rows.append(f"| {r['workload']['name']} | {r['members']} | {i['initlab']['seconds']:.2f} "
                    f"| {' | '.join(x)} | {i['initlab']['gflops'] / gemm:.0%} "
                    f"| {r['floor']['initlab_over_floor']:.1f} | {r['stats_overhead']:.0%} |")
    return "\n".join(rows)


def targets(results: list[dict[str, Any]], gemm: float, mem: dict[str, Any] | None,
            seconds: float) -> list[dict[str, Any]]:
    """The issue's targets, judged on this run's numbers: [{target, value, met}]."""
    by = {r["workload"]["name"]: r for r in results}
    out: list[dict[str, Any]] = []

    def speedup(name: str, impl: str, need: float) -> None:
        if name in by and impl in by[name]["impls"]:
            v = by[name]["impls"][impl]["speedup_of_initlab"]
            out.append({"target": f"{name} >= {need:g}x {impl}", "value": f"{v:.2f}x",
                        "met": v >= need})

    speedup("seed_tiny", "torch_eager", 10)
    speedup("seed_tiny", "torch_batched", 2)
    speedup("medium", "torch_batched", 1)
    speedup("wide", "torch_batched", 1)
    if "wide" in by:
        v = by["wide"]["impls"]["initlab"]["gflops"] / gemm
        out.append({"target": "wide >= 70% of single-thread GEMM", "value": f"{v:.0%}",
                    "met": v >= 0.7})
    for r in results:
        v = r["stats_overhead"]
        out.append({"target": f"{r['workload']['name']} statistics < 15% of training",
                    "value": f"{v:.1%}", "met": v < 0.15})
    if mem:
        v = mem["peak_rss_bytes"] / 2**30
        out.append({"target": "configs/mnist.yaml peak RSS < 1.5 GB", "value": f"{v:.2f} GiB",
                    "met": v < 1.5})
    out.append({"target": "benchmark < 5 min", "value": f"{seconds / 60:.1f} min (this script)",
                "met": seconds < 300})
    return out


def deep_targets(deep: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 17's targets for the end-to-end runs: [{target, value, met}]."""
    out: list[dict[str, Any]] = []
    for r in deep:
        n = r["name"]
        out.append({"target": f"{n}: outside training <= max(50% of training, 20 s)",
                    "value": f"{r['other_seconds']:.1f} s of {r['seconds']:.1f} s "
                             f"(training {r['training_seconds']:.1f} s)",
                    "met": r["within_budget"]})
        out.append({"target": f"{n}: peak RSS < 1 GB, report.html < 3 MB, PNG <= 4000 px",
                    "value": f"{r['peak_rss_bytes'] / 2**20:.0f} MiB, "
                             f"{r['report_html_bytes'] / 1e6:.2f} MB, {r['max_png_px']} px",
                    "met": r["peak_rss_bytes"] < 2**30 and r["report_html_bytes"] < 3e6
                    and r["max_png_px"] <= 4000})
        if n == "deep1000":
            out.append({"target": "deep1000 end to end < 3 min", "met": r["seconds"] < 180,
                        "value": f"{r['seconds']:.1f} s"})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="workload names to run")
    ap.add_argument("--repeats", type=int, help="best of R (default per workload)")
    ap.add_argument("--memory", action="store_true", help="also the MNIST peak-RSS check")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/latest.json")
    ap.add_argument("--summary", type=Path, metavar="JSON",
                    help="print the README's table of a JSON file this script wrote, and exit")
    a = ap.parse_args(argv)
    if a.summary:
        print(summary(json.loads(a.summary.read_text())))
        return 0
    t_start = time.perf_counter()
    with threadpool_limits(limits=1):
        if torch is not None:
            torch.set_num_threads(1)
        info = machine()
        gemm = gemm_gflops()
        print(f"machine: {info['cpu']}, {info['cores']} cores; numpy {info['numpy']}, "
              f"torch {info['torch']}; BLAS {info['blas']}")
        print(f"single-thread float64 GEMM (2048^3): {gemm:.2f} GFLOP/s")
        results = []
        for w in WORKLOADS:
            if a.only and w.name not in a.only:
                continue
            r = run_workload(w, a.repeats, gemm)
            results.append(r)
            i = r["impls"]
            line = f"{w.name}: initlab {i['initlab']['seconds']:.3f}s"
            for name in ("numpy_loop", "torch_eager", "torch_batched"):
                if name in i:
                    line += f", {name} x{i[name]['speedup_of_initlab']:.2f}"
            line += (f", stats {100 * r['stats_overhead']:.1f}%, "
                     f"{i['initlab']['gflops'] / gemm:.0%} of GEMM, "
                     f"{r['floor']['initlab_over_floor']:.2f}x the floor")
            print(line, flush=True)
        # the machine's rate is the best seen: measured again at the end, when the load that a
        # shared machine carries may differ
        gemm_end = gemm_gflops()
        if gemm_end > gemm:
            gemm = gemm_end
            for r in results:
                f = r["floor"]
                f["gemm_seconds"] = r["flop"] / (gemm * 1e9)
                f["seconds"] = f["gemm_seconds"] + f["exp_seconds"]
                f["initlab_over_floor"] = r["impls"]["initlab"]["seconds"] / f["seconds"]
        print(f"single-thread float64 GEMM, best of start and end: {gemm:.2f} GFLOP/s")
    mem = mnist_memory() if a.memory else None
    from residual_bench import residual_workload  # beside this script

    res = residual_workload() if not a.only or "residual" in a.only else None
    if res:
        print(f"residual: {res['depth']} blocks x {res['members']} members, {res['steps']} Adam "
              f"steps: experiment {res['experiment_seconds']:.1f} s "
              f"({res['us_per_block_step']:.0f} us per block and step), whole run "
              f"{res['seconds']:.1f} s, peak RSS {res['peak_rss_bytes'] / 2**20:.0f} MiB, "
              f"ReZero loss {res['rezero_loss'][0]:.3f} -> {res['rezero_loss'][1]:.3f}")
    from deep_bench import DEFAULT as DEEP_DEFAULT
    from deep_bench import deep_workload
    from deep_bench import line as deep_line  # beside this script

    # the end-to-end runs of `initlab run` (issue 17): deep50 always, deep1000 on request
    deep = [deep_workload(n) for n in ("deep50", "deep1000")
            if (n in a.only if a.only else n in DEEP_DEFAULT)]
    for r in deep:
        print(deep_line(r), flush=True)
    from workers_bench import table as workers_table
    from workers_bench import workers_workload  # beside this script

    # outside the one-thread limit: workers=1 with the BLAS threads a run gets by default
    par = workers_workload(names=a.only) if not a.only or \
        {"seed_tiny", "playground_sweep", "medium"} & set(a.only) else None
    print()
    print(table(results))
    if par:
        print()
        print(workers_table(par))
    if mem:
        print(f"\nconfigs/mnist.yaml (synthetic 10,000 x 784 IDX, {mem['epochs']} epoch): "
              f"peak RSS {mem['peak_rss_bytes'] / 2**20:.0f} MiB; population formula "
              f"{mem['population_memory_bytes'] / 2**20:.1f} MiB (batch 100), "
              f"{mem['measure_memory_bytes'] / 2**20:.1f} MiB (measure batch 1000)")
    total = time.perf_counter() - t_start
    goals = targets(results, gemm, mem, total) + deep_targets(deep)
    print("\n| target | this run | met |\n|---|---|---|")
    for g in goals:
        print(f"| {g['target']} | {g['value']} | {'yes' if g['met'] else 'NO'} |")
    out = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
           "command": "make bench", "machine": info, "gemm_gflops": gemm,
           "results": results, "mnist_memory": mem, "residual": res, "workers": par,
           "deep": deep,
           "targets": goals,
           "seconds_total": total, "load_average": os.getloadavg()}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\n{time.perf_counter() - t_start:.0f} s; wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
