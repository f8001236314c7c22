"""A residual config (model.residual set) -> population -> History -> Result: experiment.py's
pipeline for nn.residual's nets (pure: no files, no printing). experiment.run_experiment hands
its Setup here; members, seeds and labels are the same as for MLPs.

summary.json `layers` has E = L + 2 entries: the input projection (role "input"), one per block
(role "block", `block` = l: the stream x_l after it) and the readout (role "readout"), each
with act_var (the stream's variance), branch_var, chan_sq_mean, chan_var (Brock et al.),
alpha and act_var_theory (theory.residual.stream_profile for the sampled weights).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np

from initlab import __version__, outcomes
from initlab.diagnosis import Evidence, diagnose
from initlab.nn.norms import get_norm
from initlab.nn.residual import ResidualMember, ResidualPopulation, init_residual, member_alpha
from initlab.nn.residual_train import train_residual
from initlab.nn.stats import default_bins
from initlab.nn.train import History, Progress, Schedule
from initlab.results.folder import Result
from initlab.results.layers import config_layers, recorded_layers, summary_layers
from initlab.theory.residual import growth_per_block, stream_profile

FORMAT_VERSION = 1
CURVE_POINTS = 1000
KEYS = ("act_mean", "act_var", "pre_var", "grad_var", "weight_grad_var", "saturated", "dead",
        "branch_var", "chan_sq_mean", "chan_var", "alpha")
IDENTITY_TOL = 1e-6  # |Var(x_L) / Var(x_0) - 1| below this at init: every block is the identity
BOUNDED_RATIO = 10.0  # a stream that grows less than this over >= 10 blocks: branches downscaled


def _nanmean(a: np.ndarray, axis: int = 0) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmean(np.where(np.isfinite(a), a, np.nan), axis=axis))


def _curve(curve: np.ndarray, steps: np.ndarray) -> dict[str, list[float]]:
    """Mean, std, min, max over seeds at <= CURVE_POINTS points; `steps`: optimizer steps."""
    E = curve.shape[0]
    idx = np.unique(np.linspace(0, E - 1, min(E, CURVE_POINTS)).round().astype(int))
    c = np.where(np.isfinite(curve[idx]), curve[idx], np.nan)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"steps": np.asarray(steps)[idx].tolist(), "mean": np.nanmean(c, 1).tolist(),
                "std": np.nanstd(c, 1).tolist(), "min": np.nanmin(c, 1).tolist(),
                "max": np.nanmax(c, 1).tolist()}


def _members(s: Any) -> list[ResidualMember]:
    seeds = int(s.cfg.get("seeds", 1))
    return [ResidualMember(m.weight, m.bias, m.seed, s.variants[i // seeds].get("alpha"),
                           s.variants[i // seeds].get("train_alpha"), m.readout)
            for i, m in enumerate(s.members)]


def theory_profile(pop: ResidualPopulation, rows: np.ndarray, q_data: float) -> np.ndarray:
    """act_var_theory (E,) of the members `rows` at init, from their sampled weights: sigma_w2 =
    fan_in * mean(W^2) per layer, averaged over the rows (see theory.residual)."""
    with np.errstate(all="ignore"):
        f = np.float64
        sig_in = pop.W_in.shape[1] * float(np.mean(pop.W_in[rows].astype(f) ** 2))
        q0 = sig_in * q_data + float(np.mean(pop.b_in[rows].astype(f) ** 2))
        sw = pop.width * np.mean(pop.Wb[rows].astype(f) ** 2, axis=(0, 3, 4))  # (L, m)
        sb = np.mean(pop.bb[rows].astype(f) ** 2, axis=(0, 3, 4))
        a2 = np.mean(pop.alpha[rows].astype(f) ** 2, axis=0)
        s_out = pop.width * float(np.mean(pop.W_out[rows].astype(f) ** 2))
        b_out = float(np.mean(pop.b_out[rows].astype(f) ** 2))
        kind = pop.norm.kind if pop.norm is not None else None
        return stream_profile(pop.activation, q0, sw, sb, a2, norm=kind, position=pop.position,
                              sigma_out2=s_out, sigma_b_out2=b_out)


def residual_evidence(label: str, s: Any, h: History, rows: np.ndarray, L: int) -> dict[str, Any]:
    """The stream's numbers at init: ratio Var(x_L) / Var(x_0), growth per block, the largest
    branch share alpha^2 Var(f_l) / Var(x_{l-1})."""
    act0 = _nanmean(h.stats["act_var"][0, rows])  # (E,)
    with np.errstate(all="ignore"):
        ratio = float(act0[L] / act0[0]) if act0[0] > 0 else math.nan
        share = _nanmean(h.stats["alpha"][0, rows] ** 2 * h.stats["branch_var"][0, rows])
        share = share[1:L + 1] / act0[:L]
    finite = share[np.isfinite(share)]
    return {"ratio": ratio, "gain": ratio ** (1 / L) if ratio >= 0 else math.nan,
            "max_share": float(finite.max()) if finite.size else math.nan}


def residual_diagnoses(found: list[str], r: dict[str, Any], L: int) -> list[str]:
    """The MLP diagnoses (on the stream), plus identity_at_init / branch_downscaled."""
    extra = []
    ratio = r["ratio"]
    if math.isfinite(ratio) and abs(ratio - 1) < IDENTITY_TOL:
        extra.append("identity_at_init")
    elif L >= 10 and math.isfinite(ratio) and ratio < BOUNDED_RATIO and r["max_share"] > 0:
        extra.append("branch_downscaled")
    if found == ["healthy"] and extra:
        return extra
    return found[:1] + extra + found[1:]


def residual_sentence(main: str, r: dict[str, Any], L: int, loss: str, fallback: str,
                      growth_theory: float = math.nan) -> str:
    ratio, g = r["ratio"], r["gain"]
    if main == "diverged" and growth_theory > 1.5:
        return (fallback.split(":")[0] + f": the stream overflowed or its loss became "
                f"non-finite — theory says its variance grows {growth_theory:.3g}x per block, "
                f"{growth_theory:.3g}^{L} over {L} blocks, and the member was frozen.")
    if main == "exploding":
        return (f"The residual stream explodes: each block adds its branch's output to the "
                f"stream, whose variance grows about {g:.3g}x per block and reaches {ratio:.3g}x "
                f"the input projection's after {L} blocks (He init without normalization "
                f"doubles it every block); {loss}.")
    if main == "identity_at_init":
        return (f"Every block starts as the identity (alpha = 0 or a zero last branch layer): "
                f"the stream after {L} blocks equals its input (ratio {ratio:.6g}), so the net "
                f"starts as a shallow one and grows its branches while training; {loss}.")
    if main == "branch_downscaled":
        return (f"The branches are scaled down (small alpha, 1/sqrt(L) weights or a norm), so "
                f"the stream grows only {ratio:.3g}x over {L} blocks ({g:.4g}x per block) and "
                f"the largest branch adds {r['max_share']:.3g} of the stream's variance; {loss}.")
    return fallback


def _loss_phrase(e: Evidence) -> str:
    if e.epochs == 0:
        return f"the loss at init is {e.loss_init:.3g}"
    if not math.isfinite(e.loss_final):
        return f"the loss went from {e.loss_init:.3g} to a non-finite value"
    return f"the loss went from {e.loss_init:.3g} to {e.loss_final:.3g} in {e.epochs} epochs"


def _layers(h: History, rows: np.ndarray, r: int, theory: np.ndarray | None, L: int,
            widths: tuple[int, int], listed: list[int]) -> list[dict[str, Any]]:
    means = {k: _nanmean(h.stats[k][r, rows]) for k in KEYS}
    out = []
    for e in listed:  # entries 0..L + 1, all or a bounded choice (results.layers.summary_layers)
        role = "input" if e == 0 else "readout" if e == L + 1 else "block"
        row: dict[str, Any] = {"layer": e + 1, "role": role,
                               "width": widths[1] if role == "readout" else widths[0]}
        if role == "block":
            row["block"] = e
        for k in KEYS:
            if role != "block" and k in ("branch_var", "alpha"):
                continue
            row[k] = float(means[k][e])
        if theory is not None:
            row["act_var_theory"] = float(theory[e])
        out.append(row)
    return out


def _variant(s: Any, h: History, pop0: dict[str, np.ndarray], v: int, rows: np.ndarray,
             theory: np.ndarray, L: int, widths: tuple[int, int],
             loss_steps: np.ndarray) -> dict[str, Any]:
    from initlab.diagnosis import sentence

    label, spec = s.labels[v], s.variants[v]
    R = len(h.stat_steps) - 1
    dsteps = h.diverged_step[rows]
    losses = h.loss[:, rows]
    measured = outcomes.per_seed(losses, loss_steps)
    with np.errstate(all="ignore"):
        over_init = np.asarray(measured["final_loss_tail"], dtype=float) / losses[0]
    drop_median = outcomes.median_steps(measured["steps_to_drop"])
    tail_median = outcomes.median_finite(measured["final_loss_tail"])
    over = outcomes.median_finite(over_init.tolist())
    r = residual_evidence(label, s, h, rows, L)
    g0 = _nanmean(h.stats["grad_var"][0, rows])
    with np.errstate(all="ignore"):  # the stream's: dL/dx_0 against dL/dx_L (0/0 with a zero
        grad_ratio = float(g0[0] / g0[L])  # readout, as Fixup's: no verdict)
    ev = Evidence(
        label=label, activation=s.activation.name, seeds=len(rows),
        n_diverged=int((dsteps >= 0).sum()),
        first_diverged_step=int(dsteps[dsteps >= 0].min()) if (dsteps >= 0).any() else None,
        symmetric=False, act_ratio=r["ratio"] if math.isfinite(r["ratio"]) else math.inf,
        per_layer_gain=r["gain"], grad_ratio=grad_ratio if math.isfinite(grad_ratio) else 1.0,
        saturated=float(np.mean(h.stats["saturated"][0, rows, 1:L + 1])),
        dead=float(np.mean(h.stats["dead"][R, rows, 1:L + 1])),
        loss_init=float(_nanmean(losses[0])), loss_final=float(_nanmean(h.final_loss[rows])),
        epochs=int(s.cfg["train"].get("epochs", 0)), steps=int(h.steps),
        steps_to_drop=drop_median,
        loss_tail=math.nan if tail_median is None else float(tail_median),
        tail_over_init=math.nan if over is None else float(over),
        delayed_seeds=sum(measured["delayed"]))
    found = residual_diagnoses(diagnose(ev), r, L)
    fallback = sentence(ev, [f for f in found if f not in ("identity_at_init",
                                                            "branch_downscaled")] or ["healthy"])
    acc = h.final_accuracy
    alpha0 = pop0["alpha"][rows].mean(axis=0)
    listed = sorted({*summary_layers(L + 2, config_layers(s.cfg)), 1, L})  # + first, last block
    blocks = [e for e in listed if 1 <= e <= L]  # the listed entries that are blocks
    with np.errstate(all="ignore"):
        ratio_theory = float(theory[L] / theory[0]) if theory[0] > 0 else math.nan
    return {
        "label": label, "scheme": s.members[rows[0]].weight.describe(),
        "alpha_init": float(member_alpha(_members(s)[rows[0]])[0]),
        "alpha_trained": bool(member_alpha(_members(s)[rows[0]])[1]),
        "lr": float(s.lr[rows[0]]), "seeds": list(range(len(rows))),
        "final_loss": h.final_loss[rows].tolist(),
        "final_accuracy": acc[rows].tolist() if acc is not None else None,
        "diverged": (dsteps >= 0).tolist(),
        "diverged_step": [int(d) if d >= 0 else None for d in dsteps],
        "steps_to_drop": measured["steps_to_drop"],
        "final_loss_tail": measured["final_loss_tail"],
        "steps_to_drop_median": drop_median, "final_loss_tail_median": tail_median,
        "delayed": measured["delayed"],
        "loss_curve": _curve(losses, loss_steps), "diagnosis": found[0], "diagnoses": found,
        "sentence": residual_sentence(found[0], r, L, _loss_phrase(ev), fallback,
                                      growth_per_block(theory)),
        "act_ratio": ev.act_ratio, "per_layer_gain": r["gain"], "grad_ratio": ev.grad_ratio,
        "stream_ratio": r["ratio"], "stream_ratio_theory": ratio_theory,
        "stream_growth_per_block_theory": growth_per_block(theory),
        "alpha": {"blocks": blocks, "init": alpha0[np.subtract(blocks, 1)].tolist(),
                  "final": _nanmean(h.stats["alpha"][R, rows])[blocks].tolist()},
        "layers": _layers(h, rows, 0, theory, L, widths, listed),
        "theory_flags": [], "layers_final": _layers(h, rows, R, None, L, widths, listed),
        "spec": {k: v for k, v in spec.items() if k != "label"},
    }


def scheme_profile(s: Any, v: int, alpha: float | None = None) -> np.ndarray:
    """The stream's predicted second moment (E,) for variant v of a residual Setup from its
    scheme's variances per role (not a sample; E[x_0^2] taken as q_0 = 1 unit of the input
    projection's), with the variant's alpha or `alpha` for every block."""
    from initlab.nn.residual import role_init

    model = s.cfg["model"]
    L, n, n_out = len(s.sizes) - 2, s.sizes[1], s.sizes[-1]
    m = int(model["residual"].get("branch", 2))
    member = _members(s)[v * int(s.cfg.get("seeds", 1))]
    a0, _ = member_alpha(member)
    a = a0 if alpha is None else alpha

    def sig(role: str, fan_in: int, fan_out: int) -> float:
        init = member.readout if role == "output" and member.readout is not None else \
            role_init(member.weight, role, L, m)
        var = init.variance(fan_in, fan_out)
        return float(fan_in * (var if var is not None else 2.0 / fan_in))

    sw = np.array([[sig("branch_out" if j == m - 1 else "branch", n, n) for j in range(m)]] * L)
    return stream_profile(s.activation, 1.0, sw, np.zeros_like(sw), np.full(L, a * a),
                          norm=model.get("norm"), position=str(model.get("norm_position") or
                                                               "pre"),
                          sigma_out2=sig("output", n, n_out))


def run_residual(s: Any, progress: Progress | None = None) -> Result:
    """Train every variant x seed of a residual config's Setup `s` as one population."""
    t0 = time.perf_counter()
    cfg, ds = s.cfg, s.dataset
    model, tr, measure = cfg["model"], cfg["train"], cfg.get("measure", {})
    seeds = int(cfg.get("seeds", 1))
    L, width, n_in, n_out = len(s.sizes) - 2, s.sizes[1], s.sizes[0], s.sizes[-1]
    branch = int(model["residual"].get("branch", 2))
    x = ds.x.astype(s.dtype)
    y = ds.y.astype(s.dtype) if s.loss.name in ("bce", "mse") else ds.y
    with np.errstate(all="ignore"):
        pop = init_residual(n_in, width, n_out, L, branch, s.activation, _members(s),
                            norm=get_norm(model.get("norm")),
                            position=str(model.get("norm_position") or "pre"), dtype=s.dtype)
    pop0 = {"alpha": pop.alpha.astype(np.float64)}
    schedule = Schedule(
        loss=s.loss, epochs=int(tr.get("epochs", 100)), batch_size=tr.get("batch_size"),
        every=int(measure.get("every", 10)), optimizer=tr.get("optimizer", "sgd"),
        momentum=float(tr.get("momentum", 0.9)), beta1=float(tr.get("beta1", 0.9)),
        beta2=float(tr.get("beta2", 0.999)), eps=float(tr.get("eps", 1e-8)),
        measure_batch=int(measure.get("batch", 1000)),
        hist_layers=tuple(recorded_layers(L + 2, config_layers(cfg))))
    x_meas = x if schedule.batch_size is None else x[: schedule.measure_batch]
    q_data = float(np.mean(np.asarray(x_meas, np.float64) ** 2))
    V = len(s.variants)
    member_variant = np.repeat(np.arange(V), seeds)
    theory = np.stack([theory_profile(pop, np.flatnonzero(member_variant == v), q_data)
                       for v in range(V)])
    bins = default_bins(s.activation, int(measure.get("bins", 50)))
    from initlab.nn.model import member_rngs

    shuffle = [member_rngs(m.seed)[1] for m in s.members]
    with np.errstate(all="ignore"):
        h = train_residual(pop, x, y, schedule, s.lr, bins, shuffle, progress)
    epochs = np.arange(h.loss.shape[0])
    full = schedule.batch_size is None or schedule.batch_size >= len(x)
    loss_steps = epochs * (1 if full else math.ceil(len(x) / int(schedule.batch_size or 1)))
    variants = [_variant(s, h, pop0, v, np.flatnonzero(member_variant == v), theory[v], L,
                         (width, n_out), loss_steps) for v in range(V)]
    arrays: dict[str, np.ndarray] = {
        "loss": h.loss, "loss_steps": loss_steps, "loss_epochs": epochs,
        "member_variant": member_variant, "member_seed": np.tile(np.arange(seeds), V),
        "stat_steps": h.stat_steps, "hist_h": h.hist_h, "hist_h_edges": bins.h_edges,
        "hist_dz": h.hist_dz, "hist_dz_edges": bins.dz_edges, "theory_act_var": theory,
        "hist_layers": np.asarray(schedule.hist_layers, dtype=np.int64) + 1,
        "sigprop_sq_mean": h.stats["chan_sq_mean"][0], "sigprop_var": h.stats["chan_var"][0],
        **{f"stat_{k}": a for k, a in h.stats.items()},
    }
    summary = {
        "format_version": FORMAT_VERSION, "initlab_version": __version__,
        "name": cfg.get("name"), "config_hash": cfg.get("config_hash"), "task": ds.task,
        "dataset": ds.name, "samples": len(ds.x), "loss": s.loss.name,
        "optimizer": schedule.optimizer, "epochs": schedule.epochs, "steps": h.steps,
        "seeds": seeds, "dtype": np.dtype(s.dtype).name, "sizes": s.sizes,
        "activation": s.activation.name, "activation_param": s.activation.param,
        "residual": {"blocks": L, "branch": branch, "width": width, "norm": model.get("norm"),
                     "norm_position": model.get("norm_position") or "pre",
                     "entries": "input projection, blocks 1..L, readout"},
        "wall_time_s": round(time.perf_counter() - t0, 3), "variants": variants,
        "comparisons": outcomes.comparisons(variants),
    }
    return Result(config=dict(cfg), summary=summary, arrays=arrays)
