"""Which layers a result keeps where the depth must not set its size (pure; no drawing).

A net's layer axis has n entries (weight layers, the last one the output; a residual net's
input projection, blocks and readout). Three sets of them, every one bounded whatever n:

- `chosen_layers`: the histogram layers (the first, 1/4, 1/2, 3/4 and last hidden layer by
  default; `measure.layers` / `--layers` choose up to MAX_LAYERS).
- `recorded_layers`: the layers whose histograms training records (arrays hist_h / hist_dz,
  their layer numbers in `hist_layers`): every layer of a net with at most HIST_ALL, else the
  chosen ones. The per-layer statistics (stat_*) keep every layer.
- `summary_layers`: the rows of summary.json's `layers` / `layers_final` (and of what is drawn
  from them): every layer of a net with at most SUMMARY_LAYERS, else SUMMARY_LAYERS spread
  evenly over the depth (the first and the last included) plus the chosen ones. variance.csv
  and arrays.npz keep every layer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

DEFAULT_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
MAX_LAYERS = 12  # histogram columns at most (measure.layers, --layers)
HIST_ALL = 16  # nets with at most this many layers record every layer's histograms
SUMMARY_LAYERS = 100  # rows per variant in summary.json's layers / layers_final at most (+ chosen)


def default_layers(n: int) -> list[int]:
    """1-based layers 1, ~n/4, ~n/2, ~3n/4 and n (each once): a few spread over the depth."""
    return sorted({math.floor(1 + (n - 1) * f + 0.5) for f in DEFAULT_FRACTIONS}) if n \
        else []


def chosen_layers(n_layers: int, requested: Iterable[int] | None = None) -> list[int]:
    """0-based indices into the layer axis (L weight layers, the last one the output) of the
    layers to draw: `requested` (1-based, those in 1..L, at most MAX_LAYERS) or, without it,
    `default_layers` of the hidden layers (all L when there is only one layer)."""
    if requested:
        keep = sorted({int(l) for l in requested if 1 <= int(l) <= n_layers})
        if keep:
            return [l - 1 for l in keep[:MAX_LAYERS]]
    hidden = n_layers - 1 if n_layers > 1 else n_layers
    return [l - 1 for l in default_layers(hidden)]


def even(n: int, k: int) -> np.ndarray:
    """At most k indices of range(n), evenly spread, first and last included."""
    if n <= 0 or k <= 0:
        return np.zeros(0, dtype=int)
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int))


def recorded_layers(n_layers: int, requested: Iterable[int] | None = None) -> list[int]:
    """0-based layers whose histograms are recorded: all up to HIST_ALL layers, else
    chosen_layers(n_layers, requested)."""
    if n_layers <= HIST_ALL:
        return list(range(n_layers))
    return chosen_layers(n_layers, requested)


def summary_layers(n_layers: int, requested: Iterable[int] | None = None) -> list[int]:
    """0-based rows of summary.json's per-layer lists: all up to SUMMARY_LAYERS layers, else
    SUMMARY_LAYERS evenly spread (first and last included) and chosen_layers(n, requested)."""
    if n_layers <= SUMMARY_LAYERS:
        return list(range(n_layers))
    return sorted({*even(n_layers, SUMMARY_LAYERS).tolist(),
                   *chosen_layers(n_layers, requested)})


def config_layers(cfg: Mapping[str, Any]) -> list[int] | None:
    """measure.layers of a resolved config (1-based), or None."""
    wanted = (cfg.get("measure") or {}).get("layers")
    return [int(l) for l in wanted] if wanted else None


def hist_layer_numbers(arrays: Mapping[str, Any]) -> list[int]:
    """1-based layer numbers of hist_h's layer axis: `hist_layers`, or every layer (results
    written before histograms were recorded for chosen layers only)."""
    if "hist_layers" in arrays:
        return [int(l) for l in np.asarray(arrays["hist_layers"]).ravel()]
    if "hist_h" not in arrays:
        return []
    return list(range(1, int(np.asarray(arrays["hist_h"]).shape[2]) + 1))


def hist_columns(arrays: Mapping[str, Any], n_layers: int,
                 requested: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """(0-based layer, position in hist_h's layer axis) of the histograms to draw: the chosen
    layers that were recorded, else every recorded chosen-by-default one (a request for layers
    that were not recorded draws the recorded ones)."""
    recorded = {l - 1: i for i, l in enumerate(hist_layer_numbers(arrays))}
    cols = [(l, recorded[l]) for l in chosen_layers(n_layers, requested) if l in recorded]
    if cols:
        return cols
    cols = [(l, recorded[l]) for l in chosen_layers(n_layers) if l in recorded]
    return cols or sorted(recorded.items())[:MAX_LAYERS]


def network_text(sizes: Sequence[int] | None) -> str:
    """Layer sizes with runs of equal hidden widths compressed: [2, 32 x 50, 1] ->
    "2 → 32 × 50 → 1"; [2, 6, 3, 1] -> "2 → 6 → 3 → 1"."""
    if not sizes:
        return "—"
    sizes = list(sizes)
    parts = [str(sizes[0])]
    hidden = sizes[1:-1]
    i = 0
    while i < len(hidden):
        j = i
        while j < len(hidden) and hidden[j] == hidden[i]:
            j += 1
        parts.append(f"{hidden[i]} × {j - i}" if j - i > 2 else
                     " → ".join(str(w) for w in hidden[i:j]))
        i = j
    if len(sizes) > 1:
        parts.append(str(sizes[-1]))
    return " → ".join(parts)
