"""`initlab theory`: what mean-field theory says about an activation, a config or a plane.

    initlab theory tanh --sigma-w2 2 --sigma-b2 0.05       one point: q*, chi1, c*, xi_q, xi_c,
                                                           phase, trainable depth (6 xi_c)
    initlab theory configs/glorot2010.yaml                 the same for each variant of a config
    initlab theory phase-diagram --activation tanh [--out FILE.png] [--measure]

One command whose first argument is an activation name, a config file (a path ending in .yaml /
.yml or an existing file) or the word `phase-diagram`.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from initlab.cli.console import DebugOpt, app, err, out, preflight_file, reporting
from initlab.errors import BadParameterError

PHASE_DIAGRAM = "phase-diagram"


def _num(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return f"{x:.4g}"


def _check(name: str, value: float, low: float = 0.0) -> float:
    if not math.isfinite(value) or value < low:
        raise BadParameterError("theory", name, f"{name} must be a finite number >= {low}, "
                                f"got {value!r}")
    return value


def _point_rows(p: Any) -> list[tuple[str, str, str]]:
    from initlab.theory.meanfield import CRITICAL_TOL

    return [
        ("q*", _num(p.q_star), "fixed point of the length map (pre-activation variance)"),
        ("chi1", _num(p.chi1), "sigma_w2 E[phi'(sqrt(q*) z)^2]: <1 ordered, >1 chaotic"),
        ("c*", _num(p.c_star), "stable fixed point of the correlation map"),
        ("chi_c", _num(p.chi_c), "slope of the correlation map at c*"),
        ("xi_q", _num(p.xi_q), "depth scale of the length map: -1/log(dq'/dq)"),
        ("xi_c", _num(p.xi_c), "depth scale of correlations: -1/log(chi_c)"),
        ("xi_grad", _num(p.xi_grad), "depth over which gradients vanish/explode: 1/|log chi1|"),
        ("phase", p.phase, f"critical when |chi1 - 1| < {CRITICAL_TOL}"),
        ("trainable depth", _num(p.trainable_depth), "about 6 xi_c (Schoenholz et al. 2017)"),
    ]


def _variant_rows(config: str) -> list[dict[str, Any]]:
    from initlab.api import resolve
    from initlab.config.schema import load_config
    from initlab.experiment import setup
    from initlab.theory.meanfield import analyze, trajectory

    cfg = resolve(load_config(config))
    s = setup(cfg)
    rows = []
    for label, member in zip(s.labels, s.members[:: int(cfg["seeds"])], strict=True):
        sw, sb = layer_sigmas(member.weight, member.bias, s.sizes)
        hidden = sw[1] if len(sw) > 2 else sw[0]  # a hidden-to-hidden layer if there is one
        p = analyze(s.activation, hidden, sb[1] if len(sb) > 2 else sb[0])
        q = trajectory(s.activation, sw, sb, 1.0, len(sw))
        rows.append({"label": label, "sigma_w2": sw, "sigma_b2": sb, "theory": p.as_dict(),
                     "q": q.tolist(), "depth": len(sw)})
    return rows


def layer_sigmas(weight: Any, bias: Any, sizes: list[int]) -> tuple[list[float], list[float]]:
    """sigma_w2[l] = fan_in * E[W[l]^2] and sigma_b2[l] = E[b[l]^2] of an initializer pair,
    from `variance` where the scheme states it, else from a sample (seed 0)."""
    import numpy as np

    rng = np.random.default_rng(0)
    sw, sb = [], []
    for fan_in, fan_out in itertools.pairwise(sizes):
        var = weight.variance(fan_in, fan_out)
        if var is None:
            var = float(np.mean(weight(rng, fan_in, fan_out) ** 2))
        sw.append(fan_in * float(var))
        if bias is None:
            sb.append(0.0)
        else:
            bvar = bias.bias_variance(fan_in, fan_out)
            sb.append(float(bvar) if bvar is not None else
                      float(np.mean(bias.bias(rng, fan_in, fan_out) ** 2)))
    return sw, sb


def _range(v: list[float]) -> str:
    lo, hi = min(v), max(v)
    return _num(lo) if math.isclose(lo, hi, rel_tol=1e-9) else f"{_num(lo)}–{_num(hi)}"


@app.command()
def theory(
    target: Annotated[str, typer.Argument(
        help="An activation name (tanh, relu, erf, ...), a config file, or 'phase-diagram'.")],
    sigma_w2: Annotated[float, typer.Option(
        "--sigma-w2", help="sigma_w^2 = fan_in * Var(W).")] = 1.0,
    sigma_b2: Annotated[float, typer.Option("--sigma-b2", help="sigma_b^2 = Var(b).")] = 0.0,
    activation: Annotated[str | None, typer.Option(
        "--activation", help="phase-diagram: the activation (default tanh).")] = None,
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="phase-diagram: the PNG to write (default phase_<activation>.png).")] = None,
    measure: Annotated[bool, typer.Option(
        "--measure", help="phase-diagram: overlay depth scales measured in simulated nets.")]
        = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
        = False,
    debug: DebugOpt = False,
) -> None:
    """Mean-field signal propagation: fixed points, chi1, depth scales, phase, trainable depth.

    initlab theory tanh --sigma-w2 2 --sigma-b2 0.05  |  initlab theory CONFIG.yaml  |
    initlab theory phase-diagram --activation tanh --out phase.png --measure
    """
    from initlab.nn.activations import get_activation
    from initlab.theory.meanfield import analyze

    with reporting(debug):
        if target == PHASE_DIAGRAM:
            from initlab.report.theory_plots import save_phase_diagram

            act = get_activation(activation or "tanh")
            path = preflight_file(out_file or Path(f"phase_{act.name}.png"))  # before drawing
            written = save_phase_diagram(act, path, measure=measure)
            err.print(f"phase diagram: {written}")
            return
        if target.endswith((".yaml", ".yml")) or Path(target).is_file():
            from initlab.cli.theory_residual import is_residual, residual_theory

            if is_residual(target):
                residual_theory(target, as_json)
                return
            rows = _variant_rows(target)
            if as_json:
                out.print_json(json.dumps(rows, default=str).replace("Infinity", "null")
                               .replace("NaN", "null"))
                return
            header = ("variant", "σ_w²", "σ_b²", "q*", "χ₁", "c*", "ξ_q", "ξ_c", "phase",
                      "trainable depth", "depth")
            cells = [[r["label"], _range(r["sigma_w2"]), _range(r["sigma_b2"]),
                      *(_num(r["theory"][k]) for k in ("q_star", "chi1", "c_star", "xi_q",
                                                       "xi_c")),
                      r["theory"]["phase"], _num(r["theory"]["trainable_depth"]),
                      str(r["depth"])] for r in rows]
            t = Table(title=f"mean-field theory per variant of {target}")
            for i, col in enumerate(header):
                t.add_column(col, justify="left" if col in ("variant", "phase") else "right",
                             no_wrap=True,
                             min_width=max(len(col), *(len(c[i]) for c in cells)))
            for c in cells:
                t.add_row(*(escape(x) for x in c))
            out.print(t)
            err.print("σ_w² = fan_in·Var(W) per layer; the theory columns use a hidden-to-hidden "
                      "layer's σ_w² and σ_b².")
            return
        act = get_activation(target)
        _check("--sigma-w2", sigma_w2)
        _check("--sigma-b2", sigma_b2)
        if sigma_w2 == 0:
            raise BadParameterError("theory", "--sigma-w2", "--sigma-w2 must be > 0")
        p = analyze(act, sigma_w2, sigma_b2)
        if as_json:
            out.print_json(json.dumps({k: (v if not isinstance(v, float) or math.isfinite(v)
                                           else None) for k, v in p.as_dict().items()}))
            return
        t = Table(title=f"{act.name}: σ_w² = {_num(sigma_w2)}, σ_b² = {_num(sigma_b2)}")
        for col in ("quantity", "value", "meaning"):
            t.add_column(col, justify="right" if col == "value" else "left")
        for row in _point_rows(p):
            t.add_row(*(escape(c) for c in row))
        out.print(t)

