"""`initlab schema`: the config's JSON Schema, for editors (initlab.config.json_schema)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from initlab.cli.console import DebugOpt, app, reporting

SCHEMA_EPILOG = ("Example: initlab schema > initlab.schema.json, then put this first line in a "
                 "config: # yaml-language-server: $schema=initlab.schema.json")


@app.command(epilog=SCHEMA_EPILOG)
def schema(
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="Write the schema to this file instead of printing it.")] = None,
    debug: DebugOpt = False,
) -> None:
    """Print the config's JSON Schema (every registry name an enum), so YAML editors complete
    and check initlab configs."""
    from initlab.config.json_schema import schema_text
    from initlab.results.folder import atomic_write_text

    with reporting(debug):
        text = schema_text()
        if out_file is None:
            sys.stdout.write(text)
            return
        try:
            atomic_write_text(out_file, text)
        except OSError as e:
            from initlab.results.folder import OutputError

            raise OutputError(f"cannot write {out_file}: {e.strerror or e}") from None
