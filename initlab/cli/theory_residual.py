"""`initlab theory CONFIG` for residual configs: per variant, the stream's predicted growth
per block and Var(x_L) / Var(x_0) (theory.residual.stream_profile from the schemes' variances),
beside the same net with alpha = 1/sqrt(L) (bounded: e q_0 for ReLU, He, m = 1)."""

from __future__ import annotations

import json
import math
from typing import Any

from rich.markup import escape
from rich.table import Table

from initlab.cli.console import err, out


def is_residual(config: str) -> bool:
    from initlab.config.schema import load_config

    return load_config(config).model.residual is not None


def _num(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{x:.4g}"


def residual_rows(config: str) -> list[dict[str, Any]]:
    from initlab.api import resolve
    from initlab.config.schema import load_config
    from initlab.experiment import setup
    from initlab.experiment_residual import _members, scheme_profile
    from initlab.nn.residual import member_alpha
    from initlab.theory.residual import growth_per_block

    cfg = resolve(load_config(config))
    s = setup(cfg)
    L = len(s.sizes) - 2
    rows = []
    for v, label in enumerate(s.labels):
        alpha, trained = member_alpha(_members(s)[v * int(cfg["seeds"])])
        q = scheme_profile(s, v)
        q_scaled = scheme_profile(s, v, 1 / math.sqrt(L))
        rows.append({"label": label, "blocks": L, "alpha": alpha, "alpha_trained": trained,
                     "growth_per_block": growth_per_block(q), "stream_ratio": float(q[L] / q[0]),
                     "stream_ratio_alpha_1_over_sqrt_L": float(q_scaled[L] / q_scaled[0]),
                     "q": q.tolist()})
    return rows


def residual_theory(config: str, as_json: bool) -> None:
    rows = residual_rows(config)
    if as_json:
        out.print_json(json.dumps(rows).replace("Infinity", "null").replace("NaN", "null"))
        return
    t = Table(title=f"residual stream theory per variant of {config}")
    header = ("variant", "blocks", "alpha", "growth per block", "Var(x_L) / Var(x_0)",
              "with alpha = 1/sqrt(L)")
    for col in header:
        t.add_column(col, justify="left" if col == "variant" else "right", no_wrap=True)
    for r in rows:
        t.add_row(escape(r["label"]), str(r["blocks"]),
                  _num(r["alpha"]) + (" (trained)" if r["alpha_trained"] else ""),
                  _num(r["growth_per_block"]), _num(r["stream_ratio"]),
                  _num(r["stream_ratio_alpha_1_over_sqrt_L"]))
    out.print(t)
    err.print("q_l = q_{l-1} + alpha^2 B(q) without a norm, + alpha^2 B(1) with a pre-norm, 1 "
              "after a post-norm (docs/residual.md); alpha = 1/sqrt(L) keeps a no-norm ReLU "
              "He stream bounded: (1 + 1/L)^L -> e for one layer per branch.")
