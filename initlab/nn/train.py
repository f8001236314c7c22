"""The training loop of a population: pure computation, no I/O (progress is a callback).

A member whose loss or gradients become non-finite is frozen at that step and marked diverged;
the others go on. Statistics are recorded on the batch of the step they describe, before that
step's update: at step 0 (init), every `every` steps, and once more after the last step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from initlab.nn.losses import Loss, accuracy
from initlab.nn.model import Grads, Population, Trace, backward, forward
from initlab.nn.optim import make_optimizer
from initlab.nn.stats import STATS, Bins, layer_stats
from initlab.nn.workspace import Workspace

Array = np.ndarray
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Schedule:
    """How to train: loss, optimizer and its hyper-parameters, epochs, batch size, recording."""

    loss: Loss
    epochs: int
    batch_size: int | None = None  # None: full batch, one step per epoch
    every: int = 10  # record statistics every `every` optimizer steps
    optimizer: str = "sgd"
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    measure_batch: int = 1000  # samples used for the end-of-training statistics (minibatch)
    hist_layers: tuple[int, ...] | None = None  # 0-based layers whose histograms are recorded


@dataclass
class History:
    """What happened to every member: (.., M) arrays, member axis after the time axis."""

    loss: Array  # (E+1, M): [0] at init, [e] after epoch e (minibatch: epoch mean)
    final_loss: Array  # (M,) on the whole training set after training
    final_accuracy: Array | None  # (M,) classification only
    diverged_step: Array  # (M,) optimizer step at which the member froze, -1 if never
    stat_steps: Array  # (R,)
    stats: dict[str, Array]  # name -> (R, M, L)
    hist_h: Array  # (R, M, K, bins): the K layers Schedule.hist_layers (default all L)
    hist_dz: Array  # (R, M, K, bins)
    steps: int = 0
    symmetric: Array | None = field(default=None)  # (M,) hidden units still identical

    @property
    def diverged(self) -> Array:
        return self.diverged_step >= 0


class _Recorder:
    def __init__(self, hist_layers: Sequence[int] | None = None) -> None:
        self.hist_layers = hist_layers
        self.steps: list[int] = []
        self.stats: list[dict[str, Array]] = []
        self.hist_h: list[Array] = []
        self.hist_dz: list[Array] = []
        self.ws: Workspace = {}  # record_stats' and layer_stats' buffers, reused every record

    def buffer(self, key: object, like: Array) -> Array:
        """A reused work array shaped like `like` (fresh memory costs page faults every time)."""
        a = self.ws.get(key)
        if a is None or a.shape != like.shape or a.dtype != like.dtype:
            a = self.ws[key] = np.empty_like(like)
        return a

    def add(self, step: int, rec: tuple[dict[str, Array], Array, Array]) -> None:
        self.steps.append(step)
        self.stats.append(rec[0])
        self.hist_h.append(rec[1])
        self.hist_dz.append(rec[2])

    def arrays(self) -> tuple[Array, dict[str, Array], Array, Array]:
        stats = {k: np.stack([s[k] for s in self.stats]) for k in STATS}
        return np.array(self.steps), stats, np.stack(self.hist_h), np.stack(self.hist_dz)


def _finite_per_member(arrays: Sequence[Array]) -> Array:
    ok = np.ones(arrays[0].shape[0], dtype=bool)
    for a in arrays:
        ok &= np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
    return ok


def record_stats(rec: _Recorder, step: int, pop: Population, trace: Trace, grads: Grads,
                 bins: Bins, update: Callable[[], None] | None = None,
                 population: int | None = None) -> None:
    """Record the statistics of one step; `update` applies the step's optimizer update, whose
    size (update:data) is recorded too. Only the weights are copied (into the recorder's
    reused buffers): layer_stats reads the weights' updates alone. `population`: see train."""
    if update is None:
        rec.add(step, layer_stats(pop, trace, grads, bins, ws=rec.ws, population=population,
                                      hist_layers=rec.hist_layers))
        return
    old_Ws: list[Array] = []
    for l, W in enumerate(pop.Ws):
        old_Ws.append(rec.buffer(("W_old", l), W))
        np.copyto(old_Ws[-1], W)
    update()
    updates: list[Array] = []
    for l, (W, W_old) in enumerate(zip(pop.Ws, old_Ws)):
        delta = np.subtract(W, W_old, out=rec.buffer(("delta_W", l), W))
        updates += [delta, np.empty(0)]  # layer_stats reads updates[2 l] (weights) only
    before = Population(old_Ws, pop.bs, pop.activation)  # (layer_stats reads no biases)
    rec.add(step, layer_stats(before, trace, grads, bins, updates, ws=rec.ws,
                              population=population, hist_layers=rec.hist_layers))


def eval_chunk(members: int, sizes: Sequence[int]) -> int:
    """Samples per chunk of `evaluate` for a population of `members` nets of layer `sizes`
    (about 4M values of the widest layer at a time)."""
    return max(1, (1 << 22) // max(1, members * max(sizes)))


def evaluate(pop: Population, x: Array, y: Array, loss: Loss,
             chunk: int | None = None) -> tuple[Array, Array | None]:
    """Loss and accuracy (M,) on (x, y), in chunks of samples to bound memory (a member's
    numbers depend on the chunk size: a part of a population passes the whole one's). The
    layers of a chunk take turns in two sets of buffers (forward's keep=False), reused from
    chunk to chunk: two layers' activations of one chunk, whatever the depth."""
    N = len(x)
    ws: Workspace = {}
    if chunk is None:
        chunk = eval_chunk(pop.M, pop.sizes)
    total = np.zeros(pop.M)
    correct = np.zeros(pop.M)
    has_acc = True
    for i in range(0, N, chunk):
        xb, yb = x[i:i + chunk], y[i:i + chunk]
        z = forward(pop, xb, ws=ws, keep=False).out
        l_b, _ = loss.fn(z, yb)
        total += l_b * len(xb)
        acc = accuracy(loss, z, yb)
        if acc is None:
            has_acc = False
        else:
            correct += acc * len(xb)
    return total / N, (correct / N if has_acc else None)


def symmetric_members(pop: Population, rtol: float = 1e-9) -> Array:
    """(M,) True where every hidden layer's units are identical (equal incoming weights and
    biases): the symmetry that gradient descent can never break."""
    ok = np.ones(pop.M, dtype=bool)
    for W, b in zip(pop.Ws[:-1], pop.bs[:-1]):
        cols = np.concatenate([W, b], axis=1)  # (M, fan_in + 1, width)
        spread = np.abs(cols - cols[:, :, :1]).max(axis=(1, 2))
        scale = np.abs(cols).max(axis=(1, 2))
        ok &= spread <= rtol * (1 + scale)
    return ok


def batching(schedule: Schedule, N: int) -> tuple[bool, int, int, int]:
    """(full batch?, batch size B, steps per epoch, total steps) of `schedule` on N samples."""
    full = schedule.batch_size is None or schedule.batch_size >= N
    B = N if full else int(schedule.batch_size)  # type: ignore[arg-type]
    per_epoch = 1 if full else math.ceil(N / B)
    return full, B, per_epoch, schedule.epochs * per_epoch


def run_epochs(one_step: Callable[[int, Array, Array], Array], x: Array, y: Array,
               schedule: Schedule, shuffle_rngs: Sequence[np.random.Generator] | None,
               curve: Array, init_loss: Callable[[], Array], progress: Progress | None,
               stop: Callable[[], bool]) -> int:
    """The epoch loop both trainers share; returns the steps taken. Full batch: one step an
    epoch, curve[e - 1] its loss (the loss before update e). Minibatches: each member draws its
    own permutation of the N samples each epoch (shuffle_rngs[m]) and steps through it B at a
    time; curve[0] = init_loss() before the first step, curve[e] the epoch's sample-weighted
    mean of the batch losses. `progress(step, total)` after each epoch; the loop ends after an
    epoch in which stop() became true."""
    N = len(x)
    full, B, per_epoch, total = batching(schedule, N)
    step = 0
    for epoch in range(1, schedule.epochs + 1):
        if full:
            curve[epoch - 1] = one_step(step, x, y)
            step += 1
        else:
            perms = np.stack([r.permutation(N) for r in shuffle_rngs])  # type: ignore[union-attr]
            acc = np.zeros(curve.shape[1])
            for k in range(per_epoch):
                idx = perms[:, k * B:(k + 1) * B]  # (M, b): each member its own batch
                if epoch == 1 and k == 0:
                    curve[0] = init_loss()
                acc += one_step(step, x[idx], y[idx]) * idx.shape[1]
                step += 1
            curve[epoch] = acc / N
        if progress is not None:
            progress(step, total)
        if stop():
            break
    return step


def train(    pop: Population,
    x: Array,
    y: Array,
    schedule: Schedule,
    lr: Array,
    bins: Bins,
    shuffle_rngs: Sequence[np.random.Generator] | None = None,
    progress: Progress | None = None,
    *,
    stop_early: bool = True,
    population: int | None = None,
) -> History:
    """Train every member of `pop` in place on (x, y) and return its History.

    lr is (M,): members may differ in learning rate (and per parameter, by pop.lr_mults).
    Minibatches are drawn without replacement
    from a per-member permutation each epoch (`shuffle_rngs`, one per member). Training stops
    after the epoch in which the last member diverged, unless `stop_early` is False (a part of
    a population trains on: initlab.parallel cuts the merged History where the whole would
    have stopped). `population`: the member count of the whole population `pop` is a part of
    (default pop.M), which sets the sample chunks of `evaluate` and the statistics' packing, so
    that a part's members get the whole's numbers bit for bit.
    """
    loss, M, N, E = schedule.loss, pop.M, len(x), schedule.epochs
    members = pop.M if population is None else population
    chunk = eval_chunk(members, pop.sizes)
    full = batching(schedule, N)[0]
    opt = make_optimizer(schedule.optimizer, lr, momentum=schedule.momentum,
                         beta1=schedule.beta1, beta2=schedule.beta2, eps=schedule.eps,
                         lr_mult=pop.lr_mults)
    if not full and (shuffle_rngs is None or len(shuffle_rngs) != M):
        raise ValueError("minibatch training needs one shuffle rng per member")
    curve = np.full((E + 1, M), np.nan)
    alive = np.ones(M, dtype=bool)
    diverged_step = np.full(M, -1)
    rec = _Recorder(schedule.hist_layers)
    ws: Workspace = {}  # forward/backward buffers, reused every step
    x_meas, y_meas = (x, y) if full else (x[: schedule.measure_batch], y[: schedule.measure_batch])

    def one_step(step: int, xb: Array, yb: Array) -> Array:
        nonlocal alive
        trace = forward(pop, xb, ws=ws)
        l_b, dout = loss.fn(trace.out, yb, ws=ws)
        grads = backward(pop, trace, dout, ws=ws)
        bad = alive & ~(np.isfinite(l_b) & _finite_per_member(grads.params))
        diverged_step[bad] = step
        alive = alive & ~bad
        if not alive.all():
            for g in grads.params:
                g[~alive] = 0
        if step % schedule.every == 0:
            record_stats(rec, step, pop, trace, grads, bins, lambda: opt.step(
                pop.params, grads.params, alive), members)
        else:
            opt.step(pop.params, grads.params, alive)
        return l_b

    with np.errstate(all="ignore"):
        step = run_epochs(one_step, x, y, schedule, shuffle_rngs, curve,
                          lambda: evaluate(pop, x, y, loss, chunk)[0], progress,
                          lambda: stop_early and not alive.any())
        # after training: statistics on the measurement batch, loss on all the data
        trace: Trace = forward(pop, x_meas, ws=ws)  # the step buffers: no fresh pages
        l_meas, dout = loss.fn(trace.out, y_meas, ws=ws)
        grads = backward(pop, trace, dout, ws=ws)
        record_stats(rec, step, pop, trace, grads, bins, population=members)
        if full:
            final_loss, final_acc = l_meas, accuracy(loss, trace.out, y_meas)
        else:
            final_loss, final_acc = evaluate(pop, x, y, loss, chunk)
        # non-finite after the last update (or at init, with 0 epochs): diverged at this step
        bad = alive & ~(np.isfinite(final_loss) & np.isfinite(l_meas)
                        & _finite_per_member(grads.params))
        diverged_step[bad] = step
        if full or E == 0:
            curve[E] = final_loss  # full batch: curve[e] is the loss after e updates
    stat_steps, stats, hist_h, hist_dz = rec.arrays()
    return History(curve, np.asarray(final_loss, dtype=float), final_acc, diverged_step,
                   stat_steps, stats, hist_h, hist_dz, step, symmetric_members(pop))
