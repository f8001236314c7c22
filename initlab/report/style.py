"""What every output shares without drawing: the variant colours and the compact number format.

No matplotlib here: the Markdown and HTML reports, and `initlab run --no-plots`, use these
without paying matplotlib's import (half a second at every start).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from initlab.results.folder import Result

DPI = 110  # figures' default resolution
MAX_PIXELS = 4000  # every written image is at most this many pixels wide and tall
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
             "#F0E442")  # yellow last: it is hard to see on white
# matplotlib's tab10 ("tab:blue" ... "tab:cyan"), for variants 9 and up
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
         "#7f7f7f", "#bcbd22", "#17becf")


def fmt(x: object) -> str:
    """Compact number: 3 significant digits; '—' for None/NaN; ints as they are."""
    if x is None:
        return "—"
    if isinstance(x, bool | int | np.integer):
        return str(int(x))
    try:
        value = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(x)
    return "—" if math.isnan(value) else f"{value:.3g}"


def labels_of(result: Result) -> list[str]:
    return [str(v["label"]) for v in result.summary.get("variants", [])]


def palette(labels: Sequence[str]) -> dict[str, str]:
    """Label -> colour, by position: Okabe-Ito first, then tab10 for variants 9 and up."""
    colours = OKABE_ITO + TAB10
    return {label: colours[i % len(colours)] for i, label in enumerate(labels)}
