"""initlab: a lab for studying how weight initialization shapes deep networks.

Public API (imported lazily, so `import initlab` stays fast):

    initlab.sample(scheme, fan_in, fan_out, *, seed=0, **params) -> np.ndarray
    initlab.gain(activation, param=None, method="torch" | "exact") -> float
    initlab.load_config(path_or_dict) -> Config
    initlab.run(config, out_dir=None) -> Result      # result.summary == summary.json
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "sample": "initlab.inits",
    "gain": "initlab.activations",
    "get_activation": "initlab.activations",
    "load_config": "initlab.config",
    "run": "initlab.api",
    "Result": "initlab.results",
    "load_result": "initlab.results",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'initlab' has no attribute {name!r}")
