"""LSUV, the data-dependent initializer (Mishkin & Matas 2015, "All you need is a good init"):
orthogonal weights, then each layer rescaled on a batch of data until Var(z) = gain²."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from initlab.errors import BadParameterError
from initlab.nn.initializer import Array, Initializer, Orthogonal, _gain, _number


@dataclass(frozen=True)
class Lsuv(Initializer):
    """Layer-sequential unit-variance init (Mishkin & Matas 2015). Called, it draws the
    orthonormal start W = gain · Q (see `Orthogonal`); `rescale` then fits each layer's scale to
    a data batch so that Var(z) = gain² (1 by default) for z = h @ W + b."""

    kind: ClassVar[str] = "lsuv"
    tol: float = 0.1
    max_iter: int = 10
    gain: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tol", _number(self.name, "tol", self.tol, low=0.0, above=True))
        it = self.max_iter
        if isinstance(it, bool) or not isinstance(it, int | np.integer) or it < 0:
            raise BadParameterError(self.name, "max_iter", f"max_iter must be an int >= 0, got "
                                    f"{it!r}")
        object.__setattr__(self, "max_iter", int(it))
        object.__setattr__(self, "gain", _gain(self.name, self.gain))
        if self.gain == 0:
            raise BadParameterError(self.name, "gain", "gain must be > 0 (the target Var is gain²)")

    def draw(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> Array:
        return Orthogonal(self.gain).draw(rng, fan_in, fan_out)

    def rescale(self, Ws: list[Array], bs: list[Array], x: Array,
                phi: Callable[[Array], Array]) -> list[int]:
        """`fit`'s rescalings per layer (Ws modified in place the same way)."""
        return self.fit(Ws, bs, x, phi)[0]

    def fit(self, Ws: list[Array], bs: list[Array], x: Array,
            phi: Callable[[Array], Array]) -> tuple[list[int], list[float]]:
        """For l = 1..L in turn: z = h[l-1] @ W[l] + b[l] on the batch x (h[0] = x, h = phi(z) on
        hidden layers; the last layer is linear), then W[l] *= gain / sqrt(Var(z)) (Var over batch
        and units) until |Var(z) / gain² - 1| < tol or max_iter rescalings. Ws (fan_in, fan_out)
        of ONE network are modified in place; returns, per layer, the rescalings used and their
        product: the scale factor s_l with W[l] = s_l * (the orthogonal draw), so that
        std(W[l]) = s_l * std(draw) (1.0 where no rescaling was needed)."""
        if len(Ws) != len(bs):
            raise ValueError(f"lsuv: {len(Ws)} weights but {len(bs)} biases")
        target = self.gain**2
        h = np.asarray(x, dtype=np.float64)  # (batch, n_in)
        used: list[int] = []
        scales: list[float] = []
        for l, (W, b) in enumerate(zip(Ws, bs)):
            z = h @ W + b  # (batch, fan_out)
            var, it, scale = float(np.var(z)), 0, 1.0
            while it < self.max_iter and 0 < var < math.inf and abs(var / target - 1) >= self.tol:
                factor = math.sqrt(target / var)
                W *= factor
                scale *= factor
                z = h @ W + b
                var, it = float(np.var(z)), it + 1
            used.append(it)
            scales.append(scale)
            h = phi(z) if l < len(Ws) - 1 else z
        return used, scales
