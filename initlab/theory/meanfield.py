"""Mean-field signal propagation (Poole et al. 2016, Schoenholz et al. 2017) for the MLPs
initlab trains (Jacobian spectra: initlab.theory.jacobian).

A layer z[l] = h[l-1] @ W[l] + b[l], h[l] = phi(z[l]) with W ~ (0, sigma_w2 / fan_in) and
b ~ (0, sigma_b2) sends the pre-activation variance q and the correlation c of two inputs to

    length map       q'  = sigma_w2 * E[phi(sqrt(q) z)^2] + sigma_b2                 z ~ N(0, 1)
    correlation map  c'  = (sigma_w2 * E[phi(u1) phi(u2)] + sigma_b2) / q'
                     u1 = sqrt(q) z1,  u2 = sqrt(q) (c z1 + sqrt(1 - c^2) z2),  z1, z2 ~ N(0, 1)
    chi1             = sigma_w2 * E[phi'(sqrt(q*) z)^2]            (slope of c' at c = 1)
    chi_c            = sigma_w2 * E[phi'(u1) phi'(u2)] at (q*, c*)  (slope of c' at c*)
    dq'/dq           = sigma_w2 * E[phi'(u)^2 + phi(u) phi''(u)]   (u = sqrt(q) z)
    depth scales     xi_q = -1 / log(dq'/dq at q*),  xi_c = -1 / log(chi_c),  xi_grad = -1/log chi1

q* is the fixed point the length map reaches from q0 (default 1); c* the stable fixed point of
the correlation map (c* = 1 when chi1 < 1: ordered; c* < 1 when chi1 > 1: chaotic; chi1 = 1 is
the edge of chaos). Networks train when depth <~ 6 xi_c (Schoenholz et al. 2017).

How a scheme maps here: sigma_w2[l] = fan_in * E[W[l]^2] and sigma_b2[l] = E[b[l]^2], per layer,
so unequal widths and any scheme are covered.

Numerics. Closed forms where they exist:
    linear       E[phi^2] = q,  E[phi(u1) phi(u2)] = q c
    relu family  (leaky slope a; the arc-cosine kernel of Cho & Saul 2009, theta = arccos c)
                 E[phi(u1) phi(u2)] = a^2 q c + a (1 - a) q c
                                      + (1 - a)^2 q / (2 pi) (sqrt(1 - c^2) + (pi - theta) c)
                 E[phi'(u1) phi'(u2)] = a^2 + a (1 - a) + (1 - a)^2 (pi - theta) / (2 pi)
    erf          E[erf(u1) erf(u2)] = (2/pi) arcsin(2 q c / (1 + 2 q))      (Williams 1997)
                 E[erf'(u1) erf'(u2)] = (4/pi) / sqrt((1 + 2 q)^2 - (2 q c)^2)
Elsewhere composite Gauss-Legendre quadrature cut at the kinks (initlab.theory.gauss: `expect`,
`expect2`), checked by tests/test_theory.py against adaptive QUADPACK (1-D `gauss_expect`, nested
`quad` in 2-D) and the closed forms: relative error < 1e-9 over sigma_w2 in [0.1, 16], sigma_b2
in [0, 1] for every activation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from initlab.nn.activations import SELU_SCALE, Activation, get_activation
from initlab.theory.gauss import expect, expect2

Array = np.ndarray
PerLayer = float | Sequence[float]  # one value for every layer, or one value per layer


def _brentq(f: Any, a: float, b: float, **kw: Any) -> float:
    """scipy.optimize.brentq, imported on first use (scipy.optimize costs every command's start
    a second otherwise)."""
    from scipy import optimize

    return float(optimize.brentq(f, a, b, **kw))

def _act(activation: str | Activation) -> Activation:
    return activation if isinstance(activation, Activation) else get_activation(activation)


# ------------------------------------------------------------------------------- closed forms
_SLOPES = {"gelu": (1.0, 0.0), "silu": (1.0, 0.0), "softplus": (1.0, 0.0), "elu": (1.0, 0.0),
           "selu": (SELU_SCALE, 0.0), "relu": (1.0, 0.0), "linear": (1.0, 1.0)}


def _leaky_slope(act: Activation) -> float | None:
    """a for phi = a z + (1 - a) relu(z) (linear: 1, relu: 0, leaky_relu: slope), else None."""
    if act.name == "linear":
        return 1.0
    if act.name == "relu":
        return 0.0
    if act.name == "leaky_relu":
        return act.param if act.param is not None else 0.01
    return None


def _asymptote(act: Activation) -> tuple[float, float] | None:
    """(scale k, slope a): phi(x) / (k x) -> the leaky form with slope a as |x| -> inf, for the
    activations whose q can grow without bound; None for bounded ones."""
    a = _leaky_slope(act)
    if a is not None:
        return 1.0, a
    if act.name in _SLOPES:
        k, neg = _SLOPES[act.name]
        return k, neg / k
    return None


def _slopes_at_zero(act: Activation) -> tuple[float, float]:
    """(phi'(0+), phi'(0-)): the one-sided slopes at 0 (equal where phi is smooth there)."""
    t = np.finfo(float).tiny
    d = act.dphi(np.array([t, -t]))
    return float(d[0]), float(d[1])


def _kink_slope(act: Activation) -> float | None:
    """a with phi ~ k (a u + (1 - a) relu(u)) near 0 (k = phi'(0+)), for phi(0) = 0: the
    leaky slope a = phi'(0-) / phi'(0+) (mirrored, phi(u) -> phi(-u), where phi'(0+) = 0, which
    leaves the kernels unchanged); None when phi is flat on both sides."""
    dp, dm = _slopes_at_zero(act)
    if dp == 0.0 and dm == 0.0:
        return None
    return dm / dp if abs(dp) >= abs(dm) else dp / dm


def _arccos_kernel(a: float, c: float) -> float:
    """E[phi(z1) phi(z2)] / q for phi = a z + (1 - a) relu(z), corr(z1, z2) = c, Var = 1."""
    c = min(max(c, -1.0), 1.0)
    theta = math.acos(c)
    relu = (math.sqrt(1 - c * c) + (math.pi - theta) * c) / (2 * math.pi)
    return a * a * c + a * (1 - a) * c + (1 - a) ** 2 * relu


def _arccos_kernel0(a: float, c: float) -> float:
    """E[phi'(z1) phi'(z2)] for the same phi (the step-function kernel)."""
    c = min(max(c, -1.0), 1.0)
    return a * a + a * (1 - a) + (1 - a) ** 2 * (math.pi - math.acos(c)) / (2 * math.pi)


def moments(activation: str | Activation, q: float) -> tuple[float, float]:
    """(E[phi(sqrt(q) z)], E[phi(sqrt(q) z)^2]) for z ~ N(0, 1); closed forms for linear, the
    relu family (E[phi] = (1 - a) sqrt(q / 2 pi), E[phi^2] = (1 + a^2) q / 2) and erf
    (E[phi] = 0, E[phi^2] = (2/pi) arcsin(2q / (1 + 2q)))."""
    act = _act(activation)
    if not math.isfinite(q):
        return math.nan, math.nan
    q = max(q, 0.0)
    a = _leaky_slope(act)
    if a is not None:
        return (1 - a) * math.sqrt(q / (2 * math.pi)), (1 + a * a) * q / 2
    if act.name == "erf":
        return 0.0, 2 / math.pi * math.asin(2 * q / (1 + 2 * q))
    if q == 0.0:
        h0 = float(act.phi(np.zeros(1))[0])
        return h0, h0 * h0
    m1 = float(expect(act.phi, q))
    m2 = float(expect(lambda u: act.phi(u) ** 2, q))
    return m1, m2


def _dphi2(act: Activation, q: float) -> float:
    """E[phi'(sqrt(q) z)^2]."""
    a = _leaky_slope(act)
    if a is not None:
        return 1.0 if act.name == "linear" else (1 + a * a) / 2
    if act.name == "erf":
        return 4 / math.pi / math.sqrt(1 + 4 * q)
    return float(expect(lambda u: act.dphi(u) ** 2, q))


def _kernel(act: Activation, q: float, c: float, derivative: bool = False) -> float:
    """E[phi(u1) phi(u2)] (or E[phi'(u1) phi'(u2)] with `derivative`) at variance q, corr c;
    q = inf uses the activation's linear asymptote (the normalized map only needs the ratio)."""
    if math.isinf(q):
        k, slope = _asymptote(act) or (math.nan, math.nan)
        return k * k * (_arccos_kernel0(slope, c) if derivative else _arccos_kernel(slope, c))
    a = _leaky_slope(act)
    if a is not None:
        return _arccos_kernel0(a, c) if derivative else q * _arccos_kernel(a, c)
    if act.name == "erf":
        if derivative:
            return 4 / math.pi / math.sqrt((1 + 2 * q) ** 2 - (2 * q * c) ** 2)
        return 2 / math.pi * math.asin(2 * q * c / (1 + 2 * q))
    f = act.dphi if derivative else act.phi
    return expect2(f, f, q, c)


# ------------------------------------------------------------------------------- maps
def second_moment(activation: str | Activation, q: float) -> float:
    """E[phi(sqrt(q) z)^2], z ~ N(0, 1) (closed forms as in `moments`)."""
    act = _act(activation)
    if _leaky_slope(act) is not None or act.name == "erf" or not q > 0:
        return moments(act, q)[1]
    return float(expect(lambda u: act.phi(u) ** 2, q))


def length_map(activation: str | Activation, sigma_w2: float, sigma_b2: float, q: float) -> float:
    """q' = sigma_w2 * E[phi(sqrt(q) z)^2] + sigma_b2."""
    return sigma_w2 * second_moment(activation, q) + sigma_b2


def _length_slope(act: Activation, sigma_w2: float, q: float) -> float:
    """dq'/dq = sigma_w2 * E[phi'(u)^2 + phi(u) phi''(u)] = sigma_w2 * E[phi(u) phi'(u) z] /
    sqrt(q) (Stein's lemma), u = sqrt(q) z; closed forms for relu family, linear, erf:
    erf: 4 sigma_w2 / (pi (1 + 2q) sqrt(1 + 4q))."""
    a = _leaky_slope(act)
    if a is not None:
        return sigma_w2 * (1 + a * a) / 2
    if math.isinf(q):
        k, a = _asymptote(act) or (0.0, 0.0)
        return sigma_w2 * k * k * (1 + a * a) / 2
    if act.name == "erf":
        return 4 * sigma_w2 / (math.pi * (1 + 2 * q) * math.sqrt(1 + 4 * q))
    if q <= 0.0:  # the limit q -> 0+: half the mass on each side of a kink at 0
        h = 1e-4  # phi''(0+) and phi''(0-) by one-sided differences of phi'
        dp, dm = _slopes_at_zero(act)
        ddp = (act.dphi(np.array([h]))[0] - dp) / h
        ddm = (dm - act.dphi(np.array([-h]))[0]) / h
        phi0 = float(act.phi(np.zeros(1))[0])
        return float(sigma_w2 * ((dp * dp + dm * dm) / 2 + phi0 * (ddp + ddm) / 2))
    # E[phi(u) phi'(u) z] / sqrt(q) = E[phi(u) phi'(u) u] / q
    return float(sigma_w2 * expect(lambda u: act.phi(u) * act.dphi(u) * u, q)) / q


def fixed_point(activation: str | Activation, sigma_w2: float, sigma_b2: float,
                q0: float = 1.0) -> float:
    """q*: the fixed point of the length map reached by iterating it from q0 (math.inf when q
    grows without bound). Closed form for linear / relu family (k = (1 + a^2) / 2, linear 1):
        q* = sigma_b2 / (1 - k sigma_w2)  if k sigma_w2 < 1;  q0 if k sigma_w2 = 1 and
        sigma_b2 = 0 (every q is fixed);  inf otherwise.
    Elsewhere: iteration, then a root of q' - q bracketed around the last iterate (brentq)."""
    act = _act(activation)
    a = _leaky_slope(act)
    if a is not None:
        k = 1.0 if act.name == "linear" else (1 + a * a) / 2
        slope = k * sigma_w2
        if abs(slope - 1) < 1e-12 and sigma_b2 == 0:
            return q0
        return sigma_b2 / (1 - slope) if slope < 1 else math.inf
    q, prev = q0, q0
    for _ in range(60):  # iterate: the stable fixed point reached from q0 ...
        new = length_map(act, sigma_w2, sigma_b2, q)
        if new > 1e12:
            return math.inf
        if abs(new - q) <= 1e-14 * max(q, 1e-300):
            return new
        prev, q = q, new
    # ... then bracket the root of q' - q beyond the last iterate (the iterates move towards
    # it monotonically) and polish it with brentq
    g = lambda x: length_map(act, sigma_w2, sigma_b2, x) - x  # noqa: E731
    step = max(abs(q - prev), 1e-14 * q)
    direction = 1.0 if q >= prev else -1.0
    lo, glo = q, g(q)
    for _ in range(200):
        hi = max(lo + direction * step, 0.0)
        if hi > 1e12:
            return math.inf
        ghi = g(hi)
        if ghi * glo <= 0:
            return float(_brentq(g, min(lo, hi), max(lo, hi), xtol=1e-300,
                                         rtol=1e-14))
        if hi == 0.0:
            return 0.0
        lo, glo = hi, ghi
        step *= 2
    return q


def chi1(activation: str | Activation, sigma_w2: float, sigma_b2: float,
         q_star: float | None = None) -> float:
    """chi1 = sigma_w2 * E[phi'(sqrt(q*) z)^2]: the mean squared singular value of one layer's
    Jacobian D W at the fixed point; < 1 ordered, > 1 chaotic, = 1 critical. Closed forms: relu
    family sigma_w2 (1 + a^2) / 2, linear sigma_w2, erf 4 sigma_w2 / (pi sqrt(1 + 4 q*))."""
    act = _act(activation)
    q = fixed_point(act, sigma_w2, sigma_b2) if q_star is None else q_star
    if math.isinf(q):
        k, a = _asymptote(act) or (math.nan, math.nan)
        return sigma_w2 * k * k * (1 + a * a) / 2
    # q* = 0: the limit q -> 0+, sigma_w2 (phi'(0+)² + phi'(0-)²) / 2 (gauss.expect at q = 0)
    return sigma_w2 * _dphi2(act, q)


def correlation_map(activation: str | Activation, sigma_w2: float, sigma_b2: float, c: float,
                    q: float | None = None) -> float:
    """c' = (sigma_w2 * E[phi(u1) phi(u2)] + sigma_b2) / (sigma_w2 * E[phi(u1)^2] + sigma_b2)
    at variance q (default q*; at q* the denominator is q*). For q = 0 or inf the ratio's limit
    is used (linear asymptote of phi; for relu-like phi the arc-cosine kernel)."""
    act = _act(activation)
    if q is None:
        q = fixed_point(act, sigma_w2, sigma_b2)
    if q == 0.0:
        if _leaky_slope(act) is not None:
            q = 1.0  # positively homogeneous: the ratio does not depend on q
        else:
            # phi ~ phi'(0-) u + (phi'(0+) - phi'(0-)) relu(u) near 0 when phi(0) = 0: a
            # scaled leaky form, whose normalized kernel does not depend on q
            h0 = float(act.phi(np.zeros(1))[0])
            slope = _kink_slope(act)
            if h0 == 0.0 and sigma_b2 == 0.0 and slope is not None:
                return _arccos_kernel(slope, c) / ((1 + slope * slope) / 2)
            return 1.0
    if math.isinf(q):
        return _kernel(act, q, c) / _kernel(act, q, 1.0)
    num = sigma_w2 * _kernel(act, q, c) + sigma_b2
    den = sigma_w2 * second_moment(act, q) + sigma_b2
    return num / den


def chi_c(activation: str | Activation, sigma_w2: float, sigma_b2: float, c: float,
          q: float | None = None) -> float:
    """dc'/dc = sigma_w2 * E[phi'(u1) phi'(u2)] / q' at (q, c): equals chi1 at c = 1."""
    act = _act(activation)
    if q is None:
        q = fixed_point(act, sigma_w2, sigma_b2)
    if math.isinf(q):
        return _normalized_slope(act, c)
    if q == 0.0:
        return chi1(act, sigma_w2, sigma_b2, 0.0)
    den = sigma_w2 * second_moment(act, q) + sigma_b2
    return sigma_w2 * _kernel(act, q, c, True) * q / den


def _normalized_slope(act: Activation, c: float) -> float:
    """d/dc of K(c) / K(1) for the linear asymptote of phi (q = inf)."""
    _, a = _asymptote(act) or (1.0, 1.0)
    return _arccos_kernel0(a, c) / ((1 + a * a) / 2)


def c_star(activation: str | Activation, sigma_w2: float, sigma_b2: float,
           q: float | None = None) -> float:
    """The stable fixed point of the correlation map: 1 when chi1 <= 1 (ordered/critical),
    otherwise the root of c' - c in [0, 1) (Newton on the slope chi_c, bracketed)."""
    act = _act(activation)
    if q is None:
        q = fixed_point(act, sigma_w2, sigma_b2)
    if math.isinf(q) or chi1(act, sigma_w2, sigma_b2, q) <= 1.0:
        return 1.0
    g = lambda c: correlation_map(act, sigma_w2, sigma_b2, c, q) - c  # noqa: E731
    g0 = g(0.0)
    if g0 <= 1e-15:
        return 0.0
    hi = 1.0 - 1e-3
    while g(hi) > 0 and hi < 1 - 1e-12:
        hi = 1 - (1 - hi) / 10
    if g(hi) > 0:
        return 1.0
    return float(_brentq(g, 0.0, hi, xtol=1e-13, rtol=1e-12))


def depth_scales(activation: str | Activation, sigma_w2: float,
                 sigma_b2: float) -> tuple[float, float]:
    """(xi_q, xi_c): xi_q = -1 / log(dq'/dq at q*), xi_c = -1 / log(chi_c at c*); inf where the
    slope is >= 1 (critical)."""
    p = analyze(activation, sigma_w2, sigma_b2)
    return p.xi_q, p.xi_c


def _xi(slope: float) -> float:
    if not math.isfinite(slope) or slope <= 0:
        return 0.0 if slope == 0 else math.nan
    return math.inf if slope >= 1.0 else -1.0 / math.log(slope)


CRITICAL_TOL = 0.01  # |chi1 - 1| below this: "critical" (xi_c > ~100 layers)


@dataclass(frozen=True)
class Propagation:
    """Everything the mean-field theory says about one (activation, sigma_w2, sigma_b2)."""

    activation: str
    sigma_w2: float
    sigma_b2: float
    q_star: float
    chi1: float
    c_star: float
    chi_c: float
    xi_q: float
    xi_c: float
    xi_grad: float  # 1 / |log chi1|: depth over which gradients vanish (ordered) or explode
    phase: str  # ordered | critical | chaotic
    trainable_depth: float  # 6 xi_c

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def analyze(activation: str | Activation, sigma_w2: float, sigma_b2: float) -> Propagation:
    """q*, chi1, c*, chi_c, xi_q, xi_c, the phase and the trainable depth 6 xi_c."""
    act = _act(activation)
    q = fixed_point(act, sigma_w2, sigma_b2)
    x1 = chi1(act, sigma_w2, sigma_b2, q)
    cs = c_star(act, sigma_w2, sigma_b2, q)
    xc = x1 if cs >= 1.0 and math.isfinite(q) else chi_c(act, sigma_w2, sigma_b2, cs, q)
    xq = math.inf if math.isinf(q) else _xi(_length_slope(act, sigma_w2, q))
    xi_c = _xi(xc)
    phase = ("critical" if abs(x1 - 1) < CRITICAL_TOL else "ordered" if x1 < 1 else "chaotic")
    xi_g = math.inf if x1 == 1 else (1 / abs(math.log(x1)) if x1 > 0 else 0.0)
    return Propagation(act.name, float(sigma_w2), float(sigma_b2), q, x1, cs, xc, xq, xi_c,
                       xi_g, phase, 6 * xi_c)


def critical_sigma_w2(activation: str | Activation, sigma_b2: float,
                      bracket: tuple[float, float] = (1e-3, 1e3)) -> float:
    """The sigma_w2 where chi1 = 1 at the given sigma_b2 (brentq; chi1 grows with sigma_w2).
    Closed forms: relu family 2 / (1 + a^2), linear 1; NaN when there is none in `bracket`."""
    act = _act(activation)
    a = _leaky_slope(act)
    if a is not None:
        return 1.0 if act.name == "linear" else 2 / (1 + a * a)
    f = lambda sw: math.log(chi1(act, sw, sigma_b2))  # noqa: E731
    lo, hi = bracket
    flo, fhi = f(lo), f(hi)
    if not (flo < 0 < fhi):
        return math.nan
    return float(_brentq(f, lo, hi, xtol=1e-12, rtol=1e-12))


# ------------------------------------------------------------------------------- trajectories
def _per_layer(v: PerLayer, depth: int) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(v, dtype=float), (depth,))
    return np.array(arr)


def trajectory(activation: str | Activation, sigma_w2: PerLayer, sigma_b2: PerLayer, q0: float,
               depth: int) -> np.ndarray:
    """q[l] for l = 1..depth (pre-activation variances); sigma_w2/sigma_b2 scalar or per layer:
        q[1] = sigma_w2[1] q0 + sigma_b2[1]       (q0 = E[x^2] of the input features)
        q[l] = sigma_w2[l] E[phi(sqrt(q[l-1]) z)^2] + sigma_b2[l]"""
    sw, sb = _per_layer(sigma_w2, depth), _per_layer(sigma_b2, depth)
    q = np.empty(depth)
    q[0] = sw[0] * q0 + sb[0]
    for l in range(1, depth):
        q[l] = length_map(activation, sw[l], sb[l], q[l - 1])
    return q


def act_var_profile(activation: str | Activation, sigma_w2: PerLayer, sigma_b2: PerLayer,
                    q0: float, depth: int) -> np.ndarray:
    """Predicted Var(h[l]) = E[phi^2] - E[phi]^2 under z ~ N(0, q[l]) for l = 1..depth; the last
    layer is the linear output (Var = q)."""
    q = trajectory(activation, sigma_w2, sigma_b2, q0, depth)
    var = np.empty(depth)
    for l in range(depth - 1):
        m1, m2 = moments(activation, q[l])
        var[l] = m2 - m1 * m1
    var[-1] = q[-1]
    return var


