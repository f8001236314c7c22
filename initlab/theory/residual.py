"""Mean-field theory of the residual stream (zero-mean weights, large width n).

q is the per-unit second moment. Symbols as nn.residual: L blocks, m = branch layers per block,
sigma_w2[l, j] = n E[Wb[l, j]^2], sigma_b2[l, j] = E[bb[l, j]^2], alpha_l, phi.

    input     q_0 = sigma_in2 E[x^2] + sigma_b_in2
    branch    B(q): q^(0) = q,  q^(j+1) = sigma_w2[l, j] E[phi(sqrt(q^(j)) z)^2] + sigma_b2[l, j]
              (phi before every branch layer: f = W_m phi(... W_1 phi(u))), B(q) = q^(m)
    no norm   q_l = q_{l-1} + alpha_l^2 B(q_{l-1})     (ReLU, He, m = 1: q_l = 2 q_{l-1})
    pre-norm  q_l = q_{l-1} + alpha_l^2 B(u(q_{l-1}))  u(q) = q / (q + eps): the norm's output
              (layernorm, rmsnorm, batchnorm at init: gain 1, shift 0): linear growth
    post-norm q_l = u(q_{l-1} + alpha_l^2 B(q_{l-1}))  (= 1 up to eps)
    readout   q_out = sigma_out2 q_r + sigma_b_out2,  q_r = u(q_L) after a pre-norm net's final
              norm, q_L otherwise

(Zhang et al. 2019; De & Smith 2020; Brock et al. 2021; see docs.) With ReLU, m = 1 and no
norm, alpha = 1/sqrt(L) and He weights give q_L = (1 + 1/L)^L q_0 -> e q_0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from initlab.nn.activations import Activation
from initlab.theory.meanfield import second_moment

Array = np.ndarray
EPS = 1e-5  # nn.norms.EPS


def branch_map(activation: str | Activation, sigma_w2: Sequence[float], sigma_b2: Sequence[float],
               q: float) -> float:
    """B(q): the second moment of the branch output for an input of second moment q."""
    for sw, sb in zip(sigma_w2, sigma_b2, strict=True):
        q = sw * second_moment(activation, q) + sb if math.isfinite(q) else q
    return float(q)


def _u(q: float, eps: float) -> float:
    return q / (q + eps) if q > 0 else 0.0


def stream_profile(activation: str | Activation, q0: float, sigma_w2: Array, sigma_b2: Array,
                   alpha2: Sequence[float] | Array, *, norm: str | None = None,
                   position: str = "pre",
                   sigma_out2: float = 1.0, sigma_b_out2: float = 0.0,
                   eps: float = EPS) -> Array:
    """Predicted second moment of every entry (E = L + 2): q_0, q_1..q_L, q_out, for the stream
    starting at q0 = E[x_0^2]; sigma_w2, sigma_b2 (L, m); alpha2 (L,) (see the module docstring).
    Non-finite values propagate (an exploding prediction is a result)."""
    sw, sb = np.atleast_2d(np.asarray(sigma_w2, float)), np.atleast_2d(np.asarray(sigma_b2, float))
    L = sw.shape[0]
    out = np.empty(L + 2)
    out[0] = q = float(q0)
    with np.errstate(all="ignore"):
        for l in range(L):
            a2 = float(alpha2[l])
            if norm is None:
                q = q + a2 * branch_map(activation, sw[l], sb[l], q) if a2 else q
            elif position == "pre":
                q = q + (a2 * branch_map(activation, sw[l], sb[l], _u(q, eps)) if a2 else 0.0)
            else:
                q = _u(q + (a2 * branch_map(activation, sw[l], sb[l], q) if a2 else 0.0), eps)
            out[l + 1] = q
        q_r = _u(q, eps) if norm is not None and position == "pre" else q
        out[L + 1] = sigma_out2 * q_r + sigma_b_out2
    return out


def growth_per_block(profile: Array) -> float:
    """(q_k / q_0)^(1/k): the stream's mean growth factor per block, k = L or, when the
    prediction overflows, the last block where it is still finite."""
    q = np.asarray(profile, float)[:-1]  # q_0..q_L
    ok = np.flatnonzero(np.isfinite(q) & (q > 0))
    if len(q) < 2 or not (len(ok) and ok[0] == 0) or ok[-1] == 0:
        return math.nan
    k = int(ok[-1])
    return float((q[k] / q[0]) ** (1.0 / k))
