"""`initlab coordcheck CONFIG --widths 64,128,256`: the coordinate check of a config's variants."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from initlab.cli.console import DebugOpt, app, err, out, reporting

EPILOG = ("Examples: initlab coordcheck configs/coordcheck.yaml  |  initlab coordcheck "
          "configs/coordcheck.yaml --widths 64,128,256 --steps 3 --workers 2")


def parse_widths(text: str) -> list[int]:
    """'64,128,256' -> [64, 128, 256] (at least two distinct widths >= 1)."""
    try:
        widths = [int(w) for w in text.replace(" ", "").split(",") if w]
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected comma-separated integers, e.g. "
                                 "64,128,256", param_hint="--widths") from None
    if len(set(widths)) < 2 or min(widths) < 1:
        raise typer.BadParameter(f"{text!r}: expected at least two distinct widths >= 1",
                                 param_hint="--widths")
    return widths


@app.command(epilog=EPILOG)
def coordcheck(
    config: Annotated[str, typer.Argument(help="A config (model: depth + width), usually with a "
                                               "`coordcheck:` section.")],
    widths: Annotated[str | None, typer.Option(
        "--widths", help="Comma-separated widths, e.g. 64,128,256,512,1024 (default: the "
        "config's coordcheck.widths).")] = None,
    steps: Annotated[int | None, typer.Option(
        "--steps", min=1, help="Forward passes t = 0..steps-1, an update between each "
        "(default: coordcheck.steps, else 3).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a config key: --set train.lr=0.001.")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Results folder (default: results/<name>-coordcheck/).")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=0, help="Worker processes (default: CPU count; 0: in this process); "
        "with --backend dask and no --address, the local cluster's size.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="local (processes) or dask.")] = "local",
    address: Annotated[str | None, typer.Option(
        "--address", help="A Dask scheduler, tcp://host:port.")] = None,
    debug: DebugOpt = False,
) -> None:
    """Train every width a few steps; record how each layer's mean |h| scales with width."""
    from initlab.sweep.coordcheck import coordcheck_plan, run_coordcheck, summary

    if backend not in ("local", "dask"):
        raise typer.BadParameter(f"{backend!r}; expected local or dask", param_hint="--backend")
    if address and backend != "dask":
        raise typer.BadParameter("needs --backend dask", param_hint="--address")
    given = parse_widths(widths) if widths is not None else None
    command = shlex.join(["initlab", "coordcheck", *sys.argv[2:]]) if len(sys.argv) > 1 and \
        sys.argv[1] == "coordcheck" else shlex.join(["initlab", "coordcheck", config])
    with reporting(debug):
        from initlab.report.coordcheck import write_outputs

        plan = coordcheck_plan(config, set_ or (), given, steps)
        target = out_dir if out_dir is not None else \
            Path("results") / f"{plan.config['name']}-coordcheck"
        err.print(f"coordcheck {plan.config['name']}: widths {plan.widths}, {plan.steps} "
                  f"steps, {len(plan.config['init'])} variant(s) x {plan.config['seeds']} "
                  "seed(s)", markup=False)
        cc = run_coordcheck(plan.config, plan.widths, plan.steps, backend=backend,
                            workers=workers, address=address)
        doc = summary(cc, str(plan.config["name"]), command)
        write_outputs(target, cc, doc, command, {**plan.config, "expect": plan.expect})
    for v in doc["variants"]:
        slopes = ", ".join(f"t={t}: {x:+.2f}" if x is not None else f"t={t}: —"
                           for t, x in enumerate(v["max_abs_slope"]))
        out.print(f"{v['label']:>12} ({v['parametrization']}): largest |slope| {slopes}",
                  markup=False)
    err.print(f"done in {cc.seconds:.1f} s; report: {target}/report.md", markup=False)
