"""initlab: a lab for studying how weight initialization shapes deep networks.

Public API (imported lazily, so `import initlab` stays fast):

    initlab.sample(scheme, fan_in, fan_out, *, seed=0, **params) -> np.ndarray
    initlab.gain(activation, param=None, method="torch" | "exact") -> float
    initlab.load_config(path_or_dict) -> Config
    initlab.run(config, out_dir=None) -> Result      # result.summary == summary.json
    initlab.load_result(folder) -> Result

The packages, one layer each (docs/CONTRACTS.md): nn (the population engine), theory, data,
config, results, report, sweep, check, cli; experiment.py, diagnosis.py, resources.py and api.py
turn a config into a Result. The flat module paths of earlier versions (initlab.inits,
initlab.model, initlab.stats, ...) still import: they are the moved modules themselves.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "sample": "initlab.nn.inits",
    "gain": "initlab.nn.activations",
    "get_activation": "initlab.nn.activations",
    "load_config": "initlab.config.schema",
    "run": "initlab.api",
    "Result": "initlab.report.notebook",  # the same class and function as initlab.results
    "load_result": "initlab.report.notebook",  # with the Result's HTML view registered
}

# Where the modules of the flat layout (up to 0.1.0) live now.
MOVED = {
    "activations": "initlab.nn.activations", "inits": "initlab.nn.inits",
    "losses": "initlab.nn.losses", "optim": "initlab.nn.optim", "model": "initlab.nn.model",
    "train": "initlab.nn.train", "stats": "initlab.nn.stats", "binning": "initlab.nn.binning",
    "workspace": "initlab.nn.workspace", "gauss": "initlab.theory.gauss",
    "yaml_positions": "initlab.config.positions", "config_problems": "initlab.config.problems",
    "plots": "initlab.report.plots", "plots_theory": "initlab.report.theory_plots",
    "interactive": "initlab.report.interactive", "animate": "initlab.report.animate",
    "sweep_plan": "initlab.sweep.plan", "sweep_report": "initlab.sweep.report",
    "metric": "initlab.check.metric", "cli_check": "initlab.cli.check",
    "cli_sweep": "initlab.cli.sweep", "cli_theory": "initlab.cli.theory",
}

__all__ = ["MOVED", "__version__", *_EXPORTS]


class _Moved(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import initlab.inits` gives initlab.nn.inits itself (one module object under both
    names), so old import paths, attribute access and monkeypatching keep working."""

    def find_spec(self, fullname: str, path: Any = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        old = fullname.removeprefix("initlab.")
        if fullname.startswith("initlab.") and old in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(MOVED[spec.name.removeprefix("initlab.")])
        spec.loader_state = module.__spec__  # importlib overwrites __spec__; put it back below
        return module

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        if spec is not None and isinstance(spec.loader_state, importlib.machinery.ModuleSpec):
            module.__spec__ = spec.loader_state


if not any(isinstance(f, _Moved) for f in sys.meta_path):
    sys.meta_path.append(_Moved())


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in MOVED:  # `initlab.inits` as an attribute, after `import initlab`
        return importlib.import_module(f"initlab.{name}")
    raise AttributeError(f"module 'initlab' has no attribute {name!r}")
