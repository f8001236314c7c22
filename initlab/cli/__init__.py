"""The `initlab` command. One module per command family; each registers its commands on the
shared Typer `app` (initlab.cli.console) when imported here.

Exit codes: 0 success; 1 a run finished but something it checks failed; 2 bad input (config,
command line, unknown names); 3 results not found; 130 interrupted.
"""

from __future__ import annotations

from initlab.cli import (  # noqa: F401  (registers the commands)
    check,
    coordcheck,
    run,
    schema,
    sweep,
    theory,
)
from initlab.cli.console import app

__all__ = ["app", "main"]


def main() -> None:
    app(prog_name="initlab")
