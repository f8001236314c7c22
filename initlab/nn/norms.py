"""Normalization layers on stacked members, each with its exact backward pass.

Arrays are (M, B, n): member, sample, unit. Every norm computes x_hat from x and returns

    y = gamma * x_hat + beta          gamma, beta: (M, 1, n) (rmsnorm: beta stays 0, no gradient)

    layernorm  per sample, over units:   x_hat = (x - mean_u x) / sqrt(var_u x + eps)
    rmsnorm    per sample, over units:   x_hat = x / sqrt(mean_u x^2 + eps)
    batchnorm  per unit, over the batch: x_hat = (x - mean_b x) / sqrt(var_b x + eps)   (training)
                                         x_hat = (x - running_mean) / sqrt(running_var + eps) (eval)

BatchNorm's statistics are each member's own batch (axis 1), so members never mix. While
training, `update=True` moves the running statistics towards the batch's (torch's rule):
running = (1 - momentum) running + momentum stat, with the unbiased batch variance.

Backward passes, with g = dL/dx_hat = dL/dy * gamma and N the size of the reduced axis:

    mean-and-variance norms:  dx = (g - mean(g) - x_hat mean(g x_hat)) / sqrt(var + eps)
    rmsnorm:                  dx = (g - x_hat mean(g x_hat)) / sqrt(mean x^2 + eps)
    batchnorm at evaluation:  dx = g / sqrt(running_var + eps)   (a fixed affine map)
    dgamma = sum_b dL/dy * x_hat,   dbeta = sum_b dL/dy   (summed over the batch, (M, 1, n))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray
NORMS = ("layernorm", "rmsnorm", "batchnorm")
EPS = 1e-5  # torch's default for LayerNorm, RMSNorm (when given) and BatchNorm1d
MOMENTUM = 0.1  # torch's BatchNorm1d default


@dataclass
class NormCache:
    """What backward needs: x_hat (M, B, n), 1 / sqrt(var + eps) (broadcastable), the axis."""

    x_hat: Array
    rstd: Array
    axis: int  # -1: over units (per sample); 1: over the batch (per unit)
    centred: bool  # mean subtracted (layernorm, batchnorm) or not (rmsnorm)
    fixed: bool = False  # batchnorm at evaluation: x_hat is an affine map of x


@dataclass(frozen=True)
class Norm:
    """One kind of normalization (`kind` in NORMS); see the module docstring for the formulas."""

    kind: str
    eps: float = EPS
    momentum: float = MOMENTUM

    def __post_init__(self) -> None:
        if self.kind not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {self.kind!r}")

    @property
    def has_beta(self) -> bool:
        return self.kind != "rmsnorm"

    def forward(self, x: Array, gamma: Array, beta: Array, *, train: bool = True,
                running: tuple[Array, Array] | None = None,
                update: bool = False) -> tuple[Array, NormCache]:
        """y = gamma * x_hat + beta for x (M, B, n). BatchNorm: `running` = (mean, var), each
        (M, 1, n), used when not `train`, moved towards the batch's statistics when `update`."""
        if self.kind == "batchnorm":
            if not train:
                if running is None:
                    raise ValueError("batchnorm at evaluation needs its running statistics")
                rm, rv = running
                rstd = 1.0 / np.sqrt(rv + self.eps)
                x_hat = (x - rm) * rstd
                return gamma * x_hat + beta, NormCache(x_hat, rstd, 1, True, fixed=True)
            axis = 1
        else:
            axis = -1
        if self.kind == "rmsnorm":
            ms = np.mean(x * x, axis=axis, keepdims=True)
            rstd = 1.0 / np.sqrt(ms + self.eps)
            x_hat = x * rstd
        else:
            mean = np.mean(x, axis=axis, keepdims=True)
            d = x - mean
            var = np.mean(d * d, axis=axis, keepdims=True)
            rstd = 1.0 / np.sqrt(var + self.eps)
            x_hat = d * rstd
            if self.kind == "batchnorm" and update and running is not None:
                B = x.shape[1]
                rm, rv = running
                rm *= 1 - self.momentum
                rm += self.momentum * mean
                rv *= 1 - self.momentum
                rv += self.momentum * var * (B / max(B - 1, 1))
        y = gamma * x_hat
        if self.has_beta:
            y += beta
        return y, NormCache(x_hat, rstd, axis, self.kind != "rmsnorm")

    def backward(self, dy: Array, gamma: Array, cache: NormCache) -> tuple[Array, Array, Array]:
        """(dx, dgamma, dbeta) for dy = dL/dy (M, B, n); dgamma, dbeta are (M, 1, n)."""
        x_hat, ax = cache.x_hat, cache.axis
        dgamma = np.sum(dy * x_hat, axis=1, keepdims=True)
        dbeta = np.sum(dy, axis=1, keepdims=True) if self.has_beta else np.zeros_like(dgamma)
        g = dy * gamma
        if cache.fixed:
            return g * cache.rstd, dgamma, dbeta
        proj = np.mean(g * x_hat, axis=ax, keepdims=True)
        dx = g - x_hat * proj
        if cache.centred:
            dx -= np.mean(g, axis=ax, keepdims=True)
        dx *= cache.rstd
        return dx, dgamma, dbeta


def get_norm(kind: str | None) -> Norm | None:
    """The Norm for a config's `model.norm` (None: no normalization)."""
    return None if kind is None else Norm(kind)
