"""The results folder: the Result type (what a run returns and `initlab report` reads back),
atomic writes, recovery of an interrupted replacement, loading. It never draws:
initlab.report.write_result renders a Result and writes the folder through `folder.write_result`."""

from initlab.results.folder import (
    FORMAT_VERSION, VARIANCE_STATS, ResultsNotFoundError, NotAResultsFolderError, Result,
    atomic_write_bytes, atomic_write_text, json_safe, dumps_json, variance_csv, loss_csv, versions,
    recover, Render, load_result,
)

__all__ = [
    "FORMAT_VERSION",
    "VARIANCE_STATS",
    "ResultsNotFoundError",
    "NotAResultsFolderError",
    "Result",
    "atomic_write_bytes",
    "atomic_write_text",
    "json_safe",
    "dumps_json",
    "variance_csv",
    "loss_csv",
    "versions",
    "recover",
    "Render",

    "load_result",
]

def __getattr__(name: str) -> object:
    # initlab.results.write_result (the drawing writer) is documented; it lives in initlab.report,
    # which imports this package, so it is looked up only when asked for.
    if name == "write_result":
        from initlab.report.render import write_result

        return write_result
    raise AttributeError(f"module 'initlab.results' has no attribute {name!r}")
