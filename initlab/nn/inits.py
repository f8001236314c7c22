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
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from initlab.errors import BadParameterError
from initlab.nn.initializer import (  # noqa: F401 (the types are part of this module's interface)
    DISTRIBUTIONS,
    MODES,
    TRUNC_STD,
    Array,
    Constant,
    Identity,
    Initializer,
    Normal,
    Orthogonal,
    Sparse,
    TruncatedNormal,
    Uniform,
    VarianceScaling,
    _bad_choice,
    _gain,
    _number,
)
from initlab.nn.lsuv import Lsuv
from initlab.nn.residual_inits import SCHEMES as RESIDUAL_SCHEMES
from initlab.registry import Registry


def _square(x: float) -> float:
    """x², inf (not OverflowError) past the float range: a gain of 1e200 is a result."""
    return x * x

# ----------------------------------------------------------------------------- named schemes
def variance_scaling(scale: float = 1.0, mode: str = "fan_in",
                     distribution: str = "truncated_normal") -> VarianceScaling:
    """jax/Keras: std = sqrt(scale / n), n by mode (see `VarianceScaling`)."""
    return VarianceScaling(scale, mode, distribution, scheme="variance_scaling")


def lecun_normal(gain: float = 1.0) -> VarianceScaling:
    """LeCun et al. 1998: W ~ N(0, std²), std = gain / sqrt(fan_in) (scale = gain²).
    Untruncated, as the article's N(0, 1/n); jax's lecun_normal truncates."""
    return VarianceScaling(_square(_gain("lecun_normal", gain)), "fan_in", "normal",
                           scheme="lecun_normal")


def lecun_uniform(gain: float = 1.0) -> VarianceScaling:
    """W ~ U(-bound, bound), bound = gain · sqrt(3 / fan_in)."""
    return VarianceScaling(_square(_gain("lecun_uniform", gain)), "fan_in", "uniform",
                           scheme="lecun_uniform")


def xavier_normal(gain: float = 1.0) -> VarianceScaling:
    """Glorot & Bengio 2010 (torch's xavier_normal_): W ~ N(0, std²),
    std = gain · sqrt(2 / (fan_in + fan_out))."""
    return VarianceScaling(_square(_gain("xavier_normal", gain)), "fan_avg", "normal",
                           scheme="xavier_normal")


def xavier_uniform(gain: float = 1.0) -> VarianceScaling:
    """Glorot's "normalized" init (torch's xavier_uniform_): W ~ U(-bound, bound),
    bound = gain · sqrt(6 / (fan_in + fan_out)) = sqrt(3) · std."""
    return VarianceScaling(_square(_gain("xavier_uniform", gain)), "fan_avg", "uniform",
                           scheme="xavier_uniform")


def _kaiming_scale(owner: str, a: float, nonlinearity: str, gain: float | None) -> float:
    """scale = gain², gain = sqrt(2 / (1 + a²)) for leaky_relu (torch's default), sqrt(2) for relu,
    torch's calculate_gain(nonlinearity) otherwise; an explicit gain wins."""
    if gain is not None:
        return _square(_gain(owner, gain))
    a = _number(owner, "a", a)
    if nonlinearity == "leaky_relu":
        return 2.0 / (1.0 + a * a)
    if nonlinearity == "relu":
        return 2.0
    from initlab.nn.activations import ACTIVATIONS
    from initlab.nn.activations import gain as activation_gain  # lazy: activations is optional here

    if nonlinearity not in ACTIVATIONS:
        raise _bad_choice(owner, "nonlinearity", nonlinearity, ACTIVATIONS.names())
    try:
        return _square(activation_gain(nonlinearity, None, method="torch"))
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
_SCHEMES += RESIDUAL_SCHEMES  # fixup, rezero (skipinit), gpt2: role-aware (nn/residual_inits.py)
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
        from initlab.nn.activations import gain as activation_gain  # lazy: optional at import

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
