"""Results on disk: one folder per experiment, replaced as a whole or not at all.

    results/<name>/  config.yaml  summary.json  arrays.npz  variance.csv  loss.csv
                     *.png  report.md  report.html

`write_result` builds the new folder as `.<name>.tmp-<pid>-<rand>` beside `<name>` and swaps it
in with two renames:

    1. <name>      -> .<name>.old-<pid>-<rand>     (only if <name> exists)
    2. .<name>.tmp -> <name>
    3. remove .<name>.old-...

A run that fails or is interrupted before step 1 leaves the previous `<name>` untouched (its
temp folder is removed, or left for the next writer to sweep up if the process was killed).
Between steps 1 and 2 `<name>` is briefly missing; the next `write_result` or `load_result` of
that name finds the lone `.old` folder and renames it back (`recover`). Writers of one name are
serialized by `fcntl.flock` on `.<name>.lock` in the parent folder. A non-empty `<name>`
without summary.json is never replaced (NotAResultsFolderError): replacing deletes it.

Every file is written with `atomic_write_bytes`/`atomic_write_text`: temp file in the same
folder, flush + fsync, `os.replace`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import platform
import secrets
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from initlab.errors import InitlabError
from initlab.processes import pid_alive
from initlab.results.shape import check_shape

try:  # POSIX only; elsewhere writers are not serialized
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

FORMAT_VERSION = 1
CONFIG_FILE, SUMMARY_FILE, ARRAYS_FILE = "config.yaml", "summary.json", "arrays.npz"
VARIANCE_STATS = ("act_mean", "act_var", "pre_var", "grad_var", "weight_grad_var",
                  "saturated", "dead")


class ResultsNotFoundError(InitlabError):
    """A results folder (or one of its required files) that does not exist or cannot be read."""

    exit_code = 3


class NotAResultsFolderError(InitlabError):
    """Refusal to replace a folder that initlab did not write (it would be deleted), or a
    folder of the other kind (a run's folder as a sweep's target, or the reverse)."""


class OutputError(InitlabError):
    """An output path that cannot be written (checked before training; exit 2)."""


SWEEP_MARKERS = ("sweep.yaml", "cells")  # what only a sweep's folder holds


@dataclass(repr=False)
class Result:
    """What an experiment produced. `summary` is exactly what goes to summary.json (non-finite
    numbers may still be NaN/inf in memory); `arrays` follows docs/CONTRACTS.md "Results".
    In Jupyter a Result shows as HTML (`_repr_html_`: the results table, the sentences, the
    paired comparisons and the loss figure), drawn by initlab.report.notebook."""

    config: dict
    summary: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __repr__(self) -> str:
        s = self.summary
        variants = [str(v.get("label")) for v in s.get("variants", [])]
        return (f"Result(name={s.get('name')!r}, variants={variants!r}, seeds={s.get('seeds')}, "
                f"steps={s.get('steps')}, arrays={len(self.arrays)})")

    def _repr_html_(self) -> str | None:
        """The HTML view initlab.report.notebook registered (HTML_VIEW), None (the plain repr)
        when initlab.report was never imported: the numbers never import the drawing."""
        return HTML_VIEW(self) if HTML_VIEW is not None else None


# Result -> HTML fragment; set by initlab.report.notebook when it is imported (initlab.Result,
# initlab.load_result and initlab.run import it)
HTML_VIEW: Callable[[Result], str] | None = None


# ---------------------------------------------------------------- atomic files

def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets us open a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` so that readers see the old file or the new one, never a part.
    Usual permissions (0o666 minus the umask), not mkstemp's 0o600; an OSError names `path`."""
    path, tmp = Path(path), ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # ("" before mkstemp: FileNotFoundError too)
        raise (OSError(e.errno, e.strerror, str(path)) if isinstance(e, OSError) else e) from None
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# ---------------------------------------------------------------- strict JSON

def json_safe(obj: Any) -> Any:
    """A copy of `obj` that `json.dumps(..., allow_nan=False)` accepts: NaN/inf -> None,
    numpy scalars/arrays -> Python numbers/lists, tuples -> lists, Paths -> str."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps_json(obj: Any) -> str:
    """Strict JSON (no NaN/Infinity tokens), indent 2, trailing newline."""
    return json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n"


# ---------------------------------------------------------------- tables

def _num(x: float) -> str:
    return f"{x:.6g}" if math.isfinite(x) else ""


def _finite_mean_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and std over the finite entries (NaN, NaN when there are none)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return (float(x.mean()), float(x.std())) if x.size else (math.nan, math.nan)


def _labels(result: Result) -> list[str]:
    return [str(v["label"]) for v in result.summary.get("variants", [])]


def _widths(result: Result, n_layers: int) -> list[int | str]:
    sizes = result.summary.get("sizes") or []
    return [sizes[l + 1] if l + 1 < len(sizes) else "" for l in range(n_layers)]


def variance_csv(result: Result) -> str:
    """Long table: variant,layer,width,when,stat,mean,std (mean/std over the variant's seeds,
    finite members only); act_var_theory at init from theory_act_var (std empty)."""
    a = result.arrays
    rows: list[list[Any]] = []
    variant_of = np.asarray(a.get("member_variant", []))
    theory = a.get("theory_act_var")
    present = [s for s in VARIANCE_STATS if f"stat_{s}" in a]
    if present:
        n_layers = a[f"stat_{present[0]}"].shape[-1]
        widths = _widths(result, n_layers)
        for v, label in enumerate(_labels(result)):
            members = variant_of == v
            for l in range(n_layers):
                for when, r in (("init", 0), ("final", -1)):
                    for s in present:
                        m, sd = _finite_mean_std(a[f"stat_{s}"][r, members, l])
                        rows.append([label, l + 1, widths[l], when, s, _num(m), _num(sd)])
                    if when == "init" and theory is not None:
                        rows.append([label, l + 1, widths[l], "init", "act_var_theory",
                                     _num(float(theory[v, l])), ""])
    return _csv(["variant", "layer", "width", "when", "stat", "mean", "std"], rows)


def loss_steps(result: Result) -> tuple[np.ndarray, np.ndarray]:
    """(optimizer step, epoch) of each point of the loss curve. Results written before
    `loss_epochs` existed stored epochs in `loss_steps`: they are scaled by the steps per epoch."""
    a = result.arrays
    steps = np.asarray(a.get("loss_steps", np.arange(len(a.get("loss", [])))), dtype=np.int64)
    if "loss_epochs" in a:
        return steps, np.asarray(a["loss_epochs"], dtype=np.int64)
    batch = (result.config.get("train") or {}).get("batch_size")
    n = result.summary.get("samples")
    per_epoch = math.ceil(int(n) / int(batch)) if batch and n and int(batch) < int(n) else 1
    return steps * per_epoch, steps


LOSS_CSV_HEADER = ["step", "epoch", "variant", "seed", "loss"]


def loss_csv(result: Result) -> str:
    """Long table: step (optimizer steps), epoch, variant, seed, loss (non-finite losses are left
    empty). Minibatch training: the loss at the end of each epoch is the mean over its batches."""
    a = result.arrays
    if "loss" not in a:
        return _csv(LOSS_CSV_HEADER, [])
    labels = _labels(result)
    loss = a["loss"]
    steps, epochs = loss_steps(result)
    variant_of, seed_of = a["member_variant"], a["member_seed"]
    rows = [[int(steps[i]), int(epochs[i]), labels[int(variant_of[m])], int(seed_of[m]),
             _num(float(loss[i, m]))]
            for i in range(loss.shape[0]) for m in range(loss.shape[1])]
    return _csv(LOSS_CSV_HEADER, rows)


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


# ---------------------------------------------------------------- the folder swap

def versions() -> dict[str, str]:
    """initlab, numpy and Python versions, recorded in config.yaml."""
    import importlib.metadata

    import initlab

    version = getattr(initlab, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version("initlab")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
    return {"initlab": str(version), "numpy": np.__version__,
            "python": platform.python_version()}


def _siblings(out_dir: Path, kind: str) -> list[Path]:
    """`.<name>.<kind>-*` folders beside out_dir, oldest first. The name is matched as a plain
    prefix, never as a glob pattern: `--out 'results/*'` must not match `.kr.old-...`."""
    prefix = f".{out_dir.name}.{kind}-"
    try:
        entries = list(out_dir.parent.iterdir())
    except OSError:
        return []
    found = [p for p in entries if p.name.startswith(prefix) and p.is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def recover(out_dir: str | Path) -> None:
    """Finish a swap that was interrupted: a lone `.old` folder becomes `<name>` again, stale
    `.old` folders beside an existing `<name>` and temp folders of dead processes are removed.
    Call it with the lock held (write_result and load_result do)."""
    out_dir = Path(out_dir)
    olds = _siblings(out_dir, "old")
    if olds and not out_dir.exists():
        os.rename(olds.pop(), out_dir)  # the newest one is the last complete result
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)
    for tmp in _siblings(out_dir, "tmp"):
        pid = tmp.name.rsplit(".tmp-", 1)[-1].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _locked(out_dir: Path) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = out_dir.parent / f".{out_dir.name}.lock"
    while True:
        f = open(path, "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file the last holder removed while we waited: ours
                break
        except BaseException:
            f.close()
            raise
        f.close()  # the last holder removed it on release: lock the next one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still holding it: a waiter sees it gone and retries
        f.close()  # releases the flock


def _swap_in(tmp: Path, out_dir: Path) -> None:
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except BaseException:
        if old is not None:
            os.rename(old, out_dir)
        raise
    _fsync_dir(out_dir.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


Render = Callable[[Result, Path], object]


def write_result(result: Result, out_dir: str | Path, *, render: Render | None = None) -> Path:
    """Write the numbers of `result` (config.yaml, summary.json, arrays.npz, variance.csv,
    loss.csv) into `out_dir`, then let `render(result, folder)` add its files (figures, reports:
    initlab.report.write_result passes its drawer), replacing a previous result of that name only
    once the new one is complete. Returns `out_dir`."""
    out_dir = Path(os.path.abspath(out_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with _locked(out_dir):
        recover(out_dir)
        _check_replaceable(out_dir)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-{os.getpid()}-",
                                    dir=out_dir.parent))
        try:
            tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it 0o700
            with np.errstate(all="ignore"):  # a fault's inf/huge numbers are drawn, not warned
                _write_files(result, tmp, render)
            _fsync_dir(tmp)
            _swap_in(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out_dir


def folder_kind(folder: str | Path) -> str:
    """What is at `folder`: missing, file, empty, run (a run's results), sweep (a sweep's
    folder: sweep.yaml or cells/) or other (files initlab did not write)."""
    folder = Path(folder)
    try:
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            return "file"
        if not folder.exists():
            return "missing"
        names = {p.name for p in folder.iterdir()}
    except OSError:
        return "other"
    if not names:
        return "empty"
    if any(m in names for m in SWEEP_MARKERS):
        return "sweep"
    return "run" if SUMMARY_FILE in names else "other"


def _refusal(folder: Path, kind: str, writer: str) -> str:
    what = {"sweep": "a sweep's results folder (sweep.yaml, cells/)",
            "run": f"a run's results folder ({SUMMARY_FILE}, {ARRAYS_FILE})",
            "other": f"not an initlab results folder (no {SUMMARY_FILE})",
            "file": "a file, not a folder"}[kind]
    return f"{folder}: {what}; `initlab {writer}` will not replace or mix into it; choose " \
        "another --out"


def preflight(out_dir: str | Path, *, writer: str = "run") -> Path:
    """Before any training, `out_dir` can be written by `writer` ("run"/"sweep"): parents made, a
    probe folder made and removed beside (run) or inside (sweep) it; an unwritable place, a file
    on the path, a name too long: OutputError (exit 2); the other kind: NotAResultsFolderError."""
    out_dir = Path(os.path.abspath(out_dir))
    kind = folder_kind(out_dir)
    if (writer == "run" and kind in ("sweep", "other", "file")) or \
            (writer == "sweep" and kind in ("run", "file")):
        raise NotAResultsFolderError(_refusal(out_dir, kind, writer))
    where = out_dir if writer == "sweep" else out_dir.parent
    try:
        where.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-{os.getpid()}-", dir=where))
    except OSError as e:  # mkdir's FileExistsError ("File exists") meant a file on the path
        why = "a file is on the path" if isinstance(e, FileExistsError | NotADirectoryError) \
            else e.strerror or e
        raise OutputError(f"{out_dir}: cannot write results here: {why}; choose another --out") \
            from None
    return out_dir


def _check_replaceable(out_dir: Path) -> None:
    """Only an empty folder or a run's results folder may be replaced."""
    if out_dir.is_symlink() or (out_dir.exists() and not out_dir.is_dir()):
        raise NotAResultsFolderError(f"{out_dir}: exists and is not a folder; choose another --out")
    if folder_kind(out_dir) == "sweep":
        raise NotAResultsFolderError(_refusal(out_dir, "sweep", "run"))
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / SUMMARY_FILE).is_file():
        raise NotAResultsFolderError(
            f"{out_dir}: not an initlab results folder (no {SUMMARY_FILE}); refusing to replace "
            "it, since replacing deletes its contents; choose another --out")


class _Dumper(yaml.SafeDumper):
    """Long lists of numbers (a deep net's widths) on wrapped lines, not one line a number."""


def _number_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = len(data) > 8 and all(type(x) in (int, float) for x in data)  # bool is no number
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow or None)


_Dumper.add_representer(list, _number_list)


def config_yaml(config: dict[str, Any]) -> str:
    """A resolved config as YAML (config.yaml, the reports): keys in order, lists of more than
    8 numbers in flow style."""
    return yaml.dump(json_safe(config), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     width=100)


def _write_files(result: Result, folder: Path, render: Render | None) -> None:
    config = dict(result.config)
    config.setdefault("versions", versions())  # re-rendering keeps the versions that trained
    atomic_write_text(folder / CONFIG_FILE, config_yaml(config))
    atomic_write_text(folder / SUMMARY_FILE, dumps_json(result.summary))
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in result.arrays.items()})  # type: ignore[arg-type]
    atomic_write_bytes(folder / ARRAYS_FILE, buf.getvalue())
    atomic_write_text(folder / "variance.csv", variance_csv(result))
    atomic_write_text(folder / "loss.csv", loss_csv(result))
    if render is not None:
        render(Result(config, result.summary, result.arrays), folder)


def load_result(folder: str | Path) -> Result:
    """Read config.yaml, summary.json and arrays.npz back (as written by `write_result`)."""
    folder = Path(folder)
    if not folder.exists() and folder.parent.is_dir() and _siblings(folder, "old"):
        with _locked(folder):
            recover(folder)
    if not folder.is_dir():
        raise ResultsNotFoundError(f"{folder}: no results folder here (run `initlab run` first)")
    missing = [n for n in (CONFIG_FILE, SUMMARY_FILE, ARRAYS_FILE) if not (folder / n).is_file()]
    if missing:
        raise ResultsNotFoundError(f"{folder}: not a complete results folder; missing "
                                   + ", ".join(missing))
    try:
        config = yaml.safe_load((folder / CONFIG_FILE).read_text(encoding="utf-8")) or {}
        summary = json.loads((folder / SUMMARY_FILE).read_text(encoding="utf-8"))
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, yaml.YAMLError,
            RecursionError) as exc:  # a truncated arrays.npz, a damaged YAML/JSON file
        what = " ".join(str(exc).split()) or type(exc).__name__  # one line (YAML marks span 3)
        raise ResultsNotFoundError(f"{folder}: cannot read results: {what}") from exc
    check_shape(folder, config, summary, arrays)
    return Result(config=config, summary=summary, arrays=arrays)
