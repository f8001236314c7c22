"""What training did, per seed, and paired comparisons between variants (pure, no I/O).

Measured on each member's loss curve (one point per optimizer step for full-batch training,
one per epoch for minibatch training, each at the optimizer step it was taken):

    steps_to_drop    the first optimizer step at which the loss is at most DROP_FRAC (90%) of its
                     value at init; None if never (or if the loss at init is not finite and > 0)
    final_loss_tail  the mean loss over the last TAIL_FRAC (10%) of the optimizer steps (at least
                     the last point); NaN if one of those losses is not finite. A noisy last step
                     is not a result.
    delayed (seed)   the loss stayed within 10% of its init value for more than DELAY_FRAC (20%)
                     of training and then fell to at most 90% of it (Saxe et al.'s plateaus);
                     judged on curves of at least DELAY_MIN_POINTS (10) points only: a minibatch
                     run of a few epochs has one point per epoch, too coarse for a plateau

Per variant, `median_steps` and `median_tail` are the medians over seeds (a seed that never
dropped counts as never, so the median is None when at least half never dropped; tails over the
finite seeds).

Paired comparisons: every variant draws its weights from the same random numbers per seed
(common random numbers), so seed s of variant A and seed s of the reference form a pair.
`compare` gives the mean of the per-seed differences of final_loss_tail, its 95% confidence
interval from the paired t distribution over the seeds whose both tails are finite, and the
number of seeds where the variant's tail is lower ("wins"; a non-finite tail loses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

DROP_FRAC = 0.9  # steps_to_drop: loss <= 90% of the loss at init
TAIL_FRAC = 0.1  # final_loss_tail: the last 10% of the steps
DELAY_FRAC = 0.2  # delayed: no drop in the first 20% of the steps
PLATEAU_BAND = 0.1  # "within 10% of the init value"
DELAY_MIN_POINTS = 10  # a curve of fewer points (a few epochs) cannot show a plateau
METRIC = "final_loss_tail"


def steps_to_drop(loss: np.ndarray, steps: np.ndarray) -> int | None:
    """The first step (of `steps`) whose loss is <= DROP_FRAC x loss[0]; None if never."""
    loss = np.asarray(loss, dtype=float)
    if loss.size < 2 or not (math.isfinite(loss[0]) and loss[0] > 0):
        return None
    with np.errstate(invalid="ignore"):
        hit = np.flatnonzero(np.isfinite(loss[1:]) & (loss[1:] <= DROP_FRAC * loss[0]))
    return int(steps[1 + hit[0]]) if hit.size else None


def final_loss_tail(loss: np.ndarray, steps: np.ndarray) -> float:
    """Mean of the losses at steps >= (1 - TAIL_FRAC) x the last step (at least the last one);
    NaN if any of them is not finite."""
    loss, steps = np.asarray(loss, dtype=float), np.asarray(steps)
    if loss.size == 0:
        return math.nan
    tail = loss[steps >= (1 - TAIL_FRAC) * steps[-1]]
    tail = tail if tail.size else loss[-1:]
    return float(tail.mean()) if np.isfinite(tail).all() else math.nan


def delayed(loss: np.ndarray, steps: np.ndarray) -> bool:
    """The loss stayed within PLATEAU_BAND of its init value for more than DELAY_FRAC of the
    steps, then fell to at most DROP_FRAC of it."""
    drop = steps_to_drop(loss, steps)
    if len(steps) < DELAY_MIN_POINTS or drop is None or drop <= DELAY_FRAC * int(steps[-1]):
        return False
    loss = np.asarray(loss, dtype=float)
    before = loss[np.asarray(steps) < drop]
    return bool(np.isfinite(before).all() and (before <= (1 + PLATEAU_BAND) * loss[0]).all())


def median_steps(values: Sequence[int | None]) -> float | None:
    """Median over seeds, a seed that never dropped counting as never (None if the median is)."""
    if not values:
        return None
    x = float(np.median([math.inf if v is None else float(v) for v in values]))
    return x if math.isfinite(x) else None


def median_finite(values: Sequence[float | None]) -> float | None:
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.median(xs)) if xs else None


def per_seed(loss: np.ndarray, steps: np.ndarray) -> dict[str, list[Any]]:
    """steps_to_drop, final_loss_tail and delayed of each member: loss is (T, seeds)."""
    cols = [np.asarray(loss)[:, j] for j in range(np.asarray(loss).shape[1])]
    return {"steps_to_drop": [steps_to_drop(c, steps) for c in cols],
            "final_loss_tail": [final_loss_tail(c, steps) for c in cols],
            "delayed": [delayed(c, steps) for c in cols]}


def _t975(df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def compare(values: Sequence[float | None], reference: Sequence[float | None]
            ) -> dict[str, Any]:
    """Paired comparison of per-seed values (lower is better) against a reference's:
    mean_diff (values - reference, over seeds where both are finite), ci95 [lo, hi] (paired t;
    None below two pairs), wins (seeds where the value is lower; a non-finite value loses, a
    finite one beats a non-finite reference), pairs (seeds used for the mean)."""
    def num(x: float | None) -> float:
        return math.nan if x is None else float(x)

    a = np.array([num(x) for x in values])
    b = np.array([num(x) for x in reference])
    both = np.isfinite(a) & np.isfinite(b)
    d = a[both] - b[both]
    n = int(d.size)
    mean = float(d.mean()) if n else None
    ci: list[float | None] = [None, None]
    if n >= 2:
        half = _t975(n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
        ci = [float(mean) - half, float(mean) + half]  # type: ignore[arg-type]
    a_key = np.where(np.isfinite(a), a, math.inf)
    b_key = np.where(np.isfinite(b), b, math.inf)
    wins = int(np.sum(a_key < b_key))
    return {"mean_diff": mean, "ci95": ci, "wins": wins, "pairs": n, "seeds": int(a.size)}


def comparisons(variants: Sequence[dict[str, Any]], metric: str = METRIC) -> list[dict[str, Any]]:
    """One paired comparison per variant against the first (the reference), on `metric`."""
    if len(variants) < 2:
        return []
    ref = variants[0]
    return [{"variant": v["label"], "reference": ref["label"], "metric": metric,
             **compare(v.get(metric) or [], ref.get(metric) or [])} for v in variants[1:]]
