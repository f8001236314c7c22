"""Mean and standard deviation of reported numbers that never raise: huge finite values
(1e300, near the float limit), inf, NaN, None and non-numbers are results, not crashes.

Python's `(x - m) ** 2` raises OverflowError past the float range; here such inputs are
scaled by a power of two first (exact), so the mean and std of finite inputs are finite."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np


def finite_values(values: Iterable[Any] | None) -> list[float]:
    """The finite real numbers among `values` (None, bools, strings, inf and NaN dropped)."""
    if values is None or isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        return []  # a damaged summary's number or string where a list belongs
    out: list[float] = []
    for x in values:
        if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
            continue
        try:
            f = float(x)
        except (OverflowError, ValueError):  # an int beyond the float range
            continue
        if math.isfinite(f):
            out.append(f)
    return out


def mean_std(values: Iterable[Any] | None) -> tuple[float, float]:
    """(mean, population std) of the finite numbers among `values`; (nan, nan) if none.
    Both are finite whenever any value is (the std of finite numbers is at most their largest
    magnitude); ordinary inputs give exactly the plain two-pass sums' numbers."""
    xs = finite_values(values)
    if not xs:
        return math.nan, math.nan
    n = len(xs)
    try:
        m = sum(xs) / n
        sd = math.sqrt(sum((x - m) ** 2 for x in xs) / n)
        if math.isfinite(m) and math.isfinite(sd):
            return m, sd
    except OverflowError:
        pass
    a = np.asarray(xs, np.float64)
    e = int(np.frexp(np.max(np.abs(a)))[1])  # |a| < 2**e
    y = np.ldexp(a, -e)  # exact, |y| < 1
    my = float(np.mean(y))
    sy = float(np.sqrt(np.mean((y - my) ** 2)))
    return float(np.ldexp(my, e)), float(np.ldexp(sy, e))
