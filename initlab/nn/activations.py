"""Activations with their derivatives and gains: h = phi(z), dh/dz = dphi(z) (elementwise).

Every phi/dphi is written in a stable form: no RuntimeWarning for huge or infinite z where the
value is mathematically defined (NaN in gives NaN out). Input dtype is kept (float32 stays float32).

Two gains are offered (the weight std is gain / sqrt(fan), as in torch.nn.init):
  - method="torch": torch.nn.init.calculate_gain, a table (tanh 5/3, relu sqrt(2), selu 3/4, ...).
  - method="exact": the g with g^2 * E[phi(z)^2] = 1 for z ~ N(0, 1), so that a layer with
    Var(W) = g^2 / fan_in keeps E[h^2] equal to the variance of its unit-Gaussian pre-activations.
    Closed forms for linear/relu/leaky_relu, Gaussian quadrature (`gauss_expect`) otherwise.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from initlab.errors import BadParameterError, suggest
from initlab.registry import Registry

Array = np.ndarray
Fn = Callable[[Array], Array]

SQRT_2PI = math.sqrt(2.0 * math.pi)
# SELU constants (Klambauer et al. 2017): (mean 0, var 1) is the fixed point of its map
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
# beyond |z| > 40 the Gaussian density exp(-z^2/2) underflows to 0 in float64 (e^-800)
_GAUSS_CLIP = 40.0
# beyond |z| > 800, exp(-|z|) underflows to 0 in float64
_EXP_CLIP = 800.0


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity h = phi(z) with its derivative and its torch gain."""

    name: str
    phi: Fn  # z -> h
    dphi: Fn  # z -> dh/dz
    torch_gain: float | None  # torch.nn.init.calculate_gain; None where torch has none
    bounds: tuple[float, float] | None = None  # range of h for saturating ones
    family: str = ""  # "relu" (dead units), "saturating" or ""
    param: float | None = None
    param_name: str | None = None  # "slope" (leaky_relu), "alpha" (elu)
    description: str = ""
    formula: str = ""

    def __call__(self, z: Array) -> Array:
        return self.phi(z)


def _f(z: Array) -> Array:
    """z as a floating array (float32 stays float32; ints become float64)."""
    z = np.asarray(z)
    return z if np.issubdtype(z.dtype, np.floating) else z.astype(np.float64)


# ---------------------------------------------------------------------------------------------
# elementwise functions (all stable for huge |z|)


def _linear(z: Array) -> Array:
    return _f(z).copy()


def _ones(z: Array) -> Array:
    return np.ones_like(_f(z))


def _relu(z: Array) -> Array:
    """max(z, 0)."""
    z = _f(z)
    return np.maximum(z, 0).astype(z.dtype, copy=False)


def _drelu(z: Array) -> Array:
    """1 for z > 0 else 0."""
    z = _f(z)
    return (z > 0).astype(z.dtype)


def _leaky(slope: float) -> tuple[Fn, Fn]:
    def phi(z: Array) -> Array:
        """z for z > 0, slope * z otherwise."""
        z = _f(z)
        return np.where(z > 0, z, slope * z).astype(z.dtype, copy=False)

    def dphi(z: Array) -> Array:
        z = _f(z)
        return np.where(z > 0, 1.0, slope).astype(z.dtype, copy=False)

    return phi, dphi


def _elu(alpha: float, scale: float = 1.0) -> tuple[Fn, Fn]:
    def phi(z: Array) -> Array:
        """scale * (z for z > 0, alpha * (exp(z) - 1) otherwise)."""
        z = _f(z)
        neg = alpha * np.expm1(np.minimum(z, 0))  # min: no overflow in the unused branch
        with np.errstate(over="ignore"):  # selu(z > max / 1.05) is inf, as it should be
            return (scale * np.where(z > 0, z, neg)).astype(z.dtype, copy=False)

    def dphi(z: Array) -> Array:
        """scale * (1 for z > 0, alpha * exp(z) otherwise)."""
        z = _f(z)
        neg = alpha * np.exp(np.minimum(z, 0))
        return (scale * np.where(z > 0, 1.0, neg)).astype(z.dtype, copy=False)

    return phi, dphi


def _sigmoid(z: Array) -> Array:
    """1 / (1 + exp(-z)), via e = exp(-|z|) so that nothing overflows."""
    z = _f(z)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def _dsigmoid(z: Array) -> Array:
    """sigmoid(z) * sigmoid(-z) = e / (1 + e)^2 with e = exp(-|z|)."""
    z = _f(z)
    e = np.exp(-np.abs(z))
    return e / (1 + e) ** 2


def _tanh(z: Array) -> Array:
    return np.tanh(_f(z))


def _dtanh(z: Array) -> Array:
    """1 - tanh(z)^2 = 4 e / (1 + e)^2 with e = exp(-2|z|) (accurate in the tails too)."""
    e = np.exp(-2 * np.minimum(np.abs(_f(z)), _EXP_CLIP / 2))  # min: no overflow in -2 |z|
    return 4 * e / (1 + e) ** 2


def _softplus(z: Array) -> Array:
    """log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|))."""
    z = _f(z)
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def _silu(z: Array) -> Array:
    """z * sigmoid(z)."""
    z = _f(z)
    zc = np.maximum(z, -_EXP_CLIP)  # -inf * 0 -> NaN otherwise; silu(z < -800) is 0 in float64
    return zc * _sigmoid(zc)


def _dsilu(z: Array) -> Array:
    """sigmoid(z) * (1 + z * sigmoid(-z))."""
    zc = np.clip(_f(z), -_EXP_CLIP, _EXP_CLIP)
    return _sigmoid(zc) * (1 + zc * _sigmoid(-zc))


def _Phi(z: Array) -> Array:
    """Standard normal CDF, 0.5 * erfc(-z / sqrt(2)): accurate in both tails."""
    from scipy import special  # scipy on first use: a second off every command's start

    return 0.5 * special.erfc(-z / math.sqrt(2.0))


def _gelu(z: Array) -> Array:
    """z * Phi(z) (exact, erf-based)."""
    zc = np.maximum(_f(z), -_GAUSS_CLIP)  # gelu(z < -40) underflows to 0 anyway
    return zc * _Phi(zc)


def _dgelu(z: Array) -> Array:
    """Phi(z) + z * exp(-z^2 / 2) / sqrt(2 pi)."""
    zc = np.clip(_f(z), -_GAUSS_CLIP, _GAUSS_CLIP)
    return _Phi(zc) + zc * np.exp(-0.5 * zc * zc) / SQRT_2PI


def _softsign(z: Array) -> Array:
    """z / (1 + |z|)."""
    z = _f(z)
    big = np.finfo(z.dtype).max
    zc = np.clip(z, -big, big)  # inf / inf -> NaN otherwise; max / (1 + max) == 1
    return zc / (1 + np.abs(zc))


def _dsoftsign(z: Array) -> Array:
    """1 / (1 + |z|)^2 (squared after the division: no overflow)."""
    return (1 / (1 + np.abs(_f(z)))) ** 2


def _erf(z: Array) -> Array:
    from scipy import special

    return special.erf(_f(z))


def _derf(z: Array) -> Array:
    """2 / sqrt(pi) * exp(-z^2)."""
    zc = np.clip(_f(z), -_GAUSS_CLIP, _GAUSS_CLIP)
    return 2 / math.sqrt(math.pi) * np.exp(-zc * zc)


# ---------------------------------------------------------------------------------------------
# construction and registry


def _leaky_gain(slope: float) -> float:
    """sqrt(2 / (1 + slope^2)) (He et al. 2015; torch.nn.init.calculate_gain('leaky_relu'))."""
    return math.sqrt(2.0 / (1.0 + slope * slope))


def _make_leaky(slope: float) -> Activation:
    phi, dphi = _leaky(slope)
    return Activation("leaky_relu", phi, dphi, _leaky_gain(slope), None, "relu", slope, "slope",
                      "ReLU with a small slope for z < 0 (torch default 0.01)",
                      "h = z if z > 0 else slope * z")


def _make_elu(alpha: float) -> Activation:
    phi, dphi = _elu(alpha)
    return Activation("elu", phi, dphi, None, None, "", alpha, "alpha",
                      "exponential linear unit (Clevert et al. 2015)",
                      "h = z if z > 0 else alpha * (exp(z) - 1)")


def _make_selu() -> Activation:
    phi, dphi = _elu(SELU_ALPHA, SELU_SCALE)
    return Activation("selu", phi, dphi, 0.75, None, "", None, None,
                      "self-normalizing ELU (Klambauer et al. 2017)",
                      "h = 1.0507 * (z if z > 0 else 1.6733 * (exp(z) - 1))")


# name -> (default parameter, valid(param) -> error message or "", factory)
_PARAMS: dict[str, tuple[float, Callable[[float], str], Callable[[float], Activation]]] = {
    "leaky_relu": (0.01, lambda a: "" if 0 <= a <= 1 else "must be in [0, 1]", _make_leaky),
    "elu": (1.0, lambda a: "" if a > 0 else "must be > 0", _make_elu),
}

ACTIVATIONS: Registry[Activation] = Registry("activation")


def _register(act: Activation, *aliases: str) -> None:
    ACTIVATIONS.register(act.name, act, aliases=aliases, description=act.description,
                         formula=act.formula)


_register(Activation("linear", _linear, _ones, 1.0, None, "", None, None,
                     "no nonlinearity (the primer's linear chain)", "h = z"), "identity")
_register(Activation("relu", _relu, _drelu, math.sqrt(2.0), None, "relu", None, None,
                     "rectified linear unit", "h = max(z, 0)"))
_register(_make_leaky(0.01))
_register(_make_elu(1.0))
_register(_make_selu())
_register(Activation("gelu", _gelu, _dgelu, None, None, "", None, None,
                     "Gaussian error linear unit, exact (erf) form",
                     "h = z * Phi(z),  Phi(z) = (1 + erf(z / sqrt(2))) / 2"))
_register(Activation("silu", _silu, _dsilu, None, None, "", None, None,
                     "sigmoid-weighted linear unit", "h = z * sigmoid(z)"), "swish")
_register(Activation("softplus", _softplus, _sigmoid, None, None, "", None, None,
                     "smooth ReLU", "h = log(1 + exp(z))"))
_register(Activation("tanh", _tanh, _dtanh, 5.0 / 3.0, (-1.0, 1.0), "saturating", None, None,
                     "hyperbolic tangent (the primer's MNIST net)", "h = tanh(z)"))
_register(Activation("sigmoid", _sigmoid, _dsigmoid, 1.0, (0.0, 1.0), "saturating", None, None,
                     "logistic sigmoid (not zero-centred)", "h = 1 / (1 + exp(-z))"))
_register(Activation("softsign", _softsign, _dsoftsign, None, (-1.0, 1.0), "saturating", None,
                     None, "Glorot & Bengio 2010's softsign", "h = z / (1 + |z|)"))
_register(Activation("erf", _erf, _derf, None, (-1.0, 1.0), "saturating", None, None,
                     "error function (closed-form mean-field theory)", "h = erf(z)"))


@lru_cache(maxsize=256)
def _cached(name: str, param: float | None) -> Activation:
    if param is None:
        return ACTIVATIONS.get(name)
    return _PARAMS[name][2](param)


def get_activation(name: str, param: float | None = None) -> Activation:
    """The activation called `name` (case-insensitive, aliases allowed), with its parameter.

    `param` is leaky_relu's slope (default 0.01, must be in [0, 1]) or elu's alpha (default 1,
    must be > 0). UnknownNameError for an unknown name, BadParameterError for a parameter the
    activation does not take or cannot take. Equal arguments give the same (cached) object.
    """
    canonical = ACTIVATIONS.canonical(name)
    owner = f"activation '{canonical}'"
    if param is None:
        return _cached(canonical, None)
    if canonical not in _PARAMS:
        raise BadParameterError(owner, "param", f"takes no parameter (got {param!r})")
    default, check, _ = _PARAMS[canonical]
    pname = ACTIVATIONS.get(canonical).param_name or "param"
    if isinstance(param, bool) or not isinstance(param, int | float | np.floating | np.integer):
        raise BadParameterError(owner, pname, f"{pname} must be a number, got {param!r}")
    value = float(param)
    if not math.isfinite(value):
        raise BadParameterError(owner, pname, f"{pname} must be finite, got {value!r}")
    problem = check(value)
    if problem:
        raise BadParameterError(owner, pname, f"{pname} {problem}, got {value!r}")
    return _cached(canonical, None if value == default else value)


# ---------------------------------------------------------------------------------------------
# Gaussian expectations and gains


def gauss_expect(
    f: Callable[[Array], Array], q: float = 1.0, *, epsabs: float = 1e-13, epsrel: float = 1e-11
) -> float:
    """E[f(sqrt(q) z)] for z ~ N(0, 1): the integral of f(sqrt(q) z) exp(-z^2/2) / sqrt(2 pi).

    `f` is vectorized (it is called on 1-element float64 arrays). The integral is taken in z (not
    in x = sqrt(q) z, so the density's scale does not depend on q) by adaptive Gauss-Kronrod
    quadrature (scipy.integrate.quad, QUADPACK) over [-40, 40], which holds all of N(0, 1) that
    float64 can represent (the density underflows beyond |z| = 38.6, and f is never called out
    there). The range is cut at 0, so that a kink at 0 (relu, leaky_relu, elu) is an endpoint,
    and at +-1 and +-1/sqrt(q), where f(sqrt(q) z) bends for large q (tanh(100 z) at q = 1e4).

    Accuracy: each piece asks for |error| <= max(epsabs, epsrel * |value|). For the activations
    here and q in [1e-6, 1e4] the result agrees with closed forms (z^2, relu, leaky_relu, erf's
    arcsin form, exp) to 1e-10 relative and with a dense Simpson rule to 1e-8 (the Simpson
    rule's own accuracy); see tests/test_activations.py. For very small expectations (q -> 0
    with f(0) = 0) pass a smaller epsabs if a relative accuracy better than epsabs / value is
    needed. A function growing faster than exp(z^2 / 2) has no expectation and gets a
    meaningless number.
    """
    if not (math.isfinite(q) and q >= 0):
        raise ValueError(f"q must be finite and >= 0, got {q!r}")
    s = math.sqrt(q)

    def integrand(z: float) -> float:
        w = math.exp(-0.5 * z * z) / SQRT_2PI
        if w == 0.0:  # |z| > 38.6: the density underflows; do not evaluate f out there
            return 0.0
        return float(np.asarray(f(np.array([s * z])), dtype=np.float64).reshape(-1)[0]) * w

    # [-40, 40] holds all of N(0, 1) that float64 can represent (the density is < 1e-320
    # beyond 38.6); within each half, also split at 1/sqrt(q) where f(sqrt(q) z) bends when q
    # is large (tanh(100 z) at q = 1e4).
    cuts = sorted({0.0, min(1.0, 1.0 / s) if s > 0 else 1.0, 1.0, _GAUSS_CLIP})
    from scipy import integrate

    total = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        for sign in (-1.0, 1.0):
            for a, b in itertools.pairwise(cuts):
                value, _ = integrate.quad(lambda t, g=sign: integrand(g * t), a, b,
                                          epsabs=epsabs, epsrel=epsrel, limit=200)
                total += value
    return total


def _second_moment_gain(act: Activation) -> float:
    """1 / sqrt(E[phi(z)^2]), z ~ N(0, 1): closed forms for linear, relu, leaky_relu."""
    if act.name == "linear":
        return 1.0
    if act.name == "relu":
        return math.sqrt(2.0)
    if act.name == "leaky_relu" and act.param is not None:
        return _leaky_gain(act.param)
    return 1.0 / math.sqrt(gauss_expect(lambda z: act.phi(z) ** 2))


@lru_cache(maxsize=256)
def _exact_gain(name: str, param: float | None) -> float:
    """The exact gain of a registered activation, cached by (name, param)."""
    return _second_moment_gain(get_activation(name, param))


def _is_registered(act: Activation) -> bool:
    try:
        return get_activation(act.name, act.param) is act
    except ValueError:
        return False


GAIN_METHODS = ("torch", "exact")


def gain(activation: str | Activation, param: float | None = None, method: str = "torch") -> float:
    """The weight-scale gain of an activation: std(W) = gain / sqrt(fan).

    method="torch": torch.nn.init.calculate_gain (linear 1, sigmoid 1, tanh 5/3, relu sqrt(2),
    leaky_relu sqrt(2 / (1 + slope^2)), selu 3/4); ValueError where torch has none.
    method="exact": g = 1 / sqrt(E[phi(z)^2]), z ~ N(0, 1), i.e. g^2 E[phi(z)^2] = 1 (closed
    form for linear, relu, leaky_relu; `gauss_expect` quadrature otherwise, ~1e-10 relative).
    """
    if isinstance(activation, Activation):
        act = activation if param is None else get_activation(activation.name, param)
    else:
        act = get_activation(activation, param)
    if method == "torch":
        if act.torch_gain is None:
            raise ValueError(
                f"torch.nn.init.calculate_gain has no gain for activation '{act.name}'; "
                "use method='exact' for the variance-preserving gain"
            )
        return act.torch_gain
    if method == "exact":
        if _is_registered(act):
            return _exact_gain(act.name, act.param)
        return _second_moment_gain(act)  # a home-made Activation: not cached
    hint = suggest(method, GAIN_METHODS)
    raise ValueError(
        f"unknown gain method {method!r}; expected one of: {', '.join(GAIN_METHODS)}"
        + (f"; did you mean '{hint}'?" if hint else "")
    )
