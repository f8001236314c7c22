"""Name what happened to a variant, and say it in one plain sentence: the state of the network
at init and what training did with it.

Thresholds (documented in the README's "Diagnoses and their thresholds"; "ratio" is act_ratio,
Var(h) of the last hidden layer over the input's mean square E[x^2], at init, averaged over
seeds; "grad ratio" is Var(dL/dz) of the first layer over the last layer, at init; the loss
measures are those of initlab.outcomes):

    diverged    some seed's loss or gradients became non-finite (the member was frozen)
    symmetric   every hidden layer's units are still identical at the end (never broken)
    delayed     more than half the seeds sat on a plateau: the loss stayed within 10% of its
                init value for more than 20% of the steps, then fell below 90% of it
    exploding   ratio > 1e2, or grad ratio > 1e4
    vanishing   ratio < 1e-2, or grad ratio < 1e-4
    saturated   more than half the hidden units of a saturating activation sit within 3% of
                the bound at init (|tanh| > 0.97)
    dead        more than half the hidden ReLU units never fire on the batch at the end
    stalled     training ran but the loss at the end (median over seeds of final_loss_tail /
                the loss at init) is above 90% of the loss at init
    healthy     none of the above

Borderline: the ratio thresholds (1e2, 1e-2, 1e4, 1e-4) have a band of a factor BAND = 2 on
either side. A ratio inside the band (e.g. 0.005 <= ratio < 0.02 for vanishing) does not set
the diagnosis; it is listed in `borderline` and the sentence says so. Widths, seeds and fan
conventions move these ratios by such factors (lecun 0.0118 and xavier 0.0097 on the same
32-wide layers), so a sharp cut would flip the label on noise. The loss thresholds are not
banded: they are fractions of the loss and of training, measured on the outcome itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from initlab import outcomes

ORDER = ("diverged", "symmetric", "delayed", "exploding", "vanishing", "saturated", "dead",
         "stalled", "healthy")
EXPLODE_RATIO, VANISH_RATIO = 1e2, 1e-2
EXPLODE_GRAD, VANISH_GRAD = 1e4, 1e-4
SATURATED_FRAC, DEAD_FRAC, STALL_FRAC = 0.5, 0.5, 0.9
BAND = 2.0  # borderline: within a factor BAND of a ratio threshold


@dataclass(frozen=True)
class Evidence:
    """Numbers of one variant over its seeds (init state: means; outcomes: medians)."""

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
    loss_init: float  # mean over seeds
    loss_final: float  # mean over seeds of final_loss
    epochs: int
    steps: int = 0  # optimizer steps trained
    steps_to_drop: float | None = None  # median over seeds (initlab.outcomes)
    loss_tail: float = math.nan  # median over finite seeds of final_loss_tail
    tail_over_init: float = math.nan  # median over seeds of final_loss_tail / loss at init
    delayed_seeds: int = 0


def _side(x: float, low: float, high: float) -> tuple[str, float] | None:
    """(diagnosis, threshold) if x is past one of the thresholds or within a factor BAND of it;
    the diagnosis is prefixed 'near ' inside the band."""
    if math.isnan(x):
        return None
    if x < low * BAND:
        return ("vanishing" if x < low / BAND else "near vanishing"), low
    if x > high / BAND:
        return ("exploding" if x > high * BAND else "near exploding"), high
    return None


def _signal(e: Evidence) -> list[tuple[str, str, float, float]]:
    """(diagnosis or 'near ' diagnosis, quantity, value, threshold) of the two ratios."""
    out = []
    for what, x, low, high in (("ratio", e.act_ratio, VANISH_RATIO, EXPLODE_RATIO),
                               ("gradient ratio", e.grad_ratio, VANISH_GRAD, EXPLODE_GRAD)):
        side = _side(x, low, high)
        if side is not None:
            out.append((side[0], what, x, side[1]))
    return out


def _near(e: Evidence) -> list[tuple[str, str, float, float]]:
    clear = {d for d, *_ in _signal(e) if not d.startswith("near ")}
    return [(d[5:], w, x, t) for d, w, x, t in _signal(e)
            if d.startswith("near ") and d[5:] not in clear]


def borderline(e: Evidence) -> list[str]:
    """Diagnoses whose ratio lies within a factor BAND of its threshold: not set, but said."""
    return list(dict.fromkeys(d for d, *_ in _near(e)))


def diagnose(e: Evidence) -> list[str]:
    """Every diagnosis that applies, most important first (ORDER); ["healthy"] if none."""
    found = set()
    if e.n_diverged:
        found.add("diverged")
    if e.symmetric:
        found.add("symmetric")
    if e.steps > 0 and 2 * e.delayed_seeds > e.seeds:
        found.add("delayed")
    found |= {d for d, *_ in _signal(e) if not d.startswith("near ")}
    if e.saturated > SATURATED_FRAC:
        found.add("saturated")
    if e.dead > DEAD_FRAC:
        found.add("dead")
    if e.steps > 0 and math.isfinite(e.tail_over_init) and e.tail_over_init > STALL_FRAC:
        found.add("stalled")
    return [d for d in ORDER if d in found] or ["healthy"]


# ---------------------------------------------------------------- the sentence


def _g(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


def _best(e: Evidence, peers: Sequence[Evidence]) -> Evidence | None:
    """The other variant with the lowest finite loss_tail."""
    others = [p for p in peers if p.label != e.label and math.isfinite(p.loss_tail)]
    return min(others, key=lambda p: p.loss_tail) if others else None


SAME_LOSS = 1.1  # a loss within 10% of the best variant's is "about the same"; beyond, a ratio


def _against(e: Evidence, peers: Sequence[Evidence]) -> str:
    """', about the same as appropriate's 0.007' (within SAME_LOSS), ', 1.2x appropriate's
    0.00687' and the like ('' without a comparison)."""
    best = _best(e, peers)
    if best is None or not math.isfinite(e.loss_tail):
        return ""
    if e.loss_tail <= best.loss_tail:
        return ", the lowest of all variants"
    if e.loss_tail <= SAME_LOSS * best.loss_tail:
        return f", about the same as {best.label}'s {_g(best.loss_tail)}"
    times = e.loss_tail / best.loss_tail
    return f", {times:.0f}x {best.label}'s {_g(best.loss_tail)}" if times >= 10 else \
        f", {times:.2g}x {best.label}'s {_g(best.loss_tail)}"


def training(e: Evidence, peers: Sequence[Evidence] = ()) -> str:
    """What training did, in words (the second half of the sentence)."""
    init = _g(e.loss_init)
    if e.steps == 0:
        return f"the loss at init is {init} (no training)"
    if not math.isfinite(e.loss_tail):
        return f"the loss went from {init} to a non-finite value"
    end = f"ended at {_g(e.loss_tail)} (mean of the last 10% of steps){_against(e, peers)}"
    if e.steps_to_drop is None:
        return (f"the loss never fell below 90% of its init value {init} in {e.steps} steps "
                f"(median over seeds) and {end}")
    if 2 * e.delayed_seeds > e.seeds:
        best = _best(e, peers)
        ref = f"; {best.label}: {best.steps_to_drop:g}" if best is not None and \
            best.steps_to_drop is not None else ""
        return (f"training waited {e.steps_to_drop:g} of {e.steps} steps on a plateau at "
                f"{init} (median over seeds{ref}), then the loss fell and {end}")
    return (f"the loss fell below 90% of its init value {init} by step {e.steps_to_drop:g} "
            f"(median over seeds) and {end}")


def _state(e: Evidence, found: Sequence[str]) -> str:
    """The signal at init, in words."""
    g, r = e.per_layer_gain, e.act_ratio
    where = f"{_g(r)}x the input's at the last hidden layer"
    if "exploding" in found:
        return (f"activation variance grows about {_g(g)}x per layer at init (n Var(W) > 1), "
                f"reaching {where}")
    if "vanishing" in found:
        grad = f", and the first layer's gradients are {_g(e.grad_ratio)}x the last's" \
            if e.grad_ratio < VANISH_GRAD else ""
        return (f"activation variance shrinks to about {_g(g)}x per layer at init "
                f"(n Var(W) < 1), down to {where}{grad}")
    if "saturated" in found:
        return (f"{e.saturated:.0%} of the {e.activation} units start saturated (within 3% of "
                f"their bound), where the derivative is nearly zero")
    return f"the activation variance stays in range at init ({_g(g)}x per layer, {where})"


def _borderline(e: Evidence) -> str:
    parts = [f"borderline {d}: the {what} {_g(x)} is within a factor {BAND:g} of the {t:g} "
             "threshold" for d, what, x, t in _near(e)]
    return " (" + "; ".join(parts) + ")" if parts else ""


def sentence(e: Evidence, found: list[str], peers: Sequence[Evidence] = ()) -> str:
    """One plain-language sentence per variant: the state at init and what training did.
    `peers` (every variant's Evidence) lets it compare the outcome with the best other one."""
    main = found[0]
    train = training(e, peers)
    near = _borderline(e)
    if main == "diverged":
        step = f" (first at step {e.first_diverged_step})" if e.first_diverged_step is not None \
            else ""
        grow = f"activations grow about {e.per_layer_gain:.3g}x per layer at init" \
            if e.per_layer_gain > 1.5 else ""
        if e.steps == 0:  # no optimizer step was taken (epochs: 0): no step can be to blame
            return (f"{e.n_diverged} of {e.seeds} seeds diverged{step}: the loss or gradients "
                    "were already non-finite at init, before any optimizer step"
                    + (f"; {grow}" if grow else "") + ".")
        why = grow or "the steps were too large for this start"
        return (f"{e.n_diverged} of {e.seeds} seeds diverged{step}: the loss or gradients "
                f"became non-finite and the member was frozen; {why}.")
    if main == "symmetric":
        extra = (" (ln 2 = 0.693 is the loss of predicting 1/2 for every point)"
                 if abs(e.loss_final - math.log(2)) < 1e-3 else "")
        return (f"Every hidden unit of a layer started identical and stayed identical, so each "
                f"layer acts like a single unit: gradient descent cannot break the symmetry"
                f"{extra}; {train}.")
    if main == "delayed":
        return f"Delayed: {_state(e, found)}{near}; {train}."
    if main == "exploding":
        return (f"The signal explodes: {_state(e, found)}, and gradients grow as they flow "
                f"back; {train}.")
    if main == "vanishing":
        return (f"The signal vanishes: {_state(e, found)}, so the early layers get almost no "
                f"gradient; {train}.")
    if main == "saturated":
        state = _state(e, found)
        return f"{state[0].upper()}{state[1:]}, so learning is slow{near}; {train}."
    if main == "dead":
        return (f"{e.dead:.0%} of the ReLU units are dead (never active on the batch) and pass "
                f"no gradient{near}; {train}.")
    if main == "stalled":
        return f"Stalled: {_state(e, found)}{near}, but the loss barely moved: {train}."
    return f"Healthy: {_state(e, found)}{near}; {train}."


# ---------------------------------------------------------------- a summary's variants

_OWN = ("label", "activation")  # the variant's and the summary's own keys, not evidence


def evidence_dict(e: Evidence) -> dict[str, Any]:
    """The numbers a diagnosis reads, as summary.json's `evidence` of a variant."""
    return {k: v for k, v in asdict(e).items() if k not in _OWN}


def evidence_of(summary: dict[str, Any], variant: dict[str, Any]) -> Evidence:
    """A variant's Evidence back from its summary entry (null ratios are the infinities that
    json_safe wrote as null; other nulls are NaN)."""
    kw = dict(variant["evidence"])
    for f in fields(Evidence):
        if f.name in kw and kw[f.name] is None and f.type in ("float", "float | None"):
            if f.name in ("act_ratio", "grad_ratio"):
                kw[f.name] = math.inf
            elif f.type == "float":
                kw[f.name] = math.nan
    return Evidence(label=str(variant["label"]), activation=str(summary.get("activation")), **kw)


def describe(summary: dict[str, Any]) -> None:
    """Set every variant's diagnosis, diagnoses, borderline and sentence (which compares it with
    the other variants of this summary) and the summary's paired `comparisons`, in place. A
    sweep calls it again on each cell's part of a population."""
    variants = [v for v in summary.get("variants", []) if "evidence" in v]
    evidence = [evidence_of(summary, v) for v in variants]
    for v, e in zip(variants, evidence):
        found = diagnose(e)
        v.update(diagnosis=found[0], diagnoses=found, borderline=borderline(e),
                 sentence=sentence(e, found, evidence))
    summary["comparisons"] = outcomes.comparisons(summary.get("variants", []))
