"""Jacobian spectra and measured propagation for the MLPs initlab trains: the free-probability
moments of the input-output Jacobian (Pennington, Schoenholz & Ganguli 2017), its singular values
for sampled weights, Brock et al.'s signal-propagation statistics, simulated correlation
propagation, a measured depth scale, and the flags that say where measurement and mean-field
theory part ways. The maps themselves are in initlab.theory.meanfield.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from initlab.nn.activations import Activation
from initlab.theory.gauss import expect
from initlab.theory.meanfield import Array, PerLayer, _act, _per_layer, trajectory


# ------------------------------------------------------------------------------- Jacobians
def jacobian_moments(activation: str | Activation, sigma_w2: PerLayer, sigma_b2: PerLayer,
                     q0: float, depth: int, weights: str = "gaussian") -> tuple[float, float]:
    """(mean, variance) of the squared singular values of J = W[1] D[1] ... W[L-1] D[L-1] W[L]
    (the input-output Jacobian of a depth-L net whose last layer is linear), in the large-width
    limit, by free probability (Pennington, Schoenholz & Ganguli 2017): with
    mu_k[l] = E[phi'(sqrt(q[l]) z)^(2k)] (1 for the output layer),
        mean     m1 = prod_l sigma_w2[l] mu_1[l]
        variance m1^2 * sum_l (mu_2[l] / mu_1[l]^2 - 1 + s[l]),   s = 1 gaussian, 0 orthogonal
    (s is the normalized variance of W W^T's spectrum: Marchenko-Pastur with square layers).
    At criticality of the hidden layers (sigma_w2[l] mu_1[l] = 1 for l < L) the linear readout
    leaves m1 = sigma_w2[L], not 1, and the variance is m1^2 ((L - 1) (mu_2/mu_1^2 - 1) + L s):
    the paper's sigma^2 = L (mu2/mu1^2 - 1 - s1) (s = -s1) is the case of L nonlinear layers."""
    act = _act(activation)
    s = {"gaussian": 1.0, "orthogonal": 0.0}[weights]
    sw = _per_layer(sigma_w2, depth)
    q = trajectory(act, sigma_w2, sigma_b2, q0, depth)
    m1, nvar = 1.0, 0.0
    for l in range(depth):
        if l < depth - 1:
            mu1 = float(expect(lambda u: act.dphi(u) ** 2, q[l]))
            mu2 = float(expect(lambda u: act.dphi(u) ** 4, q[l]))
        else:
            mu1 = mu2 = 1.0
        m1 *= sw[l] * mu1
        nvar += mu2 / mu1**2 - 1 + s if mu1 > 0 else math.inf
    return m1, m1 * m1 * nvar


def jacobian_singular_values(Ws: Sequence[Array], bs: Sequence[Array],
                             activation: str | Activation, x: Array) -> Array:
    """Singular values of the input-output Jacobian J(x) = W[1] D[1] W[2] D[2] ... W[L] (row
    layout h @ W: dh[L] = dx @ J), D[l] = diag(phi'(z[l])), for each input row of x (B, n_in).
    Ws[l]: (fan_in, fan_out), bs[l]: (fan_out,) or (1, fan_out). Returns (B, min(n_in, n_out))."""
    act = _act(activation)
    x = np.atleast_2d(np.asarray(x, dtype=float))
    B = x.shape[0]
    J = np.broadcast_to(np.eye(x.shape[1]), (B, x.shape[1], x.shape[1])).copy()
    h = x
    for l, (W, b) in enumerate(zip(Ws, bs)):
        z = h @ W + np.reshape(b, (1, -1))
        J = J @ W  # (B, n_in, fan_out)
        if l < len(Ws) - 1:
            J = J * act.dphi(z)[:, None, :]
            h = act.phi(z)
    return np.linalg.svd(J, compute_uv=False)


# ------------------------------------------------------------------------------- measurement
def signal_propagation(hs: Sequence[Array]) -> tuple[Array, Array]:
    """Brock et al. 2021's signal-propagation statistics of activations h[l] (..., B, width):
    (average channel squared mean, average channel variance) per layer, each (..., L):
        sq_mean[l] = mean_j (mean_b h[l][b, j])^2,   var[l] = mean_j Var_b(h[l][b, j])."""
    sq = np.stack([np.mean(np.mean(h, axis=-2) ** 2, axis=-1) for h in hs], axis=-1)
    var = np.stack([np.mean(np.var(h, axis=-2), axis=-1) for h in hs], axis=-1)
    return sq, var


def simulate_correlation(activation: str | Activation, sigma_w2: Array, sigma_b2: Array,
                         c0: Array, depth: int, width: int, rng: np.random.Generator,
                         pairs: int = 8) -> Array:
    """Measured correlation c[l] (l = 0..depth) of input pairs through random Gaussian nets, one
    net per entry of the (broadcast) arrays sigma_w2, sigma_b2, c0 (shape (K,)): inputs with
    E[x^2] = 1 and correlation c0; mean over `pairs` pairs. Returns (K, depth + 1)."""
    act = _act(activation)
    sw, sb, c0 = np.broadcast_arrays(np.asarray(sigma_w2, float), np.asarray(sigma_b2, float),
                                     np.asarray(c0, float))
    K = sw.size
    u = rng.standard_normal((K, pairs, width))
    v = rng.standard_normal((K, pairs, width))
    r = np.sqrt(np.clip(1 - c0**2, 0, 1))[:, None, None]
    h = np.concatenate([u, c0[:, None, None] * u + r * v], axis=1)  # (K, 2 pairs, width)
    out = np.empty((K, depth + 1))

    def corr(z: Array) -> Array:
        a, b = z[:, :pairs], z[:, pairs:]
        return np.mean(np.sum(a * b, -1) / np.sqrt(np.sum(a * a, -1) * np.sum(b * b, -1)), -1)

    out[:, 0] = corr(h)
    x = h
    for l in range(depth):
        W = rng.standard_normal((K, width, width)) * np.sqrt(sw / width)[:, None, None]
        b = rng.standard_normal((K, 1, width)) * np.sqrt(sb)[:, None, None]
        z = x @ W + b
        out[:, l + 1] = corr(z)
        x = act.phi(z)
    return out


def measured_xi_c(c: Array, c_star: Array, eps: float = 0.05) -> Array:
    """Depth scale from measured correlations c (K, depth + 1): |c[l] - c*| ~ exp(-l / xi_c),
    so xi_c = -1 / slope of a least-squares line through log |c[l] - c*| over the layers before
    the gap first falls below eps |c[0] - c*| (below that, finite-width noise dominates).
    NaN with fewer than 2 such layers; inf when the gap does not shrink."""
    gap = np.abs(c - np.asarray(c_star, dtype=float)[:, None])
    out = np.full(c.shape[0], np.nan)
    for k in range(c.shape[0]):
        small = np.flatnonzero(gap[k] < eps * gap[k, 0])
        end = int(small[0]) if small.size else gap.shape[1]
        layers = np.arange(end)
        if end < 2 or not np.all(gap[k, :end] > 0):
            continue
        slope = np.polyfit(layers, np.log(gap[k, :end]), 1)[0]
        out[k] = -1 / slope if slope < 0 else math.inf
    return out


# ------------------------------------------------------------------------------- flags
FLAG_RATIO = 1.5  # measurement and theory "part ways" when they differ by more than this factor
NARROW = 100  # layers narrower than this are "narrow": mean field assumes width -> inf
SATURATED = 0.1  # share of saturated units above which the Gaussian picture breaks down


def theory_flags(measured: Sequence[float], predicted: Sequence[float], widths: Sequence[int],
                 saturated: Sequence[float] | None = None,
                 only: Sequence[int] | None = None) -> list[str]:
    """Short notes where the measured Var(h[l]) at init and the theory's prediction part ways
    (|log(measured / predicted)| > log 1.5 at some layer), each with a guess at the reason:
    narrow layers (finite width), saturation, or else non-Gaussian / non-centred input.
    `only`: the 0-based layers to look at (default all)."""
    flags = []
    sat = list(saturated) if saturated is not None else [0.0] * len(widths)
    keep = None if only is None else set(only)
    for l, (m, p) in enumerate(zip(measured, predicted, strict=False)):
        if keep is not None and l not in keep:
            continue
        if not (math.isfinite(m) and math.isfinite(p)) or m <= 0 or p <= 0:
            continue
        if abs(math.log(m / p)) <= math.log(FLAG_RATIO):
            continue
        if widths[l] < NARROW or (l > 0 and widths[l - 1] < NARROW):
            why = f"finite width: narrower than {NARROW}"
        elif sat[l] > SATURATED:
            why = f"saturation: {sat[l]:.0%} of units"
        else:
            why = "non-Gaussian or non-centred input"
        flags.append(f"layer {l + 1}: measured/theory = {m / p:.3g} ({why})")
    return flags
