"""Optimizers on stacked parameters: every array has the member axis M first.

Each member has its own learning rate, an (M,) array, and a step can be masked per member:
a diverged member is frozen, its parameters no longer change (its lr is zeroed for the step).
Its optimizer state is not frozen: the caller zeroes its gradients, so its momentum buffer and
Adam's m and v decay geometrically towards 0 (they are never used again: the freeze is final).
`lr_mult` (one (M,) array per parameter, None: all 1) scales parameter i's learning rate of
member m by lr_mult[i][m] (width parametrizations: initlab.nn.parametrization).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from initlab.registry import Registry

Array = np.ndarray


def _per_member(v: Array, like: Array) -> Array:
    """(M,) -> (M, 1, 1, ...) so it broadcasts against a stacked parameter."""
    return v.reshape((-1,) + (1,) * (like.ndim - 1)).astype(like.dtype, copy=False)


@dataclass
class SGD:
    """p <- p - lr * v,  v <- momentum * v + g  (v = g when momentum = 0; Nesterov optional).

    The caller zeroes the gradients of inactive members; their lr is zeroed here, so a frozen
    member's parameters never change.
    """

    lr: Array  # (M,)
    momentum: float = 0.0
    nesterov: bool = False
    lr_mult: Sequence[Array] | None = None  # [i] (M,) per parameter
    _v: list[Array] = field(default_factory=list)

    def step(self, params: Sequence[Array], grads: Sequence[Array], active: Array) -> None:
        lr = np.where(active, self.lr, 0.0)
        if self.momentum and not self._v:
            self._v = [np.zeros_like(p) for p in params]
        for i, (p, g) in enumerate(zip(params, grads)):
            d = g
            if self.momentum:
                v = self._v[i]
                v *= self.momentum
                v += g
                d = g + self.momentum * v if self.nesterov else v
            lr_i = lr if self.lr_mult is None else lr * self.lr_mult[i]
            p -= _per_member(lr_i, p) * d


@dataclass
class Adam:
    """torch.optim.Adam (Kingma & Ba 2015, Algorithm 1), step t = 1, 2, ...:

        m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g²
        m_hat = m / (1 - b1^t);   v_hat = v / (1 - b2^t)
        p <- p - lr · m_hat / (sqrt(v_hat) + eps)

    eps is added to sqrt(v_hat), after the bias correction (as torch; TensorFlow's "eps-hat"
    form adds it to sqrt(v) before, which gives steps up to sqrt(1 - b2^t) times smaller where
    |g| is not much larger than eps). Computed in torch's order: p -= lr / (1 - b1^t) · m /
    (sqrt(v) / sqrt(1 - b2^t) + eps), in one work array per parameter."""

    lr: Array  # (M,)
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    lr_mult: Sequence[Array] | None = None  # [i] (M,) per parameter
    _m: list[Array] = field(default_factory=list)
    _v: list[Array] = field(default_factory=list)
    _d: list[Array] = field(default_factory=list)
    _t: int = 0

    def step(self, params: Sequence[Array], grads: Sequence[Array], active: Array) -> None:
        if not self._m:
            self._m = [np.zeros_like(p) for p in params]
            self._v = [np.zeros_like(p) for p in params]
            self._d = [np.empty_like(p) for p in params]
        self._t += 1
        t = self._t
        step_size = np.where(active, self.lr, 0.0) / (1 - self.beta1**t)
        bc2_sqrt = float(np.sqrt(1 - self.beta2**t))
        for i, (p, g, m, v, d) in enumerate(zip(params, grads, self._m, self._v, self._d)):
            m *= self.beta1
            np.multiply(g, 1 - self.beta1, out=d)
            m += d
            v *= self.beta2
            np.multiply(g, g, out=d)
            d *= 1 - self.beta2
            v += d
            np.sqrt(v, out=d)
            d /= bc2_sqrt
            d += self.eps
            np.divide(m, d, out=d)
            step_i = step_size if self.lr_mult is None else step_size * self.lr_mult[i]
            d *= _per_member(step_i, p)
            p -= d


OPTIMIZERS: Registry[type] = Registry("optimizer")
OPTIMIZERS.register("sgd", SGD, description="plain gradient descent: p -= lr * g",
                    formula="p <- p - lr g")
OPTIMIZERS.register("momentum", SGD, aliases=("sgd_momentum",),
                    description="SGD with heavy-ball momentum",
                    formula="v <- mu v + g; p <- p - lr v")
OPTIMIZERS.register("adam", Adam, description="Adam (Kingma & Ba 2015), as torch.optim.Adam",
                    formula="p <- p - lr m_hat / (sqrt(v_hat) + eps)")


def make_optimizer(
    name: str, lr: Array, *, momentum: float = 0.9, beta1: float = 0.9, beta2: float = 0.999,
    eps: float = 1e-8, lr_mult: Sequence[Array] | None = None,
) -> SGD | Adam:
    """An optimizer for per-member learning rates `lr` (M,), times `lr_mult[i]` (M,) for
    parameter i when given."""
    key = OPTIMIZERS.canonical(name)
    lr = np.asarray(lr, dtype=np.float64)
    if key == "sgd":
        return SGD(lr, lr_mult=lr_mult)
    if key == "momentum":
        return SGD(lr, momentum=momentum, lr_mult=lr_mult)
    return Adam(lr, beta1=beta1, beta2=beta2, eps=eps, lr_mult=lr_mult)
