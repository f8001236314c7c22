"""A synthetic `Result` that follows docs/CONTRACTS.md ("Results" and "summary.json") exactly,
so writers, plots and reports can be tested without training anything."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pytest

from initlab import outcomes
from initlab.nn.activations import get_activation
from initlab.nn.model import Population
from initlab.results.folder import Result
from initlab.results.layers import recorded_layers

PLAYGROUND_LABELS = ("zero", "too_small", "appropriate", "too_large")
STATS = ("act_mean", "act_var", "pre_mean", "pre_var", "grad_var", "weight_grad_var",
         "weight_var", "saturated", "dead", "grad_data", "update_data")
LAYER_KEYS = ("act_mean", "act_var", "pre_var", "grad_var", "weight_grad_var", "saturated",
              "dead")


def fake_result(variants: int = 4, seeds: int = 3, layers: int = 3, epochs: int = 50,
                two_d: bool = True, task: str = "binary",
                diverge: Iterable[tuple[int, int, int]] | None = None,
                labels: Sequence[str] | None = None, bins: int = 20, every: int = 10,
                grid: int = 21, seed: int = 0) -> Result:
    """V variants x S seeds of an MLP with `layers` weight layers (the last one linear).

    `diverge`: (variant, seed, step) members whose loss becomes inf at `step` and NaN after;
    their statistics and boundary are NaN from then on. Default: the last variant's seed 0
    diverges at step epochs // 2 (the "too_large" button)."""
    rng = np.random.default_rng(seed)
    V, S, L, E = variants, seeds, layers, epochs
    M = V * S
    labels = list(labels) if labels is not None else [
        PLAYGROUND_LABELS[v] if V <= 4 else f"variant_{v}" for v in range(V)]
    if diverge is None:
        diverge = [(V - 1, 0, max(E // 2, 1))] if E > 0 else []
    diverge = list(diverge)
    n_in = 2 if two_d else 16
    n_out = 1 if task == "binary" else 10
    sizes = [n_in, *[6 if l == 0 else 3 for l in range(L - 1)], n_out]

    member_variant = np.repeat(np.arange(V), S)
    member_seed = np.tile(np.arange(S), V)
    loss_steps = np.arange(E + 1)
    rate = np.linspace(0.0, 0.08, V)[member_variant] + rng.uniform(0, 0.01, M)
    loss = (0.69 * np.exp(-np.outer(loss_steps, rate)) + 0.01).astype(np.float64)  # (E+1, M)
    stat_steps = np.unique(np.r_[np.arange(0, E + 1, every), E])
    R = len(stat_steps)
    scale = np.logspace(-2, 2, V)[member_variant]  # per-member "variance" multiplier
    arrays: dict[str, np.ndarray] = {}
    for s in STATS:
        base = np.exp(rng.normal(0, 0.2, (R, M, L)))
        arrays[f"stat_{s}"] = base * scale[None, :, None] ** (np.arange(1, L + 1) / 2)
    for s in ("act_var", "grad_var"):  # the first variant is "zero": exact zeros must be drawable
        arrays[f"stat_{s}"][:, member_variant == 0, :-1] = 0.0
    arrays["stat_saturated"] = rng.uniform(0, 1, (R, M, L))
    arrays["stat_dead"] = rng.uniform(0, 1, (R, M, L))
    h_edges = np.linspace(-1.2, 1.2, bins + 1)
    dz_edges = np.linspace(-12.0, 2.0, bins + 1)
    centers = (h_edges[:-1] + h_edges[1:]) / 2
    dz_centers = (dz_edges[:-1] + dz_edges[1:]) / 2
    spread = np.sqrt(np.minimum(scale, 1.0))[None, :, None, None] * 0.5 + 1e-3
    shrink = 0.7 ** np.arange(L)[None, None, :, None]
    hist_h = 500 * np.exp(-0.5 * (centers / (spread * shrink)) ** 2)  # (1, M, L, bins)
    hist_dz = 500 * np.exp(-0.5 * ((dz_centers + 4 + np.arange(L)[None, None, :, None])
                                   / 1.5) ** 2) * np.ones((1, M, 1, 1))
    # histograms of the layers a real run records (every layer up to 16, else the chosen ones)
    recorded = recorded_layers(L)
    hist_h, hist_dz = hist_h[:, :, recorded], hist_dz[:, :, recorded]
    K = len(recorded)
    arrays["hist_layers"] = np.asarray(recorded, dtype=np.int64) + 1
    arrays["hist_h"] = np.broadcast_to(np.round(hist_h), (R, M, K, bins)).copy()
    arrays["hist_dz"] = np.broadcast_to(np.round(hist_dz), (R, M, K, bins)).copy()
    arrays["hist_h"][-1] = np.round(np.roll(hist_h[0], 2, axis=-1) * 0.8)  # training moved it
    arrays["hist_dz"][-1] = np.round(np.roll(hist_dz[0], -3, axis=-1))
    arrays["hist_h_edges"], arrays["hist_dz_edges"] = h_edges, dz_edges
    arrays["theory_act_var"] = np.logspace(-2, 2, V)[:, None] ** (np.arange(1, L + 1) / 2)

    diverged_step: list[list[int | None]] = [[None] * S for _ in range(V)]
    for v, s, step in diverge:
        m = v * S + s
        diverged_step[v][s] = int(step)
        loss[step, m] = math.inf
        loss[step + 1:, m] = math.nan
        after = stat_steps >= step
        for s_name in STATS:
            arrays[f"stat_{s_name}"][after, m] = math.nan
        arrays["hist_h"][after, m] = 0.0
        arrays["hist_dz"][after, m] = 0.0

    arrays.update(loss=loss, loss_steps=loss_steps, loss_epochs=loss_steps,
                  member_variant=member_variant,
                  member_seed=member_seed, stat_steps=stat_steps)
    if two_d and task == "binary":
        g = np.linspace(-5, 5, grid)
        X, Y = np.meshgrid(g, g)  # boundary[v, i, j] is P(class 1) at (x1=g[j], x2=g[i])
        r = np.hypot(X, Y)
        arrays["boundary"] = np.stack([1 / (1 + np.exp(-(v + 0.5) * (r - 2.5))) for v in range(V)])
        for v, s, _ in diverge:
            if s == 0:
                arrays["boundary"][v] = math.nan
        arrays["boundary_grid"] = g
        angle = rng.uniform(0, 2 * np.pi, 100)
        y = np.repeat([1, 0], 50)
        radius = np.where(y == 1, 4.0, 1.0) + rng.uniform(-1, 1, 100)
        arrays["data_x"] = np.c_[radius * np.cos(angle), radius * np.sin(angle)]
        arrays["data_y"] = y

    summary = _summary(labels, arrays, diverged_step, sizes, task, E, S)
    config = {"name": "fake", "seeds": S, "seed": 0, "dtype": "float64",
              "data": {"name": "circle" if two_d else "teacher", "samples": 100, "seed": None},
              "model": {"widths": sizes[1:-1], "activation": "relu", "bias": True},
              "init": [{"label": lab, "scheme": "normal", "std": 0.1} for lab in labels],
              "train": {"loss": "bce" if task == "binary" else "softmax_ce", "optimizer": "sgd",
                        "lr": 0.1, "epochs": E, "batch_size": None},
              "measure": {"every": every, "batch": 1000, "bins": bins}}
    return Result(config=config, summary=summary, arrays=arrays)


def _mean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def _summary(labels: list[str], a: dict[str, np.ndarray], diverged_step: list[list[int | None]],
             sizes: list[int], task: str, E: int, S: int) -> dict:
    variants = []
    for v, label in enumerate(labels):
        members = a["member_variant"] == v
        loss = a["loss"][:, members]  # (E+1, S)
        final = [float(x) for x in loss[-1]]
        with np.errstate(all="ignore"):
            curve = {"steps": a["loss_steps"].tolist(),
                     "mean": [_mean(row) for row in loss], "std": [0.01] * (E + 1),
                     "min": [_mean(row) * 0.9 for row in loss],
                     "max": [_mean(row) * 1.1 for row in loss]}
        diverged = [d is not None for d in diverged_step[v]]

        def layer_rows(r: int, theory: bool, members=members, v=v) -> list[dict]:
            rows = []
            for l in range(len(sizes) - 1):
                row = {"layer": l + 1, "width": sizes[l + 1]}
                for k in LAYER_KEYS:
                    row[k] = _mean(a[f"stat_{k}"][r, members, l])
                if theory:
                    row["act_var_theory"] = float(a["theory_act_var"][v, l])
                rows.append(row)
            return rows

        diagnosis = ("diverged" if any(diverged) else
                     "symmetric" if label == "zero" else "healthy")
        variants.append({
            "label": label, "scheme": {"name": "normal", "std": 0.1}, "lr": 0.1,
            "seeds": list(range(S)), "final_loss": final,
            "final_accuracy": [0.5 + 0.1 * v] * S, "test_accuracy": None,
            "diverged": diverged, "diverged_step": diverged_step[v], "loss_curve": curve,
            **_outcomes(loss, a["loss_steps"]),
            "diagnosis": diagnosis, "diagnoses": [diagnosis], "borderline": [],
            "sentence": f"The {label} initialization was {diagnosis}: a plain sentence.",
            "layers": layer_rows(0, True), "layers_final": layer_rows(-1, False)})
    return {"format_version": 1, "initlab_version": "0.1.0", "name": "fake",
            "config_hash": "0" * 16, "task": task,
            "loss": "bce" if task == "binary" else "softmax_ce", "optimizer": "sgd",
            "epochs": E, "steps": E, "seeds": S, "dtype": "float64", "sizes": sizes,
            "activation": "relu", "wall_time_s": 1.25, "variants": variants,
            "comparisons": outcomes.comparisons(variants)}


def _outcomes(loss: np.ndarray, steps: np.ndarray) -> dict:
    m = outcomes.per_seed(loss, steps)
    return {"steps_to_drop": m["steps_to_drop"], "final_loss_tail": m["final_loss_tail"],
            "steps_to_drop_median": outcomes.median_steps(m["steps_to_drop"]),
            "final_loss_tail_median": outcomes.median_finite(m["final_loss_tail"])}


_WRITTEN: list[tuple[Result, Path]] = []


@pytest.fixture(scope="session")
def written_binary(tmp_path_factory) -> tuple[Result, Path]:
    """The default fake written once with every plot and report. Import it into a test module;
    each importing module gets its own fixture, hence the cache: it is drawn once per run."""
    from initlab.report.render import write_result

    if not _WRITTEN:
        result = fake_result()
        _WRITTEN.append((result, write_result(result, tmp_path_factory.mktemp("w") / "fake")))
    return _WRITTEN[0]


def random_population(act: str, sizes: list[int], M: int, seed: int, scale: float = 1.0,
                      dtype: type = np.float64) -> Population:
    """M members with W ~ scale * N(0, 1/fan_in), b ~ N(0, 0.1^2) (a seeded test population)."""
    rng = np.random.default_rng(seed)
    Ws = [(scale * rng.normal(0, 1 / np.sqrt(a), size=(M, a, b))).astype(dtype)
          for a, b in itertools.pairwise(sizes)]
    bs = [rng.normal(0, 0.1, size=(M, 1, b)).astype(dtype) for b in sizes[1:]]
    return Population(Ws, bs, get_activation(act))
