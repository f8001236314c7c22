"""Losses of a population with their gradients: fn(z, y) -> (loss per member (M,), dz like z).
fn(z, y, ws) may keep its work arrays, and dz, in the workspace ws for the next call.

z: (M, B, K) logits or outputs of M members on one batch of B samples. y, shared by all members
or per member:
    bce        float 0/1 (soft labels in [0, 1] work too): (B,) or (M, B) for K = 1, or
               (B, K) / (M, B, K)
    softmax_ce int labels in [0, K): (B,) or (M, B)
    mse        float targets: (B, K) or (M, B, K)
The loss is a mean over the batch (and over the K outputs, as torch.nn.BCEWithLogitsLoss and
torch.nn.MSELoss do); dz = d loss[m] / d z[m] (members do not interact).
All are computed from logits in stable forms: huge or infinite logits give the limiting value
(possibly inf) without a RuntimeWarning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from initlab.nn.workspace import Workspace, buffer
from initlab.registry import Registry

Array = np.ndarray


class LossFn(Protocol):
    """(z, y, ws=None) -> (loss (M,), dz like z); ws: work buffers kept for the next call."""

    def __call__(self, z: Array, y: Array, ws: Workspace | None = None
                 ) -> tuple[Array, Array]: ...


@dataclass(frozen=True)
class Loss:
    """A loss of stacked outputs z (M, B, K) against targets y, with its gradient."""

    name: str
    fn: LossFn  # (z, y, ws=None) -> (loss (M,), dz like z)
    description: str = ""
    task: str = ""  # the data task it suits: "binary", "multiclass", "regression"
    formula: str = ""

    def __call__(self, z: Array, y: Array, ws: Workspace | None = None) -> tuple[Array, Array]:
        return self.fn(z, y, ws=ws)


def _as_float(z: Array) -> Array:
    z = np.asarray(z)
    return z if np.issubdtype(z.dtype, np.floating) else z.astype(np.float64)


def _check_z(z: Array, loss: str) -> Array:
    z = _as_float(z)
    if z.ndim != 3:
        raise ValueError(f"{loss}: z must have shape (M, B, K), got {z.shape}")
    return z


def _fit(z: Array, y: Array, loss: str) -> Array:
    """y shaped to broadcast against z (M, B, K) without being broadcast: (B,) -> (B, 1) and
    (M, B) -> (M, B, 1) for K = 1; (B, K) and (M, B, K) as they are."""
    M, B, K = z.shape
    y = np.asarray(y)
    if y.ndim == 1 or (y.ndim == 2 and K == 1 and y.shape == (M, B) and y.shape != (B, 1)):
        y = y[..., None]  # class labels / targets of a single output
    if y.ndim > 3 or any(d != 1 and d != n for d, n in zip(y.shape[::-1], z.shape[::-1])):
        raise ValueError(
            f"{loss}: targets of shape {y.shape} do not fit outputs (M, B, K) = {z.shape}"
        )
    return y


def _targets(z: Array, y: Array, loss: str) -> Array:
    """y broadcast to z's shape (M, B, K): shared (B,) / (B, K) or per member (M, B) / (M, B, K)."""
    return np.broadcast_to(_fit(z, y, loss), z.shape)


def sigmoid(z: Array) -> Array:
    """1 / (1 + exp(-z)), stable: e = exp(-|z|) never overflows; (1 or e) / (1 + e)."""
    z = _as_float(z)
    e = np.exp(-np.abs(z))
    return _sigmoid_from((z >= 0).astype(z.dtype), e)


def _sigmoid_from(pos: Array, e: Array, out: Array | None = None, den: Array | None = None
                  ) -> Array:
    """where(pos, 1, e) / (1 + e) (in `out`, else a new array) from e = exp(-|z|) and
    pos = [z >= 0] as 0.0/1.0 (`den`: a work array like e). The select is arithmetic,
    pos + (e - e pos), exact for finite e (np.where on floats costs ~10 multiplies); NaN stays
    NaN, z = -inf gives 0 / 1, z = +inf 1 / 1."""
    num = np.multiply(e, pos, out=out)
    np.subtract(e, num, out=num)
    num += pos
    num /= np.add(e, 1, out=den)
    return num


def _softplus(z: Array) -> Array:
    """log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|))."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def log_softmax(z: Array) -> Array:
    """z - logsumexp(z) over the last axis, stable. Where a row's max is +inf, the +inf entries
    share the probability (log p = -log(count)) and the others get -inf, the limit."""
    z = _as_float(z)
    m = np.max(z, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: discarded; -max - max: -inf
        shifted = np.where(np.isinf(m), np.where(z == m, 0.0, -np.inf), z - m)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def softmax(z: Array) -> Array:
    """exp(log_softmax(z)) over the last axis."""
    return np.exp(log_softmax(z))


def _mean(x: Array, axis: tuple[int, ...]) -> Array:
    """Mean as sum(x / n): a batch of huge (finite) losses does not overflow the sum."""
    n = math.prod(x.shape[a] for a in axis)
    with np.errstate(over="ignore"):  # only when the mean itself is beyond the float range
        return np.sum(x / n, axis=axis)


# Each loss has a fast path, exact for finite logits (the common case), and the careful form it
# was derived from (`_*_careful`), which redoes the members whose fast loss is not finite (all
# those with an inf or NaN logit): it gives the limits (loss inf, dz finite) that the fast forms
# would turn into NaN. Per member, not all-or-nothing: a population with a few diverged (NaN)
# members keeps the fast path for the others. The fast paths evaluate exp (and log1p) once,
# select by arithmetic instead of np.where (~10x slower than a multiply), work in place, and
# broadcast shared targets in the arithmetic rather than materialising (M, B, K) copies.


def _bce_careful(z: Array, y: Array) -> tuple[Array, Array]:
    """loss = mean over (B, K) of y * softplus(-z) + (1 - y) * softplus(z)
    (= max(z, 0) - z y + log1p(exp(-|z|))); dz = (sigmoid(z) - y) / (B K).
    Limits for infinite z (0 * inf terms are dropped)."""
    z = _check_z(z, "bce")
    y = _targets(z, y, "bce").astype(z.dtype, copy=False)
    with np.errstate(invalid="ignore", over="ignore"):  # 0 * inf is dropped by the where
        pos = np.where(y != 0, y * _softplus(-z), 0.0)
        neg = np.where(y != 1, (1 - y) * _softplus(z), 0.0)
    n = z.shape[1] * z.shape[2]
    loss = _mean(pos + neg, axis=(1, 2))
    return loss.astype(z.dtype, copy=False), ((sigmoid(z) - y) / n).astype(z.dtype, copy=False)


def _bce(z: Array, y: Array, ws: Workspace | None = None) -> tuple[Array, Array]:
    """loss = mean over (B, K) of max(z, 0) - z y + log1p(exp(-|z|)), computed as
    z (pos - y) + log1p(e) with pos = [z >= 0], e = exp(-|z|) (exact for hard labels, no
    cancellation for soft ones); dz = (sigmoid(z) - y) / (B K), sigmoid(z) = (1 or e) / (1 + e).
    For y in {0, 1} loss and dz are bitwise those of _bce_careful. With a workspace `ws` the
    work arrays and dz are its buffers, reused by the next call (no fresh pages every step).

    A member with an inf or NaN logit gets a non-finite fast loss (its term z (pos - y) is
    inf * (1 - y) or -inf * (-y): inf or 0 * inf = NaN), so it is redone by _bce_careful, which
    gives the limits; a finite-z member with a non-finite loss (targets beyond [0, 1] and huge z)
    is redone too, to the same value."""
    z = _check_z(z, "bce")
    y = _fit(z, y, "bce").astype(z.dtype, copy=False)  # small: (B, 1), (M, B, 1), (B, K), ...
    if not np.isfinite(y).all():  # infinite/NaN targets: the careful form's NaNs, as ever
        return _bce_careful(z, np.broadcast_to(y, z.shape))
    n = z.shape[1] * z.shape[2]
    e, pos, den, dz = (buffer(ws, ("bce", k), z.shape, z.dtype) for k in ("e", "pos", "den", "dz"))
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite members are redone below
        np.abs(z, out=e)
        np.negative(e, out=e)
        np.exp(e, out=e)  # e = exp(-|z|) in (0, 1]
        np.greater_equal(z, 0, out=pos)  # 1.0 / 0.0
        _sigmoid_from(pos, e, out=dz, den=den)
        t = pos
        t -= y  # 1 - y where z >= 0, -y where z < 0
        t *= z  # = max(z, 0) - z y
        t += np.log1p(e, out=e)
        t /= n  # mean as sum(t / n), as _mean: no overflow of the sum
        loss = t.sum(axis=(1, 2))
        dz -= y
        dz /= n
    return _redo(loss, dz, lambda bad: _bce_careful(z[bad], np.broadcast_to(y, z.shape)[bad]))


def _redo(loss: Array, dz: Array, careful: Callable[[Array], tuple[Array, Array]]
          ) -> tuple[Array, Array]:
    """Members with a non-finite fast loss (all those with an inf or NaN logit) recomputed by
    the careful form: careful(indices) -> (loss, dz) of those members."""
    ok = np.isfinite(loss)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        loss[bad], dz[bad] = careful(bad)
    return loss, dz


def _labels(z: Array, y: Array) -> Array:
    """softmax_ce's integer labels (B,) or (M, B), checked against z (M, B, K)."""
    M, B, K = z.shape
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("softmax_ce: labels must be integers in [0, K)")
        y = y.astype(np.int64)
    if y.shape not in ((B,), (M, B)):
        raise ValueError(f"softmax_ce: labels must have shape (B,) or (M, B), got {y.shape} "
                         f"for outputs (M, B, K) = {z.shape}")
    if y.size and (y.min() < 0 or y.max() >= K):
        raise ValueError(f"softmax_ce: labels must be in [0, {K}), got [{y.min()}, {y.max()}]")
    return y


def _softmax_ce_careful(z: Array, y: Array) -> tuple[Array, Array]:
    """loss = mean over B of -log softmax(z)[y]; dz = (softmax(z) - onehot(y)) / B.
    Limits for infinite z (log_softmax's)."""
    z = _check_z(z, "softmax_ce")
    M, B = z.shape[:2]
    y = _labels(z, y)
    labels = np.broadcast_to(y, (M, B))[..., None]  # (M, B, 1)
    logp = log_softmax(z)  # (M, B, K)
    loss = _mean(-np.take_along_axis(logp, labels, axis=-1)[..., 0], axis=(1,))
    dz = np.exp(logp)
    np.put_along_axis(dz, labels, np.take_along_axis(dz, labels, axis=-1) - 1, axis=-1)
    return loss.astype(z.dtype, copy=False), (dz / B).astype(z.dtype, copy=False)


_SHORT = 16  # up to this many classes, row reductions loop over k: numpy's reductions along a
# short last axis cost ~40 ns a row (32 x 512 x 2: 0.6 ms for a max, 14 us as a loop)


def _row_reduce(op: np.ufunc, x: Array) -> Array:
    """op.reduce over the last axis, keepdims: (M, B, K) -> (M, B, 1)."""
    K = x.shape[-1]
    if not 1 <= K <= _SHORT:
        return op.reduce(x, axis=-1, keepdims=True)
    out = x[..., :1].copy()
    for k in range(1, K):
        op(out, x[..., k:k + 1], out=out)
    return out


def _softmax_ce(z: Array, y: Array, ws: Workspace | None = None) -> tuple[Array, Array]:
    """loss = mean over B of logsumexp(z) - z[y], as -(s[y] - log sum exp(s)) with s = z - max z;
    dz = (exp(s) / sum exp(s) - onehot(y)) / B.

    A row with a +inf or NaN logit has s = inf - inf or NaN, a row of -inf ones s = NaN: the
    member's loss is NaN and _softmax_ce_careful redoes it. -inf logits in a row with a finite
    max need no redo: exp(s) = 0 there, as the careful form has it."""
    z = _check_z(z, "softmax_ce")
    M, B, K = z.shape
    y = _labels(z, y)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite members are redone below
        s = z - _row_reduce(np.maximum, z)  # <= 0, max 0 in each row
        dz = np.exp(s)
        total = _row_reduce(np.add, dz)  # in [1, K]
        picked = s[np.arange(M)[:, None], np.arange(B), y]  # (M, B): s at the label
        terms = -(picked - np.log(total[..., 0]))
        terms /= B
        loss = terms.sum(axis=1)
        dz /= total
        dz -= (np.arange(K) == y[..., None]).astype(z.dtype)  # one-hot, (B, K) or (M, B, K)
        dz /= B
    return _redo(loss, dz, lambda bad: _softmax_ce_careful(z[bad], np.broadcast_to(y, (M, B))[bad]))


def _mse(z: Array, y: Array, ws: Workspace | None = None) -> tuple[Array, Array]:
    """loss = mean over (B, K) of (z - y)^2 (torch.nn.MSELoss); dz = 2 (z - y) / (B K)."""
    z = _check_z(z, "mse")
    y = _fit(z, y, "mse")  # broadcast in the arithmetic
    n = z.shape[1] * z.shape[2]
    with np.errstate(over="ignore", invalid="ignore"):  # huge outputs: the loss is inf
        r = z - y
        sq = r * r
        sq /= n  # mean as sum(r^2 / n), as _mean
        loss = sq.sum(axis=(1, 2))
        r /= n
        r *= 2  # dz = 2 (r / n)
    return loss.astype(z.dtype, copy=False), r.astype(z.dtype, copy=False)


LOSSES: Registry[Loss] = Registry("loss")
LOSSES.register(
    "bce", Loss("bce", _bce, "binary cross-entropy of a sigmoid output, from logits", "binary",
                "mean(max(z, 0) - z*y + log1p(exp(-|z|)))"),
    aliases=("binary_cross_entropy", "bce_with_logits"),
    description="binary cross-entropy of a sigmoid output, from logits (binary data)",
    formula="mean(max(z, 0) - z*y + log1p(exp(-|z|)))",
)
LOSSES.register(
    "softmax_ce",
    Loss("softmax_ce", _softmax_ce, "softmax cross-entropy, integer labels", "multiclass",
         "mean(logsumexp(z) - z[y])"),
    aliases=("cross_entropy", "ce", "softmax_cross_entropy"),
    description="softmax cross-entropy with integer labels (multiclass or binary data)",
    formula="mean(logsumexp(z) - z[y])",
)
LOSSES.register(
    "mse", Loss("mse", _mse, "mean squared error", "regression", "mean((z - y)^2)"),
    aliases=("mean_squared_error",),
    description="mean squared error over batch and outputs (regression data)",
    formula="mean((z - y)^2)",
)


def get_loss(name: str | Loss) -> Loss:
    """The loss called `name` (case-insensitive, aliases allowed); UnknownNameError otherwise."""
    if isinstance(name, Loss):
        return name
    return LOSSES.get(name)


def predict_proba(loss: str | Loss, z: Array) -> Array | None:
    """Class probabilities: bce -> P(class 1) (M, B, K); softmax_ce -> softmax (M, B, K);
    mse -> None."""
    name = get_loss(loss).name
    if name == "bce":
        return sigmoid(z)
    if name == "softmax_ce":
        return softmax(z)
    return None


def accuracy(loss: str | Loss, z: Array, y: Array) -> Array | None:
    """Fraction of correct predictions per member (M,): bce: (z > 0) == (y > 0.5) (averaged over
    outputs too); softmax_ce: argmax(z) == y; mse: None (regression)."""
    name = get_loss(loss).name
    z = _as_float(z)
    if name == "bce":
        y = _targets(z, y, "bce")
        return np.mean((z > 0) == (y > 0.5), axis=(1, 2))
    if name == "softmax_ce":
        labels = np.broadcast_to(np.asarray(y), z.shape[:2])
        return np.mean(np.argmax(z, axis=-1) == labels, axis=1)
    return None


__all__ = ["LOSSES", "Loss", "accuracy", "get_loss", "log_softmax",
           "predict_proba", "sigmoid", "softmax"]
