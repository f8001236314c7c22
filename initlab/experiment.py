"""Config -> population -> History -> Result: one experiment, pure (no files, no printing).

Every init variant x seed of a config is one member of a single population, trained together.
Member (variant v, seed s) sits at index m = v * seeds + s and draws its weights from
default_rng(SeedSequence([seed, s]).spawn(2)[0]) and shuffles with spawn(2)[1]
(model.member_rngs): every variant sees the same random numbers (common random numbers), and a
member's numbers do not depend on which other members share its population.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from initlab import __version__, outcomes, theory
from initlab.boundary import FRAME_POINTS, boundary_grid, frame_count, frame_epochs, probabilities
from initlab.data import datasets as data
from initlab.diagnosis import Evidence, describe, evidence_dict
from initlab.errors import ConfigError, Problem
from initlab.experiment_residual import run_residual
from initlab.nn import inits
from initlab.nn.activations import Activation, get_activation
from initlab.nn.losses import Loss, get_loss
from initlab.nn.model import MemberInit, Population, forward, init_population, member_rngs
from initlab.nn.parametrization import base_sizes, member_multipliers, parametrize
from initlab.nn.stats import default_bins
from initlab.nn.train import History, Progress, Schedule, train
from initlab.results.folder import Result
from initlab.results.layers import config_layers, recorded_layers, summary_layers

FORMAT_VERSION = 1
LOSS_FOR_TASK = {"binary": "bce", "multiclass": "softmax_ce", "regression": "mse"}
CURVE_POINTS = 1000


@dataclass
class Setup:
    """Everything a config resolves to before training."""

    cfg: dict[str, Any]
    dataset: data.Dataset
    activation: Activation
    loss: Loss
    sizes: list[int]
    labels: list[str]
    variants: list[dict[str, Any]]
    members: list[MemberInit]
    lr: np.ndarray  # (M,)
    dtype: type
    parametrizations: list[str] = field(default_factory=list)  # (M,) sp | ntk | mup
    base_sizes: list[int] = field(default_factory=list)  # sizes with base_width (ntk, mup)


def _activation(model: Mapping[str, Any]) -> Activation:
    spec = model.get("activation", "tanh")
    if isinstance(spec, Mapping):
        params = {k: v for k, v in spec.items() if k != "name"}
        return get_activation(spec["name"], next(iter(params.values()), None))
    return get_activation(spec)


def hidden_widths(model: Mapping[str, Any]) -> list[int]:
    if model.get("widths") is not None:
        return [int(w) for w in model["widths"]]
    return [int(model["width"])] * int(model["depth"])


def _variant_spec(variant: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("label", "bias", "lr", "alpha", "train_alpha", "parametrization", "readout")
    return {k: v for k, v in variant.items() if k not in keys}


def load_data(cfg: Mapping[str, Any]) -> data.Dataset:
    spec = dict(cfg["data"])
    name = spec.pop("name")
    seed = spec.pop("seed", None)
    seed = cfg.get("seed", 0) if seed is None else seed
    if spec.get("samples") is None:
        spec.pop("samples", None)
    return data.load(name, rng=np.random.default_rng([int(seed), 0xDA7A]), **spec)


def _loss_for(cfg: Mapping[str, Any], ds: data.Dataset) -> Loss:
    name = cfg["train"].get("loss", "auto") or "auto"
    loss = get_loss(LOSS_FOR_TASK[ds.task] if name == "auto" else name)
    ok = {"bce": ("binary",), "softmax_ce": ("binary", "multiclass"), "mse": ("regression",)}
    if ds.task not in ok[loss.name]:
        raise ConfigError([Problem(
            f"loss '{loss.name}' does not fit the {ds.task} data set '{ds.name}'",
            path="train.loss", expected=" or ".join(
                [f"'{k}'" for k, tasks in ok.items() if ds.task in tasks] + ["'auto'"]))])
    return loss


def setup(cfg: Mapping[str, Any]) -> Setup:
    """Resolve a (validated, resolved) config dict into data, architecture and members."""
    ds = load_data(cfg)
    act = _activation(cfg["model"])
    loss = _loss_for(cfg, ds)
    n_out = 2 if (loss.name == "softmax_ce" and ds.task == "binary") else ds.n_out
    sizes = [ds.n_in, *hidden_widths(cfg["model"]), n_out]
    seeds, base = int(cfg.get("seeds", 1)), int(cfg.get("seed", 0))
    variants = [dict(v) for v in cfg["init"]]
    labels = [str(v.get("label") or v["scheme"]) for v in variants]
    members, lr, parametrizations = [], [], []
    use_bias = cfg["model"].get("bias", True)
    for v in variants:
        weight = inits.resolve(_variant_spec(v), activation=act.name, activation_param=act.param)
        bias_spec = v.get("bias")
        bias = None
        if use_bias and bias_spec not in (None, "zeros", {"scheme": "zeros"}):
            bias = inits.resolve(bias_spec, activation=act.name, activation_param=act.param)
        readout = None if v.get("readout") is None else inits.resolve(
            v["readout"], activation=act.name, activation_param=act.param)
        for s in range(seeds):
            members.append(MemberInit(weight, bias, (base, s), readout))
            lr.append(float(v.get("lr") or cfg["train"].get("lr", 0.1)))
            parametrizations.append(str(v.get("parametrization", "sp")))
    dtype = np.float32 if cfg.get("dtype") == "float32" else np.float64
    return Setup(dict(cfg), ds, act, loss, sizes, labels, variants, members, np.array(lr), dtype,
                 parametrizations, base_sizes(sizes, cfg["model"].get("base_width")))


def build_population(s: Setup, x_init: np.ndarray | None = None, lo: int = 0,
                     hi: int | None = None) -> Population:
    """Members lo:hi's initial parameters, each member's width parametrization applied
    (initlab.nn.parametrization: init rescaled, forward and lr multipliers attached)."""
    pop = init_population(s.sizes, s.activation, s.members[lo:hi], dtype=s.dtype, x_init=x_init)
    names = s.parametrizations[lo:hi]
    if any(p != "sp" for p in names):
        parametrize(pop, member_multipliers(names, s.sizes, s.base_sizes,
                                            s.cfg["train"].get("optimizer", "sgd")))
    return pop


def _targets(s: Setup, y: np.ndarray) -> np.ndarray:
    return y.astype(s.dtype) if s.loss.name in ("bce", "mse") else y


def _nanstat(fn: Any, a: np.ndarray, axis: int = 0) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(fn(np.where(np.isfinite(a), a, np.nan), axis=axis))


def _layers(h: History, rows: np.ndarray, r: int, theory_var: np.ndarray | None,
            widths: list[int], listed: list[int]) -> list[dict[str, Any]]:
    keys = ("act_mean", "act_var", "pre_var", "grad_var", "weight_grad_var", "saturated", "dead")
    out = []
    for l in listed:  # every layer, or a bounded choice of a deep net's (summary_layers)
        row: dict[str, Any] = {"layer": l + 1, "width": widths[l]}
        for k in keys:
            with np.errstate(all="ignore"):
                row[k] = float(np.mean(h.stats[k][r, rows, l]))
        if theory_var is not None:
            row["act_var_theory"] = float(theory_var[l])
        out.append(row)
    return out


def _curve(curve: np.ndarray, steps: np.ndarray) -> dict[str, list[float]]:
    """Mean, std, min, max over seeds at <= CURVE_POINTS points; `steps` are optimizer steps."""
    E = curve.shape[0]
    idx = np.unique(np.linspace(0, E - 1, min(E, CURVE_POINTS)).round().astype(int))
    c = curve[idx]
    return {"steps": np.asarray(steps)[idx].tolist(), "mean": _nanstat(np.nanmean, c, 1).tolist(),
            "std": _nanstat(np.nanstd, c, 1).tolist(), "min": _nanstat(np.nanmin, c, 1).tolist(),
            "max": _nanstat(np.nanmax, c, 1).tolist()}


def _theory(s: Setup, pop0: list[np.ndarray], bias0: list[np.ndarray], q0: float,
            rows: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):  # a huge init squares to inf: a fault to record, quietly
        sw = [s.sizes[l] * float(np.mean(pop0[l][rows] ** 2)) for l in range(len(pop0))]
        sb = [float(np.mean(bias0[l][rows] ** 2)) for l in range(len(bias0))]
        return theory.act_var_profile(s.activation, sw, sb, q0, len(sw))


def first_seeds(s: Setup, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """Indices, within members lo:hi, of the variants' first seeds (the members whose decision
    boundary is drawn)."""
    seeds = int(s.cfg.get("seeds", 1))
    m = np.arange(len(s.variants)) * seeds
    return m[(m >= lo) & (m < (len(s.members) if hi is None else hi))] - lo


def _boundary(s: Setup, pop: Population, g: np.ndarray | None = None,
              first: np.ndarray | None = None) -> np.ndarray | None:
    """P(class 1) of the members `first` of `pop` (default: each variant's first seed) on the
    grid g^2 (default: `boundary_grid` of the data), (len(first), len(g), len(g)), in chunks of
    points sized for every variant's first seed (`boundary.probabilities`: the same bytes
    whichever members a worker draws); None unless the data are 2-D binary."""
    if s.dataset.n_in != 2 or s.dataset.task != "binary":
        return None
    g = boundary_grid(s.dataset.x) if g is None else g
    first = first_seeds(s) if first is None else first
    if len(first) == 0:
        return np.zeros((0, len(g), len(g)))
    return probabilities(pop.select(first), g, s.sizes, s.dtype, sized_for=len(s.variants))


class _BoundaryFrames:
    """Decision-boundary frames during training (2-D binary data only), for the interactive
    report and the GIF: P(class 1) of each variant's first seed on the frame grid (FRAME_POINTS
    over the data's extent, `boundary_grid`) as uint8
    (round(254 p); 255 = not finite), at <= MAX_FRAMES steps, half spaced evenly, half
    geometrically (the early steps change most). Fewer (`frame_count`, >= MIN_FRAMES) when
    their forward passes would cost more than FRAME_SHARE of training's. Taken from the
    progress hook, which train() calls after each epoch with the population updated in place.
    `first`: which members of `pop` are drawn (default: every variant's first seed)."""

    def __init__(self, s: Setup, pop: Population, schedule: Schedule,
                 first: np.ndarray | None = None) -> None:
        self.s, self.pop = s, pop
        self.first = first_seeds(s) if first is None else first
        self.on = s.dataset.n_in == 2 and s.dataset.task == "binary"
        self.grid = boundary_grid(s.dataset.x, FRAME_POINTS) if self.on else np.zeros(0)
        N = len(s.dataset.x)
        full = schedule.batch_size is None or schedule.batch_size >= N
        batch = N if full else int(schedule.batch_size or N)
        per_epoch = 1 if full else math.ceil(N / batch)
        count = frame_count(schedule.epochs * per_epoch, len(s.members), batch,  # the run's,
                            len(s.variants), len(self.grid) ** 2)  # so every worker's steps
        self.wanted = per_epoch * frame_epochs(schedule.epochs, count)
        self.steps: list[int] = []
        self.frames: list[np.ndarray] = []
        self.record(0)

    def record(self, step: int, final: bool = False) -> None:
        if not self.on or (self.steps and step <= self.steps[-1]):
            return
        if not final and self.steps and \
                not ((self.wanted > self.steps[-1]) & (self.wanted <= step)).any():
            return  # no wanted step reached since the last frame
        p = _boundary(self.s, self.pop, self.grid, self.first)
        assert p is not None
        q = np.where(np.isfinite(p), np.round(np.clip(p, 0, 1) * 254), 255)
        self.steps.append(int(step))
        self.frames.append(q.astype(np.uint8))

    def hook(self, progress: Progress | None) -> Progress | None:
        if not self.on:
            return progress

        def hook(step: int, total: int) -> None:
            self.record(step)
            if progress is not None:
                progress(step, total)
        return hook

    def arrays(self) -> dict[str, np.ndarray]:
        if not self.on:
            return {}
        return {"boundary_frames": np.stack(self.frames), "boundary_steps": np.array(self.steps),
                "boundary_frames_grid": self.grid}


@dataclass
class Trained:
    """What training members lo:hi of a Setup leaves behind: their History, their parameters
    at init, and the boundary frames and final boundary of the variants' first seeds among
    them (empty dict / None unless the data are 2-D and binary)."""

    history: History
    W0: list[np.ndarray]
    b0: list[np.ndarray]
    frames: dict[str, np.ndarray]
    boundary: np.ndarray | None
    lsuv_iters: dict[int, list[int]] | None = None  # by member index in the whole population
    lsuv_scales: dict[int, list[float]] | None = None  # LSUV's scale factors, the same way


def _schedule(s: Setup) -> Schedule:
    tr, measure = s.cfg["train"], s.cfg.get("measure", {})
    return Schedule(
        loss=s.loss, epochs=int(tr.get("epochs", 100)), batch_size=tr.get("batch_size"),
        every=int(measure.get("every", 10)), optimizer=tr.get("optimizer", "sgd"),
        momentum=float(tr.get("momentum", 0.9)), beta1=float(tr.get("beta1", 0.9)),
        beta2=float(tr.get("beta2", 0.999)), eps=float(tr.get("eps", 1e-8)),
        measure_batch=int(measure.get("batch", 1000)), hist_layers=tuple(recorded_layers(
            len(s.sizes) - 1, config_layers(s.cfg))))  # the layers whose histograms are kept


def train_members(s: Setup, lo: int = 0, hi: int | None = None,
                  progress: Progress | None = None, *, stop_early: bool = True) -> Trained:
    """Initialize and train members lo:hi of `s` as one population, a part of the population of
    all of `s`'s members (see train(): `stop_early`, `population`); a member's numbers do not
    depend on lo and hi."""
    hi = len(s.members) if hi is None else hi
    x: np.ndarray = s.dataset.x.astype(s.dtype)
    y = _targets(s, s.dataset.y)
    members = s.members[lo:hi]
    schedule = _schedule(s)
    with np.errstate(all="ignore"):  # float32 overflows to inf on a huge init: recorded later
        pop = build_population(s, x[: schedule.measure_batch], lo, hi)
    # the effective weights a W (a: a parametrization's forward multiplier), for the theory
    W0 = [W.copy() for W in pop.Ws] if pop.mults is None else \
        [W * a for W, a in zip(pop.Ws, pop.mults)]
    b0 = [b.copy() for b in pop.bs]
    bins = default_bins(s.activation, int(s.cfg.get("measure", {}).get("bins", 50)))
    shuffle = [member_rngs(m.seed)[1] for m in members]
    first = first_seeds(s, lo, hi)
    frames = _BoundaryFrames(s, pop, schedule, first)
    with np.errstate(all="ignore"):  # faults (overflow, NaN) become outcomes, not warnings
        h = train(pop, x, y, schedule, s.lr[lo:hi], bins, shuffle, frames.hook(progress),
                  stop_early=stop_early, population=len(s.members))
    frames.record(h.steps, final=True)
    lsuv = [{lo + int(m): list(i) for m, i in done.items()} if isinstance(done, dict) else None
            for done in (pop.info.get("lsuv_iters"), pop.info.get("lsuv_scales"))]
    return Trained(h, W0, b0, frames.arrays(), _boundary(s, pop, first=first), *lsuv)


def run_experiment(cfg: Mapping[str, Any], progress: Progress | None = None) -> Result:
    """Train every variant x seed of a resolved config as one population; return the Result."""
    t0 = time.perf_counter()
    s = setup(cfg)
    if cfg["model"].get("residual") is not None:  # residual blocks: experiment_residual.py
        return run_residual(s, progress)
    return assemble(s, train_members(s, progress=progress), t0)


def assemble(s: Setup, trained: Trained, t0: float) -> Result:
    """The Result of a Setup whose members (all of them, in order) trained into `trained`;
    t0: the run's perf_counter() start (for wall_time_s)."""
    cfg = s.cfg
    h, W0, b0 = trained.history, trained.W0, trained.b0
    ds, seeds = s.dataset, int(cfg.get("seeds", 1))
    x: np.ndarray = ds.x.astype(s.dtype)
    measure = cfg.get("measure", {})
    schedule = _schedule(s)
    bins = default_bins(s.activation, int(measure.get("bins", 50)))
    x_meas = x if schedule.batch_size is None else x[: schedule.measure_batch]
    q0 = float(np.mean(np.asarray(x_meas, np.float64) ** 2))

    V, L = len(s.variants), len(s.sizes) - 1
    member_variant = np.repeat(np.arange(V), seeds)
    theory_var = np.zeros((V, L))
    # the loss curve's points: after e epochs = e x (steps per epoch) optimizer steps
    epochs = np.arange(h.loss.shape[0])
    loss_steps = epochs * _steps_per_epoch(schedule, len(ds.x))
    variants_out = []
    for v, (label, spec) in enumerate(zip(s.labels, s.variants)):
        rows = np.flatnonzero(member_variant == v)
        theory_var[v] = _theory(s, W0, b0, q0, rows)
        variants_out.append(_variant_summary(s, h, v, label, spec, rows, theory_var[v], q0,
                                             loss_steps))
        variants_out[-1]["lsuv_iters"] = _lsuv(trained.lsuv_iters, rows, int)
        variants_out[-1]["lsuv_scales"] = _lsuv(trained.lsuv_scales, rows, float)

    arrays: dict[str, np.ndarray] = {
        "loss": h.loss, "loss_steps": loss_steps, "loss_epochs": epochs,
        "member_variant": member_variant, "member_seed": np.tile(np.arange(seeds), V),
        "stat_steps": h.stat_steps, "hist_h": h.hist_h, "hist_h_edges": bins.h_edges,
        "hist_dz": h.hist_dz, "hist_dz_edges": bins.dz_edges, "theory_act_var": theory_var,
        "hist_layers": np.asarray(schedule.hist_layers, dtype=np.int64) + 1, **_signal_propagation(
            s, W0, b0, x_meas[: int(measure.get("batch", 1000))]),
        **{f"stat_{k}": a for k, a in h.stats.items()},
    }
    if trained.boundary is not None:
        arrays.update(boundary=trained.boundary, boundary_grid=boundary_grid(ds.x),
                      data_x=ds.x, data_y=ds.y)
        arrays.update(trained.frames)
    summary = {
        "format_version": FORMAT_VERSION, "initlab_version": __version__,
        "name": cfg.get("name"), "config_hash": cfg.get("config_hash"), "task": ds.task,
        "dataset": ds.name, "samples": len(ds.x), "loss": s.loss.name,
        "optimizer": schedule.optimizer, "epochs": schedule.epochs, "steps": h.steps,
        "seeds": seeds, "dtype": np.dtype(s.dtype).name, "sizes": s.sizes,
        "activation": s.activation.name, "activation_param": s.activation.param,
        "wall_time_s": round(time.perf_counter() - t0, 3), "variants": variants_out,
    }
    describe(summary)  # diagnoses, sentences (which compare variants) and comparisons
    return Result(config=dict(cfg), summary=summary, arrays=arrays)


def _or_nan(x: float | None) -> float:
    return math.nan if x is None else x


def _steps_per_epoch(schedule: Schedule, n: int) -> int:
    full = schedule.batch_size is None or schedule.batch_size >= n
    return 1 if full else math.ceil(n / int(schedule.batch_size or n))


def _lsuv(done: Any, rows: np.ndarray, kind: type) -> list[list[Any]] | None:
    """LSUV's rescalings or scale factors per seed and layer of one variant (None: not a
    data-dependent init)."""
    if not isinstance(done, dict) or not all(int(m) in done for m in rows):
        return None
    return [[kind(i) for i in done[int(m)]] for m in rows]


def _signal_propagation(s: Setup, W0: list[np.ndarray], b0: list[np.ndarray],
                        x: np.ndarray) -> dict[str, np.ndarray]:
    """Brock et al.'s statistics of h at init: sigprop_sq_mean / sigprop_var (M, L)."""
    with np.errstate(all="ignore"):
        trace = forward(Population(W0, b0, s.activation), x)
        sq, var = theory.signal_propagation(trace.hs[1:])
    return {"sigprop_sq_mean": sq, "sigprop_var": var}


def _variant_summary(s: Setup, h: History, v: int, label: str, spec: dict[str, Any],
                     rows: np.ndarray, theory_var: np.ndarray, q0: float,
                     loss_steps: np.ndarray) -> dict[str, Any]:
    widths, R = s.sizes[1:], len(h.stat_steps) - 1
    L = len(widths)
    listed = summary_layers(L, config_layers(s.cfg))
    hidden = max(L - 1, 1)
    act0 = h.stats["act_var"][0, rows]  # (seeds, L)
    grad0 = h.stats["grad_var"][0, rows]
    with np.errstate(all="ignore"):
        last_hidden = float(np.mean(act0[:, max(L - 2, 0)]))
        act_ratio = last_hidden / q0 if q0 > 0 else math.nan
        grad_ratio = float(np.mean(grad0[:, 0]) / np.mean(grad0[:, -1]))
        gain = act_ratio ** (1 / hidden) if act_ratio >= 0 else math.nan
    dsteps = h.diverged_step[rows]
    losses = h.loss[:, rows]
    measured = outcomes.per_seed(losses, loss_steps)
    with np.errstate(all="ignore"):
        over_init = np.asarray(measured["final_loss_tail"]) / losses[0]
    drop_median = outcomes.median_steps(measured["steps_to_drop"])
    tail_median = outcomes.median_finite(measured["final_loss_tail"])
    ev = Evidence(
        label=label, activation=s.activation.name, seeds=len(rows),
        n_diverged=int((dsteps >= 0).sum()),
        first_diverged_step=int(dsteps[dsteps >= 0].min()) if (dsteps >= 0).any() else None,
        symmetric=bool(h.symmetric is not None and h.symmetric[rows].all() and L > 1),
        act_ratio=act_ratio if math.isfinite(act_ratio) else math.inf,
        per_layer_gain=gain, grad_ratio=grad_ratio if not math.isnan(grad_ratio) else 1.0,
        saturated=float(np.mean(h.stats["saturated"][0, rows, :-1])) if L > 1 else 0.0,
        dead=float(np.mean(h.stats["dead"][R, rows, :-1])) if L > 1 else 0.0,
        loss_init=float(_nanstat(np.nanmean, losses[0])),
        loss_final=float(_nanstat(np.nanmean, h.final_loss[rows])),
        epochs=int(s.cfg["train"].get("epochs", 0)), steps=int(h.steps),
        steps_to_drop=drop_median, loss_tail=_or_nan(tail_median),
        tail_over_init=_or_nan(outcomes.median_finite(over_init.tolist())),
        delayed_seeds=sum(measured["delayed"]))
    acc = h.final_accuracy
    return {
        "label": label,
        **({"parametrization": spec["parametrization"]}
           if spec.get("parametrization", "sp") != "sp" else {}),
        "scheme": inits.resolve(_variant_spec(spec), activation=s.activation.name,
                                activation_param=s.activation.param).describe(),
        "lr": float(s.lr[rows[0]]),
        "seeds": [int(x) for x in range(len(rows))],
        "final_loss": h.final_loss[rows].tolist(),
        "final_accuracy": acc[rows].tolist() if acc is not None else None,
        "diverged": (dsteps >= 0).tolist(),
        "diverged_step": [int(d) if d >= 0 else None for d in dsteps],
        "steps_to_drop": measured["steps_to_drop"],
        "final_loss_tail": measured["final_loss_tail"],
        "steps_to_drop_median": drop_median, "final_loss_tail_median": tail_median,
        "loss_curve": _curve(losses, loss_steps),
        "delayed": measured["delayed"],
        "diagnosis": None, "diagnoses": [], "borderline": [], "sentence": "",  # describe()
        "evidence": evidence_dict(ev),
        "act_ratio": ev.act_ratio, "per_layer_gain": gain, "grad_ratio": ev.grad_ratio,
        "layers": _layers(h, rows, 0, theory_var, widths, listed),
        "theory_flags": theory.theory_flags(np.mean(act0, axis=0).tolist(), theory_var.tolist(),
            widths, np.mean(h.stats["saturated"][0, rows], axis=0).tolist(), only=listed),
        "layers_final": _layers(h, rows, R, None, widths, listed),
    }
