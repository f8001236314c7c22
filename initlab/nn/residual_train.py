"""Training and statistics of a residual population: the loop of nn.train for
nn.residual's nets (pure: no I/O), with the same History.

Statistics are (M, E) per record, E = L + 2 entries: the input projection x_0, one entry per
block (the stream x_l after it), the readout. Besides nn.stats' names (act_var of the entry's
output, grad_var of dL/d(output), weight_var of its weights: W_in, the block's m branch matrices
together, W_out, ...) every record has

    branch_var    Var(f_l), the block's branch output before alpha (NaN for input / readout)
    chan_sq_mean  Brock et al. 2021: mean over units of (mean over the batch)^2 of the output
    chan_var      Brock et al. 2021: mean over units of the variance over the batch
    alpha         alpha_l (NaN for input / readout)

pre_var is the variance of x_{l-1} + alpha_l f_l before a post-norm (the stream itself
otherwise). Variances are over the batch and units together, computed in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from initlab.nn.losses import Loss, accuracy
from initlab.nn.optim import make_optimizer
from initlab.nn.residual import ResidualGrads, ResidualPopulation, ResidualTrace, backward, forward
from initlab.nn.stats import STATS, Bins, histogram, log10_abs_histogram
from initlab.nn.train import History, Progress, Schedule, _finite_per_member, batching, run_epochs
from initlab.nn.workspace import Workspace

Array = np.ndarray
RESIDUAL_STATS = (*STATS, "branch_var", "chan_sq_mean", "chan_var", "alpha")
CHUNK = 1 << 21  # values of the stream converted to float64 at a time
EVAL_BYTES = 64 << 20  # bound on the stream buffer of one evaluation chunk


def _moments(a: Array) -> tuple[Array, Array, Array, Array]:
    """For a (K, M, B, n) array: mean, var (over B and n), channel squared mean and channel
    variance (Brock), each (K, M), in float64, a few blocks at a time."""
    K, M, B, n = a.shape
    step = max(1, CHUNK // max(1, M * B * n))
    out = [np.empty((K, M)) for _ in range(4)]
    for k in range(0, K, step):
        x = a[k:k + step].astype(np.float64)
        mean = x.mean(axis=(2, 3))
        out[0][k:k + step] = mean
        out[1][k:k + step] = x.reshape(*x.shape[:2], -1).var(axis=2)
        cm = x.mean(axis=2)  # (k, M, n) channel means
        out[2][k:k + step] = np.mean(cm * cm, axis=2)
        out[3][k:k + step] = np.mean(x.var(axis=2), axis=2)
    return out[0], out[1], out[2], out[3]


def _hist(a: Array, edges: Array, log: bool) -> Array:
    """(K, M, B, n) -> (M, K, bins) histograms per entry and member."""
    K, M = a.shape[:2]
    fn = log10_abs_histogram if log else histogram
    if K == 0:
        return np.zeros((M, 0, len(edges) - 1), dtype=np.int64)
    step = max(1, CHUNK // max(1, a[0].size))
    parts = [fn(a[k:k + step].reshape(-1, a[0, 0].size), edges).reshape(-1, M, len(edges) - 1)
             for k in range(0, K, step)]
    return np.concatenate(parts).transpose(1, 0, 2)


def _var_members(a: Array) -> Array:
    """Variance of each member's values: (M, ...) -> (M,)."""
    return a.reshape(a.shape[0], -1).astype(np.float64).var(axis=1)


def _std_ratio(num: Array, den: Array) -> Array:
    with np.errstate(all="ignore"):
        return np.where(den > 0, np.sqrt(num) / np.sqrt(np.where(den > 0, den, 1.0)), np.nan)


def _per_entry(M: int, L: int, ws: Sequence[Array]) -> Array:
    """Variance (M, E) of each entry's weights: W_in, each block's m matrices, W_out."""
    v = np.empty((M, L + 2))
    v[:, 0], v[:, L + 1] = _var_members(ws[0]), _var_members(ws[2])
    wb = ws[1].reshape(M, L, -1)
    for l0 in range(0, L, 256):
        v[:, 1 + l0:1 + min(L, l0 + 256)] = wb[:, l0:l0 + 256].astype(np.float64).var(axis=2)
    return v


def update_data(pop: ResidualPopulation, old: Sequence[Array], var_W: Array) -> Array:
    """std(delta W) / std(W) per entry (M, E): the applied update, `old` = (W_in, Wb, W_out)
    before it, var_W their variances."""
    new = (pop.W_in, pop.Wb, pop.W_out)
    with np.errstate(all="ignore"):
        return _std_ratio(_per_entry(pop.M, pop.blocks, [w - o for w, o in zip(new, old)]),
                          var_W)


def residual_stats(pop: ResidualPopulation, trace: ResidualTrace, grads: ResidualGrads,
                   bins: Bins, hist_layers: Sequence[int] | None = None
                   ) -> tuple[dict[str, Array], Array, Array]:
    """({name: (M, E)}, hist_h (M, K, nb), hist_dz (M, K, nb)) of one recorded step (forward
    and backward with record=True), before its update (update_data is NaN here: see
    `update_data`); the histograms of the K entries `hist_layers` (0-based, ascending; default
    all E = L + 2: the input projection, the blocks, the readout)."""
    assert trace.record is not None and grads.dxs is not None
    M, L = pop.M, pop.blocks
    E = L + 2
    out = {k: np.full((M, E), np.nan) for k in RESIDUAL_STATS}
    with np.errstate(all="ignore"):
        h = _moments(trace.xs)  # entries 0..L
        ho = _moments(trace.out[None])
        for k, name in enumerate(("act_mean", "act_var", "chan_sq_mean", "chan_var")):
            out[name][:, :L + 1] = h[k].T
            out[name][:, L + 1] = ho[k][0]
        out["pre_mean"][:, [0, L + 1]] = out["act_mean"][:, [0, L + 1]]
        out["pre_var"][:, [0, L + 1]] = out["act_var"][:, [0, L + 1]]
        out["pre_var"][:, 1:L + 1] = trace.record["sum_var"]
        out["branch_var"][:, 1:L + 1] = trace.record["branch_var"]
        out["alpha"][:, 1:L + 1] = pop.alpha
        out["dead"][:] = 0
        out["saturated"][:] = 0
        out["dead"][:, 1:L + 1] = trace.record["dead"]
        out["saturated"][:, 1:L + 1] = trace.record["saturated"]
        g = _moments(grads.dxs)
        out["grad_var"][:, :L + 1] = g[1].T
        out["grad_var"][:, L + 1] = _var_members(grads.dout)
        var_W = _per_entry(M, L, (pop.W_in, pop.Wb, pop.W_out))
        out["weight_var"] = var_W
        out["weight_grad_var"] = _per_entry(M, L, (grads.dW_in, grads.dWb, grads.dW_out))
        out["grad_data"] = _std_ratio(out["weight_grad_var"], var_W)
        keep = np.arange(E) if hist_layers is None else np.asarray(hist_layers, dtype=int)
        stream, readout = keep[keep <= L], bool((keep == L + 1).any())  # xs: entries 0..L
        hist_h = np.concatenate([_hist(trace.xs[stream], bins.h_edges, False),
                                 _hist(trace.out[None][:int(readout)], bins.h_edges, False)],
                                axis=1)
        hist_dz = np.concatenate([_hist(grads.dxs[stream], bins.dz_edges, True),
                                  _hist(grads.dout[None][:int(readout)], bins.dz_edges, True)],
                                 axis=1)
    return out, hist_h, hist_dz


def evaluate_residual(pop: ResidualPopulation, x: Array, y: Array, loss: Loss,
                      train: bool = False) -> tuple[Array, Array | None]:
    """Loss and accuracy (M,) on (x, y) with batchnorm's running statistics (`train`: each
    chunk's batch statistics, running ones untouched), in chunks that bound the stream buffer
    to EVAL_BYTES."""
    N = len(x)
    item = pop.W_in.dtype.itemsize
    chunk = max(1, EVAL_BYTES // max(1, (pop.blocks + 1) * pop.M * pop.width * item))
    total, correct, has_acc = np.zeros(pop.M), np.zeros(pop.M), True
    ws: Workspace = {}
    for i in range(0, N, chunk):
        xb, yb = x[i:i + chunk], y[i:i + chunk]
        z = forward(pop, xb, train=train, keep=False, ws=ws).out
        l_b, _ = loss.fn(z, yb)
        total += l_b * len(xb)
        acc = accuracy(loss, z, yb)
        if acc is None:
            has_acc = False
        else:
            correct += acc * len(xb)
    return total / N, (correct / N if has_acc else None)


def train_residual(pop: ResidualPopulation, x: Array, y: Array, schedule: Schedule, lr: Array,
                   bins: Bins, shuffle_rngs: Sequence[np.random.Generator] | None = None,
                   progress: Progress | None = None) -> History:
    """Train every member of `pop` in place, as nn.train.train does for MLPs (same schedule,
    minibatches, freezing of diverged members, records at step 0, every `every` steps and
    after the last step); batchnorm trains and is recorded on batch statistics, and the final
    loss and accuracy are evaluated with its running statistics."""
    loss, M, N, E = schedule.loss, pop.M, len(x), schedule.epochs
    full = batching(schedule, N)[0]
    opt = make_optimizer(schedule.optimizer, lr, momentum=schedule.momentum,
                         beta1=schedule.beta1, beta2=schedule.beta2, eps=schedule.eps)
    if not full and (shuffle_rngs is None or len(shuffle_rngs) != M):
        raise ValueError("minibatch training needs one shuffle rng per member")
    curve = np.full((E + 1, M), np.nan)
    alive = np.ones(M, dtype=bool)
    diverged_step = np.full(M, -1)
    steps: list[int] = []
    recs: list[tuple[dict[str, Array], Array, Array]] = []
    ws: Workspace = {}
    x_meas, y_meas = (x, y) if full else (x[: schedule.measure_batch], y[: schedule.measure_batch])

    def one_step(step: int, xb: Array, yb: Array) -> Array:
        nonlocal alive
        record = step % schedule.every == 0
        trace = forward(pop, xb, train=True, update=True, record=record, ws=ws)
        l_b, dout = loss.fn(trace.out, yb, ws=ws)
        grads = backward(pop, trace, dout, record=record, ws=ws)
        bad = alive & ~(np.isfinite(l_b) & _finite_per_member(grads.params))
        diverged_step[bad] = step
        alive = alive & ~bad
        if not alive.all():
            for g in grads.params:
                g[~alive] = 0
        if not record:
            opt.step(pop.params, grads.params, alive)
            return l_b
        rec = residual_stats(pop, trace, grads, bins, schedule.hist_layers)
        old = [pop.W_in.copy(), pop.Wb.copy(), pop.W_out.copy()]
        opt.step(pop.params, grads.params, alive)
        rec[0]["update_data"] = update_data(pop, old, rec[0]["weight_var"])
        steps.append(step)
        recs.append(rec)
        return l_b

    with np.errstate(all="ignore"):  # at init the running statistics are still (0, 1):
        step = run_epochs(one_step, x, y, schedule, shuffle_rngs, curve,  # batch ones there
                          lambda: evaluate_residual(pop, x, y, loss, train=True)[0], progress,
                          lambda: not alive.any())
        trace = forward(pop, x_meas, train=True, update=False, record=True, ws=ws)
        l_meas, dout = loss.fn(trace.out, y_meas, ws=ws)
        steps.append(step)
        recs.append(residual_stats(pop, trace, backward(pop, trace, dout, record=True, ws=ws),
                                   bins, schedule.hist_layers))
        if full and pop.running_mean is None:
            final_loss, final_acc = l_meas, accuracy(loss, trace.out, y_meas)
        else:
            final_loss, final_acc = evaluate_residual(pop, x, y, loss)
        if full or E == 0:
            curve[E] = final_loss
    stats = {k: np.stack([r[0][k] for r in recs]) for k in RESIDUAL_STATS}
    return History(curve, np.asarray(final_loss, dtype=float), final_acc, diverged_step,
                   np.array(steps), stats, np.stack([r[1] for r in recs]),
                   np.stack([r[2] for r in recs]), step, None)
