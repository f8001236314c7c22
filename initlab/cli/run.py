"""The core commands: `run`, `validate`, `list`, `report`. Thin: parse, call, render."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from initlab.cli.console import (
    DebugOpt,
    app,
    comparison_table,
    err,
    out,
    reporting,
    say,
    summary_table,
)
from initlab.cli.figures import DpiOpt, FormatOpt, LayersOpt, NoPlotsOpt, figure_options
from initlab.errors import InitlabError, suggest


@app.command()
def run(
    config: Annotated[str, typer.Argument(help="The experiment's YAML config.")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a config key: --set train.lr=0.01 (value parsed as YAML).")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Results folder (default: results/<name>/).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Validate, resolve and print the plan (members, sizes, steps, memory "
        "estimate); train nothing, write nothing.")] = False,
    max_memory: Annotated[str | None, typer.Option(
        "--max-memory", metavar="SIZE", help="Refuse configs estimated to need more than SIZE "
        "(e.g. 2GB, 512MB) instead of the memory available now.")] = None,
    animate: Annotated[bool, typer.Option(
        "--animate", help="Also write training.gif (decision boundaries or histograms over "
                          "training, with the loss).")] = False,
    workers: Annotated[str, typer.Option(
        "--workers", metavar="N|auto", help="Processes that train the population, each a "
        "contiguous chunk of members, then draw the figures; the same results whatever N. "
        "auto: training in one unless the population is large and its nets narrow, figures "
        "on every core (README, 'Every core').")] = "auto",
    formats: FormatOpt = None,
    dpi: DpiOpt = None,
    no_plots: NoPlotsOpt = False,
    layers: LayersOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Train every init variant x seed of CONFIG as one population; write results/<name>/."""

    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from initlab import resources
    from initlab.api import resolve
    from initlab.cli.progress import PlainProgress
    from initlab.config.schema import load_config
    from initlab.parallel import cores, parse_workers, run_parallel
    from initlab.report.render import write_result
    from initlab.results.folder import OutputError, json_safe, preflight

    try:
        n_workers = parse_workers(workers)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--workers") from None
    limit = None
    if max_memory is not None:
        try:
            limit = resources.parse_size(max_memory)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--max-memory") from None
    options = dataclasses.replace(figure_options(formats, dpi, no_plots, layers),
                                  workers=cores() if n_workers == "auto" else int(n_workers))
    with reporting(debug):
        cfg = load_config(config, overrides=set_ or ())
        resolved = resolve(cfg)
        members = len(resolved["init"]) * int(resolved["seeds"])
        plan = resources.guard(resolved, limit, source=config,
                               overridden=[o.split("=", 1)[0].strip() for o in set_ or ()],
                               processes=min(options.workers, max(8, members)))
        if dry_run:
            for line in plan.lines():
                out.print(line, markup=False)
            out.print("dry run: nothing trained or written", markup=False)
            return
        target = out_dir if out_dir is not None else Path("results") / resolved["name"]
        preflight(target)  # writable, not a sweep's folder: refused now, not after training
        # refreshed from the progress callback, not by a thread of its own: worker processes
        # then start by fork (milliseconds) instead of a forkserver (initlab.sweep.execute.executor)
        # stderr not a terminal (CI logs, nohup): plain lines every ~10% or 10 s instead
        plain = None if quiet or err.is_terminal else PlainProgress(
            f"training {resolved['name']}", lambda line: err.print(line, markup=False,
                                                                   highlight=False))
        bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                       TextColumn("{task.completed}/{task.total} steps"), TimeRemainingColumn(),
                       console=err, disable=quiet or plain is not None, transient=True,
                       auto_refresh=False)
        with bar:
            task = bar.add_task(f"training {resolved['name']}", total=plan.steps)
            shown = [0.0]

            def progress(step: int, total: int) -> None:
                bar.update(task, completed=step, total=total)
                if time.monotonic() - shown[0] > 0.1 or step >= total:
                    shown[0] = time.monotonic()
                    bar.refresh()
                if plain is not None:
                    plain(step, total)

            result = run_parallel(resolved, n_workers, progress)
        result.summary = json_safe(result.summary)
        if plain is not None:
            plain.line("writing figures and reports")
        started = time.perf_counter()
        try:
            written = write_result(result, target, animate=animate, options=options)
        except OSError as e:
            raise OutputError(f"{target}: cannot write the results: {e.strerror or e}; they "
                              "were not kept (an earlier result there is intact)") from None
        if plain is not None:
            plain.line(f"wrote the results in {time.perf_counter() - started:.1f} s")
    if not quiet:
        show_summary(result.summary)
    ok = True
    if cfg.expect:  # checked after writing: the results stay, the exit code says what failed
        from initlab.cli.check import report_expectations

        ok = report_expectations(cfg.expect, result.summary, config, quiet)
    err.print(f"results: {written}/report.html", markup=False)
    if not ok:
        raise typer.Exit(1)


def show_summary(summary: dict) -> None:
    """The table, the paired comparisons (seeds >= 3) and one sentence per variant."""
    out.print(summary_table(summary), soft_wrap=False)
    comparisons = comparison_table(summary)
    if comparisons is not None:
        out.print(comparisons, soft_wrap=False)
    for v in summary["variants"]:
        say(str(v["label"]), str(v["sentence"]))


@app.command()
def validate(
    configs: Annotated[list[str], typer.Argument(help="Config files to check.")],
    debug: DebugOpt = False,
) -> None:
    """Check configs without running them: every problem, with FILE:LINE:COL."""
    from initlab.api import resolve
    from initlab.config.schema import load_config
    from initlab.data import datasets

    failed = False
    for path in configs:
        try:
            with reporting(debug):
                cfg = resolve(load_config(path))
                members = len(cfg["init"]) * int(cfg["seeds"])
                extra = datasets.needs(str(cfg["data"]["name"]))
                if extra is not None and not extra[2]:
                    err.print(f"{path}: data.name: '{cfg['data']['name']}' needs {extra[0]}, "
                              f"which is not installed; pip install '{extra[1]}'", markup=False)
                    raise typer.Exit(2)
                note = f" (data '{cfg['data']['name']}' uses {extra[0]}, from {extra[1]})" \
                    if extra is not None else ""
                _check_data(cfg, path)
                note += _sweep_note(path)
                out.print(f"ok {path}: {len(cfg['init'])} variants x {cfg['seeds']} seeds = "
                          f"{members} members{note}", markup=False)
        except typer.Exit:
            failed = True
    if failed:
        raise typer.Exit(2)


def _check_data(cfg: dict, path: str) -> None:
    """The data parameters and the loss checked as `run` checks them (ConfigError at `path`),
    when the data set is cheap to make here; a large one is left to run's memory guard."""
    from initlab import resources

    with contextlib.suppress(resources.ResourceError):
        resources.data_shape(cfg, path, resources.BASE_BYTES + resources.GENERATION_CHECKED, ())


def _sweep_note(path: str) -> str:
    """'; sweep: N cells' after every cell of the config's `sweep:` section was checked as
    `initlab sweep` checks it (ConfigError, positioned), '' without one."""
    from initlab.sweep.plan import _strip_section, make_plan

    if _strip_section(path)[1] is None:
        return ""
    plan = make_plan(path)
    return f"; sweep: {len(plan.cells)} cells"


KINDS = ("inits", "activations", "datasets", "losses", "optimizers")


@app.command("list")
def list_(
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(KINDS)}.")] = "inits",
) -> None:
    """List what a config can name, with one-line descriptions and formulas."""
    from initlab.data import datasets as data
    from initlab.nn import activations, inits, losses, optim

    registries = {"inits": inits.INITS, "activations": activations.ACTIVATIONS,
                  "datasets": data.DATASETS, "losses": losses.LOSSES,
                  "optimizers": optim.OPTIMIZERS}
    if kind not in registries:
        hint = suggest(kind, KINDS)
        err.print(f"error: unknown kind {kind!r}; expected one of: {', '.join(KINDS)}"
                  + (f"; did you mean '{hint}'?" if hint else ""), markup=False)
        raise typer.Exit(2)
    t = Table(title=kind)
    for col in ("name", "aliases", "description", "formula"):
        t.add_column(col)
    for e in registries[kind]:  # formulas hold brackets ("[a, b]"): text, never markup
        t.add_row(*(Text(str(x)) for x in (e.name, ", ".join(e.aliases), e.description,
                                             e.formula)))
    out.print(t)


@app.command()
def report(
    results_dir: Annotated[Path, typer.Argument(help="A results folder written by `run`.")],
    formats: FormatOpt = None,
    dpi: DpiOpt = None,
    no_plots: NoPlotsOpt = False,
    layers: LayersOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Re-render plots and reports from the stored numbers, without retraining."""
    from initlab.parallel import cores
    from initlab.report.render import write_result
    from initlab.results.folder import load_result
    from initlab.results.shape import DamagedResultsError

    options = dataclasses.replace(figure_options(formats, dpi, no_plots, layers),
                                  workers=cores())  # the figures drawn on every core
    with reporting(debug):
        result = load_result(results_dir)
        _rewritable(results_dir)
        try:
            written = write_result(result, results_dir, options=options)
            table = summary_table(result.summary)
        except (InitlabError, OSError, KeyboardInterrupt):
            raise
        except Exception as exc:  # numbers load_result let through that cannot be drawn
            if debug:
                raise
            what = " ".join(str(exc).split())[:200]
            raise DamagedResultsError(
                f"{results_dir}: damaged results: they cannot be rendered "
                f"({type(exc).__name__}: {what}); nothing was replaced; --debug shows where"
            ) from None
    out.print(table, soft_wrap=False)
    err.print(f"report: {written}/report.html", markup=False)


def _rewritable(folder: Path) -> None:
    """`report` rebuilds the folder beside it and swaps it in: the parent must take a new
    folder and the folder itself new files (probes made and removed), else one line, exit 2,
    before anything is drawn. A read-only folder in a writable parent was replaced, and its
    old copy, which could not be emptied, was left behind as `.<name>.old-*`."""
    import tempfile

    from initlab.results.folder import OutputError

    where = folder
    try:
        where = folder.parent
        os.rmdir(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-{os.getpid()}-", dir=where))
        where = folder
        fd, probe = tempfile.mkstemp(prefix=".report-probe-", dir=where)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{folder}: cannot write the report here ({where}: "
                          f"{e.strerror or e}); nothing was replaced") from None
