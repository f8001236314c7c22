"""report.md and report.html of a Result.

The HTML page is self-contained (images as base64 data URIs, inline CSS, no external resource)
and every string that came from the config or the summary goes through `html.escape`.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from initlab.report import interactive
from initlab.report.axes import chosen_layers, requested_layers
from initlab.report.style import fmt, labels_of, palette
from initlab.results.folder import Result, config_yaml
from initlab.results.layers import network_text
from initlab.results.numbers import finite_values
from initlab.results.numbers import mean_std as finite_mean_std

CAPTIONS = {
    "loss.png": "Training loss per variant (mean over seeds, band min–max, × = diverged).",
    "variance.png": "Per-layer activation and back-propagated gradient variance: init (solid), "
                    "end (faint), theory (dashed).",
    "variance_steps.png": "log10 Var(h) and log10 Var(dL/dz) of every layer over training, one "
                          "image per variant (grey: 0 or not finite).",
    "histograms.png": "Activation histograms of the chosen layers (the article's figure 2, "
                      "Glorot & Bengio's figure 6).",
    "gradients.png": "Histograms of log10 |dL/dz| of the chosen layers (Glorot & Bengio's "
                     "figure 7).",
    "decision_boundary.png": "P(class 1) over the data's extent with the data (the article's "
                             "figure 1).",
    "signal_propagation.png": "Signal propagation at init (Brock et al. 2021): average channel "
                              "squared mean and variance per layer.",
    "residual.png": "Residual stream: Var(x_l) and the branch's Var(f_l) against block l at "
                    "init (solid), end (faint) and theory (dashed); learned alphas.",
}
BADGE = {"healthy": "#009E73", "symmetric": "#CC79A7", "vanishing": "#0072B2",
         "exploding": "#D55E00", "saturated": "#E69F00", "dead": "#555555",
         "diverged": "#B2182B", "stalled": "#8C6D1F", "delayed": "#56B4E9",
         "identity_at_init": "#56B4E9", "branch_downscaled": "#009E73"}


# ---------------------------------------------------------------- numbers shared by both

def mean_std(values: Any) -> str:
    """'0.123 ± 0.01' over the finite values (just the mean for one value; '—' for none)."""
    xs = finite_values(values)
    if not xs:
        return "—"
    mean, std = finite_mean_std(xs)
    if len(xs) == 1:
        return fmt(mean)
    if std <= 1e-12 * max(abs(mean), 1e-300):
        std = 0.0  # float noise of identical values
    return f"{fmt(mean)} ± {fmt(std)}"


MAX_FLAGS = 6  # theory flags written out per variant in the reports
MAX_LSUV = 24  # LSUV rescalings written out per seed


_FLAG = re.compile(r"layer (\d+): measured/theory = (\S+) \((.*)\)$")


def _layer_runs(layers: list[int], most: int = 4) -> str:
    """[17, 19, 20, 21, 30] -> 'layers 17, 19-21, 30' (at most `most` runs, then 'and N more')."""
    runs: list[list[int]] = []
    for layer in sorted(layers):
        if runs and layer == runs[-1][1] + 1:
            runs[-1][1] = layer
        else:
            runs.append([layer, layer])
    text = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:most]]
    rest = sum(b - a + 1 for a, b in runs[most:])
    return ("layer " if len(layers) == 1 else "layers ") + ", ".join(text) + \
        (f" and {rest} more" if rest else "")


def _flags_text(v: dict) -> str:
    """' Theory and measurement part ways: ...' from a variant's theory_flags ('' if none):
    one clause per reason, its layers as runs and the range of measured/theory, so that a deep
    net's dozens of flags read as a sentence (summary.json keeps every flag)."""
    flags = [str(f) for f in v.get("theory_flags") or []]
    groups: dict[str, list[tuple[int, float]]] = {}
    other: list[str] = []
    for flag in flags:
        m = _FLAG.match(flag)
        try:
            layer, ratio = int(m.group(1)), float(m.group(2))  # type: ignore[union-attr]
        except (AttributeError, ValueError):  # not in theory_flags' form: as it is
            other.append(flag)
            continue
        groups.setdefault(m.group(3), []).append((layer, ratio))  # type: ignore[union-attr]
    parts = []
    for why, seen in groups.items():
        lo, hi = (f"{x:.3g}" for x in (min(r for _, r in seen), max(r for _, r in seen)))
        parts.append(f"{_layer_runs([n for n, _ in seen])}, measured/theory "
                     f"{lo if lo == hi else f'{lo} to {hi}'} ({why})")
    if len(other) > MAX_FLAGS:
        other = [*other[:MAX_FLAGS], f"and {len(other) - MAX_FLAGS} more (summary.json)"]
    parts += other
    return f" Theory and measurement part ways: {'; '.join(parts)}." if parts else ""


def _lsuv_text(v: dict) -> str:
    """' LSUV per layer, scale factor (rescalings): seed 0: ×1.42 (2), ×0.981 (1); ...' from a
    variant's lsuv_scales and lsuv_iters (results written before lsuv_scales: the rescalings)."""
    per_seed = v.get("lsuv_iters")
    if not per_seed:
        return ""
    seeds = v.get("seeds") or list(range(len(per_seed)))

    def listed(items: list[str]) -> str:  # a deep net's: the first layers, then the count
        head = ", ".join(items[:MAX_LSUV])
        return head if len(items) <= MAX_LSUV else f"{head}, ... ({len(items)} layers)"

    scales = v.get("lsuv_scales")
    if not scales or len(scales) != len(per_seed):
        parts = [f"seed {s}: {listed([str(i) for i in its])}" for s, its in zip(seeds, per_seed)]
        return f" LSUV rescalings per layer: {'; '.join(parts)}."
    parts = [f"seed {s}: " + listed([f"×{fmt(f)} ({i})" for f, i in zip(fs, its)])
             for s, fs, its in zip(seeds, scales, per_seed)]
    return f" LSUV per layer, scale factor (rescalings): {'; '.join(parts)}."


def _diverged(v: dict) -> str:
    flags = v.get("diverged") or []
    return f"{sum(bool(f) for f in flags)}/{len(flags)}"


def _accuracy(v: dict) -> str:
    text = mean_std(v.get("final_accuracy"))
    if v.get("test_accuracy"):
        text += f" (test {mean_std(v['test_accuracy'])})"
    return text


def scheme_text(v: dict) -> str:
    """'normal(std=0.1), lr 0.1' from a variant's resolved scheme spec and learning rate."""
    spec = v.get("scheme")
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("scheme", None) or spec.pop("name", None) or "?"
        params = ", ".join(f"{k}={fmt(x) if isinstance(x, float) else x}"
                           for k, x in spec.items() if k != "label")
        text = f"{name}({params})" if params else str(name)
    else:
        text = str(spec if spec is not None else "—")
    return f"{text}, lr {fmt(v['lr'])}" if v.get("lr") is not None else text


def _diagnosis(v: dict) -> str:
    near = v.get("borderline") or []
    return str(v.get("diagnosis", "—")) + "".join(f" (borderline {d})" for d in near)


def results_rows(result: Result) -> list[list[str]]:
    """Variant, init, final loss, accuracy, diverged k/n, the medians of final_loss_tail and
    steps_to_drop, diagnosis (plain strings, unescaped)."""
    return [[str(v.get("label", "")), scheme_text(v), mean_std(v.get("final_loss")),
             _accuracy(v), _diverged(v), fmt(v.get("final_loss_tail_median")),
             _drop(v), _diagnosis(v)]
            for v in result.summary.get("variants", [])]


def _drop(v: dict) -> str:
    if "steps_to_drop" not in v:
        return "—"
    x = v.get("steps_to_drop_median")
    return "never" if x is None else fmt(x)


RESULTS_HEADER = ["variant", "init", "final loss (finite seeds, mean ± std)", "accuracy",
                  "diverged", "loss, last 10% of steps (median)", "steps to drop (median)",
                  "diagnosis"]
COMPARISON_HEADER = ["variant", "reference", "mean difference", "95% CI (paired t)", "wins"]
MIN_SEEDS_COMPARED = 3  # the comparison table needs at least 3 seeds (a t interval on 2 is wide)


def comparison_rows(result: Result) -> list[list[str]]:
    """One row per entry of summary.json's `comparisons` (empty below MIN_SEEDS_COMPARED)."""
    s = result.summary
    if int(s.get("seeds") or 0) < MIN_SEEDS_COMPARED:
        return []
    rows = []
    for c in s.get("comparisons") or []:
        lo, hi = (c.get("ci95") or [None, None])[:2]
        ci = f"[{fmt(lo)}, {fmt(hi)}]" if lo is not None and hi is not None else "—"
        rows.append([str(c.get("variant", "")), str(c.get("reference", "")),
                     fmt(c.get("mean_diff")), ci, f"{c.get('wins', 0)}/{c.get('seeds', 0)}"])
    return rows


def comparison_intro(result: Result) -> str:
    c = (result.summary.get("comparisons") or [{}])[0]
    return (f"Paired over seeds (every variant sees the same random numbers per seed): "
            f"{c.get('metric', 'final_loss_tail')} of each variant minus {c.get('reference')}'s; "
            f"wins = seeds where it is lower.")
VARIANCE_HEADER = ["variant", "layer", "width", "Var(h) init", "theory", "Var(h) / theory",
                   "Var(h) end", "Var(dL/dz) init", "Var(dL/dz) end"]


TABLE_LAYERS = 12  # deeper nets: the variance table lists the chosen layers only


def table_layers(result: Result, layers: Sequence[int] | None = None) -> list[int] | None:
    """1-based layers of the variance table: every layer up to TABLE_LAYERS layers, else the
    chosen ones (`layers`, measure.layers, or the first, 1/4, 1/2, 3/4 and last hidden layer
    plus the output); None means all."""
    variants = result.summary.get("variants") or [{}]
    rows = variants[0].get("layers") or []  # every layer, or a deep net's listed ones
    L = max((int(r.get("layer") or 0) for r in rows), default=0)
    if L <= TABLE_LAYERS and not layers:
        return None
    picked = [l + 1 for l in chosen_layers(L, requested_layers(result, layers))]
    return sorted({*picked, L})


def variance_rows(result: Result, layers: Sequence[int] | None = None) -> list[list[str]]:
    """Per variant and layer (all, or `layers`, 1-based): act_var at init vs theory, at the
    end, and grad_var."""
    rows = []
    keep = set(layers) if layers else None
    for v in result.summary.get("variants", []):
        finals = {row.get("layer"): row for row in v.get("layers_final") or []}
        for row in v.get("layers") or []:
            if keep is not None and row.get("layer") not in keep:
                continue
            end = finals.get(row.get("layer"), {})
            act, theory = row.get("act_var"), row.get("act_var_theory")
            ratio = act / theory if isinstance(act, int | float) and theory else None
            rows.append([str(v.get("label", "")), fmt(row.get("layer")), fmt(row.get("width")),
                         fmt(act), fmt(theory), fmt(ratio), fmt(end.get("act_var")),
                         fmt(row.get("grad_var")), fmt(end.get("grad_var"))])
    return rows


def _facts(result: Result) -> list[tuple[str, str]]:
    s = result.summary
    sizes = s.get("sizes")
    return [("task", str(s.get("task", "—"))),
            ("network", network_text(sizes)),
            ("activation", str(s.get("activation", "—"))), ("loss", str(s.get("loss", "—"))),
            ("optimizer", str(s.get("optimizer", "—"))),
            ("epochs / steps", f"{fmt(s.get('epochs'))} / {fmt(s.get('steps'))}"),
            ("seeds", fmt(s.get("seeds"))), ("dtype", str(s.get("dtype", "—"))),
            ("wall time", f"{fmt(s.get('wall_time_s'))} s"),
            ("config hash", str(s.get("config_hash", "—")))]


def _title(result: Result) -> str:
    return f"initlab — {result.summary.get('name') or result.config.get('name') or 'results'}"


def _config_yaml(result: Result) -> str:
    return config_yaml(result.config)


# ---------------------------------------------------------------- markdown

def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _caption(name: str | Path) -> str:
    key = Path(name).stem + ".png"
    return CAPTIONS.get(key, Path(name).name)


def _layers_note(shown: list[int] | None, end: str = "") -> list[str]:
    if shown is None:
        return []
    return [f"Layers {', '.join(map(str, shown))} (all layers: variance.csv)."
            + end]


def render_markdown(result: Result, images: Sequence[str],
                    layers: Sequence[int] | None = None) -> str:
    """The report as Markdown; `images` are figure file names relative to the report;
    `layers` (1-based) chooses the rows of a deep net's variance table."""
    out = [f"# {_title(result)}", ""]
    out += [f"- **{k}**: {_md_cell(v)}" for k, v in _facts(result)] + [""]
    out += ["## What happened", ""]
    for v in result.summary.get("variants", []):
        out.append(f"- **{_md_cell(str(v.get('label', '')))}** "
                   f"[{_md_cell(str(v.get('diagnosis', '—')))}]: "
                   f"{_md_cell(str(v.get('sentence', '')) + _flags_text(v) + _lsuv_text(v))}")
    out += ["", "## Results", "", *_md_table(RESULTS_HEADER, results_rows(result)), ""]
    if comparison_rows(result):
        out += ["## Paired comparisons", "", comparison_intro(result), "",
                *_md_table(COMPARISON_HEADER, comparison_rows(result)), ""]
    shown = table_layers(result, layers)
    out += ["## Variance per layer (mean over seeds)", "", *_layers_note(shown, "\n"),
            *_md_table(VARIANCE_HEADER, variance_rows(result, shown)), ""]
    if images:
        out += ["## Plots", ""]
        for name in images:
            caption = _caption(name)
            out += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    out += ["## Resolved config", "", "```yaml", _config_yaml(result).rstrip(), "```", ""]
    return "\n".join(out)


# ---------------------------------------------------------------- HTML

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1180px;
margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.1em 1em;color:#444}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}
th,td{padding:.25em .7em;border-bottom:1px solid #e5e5e5;text-align:right}
th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.4em;
vertical-align:baseline}
.badge{display:inline-block;padding:0 .5em;border-radius:.7em;color:#fff;font-size:.82em;
font-weight:600;margin:0 .4em}
ul.story li{margin:.3em 0}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:.85em}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _badge(diagnosis: object) -> str:
    colour = BADGE.get(str(diagnosis).split(" ")[0], "#777777")
    return f'<span class="badge" style="background:{colour}">{_e(diagnosis)}</span>'


def _swatch(colour: str) -> str:
    return f'<span class="swatch" style="background:{colour}"></span>'


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                colours: dict[str, str], badge_col: int | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = _e(cell)
            if i == 0:
                text = _swatch(colours.get(cell, "#777777")) + text
            elif i == badge_col:
                text = _badge(cell)
            cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


MIME = {".png": "image/png", ".svg": "image/svg+xml"}


def _img(image: str | Path | tuple[str, bytes]) -> str:
    name, raw = image if isinstance(image, tuple) else (str(image), Path(image).read_bytes())
    data = base64.b64encode(raw).decode("ascii")
    caption = _caption(name)
    mime = MIME.get(Path(name).suffix, "image/png")
    return (f'<figure><img src="data:{mime};base64,{data}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def render_html(result: Result, images: Sequence[str | Path | tuple[str, bytes]], *,
                layers: Sequence[int] | None = None) -> str:
    """A self-contained HTML page: facts, one sentence per variant, tables, plots (embedded
    PNG or SVG: files, or (file name, bytes)), config. `layers` (1-based) chooses the
    histogram layers of the interactive part and the rows of a deep net's variance table."""
    shown = table_layers(result, layers)
    colours = palette(labels_of(result))
    facts = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in _facts(result))
    story = "".join(
        f"<li>{_swatch(colours.get(str(v.get('label')), '#777777'))}"
        f"<strong>{_e(v.get('label', ''))}</strong>{_badge(v.get('diagnosis', '—'))}"
        f"{_e(str(v.get('sentence', '')) + _flags_text(v) + _lsuv_text(v))}</li>"
        for v in result.summary.get("variants", []))
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(_title(result))}</title><style>{CSS}{interactive.CSS}</style></head><body>",
        f"<h1>{_e(_title(result))}</h1>", f'<dl class="facts">{facts}</dl>',
        f'<h2>What happened</h2><ul class="story">{story}</ul>',
        interactive.section(result, layers),
        "<h2>Results</h2>", _html_table(RESULTS_HEADER, results_rows(result), colours, 7),
        *([f"<h2>Paired comparisons</h2><p>{_e(comparison_intro(result))}</p>",
           _html_table(COMPARISON_HEADER, comparison_rows(result), colours)]
          if comparison_rows(result) else []),
        "<h2>Variance per layer (mean over seeds)</h2>",
        *(f"<p>{_e(t)}</p>" for t in _layers_note(shown)),
        _html_table(VARIANCE_HEADER, variance_rows(result, shown), colours),
    ]
    if images:
        parts += ["<h2>Plots</h2>", *(_img(p) for p in images)]
    parts += ["<h2>Resolved config</h2>", f"<pre>{_e(_config_yaml(result))}</pre>",
              "</body></html>", ""]
    return "\n".join(parts)
