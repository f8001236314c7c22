"""The config's width-scaling parts (docs/width.md): the `coordcheck:` section and what a
variant's `parametrization` and `model.base_width` add to the resolved config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class CoordcheckConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    widths: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None, min_length=2, description="Widths of `initlab coordcheck` (--widths).")
    steps: int = Field(default=3, ge=1, description="Forward passes t = 0..steps-1 (--steps).")
    expect: list[dict[str, Any]] | None = Field(
        default=None, description="Checked by `initlab check` on the coordcheck folder: metrics"
        " slope[t][l], max_slope[t], max_abs_slope[t], max_abs_hidden_slope[t].")


def width_keys(model: Any) -> dict[str, int]:
    """{base_width: n} for the resolved model, {} when not given (SP configs keep their hash)."""
    return {} if model.base_width is None else {"base_width": model.base_width}


def variant_keys(variant: Any, filled: Callable[[Any], dict[str, Any]] | None = None
                 ) -> dict[str, Any]:
    """A resolved variant's width keys, none of them when at their defaults (the resolved
    config and its hash do not change): {parametrization: name} unless sp, {readout: spec}
    when the readout has its own init (`filled(spec)`; without `filled`, for labels, the
    scheme's name)."""
    out: dict[str, Any] = {}
    if variant.parametrization != "sp":
        out["parametrization"] = variant.parametrization
    if variant.readout is not None:
        out["readout"] = filled(variant.readout) if filled else variant.readout.scheme
    return out
