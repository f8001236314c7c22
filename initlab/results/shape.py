"""What a loaded results folder must look like before anything renders or compares it.

`load_result` calls `check_shape`: a summary.json that is `{}` or `[]`, a variant list that
does not match the arrays, a string where a number belongs, or a config.yaml that is not a
mapping is a `DamagedResultsError` (exit 3, one line naming the folder and the field)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from initlab.errors import InitlabError

# per-variant fields: lists of numbers (one per seed) and single numbers; None stands for NaN
NUMBER_LISTS = ("seeds", "final_loss", "final_accuracy", "final_loss_tail", "steps_to_drop",
                "diverged_step", "diverged")
NUMBERS = ("steps_to_drop_median", "final_loss_tail_median", "act_ratio", "grad_ratio")
MAPPINGS = ("loss_curve", "evidence")
MAPPING_LISTS = ("layers", "layers_final")


class DamagedResultsError(InitlabError):
    """A results folder whose files load but do not hold what initlab writes (exit 3)."""

    exit_code = 3


def _number(x: Any) -> bool:
    return x is None or (isinstance(x, (int, float, np.integer, np.floating)))


def check_shape(folder: Path, config: Any, summary: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """Raise DamagedResultsError at the first field that is not what `write_result` writes."""
    def bad(what: str) -> DamagedResultsError:
        return DamagedResultsError(f"{folder}: damaged results: {what}; rerun `initlab run` "
                                   "to write the folder again")

    if not isinstance(config, Mapping):
        raise bad(f"config.yaml holds a {type(config).__name__}, not a mapping")
    if not isinstance(summary, Mapping):
        raise bad(f"summary.json holds a {type(summary).__name__}, not an object")
    variants = summary.get("variants")
    if not isinstance(variants, list) or not variants:
        raise bad("summary.json 'variants' is missing or not a non-empty list")
    for i, v in enumerate(variants):
        if not isinstance(v, Mapping):
            raise bad(f"summary.json variants[{i}] is a {type(v).__name__}, not an object")
        if not isinstance(v.get("label"), (str, int, float)):
            raise bad(f"summary.json variants[{i}].label is missing")
        for key in NUMBER_LISTS:
            x = v.get(key)
            if x is not None and (not isinstance(x, list) or not all(map(_number, x))):
                raise bad(f"summary.json variants[{i}].{key} is not a list of numbers")
        for key in NUMBERS:
            if not _number(v.get(key)):
                raise bad(f"summary.json variants[{i}].{key} is not a number")
        for key in MAPPINGS:
            if v.get(key) is not None and not isinstance(v[key], Mapping):
                raise bad(f"summary.json variants[{i}].{key} is not an object")
        for key in MAPPING_LISTS:
            x = v.get(key)
            if x is not None and (not isinstance(x, list)
                                  or not all(isinstance(e, Mapping) for e in x)):
                raise bad(f"summary.json variants[{i}].{key} is not a list of objects")
    for key in ("sizes",):
        x = summary.get(key)
        if x is not None and (not isinstance(x, list) or not all(map(_number, x))):
            raise bad(f"summary.json '{key}' is not a list of numbers")
    member = arrays.get("member_variant")
    if member is not None and member.size and (
            member.dtype.kind not in "iu" or int(member.max()) >= len(variants)
            or int(member.min()) < 0):
        raise bad(f"arrays.npz has members of {int(member.max()) + 1} variants, summary.json "
                  f"lists {len(variants)}")
    theory = arrays.get("theory_act_var")
    if theory is not None and theory.ndim >= 1 and theory.shape[0] != len(variants):
        raise bad(f"arrays.npz has theory for {theory.shape[0]} variants, summary.json lists "
                  f"{len(variants)}")
    _check_arrays(arrays, bad)


def _check_arrays(arrays: Mapping[str, np.ndarray], bad: Any) -> None:
    """The members axis agrees across arrays.npz: loss (T, M), stat_* (R, M, L), hist_* (R, M,
    L, b); every stat_* and hist_* array has the same (R, M, L)."""
    member = arrays.get("member_variant")
    m = None if member is None else member.shape[0] if member.ndim == 1 else -1
    loss = arrays.get("loss")
    if loss is not None and m is not None and (loss.ndim != 2 or loss.shape[1] != m):
        raise bad(f"arrays.npz loss has shape {loss.shape}, not (steps, {m} members)")
    first: tuple[str, tuple[int, ...]] | None = None
    for key in sorted(arrays, key=lambda k: (k.startswith("hist_"), k)):  # stat_* first
        if not (key.startswith("stat_") or key in ("hist_h", "hist_dz")) or key == "stat_steps":
            continue
        a = arrays[key]
        want = 4 if key.startswith("hist_") else 3
        if a.ndim != want or (m is not None and a.shape[1] != m):
            raise bad(f"arrays.npz {key} has shape {a.shape}, not (records, {m} members, "
                      f"layers{', bins' if want == 4 else ''})")
        shape = a.shape[:2] if key.startswith("hist_") and "hist_layers" in arrays else \
            a.shape[:3]  # histograms of the recorded layers (hist_layers): their own count
        if key.startswith("hist_") and "hist_layers" in arrays and \
                a.shape[2] != np.asarray(arrays["hist_layers"]).size:
            raise bad(f"arrays.npz {key} has shape {a.shape} for "
                      f"{np.asarray(arrays['hist_layers']).size} hist_layers")
        if first is None:
            first = key, a.shape[:3]
        elif shape != first[1][:len(shape)]:
            raise bad(f"arrays.npz {key} has shape {a.shape} but {first[0]} has {first[1]}")
