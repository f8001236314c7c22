"""Init schemes of residual nets: each layer's initializer depends on its role in the net
(nn.residual.ROLES: input, branch, branch_out = the last branch layer, writing into the
stream, output = the readout), and the scheme sets the initial branch multiplier alpha0 and
whether alpha is trained. L = blocks, m = branch (dense layers per block).

    fixup    Zhang, Dauphin & Ma 2019: branch_out and output W = 0; the other branch layers
             W ~ N(0, scale / fan_in) * L^(-1/(2m-2)) (variance scale * L^(-1/(m-1))), input
             W ~ N(0, scale / fan_in); alpha0 = 1, trained (the paper's scalar multiplier).
    rezero   Bachlechner et al. 2020 (alias skipinit, De & Smith 2020): W ~ N(0, scale /
             fan_in) everywhere; alpha0 = 0, trained.
    gpt2     Radford et al. 2019 / nanoGPT: W ~ N(0, std^2), std = 0.02; branch_out
             W ~ N(0, std^2 / L) (one residual branch per block); alpha0 = 1, fixed.

nn.inits registers them (SCHEMES) with the other schemes, so `resolve("fixup")` works like any
other scheme. On their own (`for_role` not applied) they draw
the input role's weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from initlab.nn.initializer import Constant, Initializer, Normal, VarianceScaling, _number


@dataclass(frozen=True)
class Fixup(VarianceScaling):
    """Fixup (see the module docstring): He-like `scale / fan_in` variance, branch layers but
    the last scaled by L^(-1/(m-1)) in variance, the last branch layer and the readout zero."""

    kind: ClassVar[str] = "fixup"
    alpha0: ClassVar[float] = 1.0
    trains_alpha: ClassVar[bool] = True
    scale: float = 2.0
    mode: str = "fan_in"
    distribution: str = "normal"

    def for_role(self, role: str, blocks: int, branch: int) -> Initializer:
        if role in ("branch_out", "output"):
            return Constant(0.0, scheme="fixup")
        scale = self.scale * (blocks ** (-1.0 / (branch - 1)) if role == "branch" else 1.0)
        return VarianceScaling(scale, self.mode, self.distribution, scheme="fixup")


@dataclass(frozen=True)
class ReZero(VarianceScaling):
    """ReZero / SkipInit: `scale / fan_in` variance for every layer, alpha0 = 0, trained."""

    kind: ClassVar[str] = "rezero"
    alpha0: ClassVar[float] = 0.0
    trains_alpha: ClassVar[bool] = True
    scale: float = 2.0
    mode: str = "fan_in"
    distribution: str = "normal"

    def for_role(self, role: str, blocks: int, branch: int) -> Initializer:
        return self


@dataclass(frozen=True)
class GPT2(Normal):
    """GPT-2: N(0, std^2) for every layer, the layers writing into the stream N(0, std^2 / L)."""

    kind: ClassVar[str] = "gpt2"
    alpha0: ClassVar[float] = 1.0
    trains_alpha: ClassVar[bool] = False
    std: float = 0.02

    def for_role(self, role: str, blocks: int, branch: int) -> Initializer:
        if role == "branch_out":
            return Normal(self.mean, self.std / math.sqrt(blocks), scheme="gpt2")
        return self


def fixup(scale: float = 2.0, distribution: str = "normal") -> Fixup:
    """Fixup (Zhang et al. 2019); scale = the He variance scale (2: ReLU)."""
    return Fixup(_number("fixup", "scale", scale, low=0.0), "fan_in", distribution)


def rezero(scale: float = 2.0, distribution: str = "normal") -> ReZero:
    """ReZero (Bachlechner et al. 2020) / SkipInit (De & Smith 2020)."""
    return ReZero(_number("rezero", "scale", scale, low=0.0), "fan_in", distribution)


def gpt2(std: float = 0.02) -> GPT2:
    """GPT-2's N(0, 0.02^2) with the stream-writing layers divided by sqrt(L)."""
    return GPT2(0.0, _number("gpt2", "std", std, low=0.0))


# (name, factory, aliases, description, formula): nn.inits registers them with the others
SCHEMES: list[tuple[str, Callable[..., Initializer], tuple[str, ...], str, str]] = [
    ("fixup", fixup, (), "Fixup (Zhang et al. 2019), residual nets",
     "last branch layer and readout 0; branch N(0, scale/fan_in) L^(-1/(m-1)); alpha from 1"),
    ("rezero", rezero, ("skipinit",), "ReZero (Bachlechner et al. 2020) / SkipInit, residual nets",
     "N(0, scale / fan_in); alpha trained from 0"),
    ("gpt2", gpt2, (), "GPT-2 (Radford et al. 2019), residual nets",
     "N(0, std²); stream-writing layers N(0, std² / L)"),
]
