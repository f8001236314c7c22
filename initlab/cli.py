"""The `initlab` command: parse, call, render. Errors become exit codes in one place.

Exit codes: 0 success; 1 a run finished but something it checks failed; 2 bad input (config,
command line, unknown names); 3 results not found; 130 interrupted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from initlab import __version__
from initlab.errors import BadParameterError, ConfigError, InitlabError, UnknownNameError, suggest

app = typer.Typer(
    name="initlab",
    help="A lab for studying how weight initialization shapes deep networks.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
    epilog="Examples: initlab run configs/playground.yaml  |  initlab list inits  |  "
           "initlab validate configs/*.yaml",
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DebugOpt = Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")]


def _version(value: bool) -> None:
    if value:
        out.print(f"initlab {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """initlab: rerunnable experiments on weight initialization (Xavier, He, LSUV, ...)."""


@contextmanager
def reporting(debug: bool) -> Iterator[None]:
    """Turn initlab's errors into one line each on stderr and an exit code; no traceback
    unless --debug. NumPy floating-point warnings are silenced: faults (overflow, NaN) are
    recorded as outcomes with a diagnosis, not printed."""
    import numpy as np

    try:
        with np.errstate(all="ignore"):
            yield
    except ConfigError as e:
        if debug:
            raise
        for p in e.problems:
            err.print(p.format(), markup=False)
        raise typer.Exit(2) from None
    except InitlabError as e:
        if debug:
            raise
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(e.exit_code) from None
    except (UnknownNameError, BadParameterError) as e:
        if debug:
            raise
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        if debug:
            raise
        err.print("interrupted: nothing was replaced; earlier results are intact")
        raise typer.Exit(130) from None


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.2g}"


def _mean_sd(values: list[Any]) -> str:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return "—"
    m = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / len(vals))
    return f"{m:.3g}±{sd:.1g}" if len(vals) > 1 else f"{m:.3g}"


def summary_table(summary: dict[str, Any]) -> Table:
    t = Table(title=f"{summary.get('name')}: {summary.get('sizes')} "
                    f"{summary.get('activation')}, {summary.get('epochs')} epochs",
              box=box.SIMPLE_HEAD)
    for col in ("variant", "diagnosis", "final loss", "accuracy", "diverged", "Var ratio"):
        left = col in ("variant", "diagnosis")
        t.add_column(col, justify="left" if left else "right", no_wrap=True)
    for v in summary["variants"]:
        acc = v.get("final_accuracy")
        t.add_row(v["label"], v["diagnosis"], _mean_sd(v["final_loss"]),
                  _mean_sd(acc) if acc else "—",
                  f"{sum(bool(d) for d in v['diverged'])}/{len(v['diverged'])}",
                  _fmt(v.get("act_ratio")))
    t.caption = "Var ratio: Var(h) of the last hidden layer / E\\[x²] at init; mean ± sd over seeds"
    return t


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
    debug: DebugOpt = False,
) -> None:
    """Train every init variant x seed of CONFIG as one population; write results/<name>/."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from initlab import resources
    from initlab.api import resolve
    from initlab.config import load_config
    from initlab.experiment import run_experiment
    from initlab.results import json_safe, write_result

    limit = None
    if max_memory is not None:
        try:
            limit = resources.parse_size(max_memory)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--max-memory") from None
    with reporting(debug):
        cfg = load_config(config, overrides=set_ or ())
        resolved = resolve(cfg)
        plan = resources.guard(resolved, limit, source=config)
        if dry_run:
            for line in plan.lines():
                out.print(line, markup=False)
            out.print("dry run: nothing trained or written", markup=False)
            return
        target = out_dir if out_dir is not None else Path("results") / resolved["name"]
        bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                       TextColumn("{task.completed}/{task.total} steps"), TimeRemainingColumn(),
                       console=err, disable=quiet, transient=True)
        with bar:
            task = bar.add_task(f"training {resolved['name']}", total=None)

            def progress(step: int, total: int) -> None:
                bar.update(task, completed=step, total=total)

            result = run_experiment(resolved, progress)
        result.summary = json_safe(result.summary)
        written = write_result(result, target, animate=animate)
    if not quiet:
        out.print(summary_table(result.summary))
        for v in result.summary["variants"]:
            out.print(f"[bold]{v['label']}[/bold]: {v['sentence']}", markup=True)
    err.print(f"results: {written}/report.html")
    if cfg.expect:  # checked after writing: the results stay, the exit code says what failed
        from initlab.cli_check import report_expectations

        if not report_expectations(cfg.expect, result.summary, config, quiet):
            raise typer.Exit(1)


@app.command()
def validate(
    configs: Annotated[list[str], typer.Argument(help="Config files to check.")],
    debug: DebugOpt = False,
) -> None:
    """Check configs without running them: every problem, with FILE:LINE:COL."""
    from initlab.api import resolve
    from initlab.config import load_config

    failed = False
    for path in configs:
        try:
            with reporting(debug):
                cfg = resolve(load_config(path))
                members = len(cfg["init"]) * int(cfg["seeds"])
                out.print(f"ok {path}: {len(cfg['init'])} variants x {cfg['seeds']} seeds = "
                          f"{members} members")
        except typer.Exit:
            failed = True
    if failed:
        raise typer.Exit(2)


KINDS = ("inits", "activations", "datasets", "losses", "optimizers")


@app.command("list")
def list_(
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(KINDS)}.")] = "inits",
) -> None:
    """List what a config can name, with one-line descriptions and formulas."""
    from initlab import activations, data, inits, losses, optim

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
    for e in registries[kind]:
        t.add_row(e.name, ", ".join(e.aliases), e.description, e.formula)
    out.print(t)


@app.command()
def report(
    results_dir: Annotated[Path, typer.Argument(help="A results folder written by `run`.")],
    debug: DebugOpt = False,
) -> None:
    """Re-render plots and reports from the stored numbers, without retraining."""
    from initlab.results import load_result, write_result

    with reporting(debug):
        result = load_result(results_dir)
        written = write_result(result, results_dir)
    out.print(summary_table(result.summary))
    err.print(f"report: {written}/report.html")


# Commands that live in their own modules register themselves on `app` when imported.
# --- command modules (one import per line) ---
import initlab.cli_check  # noqa: E402
import initlab.cli_sweep  # noqa: E402
import initlab.cli_theory  # noqa: E402,F401

# --- end of command modules ---


def main() -> None:
    app(prog_name="initlab")


if __name__ == "__main__":
    main()
