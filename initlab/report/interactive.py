"""The interactive part of report.html: the article's figures 1 and 2 as a page you scrub.

`payload(result)` packs the recorded statistics into a compact JSON object (numbers rounded to
4 significant digits, histograms and decision-boundary frames as base64 uint8); `section(result)`
returns an HTML fragment — the payload in a `<script type="application/json">`, plain CSS and a
hand-written script that draws on canvases. No library, no network: the page works offline.

What the page shows, for the step chosen with the slider (or play/pause):
  - per variant (toggle buttons, like the article's init buttons, each with a thumbnail of its
    decision boundary): the decision boundary with the data (2-D binary data only, frames from
    `boundary_frames`), per-layer histograms of h and of log10 |dL/dz| (`hist_h`, `hist_dz`);
  - for every variant: Var(h) and Var(dL/dz) against depth with the theory line
    (`theory_act_var`), and the loss curves (mean over seeds, min–max band) with a cursor.

Sizes (measured, see docs/report.md): configs/playground.yaml adds ~0.8 MB to report.html,
configs/mnist.yaml ~50 kB.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np

from initlab.report.axes import requested_layers
from initlab.report.style import labels_of, palette
from initlab.results.folder import Result, loss_steps
from initlab.results.layers import hist_columns

MAX_STEPS = 300  # recorded steps kept for the slider (evenly subsampled beyond this)
MIN_STEPS = 12  # ... and at least this many, whatever the budgets below say
MAX_PAGE_LAYERS = 200  # layers of the variance curves (evenly subsampled beyond this)
VAR_NUMBERS = 60_000  # numbers of the variance curves (Var(h) and Var(dL/dz)), all steps
HIST_BYTES = 300_000  # bytes of the histograms (before base64), all steps
MAX_FRAME_BYTES = 250_000  # bytes of the decision-boundary frames (before base64)
MAX_POINTS = 2000  # data points drawn on the boundary
MAX_LOSS_POINTS = 400
DIGITS = 4  # significant digits of every float in the payload


def _round(x: Any, digits: int = DIGITS) -> Any:
    """Nested lists of floats rounded to `digits` significant digits; non-finite -> None."""
    a = np.asarray(x, dtype=float)
    if a.ndim == 0:
        v = float(a)
        return float(f"{v:.{digits}g}") if math.isfinite(v) else None
    return [_round(row, digits) for row in a]


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=np.uint8).tobytes()).decode("ascii")


def _even(n: int, k: int) -> np.ndarray:
    """At most k indices of range(n), evenly spread, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int)) if n else \
        np.zeros(0, dtype=int)


def _hist_u8(h: np.ndarray, member_variant: np.ndarray, V: int) -> np.ndarray:
    """(R, M, L, bins) counts -> (R, V, L, bins) uint8: summed over a variant's seeds, scaled
    so that each histogram's tallest inner bin is 255. The end bins hold the clipped values
    (log10 |dL/dz| of dead units is -inf): they may be taller and are cut at 255."""
    h = np.asarray(h, dtype=float)
    out = np.stack([h[:, member_variant == v].sum(axis=1) for v in range(V)], axis=1)
    inner = out[..., 1:-1] if out.shape[-1] > 2 else out
    top = inner.max(axis=-1, keepdims=True)
    top = np.where(top > 0, top, out.max(axis=-1, keepdims=True))
    with np.errstate(all="ignore"):
        q = np.where(top > 0, np.round(np.minimum(out / np.where(top > 0, top, 1), 1) * 255), 0)
    return q.astype(np.uint8)


def _variant_mean(a: np.ndarray, member_variant: np.ndarray, V: int) -> np.ndarray:
    """(R, M, L) -> (R, V, L): mean over each variant's finite seeds (NaN if none)."""
    a = np.asarray(a, dtype=float)
    out = np.full((a.shape[0], V, a.shape[2]), np.nan)
    for v in range(V):
        part = a[:, member_variant == v]
        ok = np.isfinite(part)
        n = ok.sum(axis=1)
        with np.errstate(all="ignore"):
            out[:, v] = np.where(n > 0, np.where(ok, part, 0).sum(axis=1) / np.maximum(n, 1),
                                 np.nan)
    return out


def _loss(result: Result, member_variant: np.ndarray, V: int) -> dict[str, Any]:
    a = result.arrays
    loss = np.asarray(a["loss"], dtype=float)  # (E+1, M)
    idx = _even(loss.shape[0], MAX_LOSS_POINTS)
    steps = loss_steps(result)[0][idx]
    mean, lo, hi = [], [], []
    for v in range(V):
        part = loss[idx][:, member_variant == v]
        ok = np.isfinite(part)
        n = ok.sum(axis=1)
        with np.errstate(all="ignore"):
            m = np.where(n > 0, np.where(ok, part, 0).sum(axis=1) / np.maximum(n, 1), np.nan)
            mean.append(_round(m))
            lo.append(_round(np.where(n > 0, np.where(ok, part, np.inf).min(axis=1), np.nan)))
            hi.append(_round(np.where(n > 0, np.where(ok, part, -np.inf).max(axis=1), np.nan)))
    diverged = [[int(d) if d is not None else None for d in (v.get("diverged_step") or [])]
                for v in result.summary.get("variants", [])]
    return {"steps": _round(steps, 6), "mean": mean, "lo": lo, "hi": hi, "diverged": diverged}


def page_budget(R: int, V: int, L: int, k: int, bins: int) -> tuple[int, int]:
    """(steps, layers) the page keeps of R recorded steps and L layers (V variants, k chosen
    histogram layers, `bins` bins): at most MAX_STEPS steps and MAX_PAGE_LAYERS layers, and
    few enough steps that the variance curves hold at most VAR_NUMBERS numbers and the
    histograms at most HIST_BYTES bytes (so that report.html stays under 3 MB at any depth)."""
    layers = min(L, MAX_PAGE_LAYERS)
    per_step_var = max(2 * V * layers, 1)
    per_step_hist = max(2 * V * k * bins, 1)
    steps = min(R, MAX_STEPS, max(MIN_STEPS, VAR_NUMBERS // per_step_var,),
                max(MIN_STEPS, HIST_BYTES // per_step_hist))
    return max(min(steps, R), 1), layers


def payload(result: Result, layers: Sequence[int] | None = None) -> dict[str, Any] | None:
    """The page's data, or None when the result has no recorded statistics. Deep or long runs
    are subsampled (`page_budget`): evenly spread steps and layers (first and last kept),
    histograms of the chosen layers only (`layers`, measure.layers or the default spread),
    at most MAX_FRAME_BYTES of decision-boundary frames."""
    a = result.arrays
    need = ("loss", "stat_steps", "stat_act_var", "member_variant")
    labels = labels_of(result)
    if not labels or any(k not in a for k in need):
        return None
    V = len(labels)
    mv = np.asarray(a["member_variant"])
    L = int(a["stat_act_var"].shape[-1])
    picked = hist_columns(a, L, requested_layers(result, layers)) if "hist_h" in a else []
    hist_layers, hist_at = [l for l, _ in picked], [i for _, i in picked]
    bins = int(np.asarray(a["hist_h"]).shape[-1]) if "hist_h" in a else 0
    n_steps, n_layers = page_budget(len(a["stat_steps"]), V, L, len(hist_layers), bins)
    keep = _even(len(a["stat_steps"]), n_steps)
    var_layers = _even(L, n_layers)
    sizes = result.summary.get("sizes") or []
    colours = palette(labels)

    def var(key: str) -> Any:
        return _round(_variant_mean(np.asarray(a[key])[keep][:, :, var_layers], mv, V))

    out: dict[str, Any] = {
        "name": str(result.summary.get("name") or ""),
        "labels": labels, "colours": [colours[x] for x in labels],
        "activation": str(result.summary.get("activation") or ""),
        "steps": [int(s) for s in np.asarray(a["stat_steps"])[keep]],
        "layers": [int(l + 1) for l in hist_layers],
        "var_layers": [int(l + 1) for l in var_layers], "depth": L,
        "widths": [int(sizes[l + 1]) if l + 1 < len(sizes) else None for l in var_layers],
        "loss": _loss(result, mv, V),
        "var": {
            "act": var("stat_act_var"),
            "grad": var("stat_grad_var") if "stat_grad_var" in a else None,
            "theory": _round(np.asarray(a["theory_act_var"])[:, var_layers])
            if "theory_act_var" in a else None,
        },
        "diagnosis": [str(v.get("diagnosis", "")) for v in result.summary.get("variants", [])],
    }
    for key in ("h", "dz"):
        if f"hist_{key}" in a and f"hist_{key}_edges" in a:
            h = np.asarray(a[f"hist_{key}"])[keep][:, :, hist_at]
            out[f"hist_{key}"] = {"edges": _round(a[f"hist_{key}_edges"]),
                                  "shape": [len(keep), V, len(hist_layers), int(h.shape[-1])],
                                  "data": _b64(_hist_u8(h, mv, V))}
    if "boundary_frames" in a and "data_x" in a:
        frames = np.asarray(a["boundary_frames"])  # (F, V, G, G) uint8, 255 = not finite
        per_frame = max(int(np.prod(frames.shape[1:])), 1)
        pick = _even(len(frames), max(2, MAX_FRAME_BYTES // per_frame))
        frames = frames[pick]
        grid = np.asarray(a["boundary_frames_grid"], dtype=float)
        out["boundary"] = {"steps": [int(s) for s in np.asarray(a["boundary_steps"])[pick]],
                           "shape": list(frames.shape), "lo": float(grid[0]),
                           "hi": float(grid[-1]), "data": _b64(frames)}
        x = np.asarray(a["data_x"], dtype=float)
        points = _even(len(x), MAX_POINTS)
        out["data"] = {"x": _round(x[points], 3),
                       "y": [int(y > 0.5) for y in np.asarray(a["data_y"], dtype=float)[points]]}
    return out


def _script_json(obj: Any) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' characters (escaped as \\u003c...)."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def section(result: Result, layers: Sequence[int] | None = None) -> str:
    """The interactive section of report.html ('' when the result has nothing to animate);
    `layers`: the histograms' layers (1-based; default measure.layers or a spread)."""
    data = payload(result, layers)
    if data is None:
        return ""
    has_boundary = "boundary" in data
    boundary = ('<figure class="ip-panel"><figcaption id="ip-bcap">Decision boundary: '
                'P(class 1) over the data, first seed (▲ class 1, ● class 0)</figcaption>'
                '<canvas id="ip-boundary" width="300" height="300" role="img" '
                'aria-labelledby="ip-bcap"></canvas></figure>') if has_boundary else ""
    return f"""<section id="interactive" aria-labelledby="ip-title">
<h2 id="ip-title">Watch it train</h2>
<p class="ip-help">Pick an initialization, then press play or drag the slider (arrow keys work
on the slider) to move through the recorded steps.</p>
<div class="ip-variants" role="group" aria-label="Initialization variant" id="ip-variants"></div>
<div class="ip-controls">
<button type="button" id="ip-play" aria-pressed="false">▶ Play</button>
<label for="ip-slider">Step</label>
<input type="range" id="ip-slider" min="0" max="0" value="0" step="1">
<output id="ip-step" for="ip-slider" aria-live="polite">step 0</output>
</div>
<div class="ip-grid">
{boundary}
<figure class="ip-panel"><figcaption id="ip-lcap">Loss (mean over seeds, band min–max);
the line marks the current step</figcaption>
<canvas id="ip-loss" width="420" height="300" role="img" aria-labelledby="ip-lcap"></canvas>
</figure>
<figure class="ip-panel"><figcaption id="ip-vcap">Variance by layer at this step: Var(h)
(solid), theory at init (dashed), Var(dL/dz) (right)</figcaption>
<canvas id="ip-var" width="420" height="300" role="img" aria-labelledby="ip-vcap"></canvas>
</figure>
</div>
<figure class="ip-panel ip-wide"><figcaption id="ip-hcap">Histograms of the chosen layers at this
step (seeds pooled, each scaled to its tallest inner bin; the end bins hold clipped values):
activations h (left), log10 |dL/dz| (right)
</figcaption>
<canvas id="ip-hist" width="860" height="300" role="img" aria-labelledby="ip-hcap"></canvas>
</figure>
<p id="ip-status" class="ip-status"></p>
<script type="application/json" id="ip-data">{_script_json(data)}</script>
<script>{SCRIPT}</script>
</section>"""


# The page's style and script are plain files beside this module (package data), so editors and
# linters see them as CSS and JavaScript.
CSS = "\n" + resources.files("initlab.report").joinpath("interactive.css").read_text("utf-8")
SCRIPT = "\n" + resources.files("initlab.report").joinpath("interactive.js").read_text("utf-8")
