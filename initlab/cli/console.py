"""What every initlab command shares: the Typer `app`, the two consoles, `--debug`, and
`reporting`, the one place where errors become exit codes.

Exit codes: 0 success; 1 a run finished but something it checks failed; 2 bad input (config,
command line, unknown names, an output that cannot be written); 3 results not found or
unreadable; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM: cleaned up as after Ctrl-C).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from initlab import __version__
from initlab.errors import (
    BadParameterError,
    ConfigError,
    InitlabError,
    Terminated,
    UnknownNameError,
)

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
def sigterm_interrupts() -> Iterator[None]:
    """While inside, SIGTERM raises `Terminated` (a KeyboardInterrupt) in the main thread, so a
    terminated command cleans up as an interrupted one does."""
    import signal
    import threading

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def reporting(debug: bool) -> Iterator[None]:
    """Turn initlab's errors into one line each on stderr and an exit code; no traceback
    unless --debug. NumPy floating-point warnings are silenced: faults (overflow, NaN) are
    recorded as outcomes with a diagnosis, not printed."""
    import numpy as np

    try:
        with np.errstate(all="ignore"), sigterm_interrupts():
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
    except KeyboardInterrupt as e:
        if debug:
            raise
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        err.print(f"{what}: nothing was replaced; earlier results are intact", markup=False)
        raise typer.Exit(143 if isinstance(e, Terminated) else 130) from None
    except OSError as e:  # a write that failed (disk full, read-only, a file on the path)
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        err.print(f"error: {where}{e.strerror or e}", markup=False)
        raise typer.Exit(2) from None


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
    res = summary.get("residual")
    sizes = summary.get("sizes") or []
    arch = (f"{sizes[0]} -> {res['blocks']} residual blocks x {res['width']} (branch "
            f"{res['branch']}, norm {res['norm'] or 'none'}) -> {sizes[-1]}"
            if isinstance(res, dict) and sizes else sizes)
    t = Table(title=f"{summary.get('name')}: {arch} "
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
