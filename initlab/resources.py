"""How much memory a config's population needs, measured against what the machine has, before
anything is allocated. `initlab run` (and `initlab sweep`) call `guard` first; `--dry-run`
prints the `Plan`.

Symbols (all from the resolved config and the data set's shape):

    M = variants x seeds (members)      s = bytes per float (float64: 8, float32: 4)
    n_0..n_L = layer sizes [n_in, *widths, n_out];   P = sum_l (n_{l-1} n_l + n_l)  (per member)
    N = samples;  B = training batch (N for full batch);  B_m = measurement batch
    B_t = max(B, B_m) (the largest batch a training step holds);  C = evaluation chunk
    (minibatch runs: min(N, 2^22 / (M max(sizes))), train.eval_chunk; full batch: 0)
    A = sum_{l=1..L} n_l;  n_max = max_l n_l
    S = optimizer steps = epochs x ceil(N / B);  R = ceil(S / every) + 1 (recorded steps)
    k = optimizer state per parameter: sgd 0, momentum 1, adam 2;  b = histogram bins

    population  = model.population_memory_bytes(sizes, M, B_t, dtype, optimizer)
                = s M [P (3 + k) + B_t (n_0 + 4 sum(hidden) + 3 n_L + 2 n_max)]
                                     parameters, gradients, one update, optimizer state; the
                                     gathered input, z, h, phi', dL/dz of every layer, temps
                                     (the step's buffers, kept until training ends)
    evaluation  = s M C (6 n_max + 3 n_L) the loss on all the data of a minibatch run
                                     (train.evaluate): z, h, phi' of two layers in turn for a
                                     chunk of C samples and the loss's temporaries, while the
                                     step's buffers are still alive
    snapshots   = 3 M P s + 3 M B_t n_max 8
                                     the weights at init, before a recorded update and the
                                     update, and float64 temporaries of the statistics of one
                                     layer
    statistics  = 3 x 8 R M (11 L + 2 K b)   11 (R, M, L) statistics and two (R, M, K, b)
                                     histograms of the K recorded layers (results.layers:
                                     L up to 16, else the chosen ones): the recorder's lists,
                                     the stacked arrays and the arrays.npz buffer
    curves      = 3 x 8 (epochs + 1) M       the loss curve, the same three times
    data        = 2 x 8 N (n_0 + y columns) + generation
                                         the float64 set and its copy in the run's dtype, and
                                         what generating it takes (`generation_bytes`: a
                                         teacher's own net; checked before it is generated)
    loader      = 100 MB for digits      importing scikit-learn (its loader): measured 80 MB
                                         of RSS (`import sklearn.datasets`); 0 for other sets
    boundary    = s V C_b 10 n_max + 48 G² + 16 V G² + F V g²
                                     the decision boundary (2-D binary data only): forward
                                     passes over C_b grid points at a time (z, h, phi' of two
                                     layers in turn and temporaries, whatever the depth;
                                     C_b = min(G², 2^21 / (6 V n_max)), see
                                     boundary.chunk_points), the G x G grid's
                                     points (G = 101), P(class 1) on it and its copy, F <= 62
                                     uint8 frames of g x g (g = 41) during training
    base        = 200 MB                 Python, NumPy, matplotlib
    processes   = (W - 1) x 150 MB       W processes at once (`run --workers N`: N; auto: every
                                     core; at most max(8 figures, M)): each forked worker's
                                     own pages (the figure processes measured 40-90 MB of
                                     PSS each on the playground and deep50)

    total = the sum; a run is refused when total > the limit: --max-memory, else the memory
    available now (MemAvailable in /proc/meminfo, capped by a cgroup limit; else
    SC_AVPHYS_PAGES x SC_PAGE_SIZE). The estimate is an upper bound of the peak memory of a run
    (RSS with one process; the sum of the processes' PSS with several), not the exact peak:
    these buffers are not all alive at once. tests/test_memory_bound.py measures the peak of
    `initlab run` over a range of shapes and holds the estimate above it (and within 3x of it,
    so that the bound stays useful).

Only the data set's shape is needed, and it is found cheaply: a built-in set of at most
`FULL_LOAD_SAMPLES` samples is generated in full (which also checks its parameters), a larger one
is generated with a few samples only, and MNIST is never read (784 inputs, 10 classes).
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from initlab.errors import BadParameterError, ConfigError, Problem, UnknownNameError
from initlab.nn.model import OPTIMIZER_STATE, population_memory_bytes
from initlab.nn.residual import residual_memory_bytes
from initlab.results.layers import config_layers, network_text, recorded_layers

FULL_LOAD_SAMPLES = 5000  # data sets up to this size are generated in full by the plan
PROBE_SAMPLES = 64  # larger ones: only this many, for their shape
GENERATION_CHECKED = 50 * 10**6  # data sets that take more to generate are checked first
BASE_BYTES = 200 * 10**6  # the interpreter, NumPy, SciPy, matplotlib
N_STATS, COPIES = 11, 3
EVAL_CHUNK_ELEMENTS = 1 << 22  # train.evaluate's chunking
PROCESS_BYTES = 150 * 10**6  # each process beyond the first (run --workers, figure processes)
LOADER_BYTES = {"digits": 100 * 10**6}  # importing scikit-learn: 80 MB of RSS measured
FRAMES = 62  # boundary.MAX_FRAMES and the first and last step
MNIST_SAMPLES = {"test": 10_000, "train": 60_000}

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}


class ResourceError(ConfigError):
    """A config that needs more memory than allowed (exit 2, with the estimate and the fix)."""


# ---------------------------------------------------------------- sizes


def parse_size(text: str) -> int:
    """'2GB' -> 2_000_000_000; '1.5GiB', '512M', '100000' (bytes). ValueError if unreadable."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    if m is None or m.group(2).lower() not in _UNITS:
        raise ValueError(f"cannot read {text!r} as a size; expected e.g. 2GB, 512MB, 1.5GiB")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"{text!r} is not a positive size")
    return int(value)


def format_size(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as `parse_size` reads them)."""
    try:
        x = float(n)
    except OverflowError:
        return "more than 1e308 bytes"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{int(x)} B"


def _cgroup_room() -> int | None:
    """Bytes left under a cgroup v2 memory limit, or None when unlimited or unknown."""
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((base / "memory.current").read_text().strip())
        return max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes the machine can give now: MemAvailable (capped by a cgroup limit), else
    SC_AVPHYS_PAGES x SC_PAGE_SIZE; None if nothing can be read."""
    avail: int | None = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    room = _cgroup_room()
    if room is not None:
        avail = room if avail is None else min(avail, room)
    return avail


# ---------------------------------------------------------------- the data set's shape


@dataclass(frozen=True)
class DataShape:
    name: str
    samples: int  # N
    n_in: int
    n_out: int  # output units of the net (softmax_ce on binary data: 2)
    y_cols: int  # columns of y (labels: 1, regression: K)
    task: str
    loss: str
    loaded: str  # "full", "probe" (a few samples) or "none" (shape known without reading)


def _samples_of(cfg: Mapping[str, Any]) -> tuple[str, dict[str, Any], int]:
    from initlab.data import datasets as data

    spec = dict(cfg["data"])
    name = data.DATASETS.canonical(spec.get("name"))
    n = spec.get("samples")
    if n is None:
        default = data.params_of(name).get("samples")
        n = default if isinstance(default, int) else None
    if n is None and name == "digits":
        n = 1797
    if n is None and name == "mnist":
        n = MNIST_SAMPLES.get(str(spec.get("split", "test")), 10_000)
    return name, spec, int(n if n is not None else FULL_LOAD_SAMPLES)


def _count(value: Any, default: int) -> int:
    """A size parameter as a positive int for the estimate (bad values: `default`; the data
    set's own checks report them)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return default
    return max(int(value), 1)


def generation_bytes(spec: Mapping[str, Any], samples: int) -> int:
    """Upper bound of the memory generating `samples` rows of a data set takes, from its
    parameters alone (before anything is generated). A teacher builds its own net layer by
    layer: for each layer its weights twice (the draw and the scaled copy), the layer's input
    and three (N, fan_out) arrays: 8 max_l [2 n_{l-1} n_l + N (n_{l-1} + 3 n_l)] bytes, plus x.
    linear_chain: x and three columns; the other sets: nothing beyond their arrays."""
    name = str(spec.get("name"))
    N = samples
    if name == "teacher":
        n_in = _count(spec.get("n_in", 10), 10)
        hidden = spec.get("hidden", [32, 32])
        widths = [hidden] if not isinstance(hidden, list | tuple) else list(hidden)
        sizes = [n_in, *[_count(w, 1) for w in widths],
                 max(_count(spec.get("n_out", 1), 1), _count(spec.get("n_classes") or 2, 2))]
        peak = max(2 * a * b + N * (a + 3 * b) for a, b in itertools.pairwise(sizes))
        return 8 * (peak + N * n_in)
    if name == "linear_chain":
        return 8 * N * (_count(spec.get("dim", 2), 2) + 3)
    return 0  # the 2-D sets, digits and MNIST: the `data` arrays themselves


def data_shape(cfg: Mapping[str, Any], source: str | None = None,
               limit: int | None = None, overridden: Sequence[str] | None = None) -> DataShape:
    """The data set's size and the net's input/output widths, without loading a large set.
    Bad data parameters become a ConfigError at `source` (the config file); with `overridden`
    (the key paths set on the command line), at the key's LINE:COL in it or at `--set`."""
    try:
        return _data_shape(cfg, source, limit)
    except ConfigError as e:
        if overridden is None:
            raise
        from initlab.config.positions import locate

        raise type(e)([locate(p, overridden) for p in e.problems]) from None


def _data_shape(cfg: Mapping[str, Any], source: str | None,
                limit: int | None) -> DataShape:
    from initlab import experiment

    try:
        name, spec, n = _samples_of(cfg)
        loss_name = cfg["train"].get("loss", "auto") or "auto"
        if name == "mnist":  # never read or download anything for a plan
            loss = "softmax_ce" if loss_name == "auto" else loss_name
            return DataShape(name, n, 784, 10, 1, "multiclass", loss, "none")
        # digits is small whatever `samples` says (and checks it against its 1797 rows)
        loaded = "full" if n <= FULL_LOAD_SAMPLES or name == "digits" else "probe"
        gen = generation_bytes(spec, n if loaded == "full" else PROBE_SAMPLES)
        if limit is not None and gen > GENERATION_CHECKED and BASE_BYTES + gen > limit:
            raise ResourceError([Problem(  # refused before the data set is generated
                    f"generating the data set needs about {format_size(gen)} (and "
                    f"{format_size(BASE_BYTES)} for Python), more than the limit "
                    f"({format_size(limit)}); nothing was allocated", "data", source,
                    expected="smaller data parameters (samples, n_in, hidden, dim) or a higher "
                    "--max-memory")])
        probe = dict(cfg)
        if loaded == "probe":
            probe["data"] = {**spec, "samples": PROBE_SAMPLES}
        ds = experiment.load_data(probe)
        loss = experiment._loss_for(cfg, ds).name
    except (UnknownNameError, BadParameterError) as e:
        raise ConfigError([Problem(str(e), "data", source)]) from None
    except ConfigError as e:  # a ResourceError stays one
        raise type(e)([p if p.file else Problem(p.message, p.path, source, p.line, p.col,
                                                    p.expected, p.suggestion)
                           for p in e.problems]) from None
    except (TypeError, ValueError) as e:
        raise ConfigError([Problem(f"bad data parameters: {e}", "data", source)]) from None
    except (MemoryError, OverflowError) as e:
        raise ResourceError([Problem(f"the data set cannot be generated: {e}", "data",
                                     source, expected="smaller data parameters")]) from None
    n_out = 2 if (loss == "softmax_ce" and ds.task == "binary") else ds.n_out
    y_cols = 1 if ds.y.ndim == 1 else int(ds.y.shape[1])
    return DataShape(ds.name, n if loaded == "probe" else len(ds.x), ds.n_in, n_out, y_cols,
                     ds.task, loss, loaded)


# ---------------------------------------------------------------- the estimate


@dataclass(frozen=True)
class Plan:
    """What a run of a config will do, and the memory it needs (bytes per part)."""

    name: str
    shape: DataShape
    sizes: list[int]
    variants: int
    seeds: int
    epochs: int
    batch: int  # B
    steps: int  # S
    records: int  # R
    dtype: str
    parts: dict[str, int] = field(default_factory=dict)
    batch_eff: int = 0  # B_t: the largest batch a training step holds
    optimizer: str = "sgd"
    residual: bool = False  # a residual net: population by nn.residual.residual_memory_bytes

    @property
    def members(self) -> int:
        return self.variants * self.seeds

    @property
    def params_per_member(self) -> int:
        return sum(a * b + b for a, b in itertools.pairwise(self.sizes))

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def lines(self) -> list[str]:
        """The plan in plain words, one line each (for `initlab run --dry-run`)."""
        sh = self.shape
        full = "full batch" if self.batch >= sh.samples else f"batch {self.batch}"
        how = {"full": "", "probe": f" (shape read from {PROBE_SAMPLES} samples)",
               "none": " (not read)"}[sh.loaded]
        parts = ", ".join(f"{k} {format_size(v)}" for k, v in self.parts.items())
        return [
            f"plan for {self.name}",
            f"  data:    {sh.name}, {sh.samples} samples, {sh.task}, loss {sh.loss}{how}",
            f"  model:   sizes {network_text(self.sizes)}, {self.params_per_member} parameters "
            "per member, "
            f"{self.dtype}",
            f"  members: {self.variants} variants x {self.seeds} seeds = {self.members}",
            f"  steps:   {self.epochs} epochs, {full}: {self.steps} optimizer steps, "
            f"{self.records} recorded",
            f"  memory:  about {format_size(self.total)} ({parts})",
            *(self.population_formula() if not self.residual else [
                "  population = nn.residual.residual_memory_bytes: parameters, gradients, "
                "optimizer, the stream (L + 1) B n twice, block internals <= 256 MB, "
                "evaluation chunks <= 64 MB"]),
        ]

    def population_formula(self) -> list[str]:
        """model.population_memory_bytes with this plan's numbers in it (two lines)."""
        n, hidden = self.sizes, self.sizes[1:-1]
        s = 4 if self.dtype == "float32" else 8
        k = OPTIMIZER_STATE.get(self.optimizer, 2)
        return [
            "  population = s M [P (3 + k) + B_t (n_in + 4 sum(hidden) + 3 n_out + 2 n_max)]",
            f"             = {s} x {self.members} x [{self.params_per_member} x {3 + k} + "
            f"{self.batch_eff} x ({n[0]} + 4 x {sum(hidden)} + 3 x {n[-1]} + 2 x "
            f"{max(n[1:])})] B = {format_size(self.parts.get('population', 0))}",
        ]


def boundary_bytes(variants: int, sizes: list[int], itemsize: int) -> int:
    """Bytes of the decision boundary's evaluation (see the module formula)."""
    from initlab.boundary import BOUNDARY_POINTS, FRAME_POINTS, chunk_points

    grid = BOUNDARY_POINTS ** 2
    chunk = chunk_points(variants, sizes, grid)
    return (itemsize * variants * chunk * 10 * max(sizes[1:])
            + 48 * grid + 16 * variants * grid + FRAMES * variants * FRAME_POINTS ** 2)


def estimate(cfg: Mapping[str, Any], shape: DataShape) -> Plan:
    """The Plan of a resolved config (api.resolve) whose data has `shape` (module formula)."""
    widths = [int(w) for w in cfg["model"]["widths"]]
    sizes = [shape.n_in, *widths, shape.n_out]
    residual = cfg["model"].get("residual")  # residual nets: nn.residual.residual_memory_bytes
    V, S = len(cfg["init"]), int(cfg.get("seeds", 1))
    M, L = V * S, len(sizes) - 1
    s = 4 if cfg.get("dtype") == "float32" else 8
    tr, meas = cfg["train"], cfg.get("measure", {})
    N, E = shape.samples, int(tr.get("epochs", 0))
    bs = tr.get("batch_size")
    full = bs is None or int(bs) >= N
    B = N if full else int(bs)
    per_epoch = 1 if full else -(-N // B)
    steps = E * per_epoch
    every = max(int(meas.get("every", 10)), 1)
    R = -(-steps // every) + 1
    bins = int(meas.get("bins", 50))
    K = len(recorded_layers(L, config_layers(cfg)))  # layers whose histograms are recorded
    optimizer = str(tr.get("optimizer", "sgd"))
    P = sum(a * b + b for a, b in itertools.pairwise(sizes))
    n_max = max(sizes[1:])
    dtype = np.float32 if s == 4 else np.float64
    B_meas = N if full else min(int(meas.get("batch", 1000)), N)
    chunk = 0 if full else min(N, max(1, EVAL_CHUNK_ELEMENTS // max(1, M * max(sizes))))
    B_t = max(B, B_meas)
    parts = {
        "population": population_memory_bytes(sizes, M, B_t, dtype, optimizer)
        if not residual else residual_memory_bytes(
            shape.n_in, widths[0], shape.n_out, len(widths), int(residual.get("branch", 2)), M,
            max(B, B_meas), dtype, optimizer, cfg["model"].get("norm")) + (64 << 20),
        "evaluation": s * M * chunk * (6 * n_max + 3 * shape.n_out) if not residual else 0,
        "snapshots": 3 * M * P * s + 3 * M * B_t * n_max * 8,
        "statistics": COPIES * 8 * R * M * (L * N_STATS + 2 * K * bins),
        "curves": COPIES * 8 * (E + 1) * M,
        "data": 2 * 8 * N * (shape.n_in + shape.y_cols) + generation_bytes(cfg["data"], N),
        "loader": LOADER_BYTES.get(shape.name, 0),
        "boundary": (boundary_bytes(V, sizes, s)  # residual nets draw no boundary
                     if shape.n_in == 2 and shape.task == "binary" and not residual else 0),
        "base": BASE_BYTES,
    }
    return Plan(str(cfg.get("name")), shape, sizes, V, S, E, B, steps, R,
                str(cfg.get("dtype", "float64")), parts, B_t, optimizer, residual is not None)


_ADVICE = {
    "population": "fewer seeds or init variants, a smaller batch (train.batch_size, "
                  "measure.batch), or narrower/fewer layers (model.widths)",
    "evaluation": "fewer seeds or init variants, or narrower layers (model.widths)",
    "snapshots": "fewer seeds or init variants, or narrower/fewer layers (model.widths)",
    "statistics": "fewer epochs, a larger measure.every, fewer measure.bins, or fewer seeds",
    "curves": "fewer epochs or fewer seeds",
    "data": "fewer samples (data.samples)",
    "boundary": "fewer init variants or narrower layers",
    "processes": "fewer processes (run --workers 1)",
}


def check(plan: Plan, limit: int | None = None, source: str | None = None) -> Plan:
    """Raise ResourceError when the plan needs more than `limit` bytes (default: the memory
    available now). Returns the plan."""
    explicit = limit is not None
    room = limit if explicit else available_memory()
    if room is None or plan.total <= room:
        return plan
    big = sorted((k for k in _ADVICE if plan.parts.get(k, 0) > 0.1 * plan.total),
                 key=lambda k: -plan.parts[k])
    large = sorted((k for k in plan.parts if plan.parts[k] > 0.1 * plan.total),
                   key=lambda k: -plan.parts[k])  # the base too, when it is one of them
    shown = large or sorted(plan.parts, key=lambda k: -plan.parts[k])[:2]
    parts = ", ".join(f"{k} {format_size(plan.parts[k])}" for k in shown)
    what = "--max-memory" if explicit else "the memory available"
    advice = "; ".join(_ADVICE[k] for k in big) or "a smaller config"
    raise ResourceError([Problem(
        f"the population of {plan.members} members needs about {format_size(plan.total)} "
        f"({parts}), more than {what} ({format_size(room)}); nothing was allocated",
        "", source,
        expected=f"a config that fits: {advice}; or raise the limit with --max-memory SIZE")])


def guard(cfg: Mapping[str, Any], max_memory: int | None = None,
          source: str | None = None, overridden: Sequence[str] | None = None,
          processes: int = 1) -> Plan:
    """The plan of a resolved config, refused up front (ResourceError, exit 2) when it needs
    more memory than `max_memory` bytes or, without it, than the machine has available.
    `overridden`: see `data_shape`; `processes`: how many run at once (`run --workers`)."""
    room = max_memory if max_memory is not None else available_memory()
    plan = estimate(cfg, data_shape(cfg, source, room, overridden))
    if processes > 1:
        plan.parts["processes"] = (processes - 1) * PROCESS_BYTES
    return check(plan, max_memory, source)
