"""The coordinate check (the `mup` package's get_coord_data / plot_coord_data), for every
variant x seed of a config at once: train each width a few steps and record how the size of
every layer's output moves with width.

    cc = run_coordcheck(resolved_config, widths=[64, 128, 256], steps=3, workers=2)
    cc.slopes    # [{variant, layer, step, slope, verdict}, ...]

Each width is one population (the config's variants x seeds, each member with its own
parametrization's multipliers); widths train in parallel like sweep cells (local processes,
inline, or Dask: initlab.sweep.execute.executor). Step t = 0 is the forward pass at init,
before any update; t = k the forward pass after k updates (t = 0 .. steps - 1, as mup's
nsteps). Layer l = 1 .. L is the output of weight layer l: h[l] = phi(z[l]) for the hidden
layers, the logits z[L] for the readout. l1 = mean |h[l]| over the batch and the units, then
averaged over seeds (l1_std, l1_min, l1_max: the seeds' spread).

A slope is the least-squares slope of log l1 against log width over the widths. Verdict:
|slope| < FLAT_SLOPE is flat, above it growing, below -FLAT_SLOPE shrinking; a non-finite l1 at
any width (a blown-up layer) is `diverged`, its slope taken over the finite widths (null if
fewer than two); a layer whose l1 is 0 at all widths but at most one (a readout started at
zero, `readout: zeros`, at t = 0) is `zero`, its slope null. Zero l1 values are left out of a
slope (log 0).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FLAT_SLOPE = 0.15  # |d log l1 / d log width| below this is `flat`
VERDICTS = ("flat", "growing", "shrinking", "diverged", "zero")
FORMAT_VERSION = 1
DEFAULT_STEPS = 3
BATCH_STREAM = 0xC0DE  # the batch order's seed word, beside the config's seed


# ---------------------------------------------------------------- the plan


@dataclass
class CoordPlan:
    config: dict[str, Any]  # resolved, without coordcheck
    widths: list[int]
    steps: int
    expect: list[dict[str, Any]] | None  # coordcheck.expect, for `initlab check`


def coordcheck_plan(source: str, sets: Sequence[str] = (), widths: Sequence[int] | None = None,
                    steps: int | None = None) -> CoordPlan:
    """Validate the config (ConfigError, positioned) and resolve widths and steps: the
    arguments, else the config's `coordcheck:` section, else (steps) DEFAULT_STEPS."""
    from initlab.api import resolve
    from initlab.config.schema import load_config
    from initlab.errors import ConfigError, Problem

    cfg = load_config(source, overrides=sets)
    section = cfg.coordcheck
    chosen = list(widths) if widths else (list(section.widths) if section and section.widths
                                          else None)
    if not chosen:
        raise ConfigError([Problem("no widths to check", "coordcheck.widths", source,
                                   expected="--widths 64,128,256 or coordcheck: {widths: [64, "
                                   "128, 256]}")])
    if cfg.model.widths is not None and len(set(cfg.model.widths)) > 1:
        raise ConfigError([Problem("the coordinate check scales every hidden layer alike",
                                   "model.widths", source,
                                   expected="model: {depth: D, width: W} (or equal widths)")])
    n = steps if steps is not None else (section.steps if section else DEFAULT_STEPS)
    return CoordPlan(resolve(cfg), sorted(set(int(w) for w in chosen)), int(n),
                     section.expect if section else None)


# ---------------------------------------------------------------- one width (the worker)


def width_config(cfg: Mapping[str, Any], width: int) -> dict[str, Any]:
    """The resolved config with every hidden layer `width` units wide."""
    out = copy.deepcopy(dict(cfg))
    depth = len(out["model"]["widths"])
    out["model"]["widths"] = [int(width)] * depth
    return out


def batch_order(cfg: Mapping[str, Any], n: int) -> np.ndarray:
    """The samples' order the batches are cut from: one permutation drawn from the config's
    `seed` (the same for every member and width; mup's coord check draws its batches from a
    shuffled loader). Data sets stored in class order (digits cycles 0..9) would otherwise
    give batches that are exactly class-balanced."""
    return np.random.default_rng([int(cfg.get("seed", 0)), BATCH_STREAM]).permutation(n)


def coord_data(cfg: Mapping[str, Any], steps: int) -> np.ndarray:
    """l1[t, m, l] (steps, M, L): mean |h[l]| over batch and units of member m at step t.

    Full batch (train.batch_size null), or batches of batch_size consecutive samples of
    `batch_order`, the same for every member. The optimizer and learning rates are the
    config's, with each member's parametrization applied."""
    from initlab.experiment import build_population, setup
    from initlab.nn.model import backward, forward
    from initlab.nn.optim import make_optimizer

    s = setup(cfg)
    x: np.ndarray = s.dataset.x.astype(s.dtype)
    y: np.ndarray = s.dataset.y.astype(s.dtype) if s.loss.name in ("bce", "mse") else s.dataset.y
    tr = cfg["train"]
    N = len(x)
    B = min(int(tr.get("batch_size") or N), N)
    order = batch_order(cfg, N)
    with np.errstate(all="ignore"):
        pop = build_population(s, x[order[:B]])
        opt = make_optimizer(tr.get("optimizer", "sgd"), s.lr, momentum=float(tr["momentum"]),
                             beta1=float(tr["beta1"]), beta2=float(tr["beta2"]),
                             eps=float(tr["eps"]), lr_mult=pop.lr_mults)
        L = pop.L
        l1 = np.zeros((steps, pop.M, L))
        active = np.ones(pop.M, dtype=bool)
        for t in range(steps):
            lo = (t * B) % N
            idx = order[np.arange(lo, lo + B) % N]
            xb, yb = x[idx], y[idx]
            trace = forward(pop, xb)
            for l in range(L):
                h = trace.hs[l + 1]  # (M, B, width): phi(z[l]), the logits for l = L
                l1[t, :, l] = np.abs(h).mean(axis=(1, 2))
            if t == steps - 1:
                break
            _, dout = s.loss.fn(trace.out, yb)
            grads = backward(pop, trace, dout)
            opt.step(pop.params, grads.params, active)
    return l1


def run_width(task: Mapping[str, Any]) -> dict[str, Any]:
    """Worker entry point: {config, width, steps} -> {width, l1 (list), seconds}."""
    from initlab.sweep.execute import CellError

    t0 = time.perf_counter()
    try:
        l1 = coord_data(task["config"], int(task["steps"]))
    except Exception as e:  # sent back as plain text
        raise CellError(f"width {task['width']}: {type(e).__name__}: {e}") from None
    return {"width": int(task["width"]), "l1": l1, "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------- all widths (the driver)


@dataclass
class CoordCheck:
    """The coordinate data of every variant, width, step and layer, and its slopes."""

    labels: list[str]
    parametrizations: list[str]
    widths: list[int]
    steps: int
    seeds: int
    l1: np.ndarray  # (V, W, T, L) mean over seeds
    l1_std: np.ndarray  # (V, W, T, L) over seeds
    l1_min: np.ndarray
    l1_max: np.ndarray
    slopes: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def layers(self) -> int:
        return int(self.l1.shape[-1])


def fit_slope(widths: Sequence[int], l1: Sequence[float] | np.ndarray) -> tuple[float | None,
                                                                                str]:
    """(least-squares slope of log l1 on log width, verdict) over the finite positive l1."""
    w = np.asarray(widths, dtype=float)
    v = np.asarray(l1, dtype=float)
    ok = np.isfinite(v) & (v > 0)
    slope = None
    if ok.sum() >= 2:
        lx, ly = np.log(w[ok]), np.log(v[ok])
        lx = lx - lx.mean()
        slope = float(np.dot(lx, ly - ly.mean()) / np.dot(lx, lx))
    if not np.isfinite(v).all():
        return slope, "diverged"
    if slope is None:  # finite, and 0 at all but at most one width (a zero-initialized readout)
        return None, "zero"
    if slope >= FLAT_SLOPE:
        return slope, "growing"
    if slope <= -FLAT_SLOPE:
        return slope, "shrinking"
    return slope, "flat"


def assemble(parts: Sequence[Mapping[str, Any]], labels: Sequence[str],
             parametrizations: Sequence[str], seeds: int, steps: int) -> CoordCheck:
    """Per-member l1 of each width -> seeds' mean and spread per variant, and every slope."""
    parts = sorted(parts, key=lambda p: p["width"])
    widths = [int(p["width"]) for p in parts]
    V = len(labels)
    per = np.stack([np.asarray(p["l1"], dtype=float) for p in parts])  # (W, T, M, L)
    Wn, T, _, L = per.shape
    by = per.reshape(Wn, T, V, seeds, L).transpose(2, 0, 1, 3, 4)  # (V, W, T, S, L)
    with np.errstate(all="ignore"):
        cc = CoordCheck(list(labels), list(parametrizations), widths, steps, seeds,
                        by.mean(axis=3), by.std(axis=3), by.min(axis=3), by.max(axis=3),
                        seconds=float(sum(p.get("seconds", 0.0) for p in parts)))
    for v, label in enumerate(labels):
        for t in range(T):
            for l in range(L):
                slope, verdict = fit_slope(widths, cc.l1[v, :, t, l])
                cc.slopes.append({"variant": label, "layer": l + 1, "step": t,
                                  "slope": slope, "verdict": verdict})
    return cc


def run_coordcheck(cfg: Mapping[str, Any], widths: Sequence[int], steps: int, *,
                   backend: str = "local", workers: int | None = None,
                   address: str | None = None) -> CoordCheck:
    """Train every width `steps` steps (one population per width, in parallel)."""
    import concurrent.futures as cf

    from initlab.sweep.execute import executor

    ordered = sorted(dict.fromkeys(int(w) for w in widths), reverse=True)
    tasks: list[dict[str, Any]] = [{"config": width_config(cfg, w), "width": w,
                                    "steps": int(steps)} for w in ordered]
    t0 = time.perf_counter()
    with executor(backend, workers, address) as ex:
        # the widest first: it is the longest, the others fill the remaining workers
        futures = [ex.submit(run_width, t) for t in tasks]
        parts = [f.result() for f in cf.as_completed(futures)]
    labels = [str(v["label"]) for v in cfg["init"]]
    params = [str(v.get("parametrization", "sp")) for v in cfg["init"]]
    cc = assemble(parts, labels, params, int(cfg.get("seeds", 1)), int(steps))
    cc.seconds = time.perf_counter() - t0
    return cc


# ---------------------------------------------------------------- summary and table


def variant_summary(cc: CoordCheck, v: int) -> dict[str, Any]:
    """One variant's slopes as check metrics: slope[t][l-1]; per step the largest slope, the
    largest |slope|, and the largest |slope| of the layers before the readout."""
    S = np.full((cc.steps, cc.layers), np.nan)
    for e in cc.slopes:
        if e["variant"] == cc.labels[v] and e["slope"] is not None:
            S[e["step"], e["layer"] - 1] = e["slope"]

    def red(fn: Any, a: np.ndarray) -> list[float | None]:
        out = []
        for row in a:
            row = row[np.isfinite(row)]
            out.append(float(fn(row)) if row.size else None)
        return out

    return {"label": cc.labels[v], "parametrization": cc.parametrizations[v],
            "slope": [[None if not math.isfinite(x) else float(x) for x in row] for row in S],
            "max_slope": red(np.max, S), "max_abs_slope": red(np.max, np.abs(S)),
            "max_abs_hidden_slope": red(np.max, np.abs(S[:, :-1]) if cc.layers > 1 else S)}


def summary(cc: CoordCheck, name: str, command: str) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "kind": "coordcheck", "name": name,
            "command": command, "widths": cc.widths, "steps": cc.steps, "seeds": cc.seeds,
            "layers": cc.layers, "flat_slope": FLAT_SLOPE, "wall_time_s": round(cc.seconds, 3),
            "slopes": cc.slopes,
            "variants": [variant_summary(cc, v) for v in range(len(cc.labels))]}


def coord_rows(cc: CoordCheck) -> list[list[Any]]:
    """coord.csv: variant, width, step, layer, l1, l1_std, l1_min, l1_max."""
    rows: list[list[Any]] = [["variant", "width", "step", "layer", "l1", "l1_std", "l1_min",
                              "l1_max"]]
    for v, label in enumerate(cc.labels):
        for i, w in enumerate(cc.widths):
            for t in range(cc.steps):
                for l in range(cc.layers):
                    rows.append([label, w, t, l + 1, *(
                        f"{float(a[v, i, t, l]):.6g}" for a in (cc.l1, cc.l1_std, cc.l1_min,
                                                                 cc.l1_max))])
    return rows
