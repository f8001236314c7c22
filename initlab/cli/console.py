"""What every initlab command shares: the Typer `app`, the two consoles, `--debug`, and
`reporting`, the one place where errors become exit codes.

Exit codes: 0 success; 1 a run finished but something it checks failed; 2 bad input (config,
command line, unknown names, an output that cannot be written); 3 results not found or
unreadable; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM: cleaned up as after Ctrl-C).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from initlab import __version__
from initlab.errors import (
    BadParameterError,
    ConfigError,
    InitlabError,
    Terminated,
    UnknownNameError,
)
from initlab.results.layers import network_text
from initlab.results.numbers import finite_values, mean_std

app = typer.Typer(
    name="initlab",
    help="A lab for studying how weight initialization shapes deep networks.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
    epilog="Examples: initlab run configs/playground.yaml  |  initlab list inits  |  "
           "initlab validate configs/*.yaml",
)


def _plain_help_types() -> None:
    """typer 0.2x prints each parameter's Python type in --help (`<bool>` beside every flag,
    `<list[str]>`, `<str>`, and `{config}` for a required argument). initlab's help shows what
    to type: nothing for a flag, the metavar or the click type (TEXT, PATH, INTEGER) for a
    value, the argument's name in capitals."""
    core = getattr(typer, "core", None)
    option, argument = getattr(core, "TyperOption", None), getattr(core, "TyperArgument", None)
    if option is None or argument is None or not hasattr(option, "display_type_rich"):
        return  # an older typer: click's own metavars already

    plain = option.display_type_rich
    words = {"str": "TEXT", "path": "PATH", "int": "INTEGER", "float": "FLOAT", "bool": None}

    def option_type(self: Any, ctx: Any) -> str | None:
        shown = plain(self, ctx)
        if getattr(self, "metavar", None) is not None or not isinstance(shown, str):
            return shown
        bare = shown.strip("<>").removeprefix("list[").removesuffix("]").removesuffix(" range")
        if bare.endswith("..."):
            bare = bare[:-3]
        if shown.startswith("<") and (bare in words or bare.isidentifier()):
            return words.get(bare, bare.upper())
        return shown

    def argument_type(self: Any, ctx: Any) -> str | None:
        return None  # the name says it

    def usage_name(self: Any) -> str:
        name = str(self.metavar or self.name).upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    option.display_type_rich = option_type
    argument.display_type_rich = argument_type
    if hasattr(argument, "_usage_display_name"):
        argument._usage_display_name = usage_name


_plain_help_types()


def _one_line_usage_errors() -> None:
    """A usage error (missing argument, unknown option or command, a bad --backend) is one
    line on stderr and the hint to ask for help, exit 2, not a multi-line box."""
    try:
        from typer import rich_utils
    except ImportError:  # pragma: no cover (typer without rich prints click's plain lines)
        return

    def one_line(e: Any) -> None:
        ctx = getattr(e, "ctx", None)
        hint = f"; try '{ctx.command_path} --help'" if ctx is not None else ""
        text = ' '.join(e.format_message().split()).rstrip('.')
        typer.echo(f"error: {text}{hint}", err=True)

    rich_utils.rich_format_error = one_line  # type: ignore[assignment]


_one_line_usage_errors()
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
    terminated command cleans up as an interrupted one does. After the first Ctrl-C or
    SIGTERM, further ones are ignored: a second Ctrl-C during the cleanup (or during the
    interpreter's join of a process pool's threads at exit) printed tracebacks."""
    import signal
    import threading

    interrupted = False

    def stop(exc: type[KeyboardInterrupt]) -> None:
        nonlocal interrupted
        interrupted = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise exc()

    def on_term(signum: int, frame: Any) -> None:
        stop(Terminated)

    def on_int(signum: int, frame: Any) -> None:
        stop(KeyboardInterrupt)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old_term = signal.signal(signal.SIGTERM, on_term)
    old_int = signal.getsignal(signal.SIGINT)
    if old_int is signal.default_int_handler:  # not when the caller chose its own
        signal.signal(signal.SIGINT, on_int)
    try:
        yield
    finally:
        if not interrupted:  # an interrupted process is on its way out: stay deaf
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGINT, old_int)


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


def preflight_file(path: Path, option: str = "--out", *, parents: bool = False) -> Path:
    """Before any work: a file can be written at `path` (its folder takes a new file; `path` is
    not a folder). With `parents` (the writer makes missing folders), the nearest folder that
    exists is probed. OutputError naming `path` and `option` (exit 2)."""
    import tempfile

    from initlab.results.folder import OutputError

    if path.is_dir():
        raise OutputError(f"{path}: {option} names a folder; give a file name")
    folder = path.parent
    while parents and not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if parents and not folder.is_dir():
        raise OutputError(f"{path}: {option} cannot be written here ({folder} is not a folder)")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as e:
        raise OutputError(f"{path}: {option} cannot be written here ({e.strerror or e}); "
                          "choose another path") from None
    return path


def wrap() -> bool:
    """Wrap prose at word boundaries on a terminal (or when COLUMNS says how wide); a pipe gets
    one unbroken line per sentence."""
    return out.is_terminal or "COLUMNS" in os.environ


def say(label: str, text: str) -> None:
    """`label: text` with the label bold; both printed verbatim (brackets are not markup)."""
    line = Text.assemble((label, "bold"), ": ", text)
    out.print(line, soft_wrap=not wrap())


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.2g}"


def _g(x: Any, never: str = "—") -> str:
    if x is None:
        return never
    return f"{x:.3g}" if isinstance(x, float) and math.isfinite(x) else str(x)


def _mean_sd(values: list[Any], sd: bool = True) -> str:
    vals = finite_values(values)
    if not vals:
        return "—"
    m, s = mean_std(vals)
    if len(vals) == 1 or not sd:
        return f"{m:.3g}"
    return f"{m:.3g}±{s:.1g}"


def _diagnosis(v: dict[str, Any]) -> str:
    near = v.get("borderline") or []
    return str(v.get("diagnosis")) + "".join(f" (borderline {d})" for d in near)


def title(summary: dict[str, Any]) -> str:
    """'playground: 2 → 6 → 3 → 1 relu, 2000 epochs' (+ optimizer steps when they differ)."""
    epochs, steps = summary.get("epochs"), summary.get("steps")
    when = f"{epochs} epochs" + (f" = {steps} optimizer steps" if steps not in (None, epochs)
                                 else "")
    res, sizes = summary.get("residual"), summary.get("sizes") or []
    arch = (f"{sizes[0]} → {res['blocks']} residual blocks × {res['width']} (branch "
            f"{res['branch']}, norm {res['norm'] or 'none'}) → {sizes[-1]}"
            if isinstance(res, dict) and sizes else network_text(sizes))
    return f"{summary.get('name')}: {arch} {summary.get('activation')}, {when}"


NARROW = 100  # below this many columns the table shows means without their spread


def summary_table(summary: dict[str, Any], width: int | None = None) -> Table:
    """One row per variant; every cell is plain text (a label like `he [fan_out]` prints as it
    is). The diverged column only when a seed diverged; below NARROW columns, means only."""
    sd = (width or out.width) >= NARROW
    variants = summary["variants"]
    diverged = any(any(v.get("diverged") or []) for v in variants)
    t = Table(title=escape(title(summary)), box=box.SIMPLE_HEAD, pad_edge=False)
    labels = [str(v["label"]) for v in variants]
    diagnoses = [_diagnosis(v) for v in variants]
    t.add_column("variant", min_width=min(24, max(map(len, labels), default=7)))
    t.add_column("diagnosis", min_width=min(24, max(map(len, diagnoses), default=9)))
    heads = ("final loss", "loss tail", "drop at", "accuracy") if sd else \
        ("final", "tail", "drop at", "acc.")
    for col in (*heads, *(("diverged",) if diverged else ()), "Var ratio"):
        t.add_column(col, justify="right", no_wrap=True)
    for v, label, diagnosis in zip(variants, labels, diagnoses):
        acc = v.get("final_accuracy")
        row = [Text(label), Text(diagnosis), _mean_sd(v["final_loss"], sd),
               _g(v.get("final_loss_tail_median")),
               _g(v.get("steps_to_drop_median"), "never") if "steps_to_drop" in v else "—",
               _mean_sd(acc, sd) if acc else "—"]
        if diverged:
            row.append(f"{sum(bool(d) for d in v['diverged'])}/{len(v['diverged'])}")
        t.add_row(*row, _fmt(v.get("act_ratio")))
    one = int(summary.get("seeds") or 1) == 1
    spread = "mean ± sd over seeds" if sd else "mean over seeds"
    t.caption = escape(
        ("final loss" if sd else "final, acc.: final loss, accuracy") + ": " +
        ("after training" if one else spread) + "; " + ("loss tail" if sd else "tail") +
        ": mean loss over "
        "the last 10% of steps; drop at: first optimizer step with the loss at most 90% of its "
        "init value" + ("" if one else " (both medians over seeds)") + "; Var ratio: Var(h) of "
        "the last hidden layer / E[x²] at init" + ("" if diverged else "; no seed diverged"))
    t.caption_justify = "left"
    return t


def comparison_table(summary: dict[str, Any]) -> Table | None:
    """summary.json's paired `comparisons` as a table (None below 3 seeds or without any)."""
    comps = summary.get("comparisons") or []
    if int(summary.get("seeds") or 0) < 3 or not comps:
        return None
    t = Table(title=escape(f"paired over seeds: {comps[0].get('metric')} minus "
                           f"{comps[0].get('reference')}'s"), box=box.SIMPLE_HEAD)
    for col in ("variant", "mean diff", "95% CI (paired t)", "wins"):
        t.add_column(col, justify="left" if col == "variant" else "right",
                     no_wrap=col != "variant")
    for c in comps:
        lo, hi = (c.get("ci95") or [None, None])[:2]
        ci = f"[{_g(lo)}, {_g(hi)}]" if lo is not None and hi is not None else "—"
        t.add_row(Text(str(c.get("variant"))), _g(c.get("mean_diff")), Text(ci),
                  f"{c.get('wins')}/{c.get('seeds')}")
    t.caption = "wins: seeds where the variant's value is lower"
    return t
