"""Gaussian expectations by composite Gauss-Legendre quadrature, for the mean-field maps:

    expect(f, q)          E[f(sqrt(q) z)],                         z ~ N(0, 1)
    expect2(f, g, q, c)   E[f(u1) g(u2)],  u1 = sqrt(q) z1,  u2 = sqrt(q) (c z1 + sqrt(1 - c^2) z2)

The line is cut at the kink of phi (0, and for the inner integral of expect2 at the z2 where
u2 = 0), covered by panels of width 1 in the scaled variable sqrt(q) z out to |sqrt(q) z| = 20
and by coarser panels in z out to |z| = 10, 10 nodes each. tests/test_theory.py checks it
against adaptive QUADPACK and closed forms (relative error < 1e-9). Gauss-Hermite alone is not
accurate here: it has no node near a kink and too few in the bend of tanh(sqrt(q) z) at large q.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache

import numpy as np

Array = np.ndarray

_Z = 10.0  # |z| <= 10 holds N(0, 1) up to a mass of 1.5e-23
_X = 20.0  # fine panels (width 1 in x = sqrt(q) z) out to |x| = 20, where every phi is flat
_FINE, _COARSE = 20, 20  # panels per half-line of a 1-D integral
# panels per half-line of each of the two 1-D integrals in `expect2` (10, 8: < 2e-10 relative
# against nested QUADPACK; `coarse_quadrature` lowers it to (6, 5), < 1e-7, for plots)
_RULE2 = [10, 8]
_GL_T, _GL_W = np.polynomial.legendre.leggauss(10)
_SQRT_2PI = math.sqrt(2 * math.pi)
_S_MIN = 1e-300  # sqrt(q) used for q = 0: f(1e-300 z) is f's one-sided limit on each side of 0


@lru_cache(maxsize=16)
def _unit_rule(panels: int) -> tuple[Array, Array]:
    """Composite Gauss-Legendre rule on [0, 1]: `panels` equal panels of 10 nodes."""
    a = np.arange(panels)[:, None] / panels
    return (a + (_GL_T + 1) / (2 * panels)).ravel(), np.tile(_GL_W / (2 * panels), panels)


def _half_line(start: Array, scale: Array, sign: float, fine: int, coarse: int,
               scale2: float | None = None) -> tuple[Array, Array]:
    """Nodes and weights (..., n) from `start` towards sign * _Z: `fine` panels out to
    start + sign * _X / scale (width 1 in the scaled variable), then `coarse` panels to the
    end; with `scale2` (> scale) another `fine` panels first, out to _X / scale2. Clipped to
    [-_Z, _Z] (empty panels get weight 0). Weights are signed (down: < 0)."""
    end = sign * np.full_like(start, _Z)
    cuts = [start]
    for sc in ([] if scale2 is None else [scale2]) + [scale]:
        cuts.append(np.clip(start + sign * _X / np.maximum(sc, 1e-300), -_Z, _Z))
    cuts.append(end)
    counts = [fine] * (len(cuts) - 2) + [coarse]
    nodes, weights = [], []
    for a, b, n in zip(cuts[:-1], cuts[1:], counts):
        u, w = _unit_rule(n)
        length = (b - a)[..., None]
        nodes.append(a[..., None] + length * u)
        weights.append(length * w)
    return np.concatenate(nodes, axis=-1), np.concatenate(weights, axis=-1)


def _line_rule(start: Array, scale: Array, fine: int = _FINE, coarse: int = _COARSE,
               scale2: float | None = None) -> tuple[Array, Array]:
    """Nodes and weights (..., n) for the integral over [-_Z, _Z], cut at `start` (clipped)."""
    start = np.clip(start, -_Z, _Z)
    up = _half_line(start, scale, 1.0, fine, coarse, scale2)
    down = _half_line(start, scale, -1.0, fine, coarse, scale2)
    nodes = np.concatenate([up[0], down[0]], axis=-1)
    weights = np.concatenate([up[1], -down[1]], axis=-1)  # down panels run backwards
    return nodes, weights


@contextmanager
def coarse_quadrature() -> Iterator[None]:
    """Within this block `expect2` uses 6 + 5 panels per half-line (relative error < 1e-7
    instead of < 2e-10, ~4x faster): for plots of many points. Not thread-safe."""
    saved = list(_RULE2)
    _RULE2[:] = [6, 5]
    try:
        yield
    finally:
        _RULE2[:] = saved


def _density(z: Array) -> Array:
    return np.exp(-0.5 * z * z) / _SQRT_2PI


def expect(f: Callable[[Array], Array], q: float | Array) -> Array:
    """E[f(sqrt(q) z)], z ~ N(0, 1), for every q of an array (composite Gauss-Legendre, cut at
    z = 0; see the module docstring). f is vectorized; q >= 0. At q = 0 it is the limit
    q -> 0+: (f(0+) + f(0-)) / 2 where f jumps at 0 (phi' of elu, selu, relu), f(0) elsewhere."""
    q = np.asarray(q, dtype=float)
    s = np.maximum(np.sqrt(q), _S_MIN)  # q = 0: half the nodes on each side of 0
    z, w = _line_rule(np.zeros_like(s), s)  # (..., n)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sum(w * _density(z) * f(s[..., None] * z), axis=-1)


def expect2(f: Callable[[Array], Array], g: Callable[[Array], Array], q: float, c: float) -> float:
    """E[f(u1) g(u2)], u1 = sqrt(q) z1, u2 = sqrt(q) (c z1 + sqrt(1 - c^2) z2), z1, z2 ~ N(0, 1).

    Outer integral over z1 cut at 0 (u1's kink), fine panels of width 1 in u1 and of width
    sqrt(1 - c^2) / |c| near 0; the inner one over z2 for each outer node, cut where u2 = 0
    (z2 = -c z1 / sqrt(1 - c^2)), with fine panels of width 1 in u2."""
    c = min(max(c, -1.0), 1.0)
    s, r = math.sqrt(q), math.sqrt(max(1.0 - c * c, 0.0))
    if r < 1e-12:
        return float(expect(lambda u: f(u) * g(math.copysign(1.0, c) * u), q))
    fine, coarse = _RULE2
    # the inner integral is a function of z1 that bends at |z1| ~ r / c (where the kink of
    # u2 sweeps through the bulk of z2): a second set of fine panels resolves it when c -> 1
    z1, w1 = _line_rule(np.zeros(1), np.array([s]), fine, coarse, max(abs(c) / r, s))
    z1, w1 = z1[0], w1[0]  # (n,)
    kink = -c * z1 / r
    z2, w2 = _line_rule(kink, np.full_like(z1, s * r), fine, coarse)  # (n, n)
    with np.errstate(over="ignore", invalid="ignore"):
        inner = np.sum(w2 * _density(z2) * g(s * (c * z1[:, None] + r * z2)), axis=1)
        return float(np.sum(w1 * _density(z1) * f(s * z1) * inner))
