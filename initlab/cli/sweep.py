"""`initlab sweep CONFIG`: run a grid of configs, grouped into populations, resumably."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from initlab.cli.console import DebugOpt, app, err, out, reporting
from initlab.cli.figures import DpiOpt, FormatOpt, LayersOpt, NoPlotsOpt, figure_options

if TYPE_CHECKING:
    from rich.progress import Progress

    from initlab.sweep.execute import Plan

SWEEP_EPILOG = ("Examples: initlab sweep configs/depth_sweep.yaml --dry-run  |  initlab sweep "
                "configs/playground.yaml --grid init.0.scale=0.5,1,2 --grid seed=0,1,2  |  "
                "initlab sweep configs/edge_of_chaos.yaml --backend dask --workers 2")


@app.command(epilog=SWEEP_EPILOG)
def sweep(
    config: Annotated[str, typer.Argument(help="A config, usually with a `sweep:` section.")],
    grid: Annotated[list[str] | None, typer.Option(
        "--grid", help="Add an axis: --grid model.depth=5,10,20 (values parsed as YAML) or "
        "--grid 'init.scale={range: [0.5, 4, 8], log: true}'.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a key of every cell: --set train.epochs=100.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the plan (cells, populations, memory); run nothing.")] = False,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=0, help="Worker processes (default: CPU count; 0: in this process); "
        "with --backend dask and no --address, the local cluster's size.")] = None,
    backend: Annotated[str, typer.Option(
        "--backend", help="local (processes) or dask.")] = "local",
    address: Annotated[str | None, typer.Option(
        "--address", help="A Dask scheduler, tcp://host:port (default: start a local "
        "cluster on 127.0.0.1).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Redo finished cells too.")] = False,
    fail_fast: Annotated[bool, typer.Option(
        "--fail-fast", help="Stop at the first failing cell.")] = False,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Results folder (default: results/<name>/).")] = None,
    cell_plots: Annotated[bool, typer.Option(
        "--cell-plots", help="Draw each cell's own figures too (slower).")] = False,
    max_memory: Annotated[str | None, typer.Option(
        "--max-memory", metavar="SIZE", help="Refuse a sweep whose largest population is "
        "estimated to need more than SIZE (e.g. 2GB) instead of the memory available now.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    formats: FormatOpt = None,
    dpi: DpiOpt = None,
    no_plots: NoPlotsOpt = False,
    layers: LayersOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Run every cell of a grid; cells that differ only in init, seed or lr train together."""
    from initlab import resources
    from initlab.errors import Terminated
    options = figure_options(formats, dpi, no_plots, layers)
    from initlab.resources import format_size
    from initlab.results.folder import OutputError, atomic_write_text, dumps_json, preflight
    from initlab.sweep import execute as sw
    from initlab.sweep import report as sweep_report

    if backend not in ("local", "dask"):
        raise typer.BadParameter(f"{backend!r}; expected local or dask", param_hint="--backend")
    if address and backend != "dask":
        raise typer.BadParameter("needs --backend dask", param_hint="--address")
    command = shlex.join(["initlab", "sweep", *sys.argv[2:]]) if len(sys.argv) > 1 and \
        sys.argv[1] == "sweep" else shlex.join(["initlab", "sweep", config])
    limit = None
    if max_memory is not None:
        try:
            limit = resources.parse_size(max_memory)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--max-memory") from None
    with reporting(debug):
        plan = sw.make_plan(config, grid or (), set_ or ())
        sw.guard(plan, limit)  # every population fits, or nothing runs (exit 2)
        target = out_dir if out_dir is not None else Path("results") / plan.name
        if dry_run:
            _print_plan(plan, target, format_size)
            return
        if backend == "dask" and address:
            sw.check_scheduler(address)
        preflight(target, writer="sweep")  # writable, not a run's folder
        failed = 0
        outcomes: dict[str, sw.Outcome] = {}
        with sw.lock(target):
            atomic_write_text(target / "sweep.yaml", yaml.safe_dump(
                {"command": command, "config": config, "set": list(set_ or ()),
                 "grid": plan.grid_doc()}, sort_keys=False))
            counts: dict[str, Any] = {"done": 0, "failed": 0, "skipped": 0}
            bar = _progress(quiet)
            try:
                with bar:
                    task = bar.add_task(f"sweep {plan.name}", total=len(plan.cells), **counts)
                    t0 = time.perf_counter()
                    for o in sw.run_plan(plan, target, backend=backend, workers=workers,
                                         address=address, force=force, fail_fast=fail_fast,
                                         cell_plots=cell_plots, options=options):
                        outcomes[o.cell.id] = o
                        counts[o.status] += 1
                        bar.update(task, advance=1, refresh=True, **counts)
                        if o.status == "failed":
                            failed += 1
                            err.print(f"cell {o.cell.id} failed: {o.error}", markup=False)
                    elapsed = time.perf_counter() - t0
            except KeyboardInterrupt as e:
                what = "terminated" if isinstance(e, Terminated) else "interrupted"
                err.print(f"{what}: finished cells are kept in {target}/cells; run the same "
                          "command again to do the rest", markup=False)
                raise typer.Exit(143 if isinstance(e, Terminated) else 130) from None
            try:
                atomic_write_text(target / "failures.json", dumps_json(
                    [{"cell": o.cell.id, "values": o.cell.values, "error": o.error}
                     for o in outcomes.values() if o.status == "failed"]))
                table = sweep_report.write_all(target, plan, outcomes, command,
                                               draw=options.plots)
            except OSError as e:
                raise OutputError(f"{target}: cannot write the sweep's tables and report: "
                                  f"{e.strerror or e}; the {counts['done']} finished cells are "
                                  f"kept in {target}/cells; rerun to write the report",
                                  exit_code=1) from None
    if not quiet:
        _print_table(plan, table)
    err.print(f"{counts['done']} done, {counts['failed']} failed, {counts['skipped']} skipped "
              f"in {elapsed:.1f} s; report: {target}/report.html", markup=False)
    if failed:
        raise typer.Exit(1)


def _progress(quiet: bool) -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("done {task.fields[done]} failed {task.fields[failed]} skipped "
                               "{task.fields[skipped]}"), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=err, disable=quiet, transient=True,
                    auto_refresh=False)  # redrawn per cell: no thread, so workers can fork


def _print_plan(plan: Plan, target: Path, format_size: Callable[[float], str]) -> None:
    from initlab.sweep.execute import finished

    done = sum(finished(target / "cells" / c.id) for c in plan.cells)
    axes = ", ".join(f"{a.name} ({len(a.values)})" for a in plan.axes) or "none"
    out.print(f"sweep {plan.name}: {len(plan.cells)} cells ({done} already finished in "
              f"{target}), axes: {axes}", markup=False)
    out.print(f"{len(plan.populations)} population(s):", markup=False)
    total = 0
    for i, p in enumerate(plan.populations, 1):
        cfg = p.config
        mem = p.memory_bytes
        total = max(total, mem or 0)
        w = cfg["model"]["widths"]
        shape = f"{len(w)} x {w[0]}" if len(set(w)) == 1 else str(w)
        out.print(f"  {i}. {len(p.cells)} cells, {p.members} members, hidden {shape} "
                  f"{cfg['model']['activation']['name']}, "
                  f"{cfg['train']['epochs']} epochs, ~{format_size(mem) if mem else '?'}",
                  markup=False)
    out.print(f"largest population needs ~{format_size(total)}; dry run: nothing trained or "
              "written", markup=False)


def column_names(keys: list[str]) -> dict[str, str]:
    """Swept key -> its column's header: the key's last part (model.activation -> activation)
    when no other column has it, so that a table of three axes fits 80 columns without
    breaking words; the caption names the full keys."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: n if n and last.count(n) == 1 and n not in keys else k
            for k, n in zip(keys, last)}


def _print_table(plan: Plan, table: list[dict[str, Any]]) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from initlab.sweep.report import axes_of

    keys = axes_of(plan, [r for r in table if r["status"] == "done"]) or \
        [k for a in plan.axes for k in a.keys]
    axes = [k for k in keys if k != "variant"]
    # the variant column only when it says something the axes do not: several variants in a
    # cell, or labels that differ while init is not one of the shown axes
    labels = {r.get("variant") for r in table if r["status"] == "done"}
    with_variant = "variant" in keys or ("init" not in axes and len(labels) > 1)
    t = Table(title=escape(f"sweep {plan.name}"), box=box.SIMPLE_HEAD, pad_edge=False)
    names = column_names([*axes, *(("variant",) if with_variant else ())])
    for c in names.values():
        t.add_column(escape(c), overflow="fold")
    for c in ("final loss", "diagnosis", "Var ratio"):
        t.add_column(c, no_wrap=True, justify="left" if c == "diagnosis" else "right")
    shown = table if len(table) <= 60 else list(table[:60])

    def f(x: object) -> str:
        return "—" if x is None else f"{x:.3g}" if isinstance(x, float) else str(x)

    for r in shown:
        loss = r["status"]
        if r["status"] == "done":  # no "± 0" for one seed
            loss = f(r.get("final_loss_mean")) + (
                f"±{f(r.get('final_loss_std'))}" if (r.get("seeds") or 0) > 1 else "")
        cells = [f(r.get(k)) for k in axes] + ([f(r.get("variant"))] if with_variant else [])
        t.add_row(*(Text(c) for c in cells), loss, Text(f(r.get("diagnosis"))),
                  f(r.get("var_ratio")))
    caption = "final loss: mean ± sd over seeds; Var ratio: Var(h) of the last hidden layer / " \
        "E[x²] at init (as in `initlab run`)"
    short = [f"{n} = {k}" for k, n in names.items() if n != k]
    if short:
        caption += "; columns: " + ", ".join(short)
    if len(table) > 60:
        caption += f"; first 60 of {len(table)} rows, all in summary.csv"
    t.caption = escape(caption)
    t.caption_justify = "left"
    out.print(t, soft_wrap=False)
