"""What the theory predicts for the variance of every layer at initialization.

The primer's product rule for a (near-)linear net, Var(a[L]) = [prod_l n[l-1] Var(W[l])] Var(x),
is the linear case of the mean-field length map (Poole et al. 2016):

    q[1] = sigma_w2[1] * q0 + sigma_b2[1]                 q0 = E[x^2] of the input features
    q[l] = sigma_w2[l] * E_z[phi(sqrt(q[l-1]) z)^2] + sigma_b2[l],   z ~ N(0, 1)

with sigma_w2[l] = fan_in * E[W[l]^2] and sigma_b2[l] = E[b[l]^2]. The variance of h[l] over
units and samples is then E[phi^2] - E[phi]^2 under z ~ N(0, q[l]).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from initlab.activations import Activation, gauss_expect, get_activation


def _act(activation: str | Activation) -> Activation:
    return activation if isinstance(activation, Activation) else get_activation(activation)


def moments(activation: str | Activation, q: float) -> tuple[float, float]:
    """(E[phi(sqrt(q) z)], E[phi(sqrt(q) z)^2]) for z ~ N(0, 1); closed forms where they exist."""
    act = _act(activation)
    if not math.isfinite(q):
        return math.nan, math.nan
    q = max(q, 0.0)
    if act.name == "linear":
        return 0.0, q
    if act.name in ("relu", "leaky_relu"):
        a = act.param if act.name == "leaky_relu" and act.param is not None else 0.0
        return (1 - a) * math.sqrt(q / (2 * math.pi)), (1 + a * a) * q / 2
    if q == 0.0:
        h0 = float(act.phi(np.zeros(1))[0])
        return h0, h0 * h0
    return gauss_expect(act.phi, q), gauss_expect(lambda z: act.phi(z) ** 2, q)


def length_map(activation: str | Activation, sigma_w2: float, sigma_b2: float, q: float) -> float:
    """q' = sigma_w2 * E[phi(sqrt(q) z)^2] + sigma_b2."""
    return sigma_w2 * moments(activation, q)[1] + sigma_b2


def _per_layer(v: float | Sequence[float], depth: int) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(v, dtype=float), (depth,))
    return np.array(arr)


def trajectory(
    activation: str | Activation,
    sigma_w2: float | Sequence[float],
    sigma_b2: float | Sequence[float],
    q0: float,
    depth: int,
) -> np.ndarray:
    """q[l] for l = 1..depth (pre-activation variances); sigma_w2/sigma_b2 scalar or per layer.
    Layer 1 sees the raw input (second moment q0), the others see phi of the previous layer."""
    sw, sb = _per_layer(sigma_w2, depth), _per_layer(sigma_b2, depth)
    q = np.empty(depth)
    q[0] = sw[0] * q0 + sb[0]
    for l in range(1, depth):
        q[l] = length_map(activation, sw[l], sb[l], q[l - 1])
    return q


def act_var_profile(
    activation: str | Activation,
    sigma_w2: float | Sequence[float],
    sigma_b2: float | Sequence[float],
    q0: float,
    depth: int,
) -> np.ndarray:
    """Predicted Var(h[l]) for l = 1..depth; the last layer is the linear output (Var = q)."""
    q = trajectory(activation, sigma_w2, sigma_b2, q0, depth)
    var = np.empty(depth)
    for l in range(depth - 1):
        m1, m2 = moments(activation, q[l])
        var[l] = m2 - m1 * m1
    var[-1] = q[-1]
    return var
