"""Weight initializers: one general `VarianceScaling`, the named schemes as one-line
specializations of it, torch's elementary ones, and the data-dependent LSUV.

Layout: W has shape (fan_in, fan_out) and is applied as ``h @ W + b`` (torch stores the
transpose, (out, in)). An initializer is a frozen dataclass called as
``init(rng, fan_in, fan_out, dtype) -> W``; draws are made in float64 and cast, so a seed gives
the same numbers in every dtype. ``init.variance(fan_in, fan_out)`` is the mean over entries of
E[W_ij²] (None where it depends on data) and ``init.describe()`` the resolved spec for reports.

    resolve("he_normal", mode="fan_out")(rng, 784, 300)     # == sample("he_normal", 784, 300)
    resolve({"scheme": "variance_scaling", "scale": 2, "distribution": "uniform"})
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import numpy as np
from scipy import special, stats

from initlab.errors import BadParameterError, suggest
from initlab.registry import Registry

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
    if alpha > 0:
        alpha, beta = -beta, -alpha
    return float(special.ndtr(beta) - special.ndtr(alpha))


def _truncated_standard_normal(rng: np.random.Generator, alpha: float, beta: float,
                               shape: tuple[int, ...]) -> Array:
    """z ~ N(0, 1) conditioned on alpha <= z <= beta, by inverse CDF:
    z = Φ⁻¹(Φ(alpha) + (Φ(beta) - Φ(alpha)) · u),  u ~ U[0, 1)."""
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
        return self.value**2


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
        return self.mean**2 + self.std**2


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
        return (self.low**2 + self.low * self.high + self.high**2) / 3


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
            return min(max(self.mean, self.a), self.b) ** 2
        alpha, beta = self._alpha_beta()
        m, v = stats.truncnorm.stats(alpha, beta, loc=self.mean, scale=self.std, moments="mv")
        return float(m) ** 2 + float(v)


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
        return self.gain**2 / max(fan_in, fan_out)  # each unit vector spreads 1 over max entries


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
        return self.scale**2 * min(fan_in, fan_out) / (fan_in * fan_out)


@dataclass(frozen=True)
class Sparse(Initializer):
    """torch's sparse_ (Martens 2010) in our layout: W ~ N(0, std²), then in every row of W (the
    outgoing weights of one input unit; a column of torch's (out, in) weight) exactly
    k = ceil(sparsity · fan_out) entries, at positions drawn from rng, are set to 0.
    (k is computed robustly to float rounding: sparsity 0.3 of 10 gives 3, not 4.)"""

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
        return self.std**2 * (fan_out - self.zeros_per_row(fan_out)) / fan_out


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
        """For l = 1..L in turn: z = h[l-1] @ W[l] + b[l] on the batch x (h[0] = x, h = phi(z) on
        hidden layers; the last layer is linear), then W[l] *= gain / sqrt(Var(z)) (Var over batch
        and units) until |Var(z) / gain² - 1| < tol or max_iter rescalings. Ws (fan_in, fan_out)
        of ONE network are modified in place; returns the rescalings used per layer."""
        if len(Ws) != len(bs):
            raise ValueError(f"lsuv: {len(Ws)} weights but {len(bs)} biases")
        target = self.gain**2
        h = np.asarray(x, dtype=np.float64)  # (batch, n_in)
        used: list[int] = []
        for l, (W, b) in enumerate(zip(Ws, bs)):
            z = h @ W + b  # (batch, fan_out)
            var, it = float(np.var(z)), 0
            while it < self.max_iter and 0 < var < math.inf and abs(var / target - 1) >= self.tol:
                W *= math.sqrt(target / var)
                z = h @ W + b
                var, it = float(np.var(z)), it + 1
            used.append(it)
            h = phi(z) if l < len(Ws) - 1 else z
        return used


# ----------------------------------------------------------------------------- named schemes
def variance_scaling(scale: float = 1.0, mode: str = "fan_in",
                     distribution: str = "truncated_normal") -> VarianceScaling:
    """jax/Keras: std = sqrt(scale / n), n by mode (see `VarianceScaling`)."""
    return VarianceScaling(scale, mode, distribution, scheme="variance_scaling")


def lecun_normal(gain: float = 1.0) -> VarianceScaling:
    """LeCun et al. 1998: W ~ N(0, std²), std = gain / sqrt(fan_in) (scale = gain²).
    Untruncated, as the article's N(0, 1/n); jax's lecun_normal truncates."""
    return VarianceScaling(_gain("lecun_normal", gain) ** 2, "fan_in", "normal",
                           scheme="lecun_normal")


def lecun_uniform(gain: float = 1.0) -> VarianceScaling:
    """W ~ U(-bound, bound), bound = gain · sqrt(3 / fan_in)."""
    return VarianceScaling(_gain("lecun_uniform", gain) ** 2, "fan_in", "uniform",
                           scheme="lecun_uniform")


def xavier_normal(gain: float = 1.0) -> VarianceScaling:
    """Glorot & Bengio 2010 (torch's xavier_normal_): W ~ N(0, std²),
    std = gain · sqrt(2 / (fan_in + fan_out))."""
    return VarianceScaling(_gain("xavier_normal", gain) ** 2, "fan_avg", "normal",
                           scheme="xavier_normal")


def xavier_uniform(gain: float = 1.0) -> VarianceScaling:
    """Glorot's "normalized" init (torch's xavier_uniform_): W ~ U(-bound, bound),
    bound = gain · sqrt(6 / (fan_in + fan_out)) = sqrt(3) · std."""
    return VarianceScaling(_gain("xavier_uniform", gain) ** 2, "fan_avg", "uniform",
                           scheme="xavier_uniform")


def _kaiming_scale(owner: str, a: float, nonlinearity: str, gain: float | None) -> float:
    """scale = gain², gain = sqrt(2 / (1 + a²)) for leaky_relu (torch's default), sqrt(2) for relu,
    torch's calculate_gain(nonlinearity) otherwise; an explicit gain wins."""
    if gain is not None:
        return _gain(owner, gain) ** 2
    a = _number(owner, "a", a)
    if nonlinearity == "leaky_relu":
        return 2.0 / (1.0 + a * a)
    if nonlinearity == "relu":
        return 2.0
    from initlab.activations import ACTIVATIONS
    from initlab.activations import gain as activation_gain  # lazy: activations is optional here

    if nonlinearity not in ACTIVATIONS:
        raise _bad_choice(owner, "nonlinearity", nonlinearity, ACTIVATIONS.names())
    try:
        return activation_gain(nonlinearity, None, method="torch") ** 2
    except ValueError as e:  # torch has no gain for it
        raise BadParameterError(owner, "nonlinearity", str(e)) from None


def he_normal(mode: str = "fan_in", a: float = 0.0, nonlinearity: str = "leaky_relu",
              gain: float | None = None) -> VarianceScaling:
    """He et al. 2015 (torch's kaiming_normal_): W ~ N(0, std²), std = gain / sqrt(fan),
    fan = fan_in (forward) or fan_out (backward), gain = sqrt(2 / (1 + a²)) by default."""
    return VarianceScaling(_kaiming_scale("he_normal", a, nonlinearity, gain), mode, "normal",
                           scheme="he_normal")


def he_uniform(mode: str = "fan_in", a: float = 0.0, nonlinearity: str = "leaky_relu",
               gain: float | None = None) -> VarianceScaling:
    """torch's kaiming_uniform_: W ~ U(-bound, bound), bound = gain · sqrt(3 / fan)."""
    return VarianceScaling(_kaiming_scale("he_uniform", a, nonlinearity, gain), mode, "uniform",
                           scheme="he_uniform")


def glorot_standard() -> VarianceScaling:
    """Glorot & Bengio 2010's "standard" heuristic: W ~ U(-1 / sqrt(fan_in), 1 / sqrt(fan_in)),
    Var = 1 / (3 · fan_in), i.e. scale = 1/3."""
    return VarianceScaling(1 / 3, "fan_in", "uniform", scheme="glorot_standard")


def torch_linear_default() -> VarianceScaling:
    """nn.Linear's default: kaiming_uniform_ with a = sqrt(5), so gain² = 2 / (1 + 5) = 1/3 and
    bound = gain · sqrt(3 / fan_in) = 1 / sqrt(fan_in)."""
    return replace(he_uniform(a=math.sqrt(5.0)), scheme="torch_linear_default")


def playground(v: float = 1.0) -> VarianceScaling:
    """The article's Figure 1: W ~ N(0, v / fan_in), v a variance multiplier (scale = v)."""
    return VarianceScaling(_number("playground", "v", v, low=0.0), "fan_in", "normal",
                           scheme="playground")


def _button(name: str, v: float) -> Callable[[], VarianceScaling]:
    def make() -> VarianceScaling:
        return replace(playground(v), scheme=name)

    make.__doc__ = f"The playground button '{name}': W ~ N(0, {v:g} / fan_in)."
    return make


def zeros() -> Constant:
    """W = 0: every unit computes the same thing, and gradients keep them equal."""
    return Constant(0.0, scheme="zeros")


def ones() -> Constant:
    """W = 1."""
    return Constant(1.0, scheme="ones")


def constant(value: float) -> Constant:
    """W = value (required, as in torch's constant_)."""
    return Constant(value, scheme="constant")


INITS: Registry[Callable[..., Initializer]] = Registry("init scheme")
_SCHEMES: list[tuple[str, Callable[..., Initializer], tuple[str, ...], str, str]] = [
    ("variance_scaling", variance_scaling, (), "general variance scaling (jax/Keras)",
     "std = sqrt(scale / n), n by mode; normal | truncated_normal | uniform"),
    ("lecun_normal", lecun_normal, (), "LeCun 1998 (the article's 'Xavier')",
     "N(0, gain² / fan_in)"),
    ("lecun_uniform", lecun_uniform, (), "LeCun 1998, uniform",
     "U(±bound), bound = gain · sqrt(3 / fan_in)"),
    ("xavier_normal", xavier_normal, ("glorot_normal",), "Glorot & Bengio 2010",
     "N(0, gain² · 2 / (fan_in + fan_out))"),
    ("xavier_uniform", xavier_uniform, ("glorot_uniform",), "Glorot's 'normalized' init",
     "U(±bound), bound = gain · sqrt(6 / (fan_in + fan_out))"),
    ("he_normal", he_normal, ("kaiming_normal",), "He et al. 2015 (mode, a, nonlinearity)",
     "N(0, gain² / fan), gain = sqrt(2 / (1 + a²))"),
    ("he_uniform", he_uniform, ("kaiming_uniform",), "He et al. 2015, uniform",
     "U(±bound), bound = gain · sqrt(3 / fan), gain = sqrt(2 / (1 + a²))"),
    ("glorot_standard", glorot_standard, (), "Glorot's 'standard' heuristic",
     "U(±1 / sqrt(fan_in)), Var = 1 / (3 fan_in)"),
    ("torch_linear_default", torch_linear_default, ("torch_default",),
     "nn.Linear's default: kaiming_uniform with a = sqrt(5)", "U(±1 / sqrt(fan_in))"),
    ("playground", playground, (), "the article's buttons: variance multiplier v",
     "N(0, v / fan_in)"),
    ("zero", _button("zero", 0.0), (), "playground button 'zero'", "N(0, 0 / fan_in) = 0"),
    ("too_small", _button("too_small", 0.01), (), "playground button 'too small'",
     "N(0, 0.01 / fan_in)"),
    ("appropriate", _button("appropriate", 1.0), (), "playground button 'appropriate'",
     "N(0, 1 / fan_in)"),
    ("too_large", _button("too_large", 100.0), (), "playground button 'too large'",
     "N(0, 100 / fan_in)"),
    ("zeros", zeros, (), "all zeros (symmetric: units never differ)", "W = 0"),
    ("ones", ones, (), "all ones", "W = 1"),
    ("constant", constant, (), "every entry the same value", "W = value"),
    ("normal", Normal, (), "torch's normal_ (defaults mean 0, std 1)", "N(mean, std²)"),
    ("uniform", Uniform, (), "torch's uniform_ (defaults low 0, high 1)", "U(low, high)"),
    ("truncated_normal", TruncatedNormal, ("trunc_normal",),
     "torch's trunc_normal_ (absolute bounds a, b)", "N(mean, std²) restricted to [a, b]"),
    ("orthogonal", Orthogonal, (), "Saxe et al. 2014 (QR with sign correction)",
     "gain · Q, Q.T @ Q = I"),
    ("identity", Identity, ("eye",), "scaled identity (rectangular: np.eye)", "scale · I"),
    ("sparse", Sparse, (), "Martens 2010 (torch's sparse_)",
     "N(0, std²), ceil(sparsity · fan_out) zeros per row"),
    ("lsuv", Lsuv, (), "Mishkin & Matas 2015: orthogonal, then rescaled on data",
     "W *= gain / sqrt(Var(z)) until |Var(z) / gain² - 1| < tol"),
]
for _name, _make, _aliases, _description, _formula in _SCHEMES:
    INITS.register(_name, _make, aliases=_aliases, description=_description, formula=_formula)


# ----------------------------------------------------------------------------- resolve
def scheme_params(name: str) -> dict[str, Any]:
    """The parameters scheme `name` (or an alias) accepts, with their defaults (None = required,
    or for `gain` of he_*: derived from a and nonlinearity)."""
    return {p.name: (None if p.default is inspect.Parameter.empty else p.default)
            for p in _signature(name)}


def _signature(name: str) -> list[inspect.Parameter]:
    """A factory's parameters (an Initializer class's own fields: scheme/params are stamped)."""
    return [p for p in inspect.signature(INITS.get(name)).parameters.values()
            if p.name not in ("scheme", "params")]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def resolve(scheme: str | Mapping[str, Any] | Initializer, *, activation: Any = None,
            activation_param: float | None = None, **params: Any) -> Initializer:
    """The initializer for `scheme`: a registered name or alias (case-insensitive) or a spec
    {"scheme": name, **params}; keyword params are merged over the spec's. gain="auto" is the
    exact variance-preserving gain of `activation` (initlab.activations.gain(..., "exact")).
    Raises UnknownNameError for an unknown scheme, BadParameterError for a parameter it does not
    take or a value it cannot take."""
    if isinstance(scheme, Initializer) and not params:
        return scheme
    if isinstance(scheme, Mapping):
        spec = dict(scheme)
        if "scheme" not in spec:
            raise BadParameterError("init", "scheme", "an init spec needs a 'scheme' key",
                                    choices=INITS.names())
        scheme = spec.pop("scheme")
        params = {**spec, **params}
    name = INITS.canonical(scheme)
    accepted = scheme_params(name)
    for key in params:
        if key not in accepted:
            none = "" if accepted else f"; {name} takes no parameters"
            raise BadParameterError(name, key, f"unknown parameter {key!r}{none}",
                                    choices=list(accepted))
    args = {**accepted, **params}
    for key in (p.name for p in _signature(name) if p.default is inspect.Parameter.empty):
        if args[key] is None:
            raise BadParameterError(name, key, f"missing required parameter {key!r}")
    extra: dict[str, Any] = {}
    if isinstance(args.get("gain"), str) and args["gain"].strip().lower() == "auto":
        if activation is None:
            raise BadParameterError(name, "gain", "gain='auto' needs the network's activation, "
                                    "and none is known here (pass activation=...)")
        from initlab.activations import gain as activation_gain  # lazy: optional at import

        args["gain"] = float(activation_gain(activation, activation_param, method="exact"))
        extra = {"gain_from": str(getattr(activation, "name", activation)),
                 "activation_param": activation_param}
    init = INITS.get(name)(**args)
    given = tuple((k, _plain(v)) for k, v in {**args, **extra}.items())
    return replace(init, scheme=name, params=given)


def sample(scheme: str | Mapping[str, Any] | Initializer, fan_in: int, fan_out: int, *,
           seed: int = 0, dtype: Any = np.float64, **params: Any) -> Array:
    """resolve(scheme, **params)(np.random.default_rng(seed), fan_in, fan_out, dtype)."""
    return resolve(scheme, **params)(np.random.default_rng(seed), fan_in, fan_out, dtype)
