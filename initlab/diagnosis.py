"""Name what happened to a variant, and say it in one plain sentence.

Thresholds (documented in the README; "ratio" is Var(h) of the last hidden layer over the
input's mean square E[x^2], at init, averaged over seeds; "grad ratio" is Var(dL/dz) of the first
layer over the last layer):

    diverged    some seed's loss or gradients became non-finite (the member was frozen)
    symmetric   every hidden layer's units are still identical at the end (never broken)
    exploding   ratio > 1e2, or grad ratio > 1e4
    vanishing   ratio < 1e-2, or grad ratio < 1e-4
    saturated   more than half the hidden units of a saturating activation sit within 3% of
                the bound at init (|tanh| > 0.97)
    dead        more than half the hidden ReLU units never fire on the batch at the end
    stalled     training ran but the final loss is above 90% of the loss at init
    healthy     none of the above
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ORDER = ("diverged", "symmetric", "exploding", "vanishing", "saturated", "dead", "stalled",
         "healthy")
EXPLODE_RATIO, VANISH_RATIO = 1e2, 1e-2
EXPLODE_GRAD, VANISH_GRAD = 1e4, 1e-4
SATURATED_FRAC, DEAD_FRAC, STALL_FRAC = 0.5, 0.5, 0.9


@dataclass(frozen=True)
class Evidence:
    """Numbers of one variant, averaged over its seeds."""

    label: str
    activation: str
    seeds: int
    n_diverged: int
    first_diverged_step: int | None
    symmetric: bool
    act_ratio: float  # Var(h[last hidden]) / E[x^2] at init
    per_layer_gain: float  # act_ratio ** (1 / hidden layers): the primer's n Var(W)
    grad_ratio: float  # Var(dz[1]) / Var(dz[L]) at init
    saturated: float  # mean fraction over hidden layers at init
    dead: float  # mean fraction over hidden layers at the end
    loss_init: float
    loss_final: float
    epochs: int


def diagnose(e: Evidence) -> list[str]:
    """Every diagnosis that applies, most important first (ORDER); ["healthy"] if none."""
    found = []
    if e.n_diverged:
        found.append("diverged")
    if e.symmetric:
        found.append("symmetric")
    if e.act_ratio > EXPLODE_RATIO or e.grad_ratio > EXPLODE_GRAD:
        found.append("exploding")
    if e.act_ratio < VANISH_RATIO or e.grad_ratio < VANISH_GRAD:
        found.append("vanishing")
    if e.saturated > SATURATED_FRAC:
        found.append("saturated")
    if e.dead > DEAD_FRAC:
        found.append("dead")
    finite = math.isfinite(e.loss_init) and math.isfinite(e.loss_final)
    if e.epochs > 0 and finite and e.loss_final > STALL_FRAC * e.loss_init:
        found.append("stalled")
    return found or ["healthy"]


def _loss_phrase(e: Evidence) -> str:
    if e.epochs == 0:
        return f"the loss at init is {e.loss_init:.3g}"
    if not math.isfinite(e.loss_final):
        return f"the loss went from {e.loss_init:.3g} to a non-finite value"
    return f"the loss went from {e.loss_init:.3g} to {e.loss_final:.3g} in {e.epochs} epochs"


def sentence(e: Evidence, found: list[str]) -> str:
    """One plain-language sentence per variant: what happened and why."""
    main = found[0]
    loss = _loss_phrase(e)
    g = e.per_layer_gain
    if main == "diverged":
        step = f" (first at step {e.first_diverged_step})" if e.first_diverged_step is not None \
            else ""
        why = (f"activations grow about {g:.3g}x per layer at init" if g > 1.5
               else "the steps were too large for this start")
        return (f"{e.n_diverged} of {e.seeds} seeds diverged{step}: the loss or gradients "
                f"became non-finite and the member was frozen; {why}.")
    if main == "symmetric":
        extra = (" (ln 2 = 0.693 is the loss of predicting 1/2 for every point)"
                 if abs(e.loss_final - math.log(2)) < 1e-3 else "")
        return (f"Every hidden unit of a layer started identical and stayed identical, so each "
                f"layer acts like a single unit: gradient descent cannot break the symmetry; "
                f"{loss}{extra}.")
    if main == "exploding":
        return (f"The signal explodes: activation variance grows about {g:.3g}x per layer "
                f"(n Var(W) > 1), reaching {e.act_ratio:.3g}x the input's at the last hidden "
                f"layer, and gradients grow as they flow back; {loss}.")
    if main == "vanishing":
        return (f"The signal vanishes: activation variance shrinks to about {g:.3g}x per layer "
                f"(n Var(W) < 1), down to {e.act_ratio:.3g}x the input's at the last hidden "
                f"layer, so the early layers get almost no gradient; {loss}.")
    if main == "saturated":
        return (f"{e.saturated:.0%} of the {e.activation} units start saturated (within 3% of "
                f"their bound), where the derivative is nearly zero, so learning is slow; "
                f"{loss}.")
    if main == "dead":
        return (f"{e.dead:.0%} of the ReLU units are dead (never active on the batch) and pass "
                f"no gradient; {loss}.")
    if main == "stalled":
        return (f"The variance is kept in range ({g:.3g}x per layer) but the loss barely moved: "
                f"{loss}.")
    return (f"Healthy: the activation variance stays in range ({g:.3g}x per layer, "
            f"{e.act_ratio:.3g}x the input's at the last hidden layer) and {loss}.")
