"""Width parametrizations: how each layer's init variance, forward multiplier and learning rate
scale with width (abc-parametrizations, Yang & Hu 2021, "Tensor Programs IV"; the practical table
of μP, Yang et al. 2022, "Tensor Programs V", Table 3).

Symbols. Layer l has W: (fan_in, fan_out) and computes

    z = a · (h @ W) + b,    Var(W) = init_var · Var_scheme(W),    η_W = lr · η,  η_b = bias_lr · η

where Var_scheme is the variance the variant's init scheme gives (He: 2 / fan_in) and η the
variant's learning rate. The widths are read against a base model whose hidden widths are
`base_width` (the `mup` package's base shapes):

    r_in = fan_in / base_fan_in,      r_out = fan_out / base_fan_out

(1 on the data's side: the input layer has r_in = 1, the readout r_out = 1). Each factor is
r_in**p · r_out**q, so every parametrization equals SP where the widths equal the base widths.
Layer roles: `input` (the first layer, W[1]), `hidden` (W[2] .. W[L-1]), `output` (the readout
W[L]); `bias` (every layer's b). A net with one weight layer has only an `output` role (both of
its dimensions are the data's: every factor is 1).

    role     init_var            a (forward)      lr: sgd, momentum     lr: adam
    sp       1                   1                1                     1
    ntk      r_in                r_in^(-1/2)      1                     1
    mup
      input  1                   1                r_out                 1
      hidden 1                   1                1                     1 / r_in
      output 1 / r_in            1                1 / r_in              1 / r_in
      bias   (scheme's)          -                r_out                 1

μP above is TP5 Table 3 with fan_in, fan_out read as ratios to the base: output Var ∝ 1/fan_in²,
SGD input (and bias) lr ∝ fan_out, Adam hidden and output lr ∝ 1/fan_in. NTK (Jacot et al. 2018)
puts 1/√fan_in into the forward pass, a = r_in^(-1/2), on weights w of variance r_in · Var_scheme,
so that a · w has SP's variance at init and is trained with η on w. NTK biases and SP's are left
as the scheme makes them (fan_in of a bias is 1: r = 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from initlab.nn.model import Population

Array = np.ndarray

PARAMETRIZATIONS = ("sp", "ntk", "mup")
ROLES = ("input", "hidden", "output")
OPTIMIZER_FAMILY = {"sgd": "sgd", "momentum": "sgd", "sgd_momentum": "sgd", "adam": "adam"}

# Exponents (p, q) of factor = r_in**p * r_out**q, per parametrization, quantity and role.
Exponents = tuple[float, float]
_ONE: Exponents = (0.0, 0.0)
TABLE: dict[str, dict[str, dict[str, Exponents]]] = {
    "sp": {},  # every factor 1
    "ntk": {
        "init_var": dict.fromkeys(ROLES, (1.0, 0.0)),
        "mult": dict.fromkeys(ROLES, (-0.5, 0.0)),
    },
    "mup": {
        "init_var": {"output": (-1.0, 0.0)},
        "lr_sgd": {"input": (0.0, 1.0), "output": (-1.0, 0.0), "bias": (0.0, 1.0)},
        "lr_adam": {"hidden": (-1.0, 0.0), "output": (-1.0, 0.0)},
    },
}


@dataclass(frozen=True)
class Scaling:
    """The factors of one layer (relative to SP): Var(W) = init_var · Var_scheme(W),
    z = mult · (h @ W) + b, η_W = lr · η, η_b = bias_lr · η."""

    init_var: float = 1.0
    mult: float = 1.0
    lr: float = 1.0
    bias_lr: float = 1.0


def role(l: int, L: int) -> str:
    """The role of weight layer l (0-based) of L: input, hidden or output."""
    if l == L - 1:
        return "output"
    return "input" if l == 0 else "hidden"


def check_name(name: str) -> str:
    if name not in PARAMETRIZATIONS:
        raise ValueError(f"unknown parametrization {name!r}; expected one of "
                         + ", ".join(PARAMETRIZATIONS))
    return name


def optimizer_family(optimizer: str) -> str:
    """sgd (sgd, momentum) or adam: the column of the table that applies."""
    try:
        return OPTIMIZER_FAMILY[optimizer]
    except KeyError:
        raise ValueError(f"no μP learning-rate rule for optimizer {optimizer!r}; expected one "
                         "of " + ", ".join(sorted(OPTIMIZER_FAMILY))) from None


def _factor(name: str, quantity: str, key: str, r_in: float, r_out: float) -> float:
    p, q = TABLE[name].get(quantity, {}).get(key, _ONE)
    return float(r_in**p * r_out**q)


def layer_scaling(name: str, layer_role: str, optimizer: str, r_in: float,
                  r_out: float) -> Scaling:
    """The factors of a layer of `layer_role` under parametrization `name` (module docstring)."""
    check_name(name)
    lr = "lr_" + optimizer_family(optimizer)
    return Scaling(init_var=_factor(name, "init_var", layer_role, r_in, r_out),
                   mult=_factor(name, "mult", layer_role, r_in, r_out),
                   lr=_factor(name, lr, layer_role, r_in, r_out),
                   bias_lr=_factor(name, lr, "bias", r_in, r_out))


def scalings(name: str, sizes: Sequence[int], base_sizes: Sequence[int],
             optimizer: str) -> list[Scaling]:
    """One Scaling per weight layer of a net of layer sizes `sizes` = [n_in, *hidden, n_out]
    against `base_sizes` (the same with the base widths)."""
    if len(sizes) != len(base_sizes):
        raise ValueError(f"sizes {list(sizes)} and base sizes {list(base_sizes)} differ in depth")
    L = len(sizes) - 1
    return [layer_scaling(name, role(l, L), optimizer, sizes[l] / base_sizes[l],
                          sizes[l + 1] / base_sizes[l + 1]) for l in range(L)]


def base_sizes(sizes: Sequence[int], base_width: int | None) -> list[int]:
    """[n_in, base_width, ..., base_width, n_out]; `sizes` itself when base_width is None."""
    if base_width is None:
        return list(sizes)
    return [sizes[0], *([int(base_width)] * (len(sizes) - 2)), sizes[-1]]


@dataclass
class Multipliers:
    """Per-member, per-layer factors of a population: (M,) arrays, member m's own table."""

    init_std: list[Array]  # [l] (M,): W[l] of member m is drawn by its scheme, times this
    mult: list[Array] | None  # [l] (M, 1, 1) forward multipliers a; None: all 1
    lr: list[Array] | None  # [i] (M,) per parameter in Population.params order; None: all 1

    @property
    def trivial(self) -> bool:
        return self.mult is None and self.lr is None and all(
            bool((s == 1.0).all()) for s in self.init_std)


def member_multipliers(names: Sequence[str], sizes: Sequence[int], base: Sequence[int],
                       optimizer: str) -> Multipliers:
    """The factors of M members, member m under parametrization names[m]."""
    tables = {n: scalings(n, sizes, base, optimizer) for n in dict.fromkeys(names)}
    L = len(sizes) - 1
    rows = [tables[n] for n in names]

    def col(get: str, l: int) -> Array:
        return np.array([getattr(r[l], get) for r in rows], dtype=np.float64)

    init_std = [np.sqrt(col("init_var", l)) for l in range(L)]
    mult = [col("mult", l) for l in range(L)]
    lr = [a for l in range(L) for a in (col("lr", l), col("bias_lr", l))]
    return Multipliers(
        init_std,
        None if all((a == 1.0).all() for a in mult) else [a[:, None, None] for a in mult],
        None if all((a == 1.0).all() for a in lr) else lr)


def parametrize(pop: Population, mults: Multipliers) -> Population:
    """Apply members' factors to a freshly drawn population in place: W[l][m] *= init_std[l][m]
    (the same random numbers as SP, rescaled), forward and learning-rate multipliers attached
    (pop.mults, pop.lr_mults). A trivial table (SP everywhere) leaves `pop` untouched."""
    if mults.trivial:
        return pop
    for W, s in zip(pop.Ws, mults.init_std):
        if not (s == 1.0).all():
            W *= s.astype(W.dtype)[:, None, None]
    dtype = pop.Ws[0].dtype
    pop.mults = None if mults.mult is None else [a.astype(dtype) for a in mults.mult]
    pop.lr_mults = None if mults.lr is None else [a.copy() for a in mults.lr]
    return pop
