"""The Python API: `initlab.run(config, out_dir=None, workers=1)`.

    result = initlab.run("configs/playground.yaml")          # train, no files
    result = initlab.run(cfg, out_dir="results/playground")   # train and write the folder
    result.summary == json.load(open("results/playground/summary.json"))
    result = initlab.run(cfg, workers=2)   # the population in 2 processes: the same Result
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from initlab.config.schema import Config, load_config, resolved_with_hash
from initlab.nn.train import Progress
from initlab.parallel import cores, run_parallel
from initlab.report.render import FigureOptions, write_result
from initlab.results.folder import Result, json_safe


def resolve(config: Config | str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """The fully resolved config dict (defaults and labels filled) with its `config_hash`."""
    return resolved_with_hash(config if isinstance(config, Config) else load_config(config))


def run(
    config: Config | str | os.PathLike[str] | Mapping[str, Any],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    progress: Progress | None = None,
    plots: bool = True,
    workers: int | str = 1,
) -> Result:
    """Train every variant x seed of `config` as one population and return the Result.

    With `out_dir`, the results folder is written atomically (the previous folder of that name
    survives an interrupted or failed run). `result.summary` equals what summary.json holds.
    `workers`: processes that train the population, in contiguous chunks of members (an int
    >= 1, or "auto": initlab.parallel.auto_workers); the Result is the same whatever the number.
    The figures are then drawn in `workers` processes too (every core for "auto").
    """
    result = run_parallel(resolve(config), workers, progress)
    result.summary = json_safe(result.summary)
    if out_dir is not None:
        n = cores() if workers == "auto" else int(workers)
        write_result(result, Path(out_dir), plots=plots, options=FigureOptions(workers=n))
    return result
