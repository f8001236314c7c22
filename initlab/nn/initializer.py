"""The initializer types: the `Initializer` base (called as ``init(rng, fan_in, fan_out, dtype)
-> W``), the one general `VarianceScaling`, and torch's elementary ones (constant, normal,
uniform, truncated normal, orthogonal, identity, sparse), with the validation they share.
initlab.nn.inits names the schemes built from them; initlab.nn.lsuv is the data-dependent one.

Layout: W has shape (fan_in, fan_out) and is applied as ``h @ W + b`` (torch stores the
transpose, (out, in)); draws are made in float64 and cast, so a seed gives the same numbers in
every dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from initlab.errors import BadParameterError, suggest

Array = np.ndarray
TRUNC_STD = 0.87962566103423978  # stddev of standard normal truncated to (-2, 2)
MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")
_DISTRIBUTION_ALIASES = {"untruncated_normal": "normal"}  # Keras' name


# ----------------------------------------------------------------------------- validation
def _bad_choice(owner: str, param: str, value: object, choices: Sequence[str]) -> BadParameterError:
    hint = suggest(value, choices)
    err = BadParameterError(owner, param, f"{param} must be one of {', '.join(choices)}, got "
                            f"{value!r}" + (f"; did you mean '{hint}'?" if hint else ""))
    err.choices, err.suggestion = sorted(choices), hint
    return err


def _number(owner: str, param: str, value: object, *, low: float | None = None,
            above: bool = False, allow_inf: bool = False) -> float:
    """float(value), checked: a real number, finite (unless allow_inf), >= low (> if above)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise BadParameterError(owner, param, f"{param} must be a number, got {value!r}")
    x = float(value)
    if math.isnan(x) or (math.isinf(x) and not allow_inf):
        raise BadParameterError(owner, param, f"{param} must be finite, got {x}")
    if low is not None and (x < low or (above and x == low)):
        raise BadParameterError(owner, param, f"{param} must be {'>' if above else '>='} {low:g}, "
                                f"got {x:g}")
    return x


def _gain(owner: str, gain: object) -> float:
    if isinstance(gain, str):
        raise BadParameterError(owner, "gain", f"gain must be a number >= 0 or 'auto' (the "
                                f"activation's exact variance-preserving gain), got {gain!r}")
    return _number(owner, "gain", gain, low=0.0)


def _fan(mode: str, fan_in: int, fan_out: int) -> float:
    """n of std = sqrt(scale / n)."""
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
            "fan_geo_avg": math.sqrt(fan_in * fan_out)}[mode]


def _mass(alpha: float, beta: float) -> float:
    """Φ(beta) - Φ(alpha), computed in the left tail where Φ keeps its precision."""
    from scipy import special  # scipy on first use: a second off every command's start

    if alpha > 0:
        alpha, beta = -beta, -alpha
    return float(special.ndtr(beta) - special.ndtr(alpha))


def _truncated_standard_normal(rng: np.random.Generator, alpha: float, beta: float,
                               shape: tuple[int, ...]) -> Array:
    """z ~ N(0, 1) conditioned on alpha <= z <= beta, by inverse CDF:
    z = Φ⁻¹(Φ(alpha) + (Φ(beta) - Φ(alpha)) · u),  u ~ U[0, 1)."""
    from scipy import special

    flip = alpha > 0  # draw the mirror image in the left tail, where Φ keeps its precision
    if flip:
        alpha, beta = -beta, -alpha
    lo, hi = float(special.ndtr(alpha)), float(special.ndtr(beta))
    u = np.clip(lo + (hi - lo) * rng.random(shape), np.finfo(float).tiny, np.nextafter(1.0, 0))
    z = np.clip(special.ndtri(u), alpha, beta)
    return -z if flip else z


# ----------------------------------------------------------------------------- initializers
@dataclass(frozen=True)
class Initializer:
    """Base: ``init(rng, fan_in, fan_out, dtype) -> W`` of shape (fan_in, fan_out).

    `scheme` is the registered name it was made as; `params` the user-facing parameters that
    `resolve` saw (defaults filled), kept for `describe()`."""

    kind: ClassVar[str] = "initializer"
    scheme: str = field(default="", kw_only=True)
    params: tuple[tuple[str, Any], ...] = field(default=(), kw_only=True, repr=False)

    @property
    def name(self) -> str:
        return self.scheme or self.kind

    def __call__(self, rng: np.random.Generator, fan_in: int, fan_out: int,
                 dtype: Any = np.float64) -> Array:
        for param, n in (("fan_in", fan_in), ("fan_out", fan_out)):
            if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
                raise BadParameterError(self.name, param, f"{param} must be an int >= 1, got {n!r}")
        return np.asarray(self.draw(rng, int(fan_in), int(fan_out)), dtype=dtype)

    def draw(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> Array:
        raise NotImplementedError

    def variance(self, fan_in: int, fan_out: int) -> float | None:
        """Mean over entries of E[W_ij²]; None where it is not defined before seeing data."""
        return None

    def bias(self, rng: np.random.Generator, fan_in: int, fan_out: int,
             dtype: Any = np.float64) -> Array:
        """This scheme as the bias b (shape (fan_out,)) of a fan_in -> fan_out layer. A fan-based
        scheme (`VarianceScaling` and its named forms) draws b_j from the distribution of the
        layer's own W_ij, with the layer's fan_in and fan_out (so `torch_linear_default` gives
        torch's nn.Linear bias U(±1/sqrt(fan_in))); every other scheme draws b as one row of a
        (1, fan_out) matrix (elementwise schemes: the same as W's entries)."""
        for param, n in (("fan_in", fan_in), ("fan_out", fan_out)):
            if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
                raise BadParameterError(self.name, param, f"{param} must be an int >= 1, got {n!r}")
        return np.asarray(self.draw_bias(rng, int(fan_in), int(fan_out)), dtype=dtype)

    def draw_bias(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> Array:
        return self.draw(rng, 1, fan_out)[0]

    def bias_variance(self, fan_in: int, fan_out: int) -> float | None:
        """Mean over entries of E[b_j²] of `bias` for a fan_in -> fan_out layer (None: unknown)."""
        return self.variance(1, fan_out)

    def describe(self) -> dict[str, Any]:
        """The resolved spec, JSON-able: {scheme, <given parameters>, <resolved fields>}."""
        own = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name not in ("scheme", "params")}
        return {"scheme": self.name, **dict(self.params), **own}


@dataclass(frozen=True)
class VarianceScaling(Initializer):
    """std = sqrt(scale / n), n = fan_in | fan_out | (fan_in + fan_out) / 2 | sqrt(fan_in·fan_out)
    by `mode`. normal: W ~ N(0, std²). truncated_normal: W = std / 0.8796… · z, z ~ N(0, 1)
    truncated to (-2, 2), so the realized std is exactly std and |W| <= 2 · std / 0.8796….
    uniform: W ~ U(-bound, bound), bound = sqrt(3 · scale / n) (so again Var = scale / n)."""

    kind: ClassVar[str] = "variance_scaling"
    scale: float = 1.0
    mode: str = "fan_in"
    distribution: str = "truncated_normal"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _number(self.name, "scale", self.scale, low=0.0))
        if self.mode not in MODES:
            raise _bad_choice(self.name, "mode", self.mode, MODES)
        dist = self.distribution
        dist = _DISTRIBUTION_ALIASES.get(dist, dist) if isinstance(dist, str) else dist
        if dist not in DISTRIBUTIONS:
            raise _bad_choice(self.name, "distribution", self.distribution,
                              [*DISTRIBUTIONS, *_DISTRIBUTION_ALIASES])
        object.__setattr__(self, "distribution", dist)

    def std(self, fan_in: int, fan_out: int) -> float:
        return math.sqrt(self.scale / _fan(self.mode, fan_in, fan_out))

    def draw(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> Array:
        return self._sample(rng, self.std(fan_in, fan_out), (fan_in, fan_out))

    def _sample(self, rng: np.random.Generator, std: float, shape: tuple[int, ...]) -> Array:
        if self.distribution == "normal":
            return std * rng.standard_normal(shape)
        if self.distribution == "truncated_normal":
            return std / TRUNC_STD * _truncated_standard_normal(rng, -2.0, 2.0, shape)
        bound = math.sqrt(3.0) * std  # == sqrt(3 · scale / n)
        return rng.uniform(-bound, bound, shape)

    def draw_bias(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> Array:
        return self._sample(rng, self.std(fan_in, fan_out), (fan_out,))

    def variance(self, fan_in: int, fan_out: int) -> float:
        return self.scale / _fan(self.mode, fan_in, fan_out)

    def bias_variance(self, fan_in: int, fan_out: int) -> float:
        return self.variance(fan_in, fan_out)


@dataclass(frozen=True)
class Constant(Initializer):
    """W = value (every entry; no randomness drawn)."""

    kind: ClassVar[str] = "constant"
    value: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _number(self.name, "value", self.value))

    def draw(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> Array:
        return np.full((fan_in, fan_out), self.value)

    def variance(self, fan_in: int, fan_out: int) -> float:
        return self.value * self.value


@dataclass(frozen=True)
class Normal(Initializer):
    """W ~ N(mean, std²) (torch's normal_; defaults mean = 0, std = 1)."""

    kind: ClassVar[str] = "normal"
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _number(self.name, "mean", self.mean))
        object.__setattr__(self, "std", _number(self.name, "std", self.std, low=0.0))

    def draw(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> Array:
        return self.mean + self.std * rng.standard_normal((fan_in, fan_out))

    def variance(self, fan_in: int, fan_out: int) -> float:
        return self.mean * self.mean + self.std * self.std


@dataclass(frozen=True)
class Uniform(Initializer):
    """W ~ U(low, high) (torch's uniform_(a=0, b=1): defaults low = 0, high = 1)."""

    kind: ClassVar[str] = "uniform"
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "low", _number(self.name, "low", self.low))
        object.__setattr__(self, "high", _number(self.name, "high", self.high))
        if self.low > self.high:
            raise BadParameterError(self.name, "low", f"low must be <= high, got low={self.low:g}"
                                    f" > high={self.high:g}")

    def draw(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> Array:
        return rng.uniform(self.low, self.high, (fan_in, fan_out))

    def variance(self, fan_in: int, fan_out: int) -> float:
        lo, hi = self.low, self.high
        plain = (lo * lo + lo * hi + hi * hi) / 3
        if math.isfinite(plain):
            return plain
        s = max(abs(lo), abs(hi))  # scaled: inf (not inf - inf = NaN) past the float range
        lo, hi = lo / s, hi / s
        return s * s * ((lo * lo + lo * hi + hi * hi) / 3)


@dataclass(frozen=True)
class TruncatedNormal(Initializer):
    """W ~ N(mean, std²) conditioned on a <= W <= b; like torch's trunc_normal_, the bounds a and
    b are absolute values, not multiples of std: W = mean + std · z, z ~ N(0, 1) truncated to
    ((a - mean) / std, (b - mean) / std)."""

    kind: ClassVar[str] = "truncated_normal"
    mean: float = 0.0
    std: float = 1.0
    a: float = -2.0
    b: float = 2.0

    def __post_init__(self) -> None:
        n = self.name
        object.__setattr__(self, "mean", _number(n, "mean", self.mean))
        object.__setattr__(self, "std", _number(n, "std", self.std, low=0.0))
        object.__setattr__(self, "a", _number(n, "a", self.a, allow_inf=True))
        object.__setattr__(self, "b", _number(n, "b", self.b, allow_inf=True))
        if not self.a < self.b:
            raise BadParameterError(n, "a", f"a must be < b, got a={self.a:g}, b={self.b:g}")
        if self.std > 0 and not _mass(*self._alpha_beta()) > 0:
            raise BadParameterError(n, "a", f"[a, b] = [{self.a:g}, {self.b:g}] lies too far "
                                    f"in the tail of N({self.mean:g}, {self.std:g}²)")

    def _alpha_beta(self) -> Array:
        return (np.array([self.a, self.b]) - self.mean) / self.std

    def draw(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> Array:
        if self.std == 0:
            return np.full((fan_in, fan_out), min(max(self.mean, self.a), self.b))
        alpha, beta = self._alpha_beta()
        z = _truncated_standard_normal(rng, float(alpha), float(beta), (fan_in, fan_out))
        return np.clip(self.mean + self.std * z, self.a, self.b)

    def variance(self, fan_in: int, fan_out: int) -> float:
        if self.std == 0:
            c = min(max(self.mean, self.a), self.b)
            return c * c
        from scipy import stats

        alpha, beta = self._alpha_beta()
        m, v = stats.truncnorm.stats(alpha, beta, loc=self.mean, scale=self.std, moments="mv")
        return float(m) * float(m) + float(v)


@dataclass(frozen=True)
class Orthogonal(Initializer):
    """W = gain · Q, Q from the QR decomposition of a (fan_in, fan_out) standard normal matrix
    (of its transpose when fan_in < fan_out), columns multiplied by d = sign(diag(R)) so Q is
    Haar-distributed (as torch's orthogonal_). fan_in >= fan_out: W.T @ W = gain² · I
    (orthonormal columns); fan_in < fan_out: W @ W.T = gain² · I (orthonormal rows)."""

    kind: ClassVar[str] = "orthogonal"
    gain: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "gain", _gain(self.name, self.gain))

    def draw(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> Array:
        flat = rng.standard_normal((fan_in, fan_out))
        tall = fan_in >= fan_out
        q, r = np.linalg.qr(flat if tall else flat.T)  # q: (max, min), orthonormal columns
        d = np.where(np.diag(r) < 0, -1.0, 1.0)  # sign(diag(R)), with sign(0) := 1
        q = q * d
        return self.gain * (q if tall else q.T)

    def variance(self, fan_in: int, fan_out: int) -> float:
        # each unit vector spreads 1 over max entries
        return self.gain * self.gain / max(fan_in, fan_out)


@dataclass(frozen=True)
class Identity(Initializer):
    """W = scale · I (np.eye(fan_in, fan_out) when rectangular; torch's eye_ with a scale)."""

    kind: ClassVar[str] = "identity"
    scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _number(self.name, "scale", self.scale))

    def draw(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> Array:
        return self.scale * np.eye(fan_in, fan_out)

    def variance(self, fan_in: int, fan_out: int) -> float:
        return self.scale * self.scale * min(fan_in, fan_out) / (fan_in * fan_out)


@dataclass(frozen=True)
class Sparse(Initializer):
    """torch's sparse_ (Martens 2010) in our layout: W ~ N(0, std²), then in every row of W (the
    outgoing weights of one input unit; a column of torch's (out, in) weight) exactly
    k = ceil(sparsity · fan_out) entries, at positions drawn from rng, are set to 0.
    k is torch's ceil(sparsity · rows) except where the float product lands just above an
    integer: we round it to 9 decimals first, so sparsity 0.07 of 100 gives 7 zeros where torch
    gives ceil(7.000000000000001) = 8 (0.3 of 10 is 3 in both: 0.3 · 10 == 3.0 in floats)."""

    kind: ClassVar[str] = "sparse"
    sparsity: float = 0.1
    std: float = 0.01

    def __post_init__(self) -> None:
        object.__setattr__(self, "sparsity", _number(self.name, "sparsity", self.sparsity))
        object.__setattr__(self, "std", _number(self.name, "std", self.std, low=0.0))
        if not 0 <= self.sparsity < 1:
            raise BadParameterError(self.name, "sparsity", f"sparsity must be in [0, 1), got "
                                    f"{self.sparsity:g}")

    def zeros_per_row(self, fan_out: int) -> int:
        return math.ceil(round(self.sparsity * fan_out, 9))

    def draw(self, rng: np.random.Generator, fan_in: int, fan_out: int) -> Array:
        W = self.std * rng.standard_normal((fan_in, fan_out))
        k = self.zeros_per_row(fan_out)
        if k:
            cols = np.argsort(rng.random((fan_in, fan_out)), axis=1)[:, :k]  # a random k per row
            np.put_along_axis(W, cols, 0.0, axis=1)
        return W

    def variance(self, fan_in: int, fan_out: int) -> float:
        return self.std * self.std * (fan_out - self.zeros_per_row(fan_out)) / fan_out
