"""Data sets: the article's four 2-D sets, toy tasks, a teacher network, digits and MNIST.

    ds = load("circle", rng=np.random.default_rng(0), samples=100)
    ds.x: (N, n_in) float64;  ds.y: (N,) int labels, or (N, K) float targets for regression

Every generator takes its randomness from the `rng` passed in, so a seed gives the same arrays.
The binary 2-D sets alternate classes row by row (y = 0, 1, 0, 1, ...) so any prefix of the
data (e.g. the measurement batch x[:1000]) is balanced; within a class, rows follow the recipe's
index i. A dataset's parameters are the keyword arguments of its generator (`params_of`).

The only I/O is the MNIST reader and its download cache (files are verified by SHA-256 and
written atomically); nothing here prints.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import inspect
import itertools
import math
import os
import struct
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from initlab.errors import BadParameterError, DataUnavailableError, MissingDependencyError
from initlab.registry import Registry

Array = np.ndarray
TASKS = ("binary", "multiclass", "regression")


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value; compare by id
class Dataset:
    """x: (N, n_in) float64; y: (N,) int labels (binary, multiclass) or (N, K) float targets."""

    name: str
    x: Array
    y: Array
    task: str
    n_classes: int | None = None
    x_test: Array | None = None
    y_test: Array | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_in(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_out(self) -> int:
        """Output units a net needs: binary 1 (a logit), multiclass n_classes, regression K."""
        if self.task == "binary":
            return 1
        if self.task == "multiclass":
            return int(self.n_classes or 0)
        return int(self.y.shape[1])


# ----------------------------------------------------------------------------- validation
def _int(owner: str, param: str, value: object, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise BadParameterError(owner, param, f"{param} must be an integer, got {value!r}")
    if value < low:
        raise BadParameterError(owner, param, f"{param} must be >= {low}, got {value}")
    return int(value)


def _float(owner: str, param: str, value: object, low: float = 0.0,
           high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise BadParameterError(owner, param, f"{param} must be a number, got {value!r}")
    x = float(value)
    if not (math.isfinite(x) and low <= x < high):
        top = "" if high == math.inf else f" and < {high:g}"
        raise BadParameterError(owner, param, f"{param} must be finite, >= {low:g}{top}, got {x}")
    return x


def _choice(owner: str, param: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        raise BadParameterError(owner, param, f"{param} must be one of "
                                f"{', '.join(map(repr, choices))}, got {value!r}")
    return str(value)


def _subsample(rng: np.random.Generator, n: int, samples: int | None, owner: str) -> Array:
    """Indices of a random subset of size `samples` (all rows, in order, when None)."""
    if samples is None:
        return np.arange(n)
    k = _int(owner, "samples", samples)
    if k > n:
        raise BadParameterError(owner, "samples", f"samples must be <= {n}, got {k}")
    return np.sort(rng.choice(n, size=k, replace=False))


def _binary(name: str, x: Array, y: Array, **meta: Any) -> Dataset:
    return Dataset(name, np.asarray(x, np.float64), y.astype(np.int64), "binary", 2, meta=meta)


def _classes(rng: np.random.Generator, samples: object, owner: str) -> tuple[Array, Array, Array]:
    """Alternating labels y = 0, 1, 0, 1, ...; i = each row's index within its class; n_c."""
    n = _int(owner, "samples", samples, low=2)
    y = np.arange(n) % 2
    i = np.arange(n) // 2
    n_c = np.where(y == 0, (n + 1) // 2, n // 2)  # (N,) the size of each row's class
    return y, i, n_c


# ----------------------------------------------------------------------------- the article
def circle(rng: np.random.Generator, *, samples: int = 100) -> Dataset:
    """angle ~ U(0, 2π); r = 4 + U(-1, 1) (class 1) or 1 + U(-1, 1) (class 0)."""
    y, _, _ = _classes(rng, samples, "circle")
    angle = rng.uniform(0, 2 * np.pi, y.size)
    r = np.where(y == 1, 4.0, 1.0) + rng.uniform(-1, 1, y.size)
    return _binary("circle", np.c_[r * np.cos(angle), r * np.sin(angle)], y)


def spiral(rng: np.random.Generator, *, samples: int = 100) -> Dataset:
    """angle = i/n·π + δ (δ = 0 class 1, π class 0); r = i/n·4 + N(1, 0.5²);
    x1 = r·cos(angle) + (y − ½), x2 = r·sin(angle) − (y − ½); n = points per class (50)."""
    y, i, n_c = _classes(rng, samples, "spiral")
    angle = i / n_c * np.pi + np.where(y == 1, 0.0, np.pi)
    r = i / n_c * 4 + rng.normal(1.0, 0.5, y.size)  # the article's variance 0.25: std 0.5
    s = y - 0.5
    return _binary("spiral", np.c_[r * np.cos(angle) + s, r * np.sin(angle) - s], y)


def square(rng: np.random.Generator, *, samples: int = 100) -> Dataset:
    """XOR checkerboard: p = ±1 (prob ½); x1 = U(0.5, 5)·p, x2 = (2y − 1)·U(0.5, 5)·p,
    so y = 1 exactly where x1·x2 > 0 (quadrants I and III)."""
    y, _, _ = _classes(rng, samples, "square")
    p = rng.choice([-1.0, 1.0], size=y.size)
    x1 = rng.uniform(0.5, 5, y.size) * p
    x2 = (2 * y - 1) * rng.uniform(0.5, 5, y.size) * p
    return _binary("square", np.c_[x1, x2], y)


def gauss(rng: np.random.Generator, *, samples: int = 100) -> Dataset:
    """class 1 ~ N((−2, −2), I), class 0 ~ N((2, 2), I)."""
    y, _, _ = _classes(rng, samples, "gauss")
    mean = np.where(y[:, None] == 1, -2.0, 2.0)  # (N, 1) broadcast to both coordinates
    return _binary("gauss", mean + rng.standard_normal((y.size, 2)), y)


# ----------------------------------------------------------------------------- toy tasks
def two_moons(rng: np.random.Generator, *, samples: int = 200, noise: float = 0.1) -> Dataset:
    """scikit-learn's make_moons: class 0 on (cos t, sin t), class 1 on (1 − cos t,
    ½ − sin t), t evenly spaced on [0, π] within each class, plus N(0, noise²) per coordinate."""
    y, i, n_c = _classes(rng, samples, "two_moons")
    noise = _float("two_moons", "noise", noise)
    t = np.pi * i / np.maximum(n_c - 1, 1)
    x = np.c_[np.where(y == 0, np.cos(t), 1 - np.cos(t)),
              np.where(y == 0, np.sin(t), 0.5 - np.sin(t))]
    return _binary("two_moons", x + noise * rng.standard_normal(x.shape), y, noise=noise)


def xor(rng: np.random.Generator, *, samples: int = 200, noise: float = 0.3) -> Dataset:
    """Four Gaussian blobs N((±1, ±1), noise²·I), taken in turn; a blob's label is 1 where
    its centre has x1·x2 > 0 (quadrants I, III). Points near the axes may cross the rule."""
    n = _int("xor", "samples", samples, low=2)
    noise = _float("xor", "noise", noise)
    signs = np.array([[1, -1], [1, 1], [-1, 1], [-1, -1]], float)  # labels 0, 1, 0, 1
    centre = signs[np.arange(n) % 4]  # (N, 2)
    y = (centre[:, 0] * centre[:, 1] > 0).astype(np.int64)
    return _binary("xor", centre + noise * rng.standard_normal((n, 2)), y, noise=noise)


def linear_chain(rng: np.random.Generator, *, samples: int = 1000, dim: int = 2,
                 noise: float = 0.0) -> Dataset:
    """The primer's linear chain: x ~ N(0, I_dim), y = x·a + noise·N(0, 1) with
    a = (1, ..., 1)/√dim, so Var(y) = Var(x_i) = 1 (without noise): MSE regression."""
    n = _int("linear_chain", "samples", samples)
    dim = _int("linear_chain", "dim", dim)
    noise = _float("linear_chain", "noise", noise)
    a = np.ones(dim) / math.sqrt(dim)
    x = rng.standard_normal((n, dim))
    y = x @ a + noise * rng.standard_normal(n)
    return Dataset("linear_chain", x, y[:, None], "regression", meta={"a": a, "noise": noise})


def teacher(rng: np.random.Generator, *, samples: int = 1000, n_in: int = 10, n_out: int = 1,
            hidden: int | Sequence[int] = (32, 32),
            activation: str = "tanh", task: str = "regression", n_classes: int | None = None,
            noise: float = 0.0, sigma_w: float = 1.5, sigma_b: float = 0.1) -> Dataset:
    """A random teacher MLP f: x ~ N(0, I_n_in); W[l] ~ N(0, sigma_w²/fan_in),
    b[l] ~ N(0, sigma_b²), hidden layers phi(h @ W + b), a linear last layer.
    task 'regression': y = f(x) + noise·N(0, 1), (N, n_out). task 'classes': y = argmax of
    n_classes outputs (default max(n_out, 2)), each centred over the sample, plus noise·N(0, 1):
    binary for 2 classes, else multiclass."""
    o = "teacher"
    n, n_in = _int(o, "samples", samples), _int(o, "n_in", n_in)
    task = _choice(o, "task", task, ("regression", "classes"))
    n_out = _int(o, "n_out", n_out)
    if task == "classes":  # n_classes outputs, by default n_out (at least 2)
        n_out = max(n_out, 2) if n_classes is None else _int(o, "n_classes", n_classes, low=2)
    widths = [hidden] if isinstance(hidden, int | np.integer) else hidden
    if not isinstance(widths, list | tuple):
        raise BadParameterError(o, "hidden", f"hidden must be a width or a list of widths, got "
                                f"{hidden!r}")
    widths = [_int(o, "hidden", w) for w in widths]
    noise, sigma_w = _float(o, "noise", noise), _float(o, "sigma_w", sigma_w)
    sigma_b = _float(o, "sigma_b", sigma_b)
    phi = _phi(activation)
    x = rng.standard_normal((n, n_in))
    h, sizes = x, [n_in, *widths, n_out]
    for l, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        z = h @ (rng.standard_normal((fan_in, fan_out)) * sigma_w / math.sqrt(fan_in))
        z = z + sigma_b * rng.standard_normal(fan_out)
        h = z if l == len(sizes) - 2 else phi(z)
    out = h + noise * rng.standard_normal(h.shape)  # (N, n_out)
    meta = {"sizes": sizes, "activation": activation, "noise": noise, "sigma_w": sigma_w,
            "sigma_b": sigma_b}
    if task == "regression":
        return Dataset(o, x, out, "regression", meta=meta)
    y = np.argmax(out - out.mean(axis=0), axis=1).astype(np.int64)
    kind = "binary" if n_out == 2 else "multiclass"
    return Dataset(o, x, y, kind, n_out, meta=meta)


def _phi(name: object) -> Callable[[Array], Array]:
    if name == "tanh":
        return np.tanh
    from initlab.nn.activations import get_activation  # lazy: data does not need it otherwise

    try:
        return get_activation(name).phi  # type: ignore[arg-type]
    except ValueError as e:
        raise BadParameterError("teacher", "activation", str(e)) from None


# ----------------------------------------------------------------------------- digits
# data sets that need an optional extra: name -> (module, package, extra)
EXTRAS = {"digits": ("sklearn", "scikit-learn", "initlab[datasets]")}


def needs(name: str) -> tuple[str, str, bool] | None:
    """(package, extra, installed) of a data set that needs an optional extra, else None."""
    if name not in EXTRAS:
        return None
    import importlib.util

    module, package, extra = EXTRAS[name]
    return package, extra, importlib.util.find_spec(module) is not None


def digits(rng: np.random.Generator, *, samples: int | None = None,
           test_fraction: float = 0.0) -> Dataset:
    """scikit-learn's bundled 8×8 digits (1797, no download): pixels / 16, 10 classes.
    samples: a random subset (default all); test_fraction of it is held out as x_test."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise MissingDependencyError(
            "digits needs scikit-learn: pip install 'initlab[datasets]'") from None
    frac = _float("digits", "test_fraction", test_fraction, high=1.0)
    raw = load_digits()
    x, y = np.asarray(raw.data, np.float64) / 16.0, np.asarray(raw.target, np.int64)
    keep = _subsample(rng, len(y), samples, "digits")
    return _split("digits", x[keep], y[keep], frac, rng, 10)


def _split(name: str, x: Array, y: Array, frac: float, rng: np.random.Generator,
           n_classes: int) -> Dataset:
    """Hold out a random `frac` of the rows as (x_test, y_test)."""
    n_test = round(frac * len(y))
    if n_test == 0:
        return Dataset(name, x, y, "multiclass", n_classes)
    if n_test >= len(y):
        raise BadParameterError(name, "test_fraction", f"test_fraction={frac:g} leaves no "
                                f"training samples out of {len(y)}")
    test = np.zeros(len(y), bool)
    test[rng.choice(len(y), n_test, replace=False)] = True
    return Dataset(name, x[~test], y[~test], "multiclass", n_classes, x[test], y[test])


# ----------------------------------------------------------------------------- MNIST
IDX_IMAGES, IDX_LABELS = 0x00000803, 0x00000801  # magic: 0, 0, type 0x08 (uint8), ndim
MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# SHA-256 of the standard .gz files, as published by several independent MNIST loaders
# (torchvision itself lists MD5s: f68b3c2d..., d53e105e..., 9fb629c4..., ec29112d...).
MNIST_SHA256 = dict([
    ("train-images-idx3-ubyte.gz",
     "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    ("train-labels-idx1-ubyte.gz",
     "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    ("t10k-images-idx3-ubyte.gz",
     "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    ("t10k-labels-idx1-ubyte.gz",
     "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
])
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's
                 "https://storage.googleapis.com/cvdf-datasets/mnist/")  # TensorFlow's
_MAX_DOWNLOAD = 32 << 20  # bytes; the largest file is 9.9 MB


def read_idx(path: str | Path, magic: int) -> Array:
    """A strict IDX reader (optionally gzipped): big-endian magic, dims, then raw uint8."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataUnavailableError(f"mnist: cannot read {path}: {e}") from None
    ndim = magic & 0xFF
    head = 4 + 4 * ndim
    if len(raw) < head or struct.unpack(">I", raw[:4])[0] != magic:
        got = raw[:4].hex() or "an empty file"
        raise DataUnavailableError(f"mnist: {path} is not an IDX file (magic {got}, expected "
                                   f"{magic:08x})")
    dims = struct.unpack(f">{ndim}I", raw[4:head])
    if len(raw) != head + math.prod(dims) or 0 in dims[1:]:
        raise DataUnavailableError(f"mnist: {path} is corrupt or truncated: header {dims} needs "
                                   f"{head + math.prod(dims)} bytes, the file has {len(raw)}")
    return np.frombuffer(raw, np.uint8, offset=head).reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    """`stem` (or the common `t10k-images.idx3-ubyte` spelling), raw or .gz, in `folder`."""
    for name in (stem, stem.replace("-idx", ".idx")):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _download(name: str, folder: Path, mirrors: Sequence[str]) -> Path:
    """Fetch `name` from the first mirror that serves it with the right SHA-256; write it
    atomically (temp file + os.replace). Raises OSError with every mirror's reason."""
    reasons = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + name
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                blob = response.read(_MAX_DOWNLOAD + 1)
        except (OSError, ValueError, http.client.HTTPException) as e:
            reasons.append(f"{url}: {getattr(e, 'reason', None) or e}")
            continue
        if hashlib.sha256(blob).hexdigest() != MNIST_SHA256[name]:
            reasons.append(f"{url}: SHA-256 mismatch")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, folder / name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return folder / name
    raise OSError("; ".join(reasons) or "no mirrors")


def _cached(stem: str, folder: Path, download: bool, mirrors: Sequence[str]) -> Path:
    """A verified file for `stem` in the cache, downloading it when missing or corrupt."""
    found, gz = _find(folder, stem), f"{stem}.gz"
    problem = f"no local files in {folder}"
    if found is not None and found.name == gz and _sha256(found) != MNIST_SHA256[gz]:
        found, problem = None, f"{found} fails its SHA-256 check (corrupt or partial)"
    if found is not None:
        return found  # a raw (uncompressed) file the user put there: read strictly, unhashed
    hint = "put the four IDX files there or pass data.path=..."
    if not download:
        raise DataUnavailableError(f"mnist: {problem} and download is disabled; {hint}")
    try:
        return _download(gz, folder, mirrors)
    except OSError as e:
        raise DataUnavailableError(f"mnist: {problem} and download failed ({e}); {hint}") from None


def _mirror_list(mirrors: str | Sequence[str] | None) -> list[str]:
    if mirrors is None:
        mirrors = os.environ.get("INITLAB_MNIST_MIRROR") or list(MNIST_MIRRORS)
    if isinstance(mirrors, str):
        mirrors = mirrors.replace(",", " ").split()
    return [str(m) for m in mirrors]


def mnist(rng: np.random.Generator, *, path: str | None = None, split: str = "test",
          samples: int | None = None, cache_dir: str | None = None, download: bool = True,
          mirrors: str | list[str] | None = None) -> Dataset:
    """MNIST 28×28 digits, pixels / 255 (not centred, as the article), 10 classes.
    split 'test' (the article's 10,000 digits) or 'train'. path: a folder of IDX files (raw or
    .gz) or a keras-style mnist.npz; without it, the cache (cache_dir, else $INITLAB_CACHE/mnist,
    else ~/.cache/initlab/mnist), filled once from `mirrors` ($INITLAB_MNIST_MIRROR, comma
    separated) with SHA-256 checks when `download`. samples: a random subset (default all)."""
    split = _choice("mnist", "split", split, ("test", "train"))
    if samples is not None:
        _int("mnist", "samples", samples)  # before any reading or downloading
    if not isinstance(download, bool):
        raise BadParameterError("mnist", "download", f"download must be true or false, got "
                                f"{download!r}")
    if path is not None:
        images, labels, source = _from_path(Path(path).expanduser(), split)
    else:
        root = os.environ.get("INITLAB_CACHE")
        folder = Path(cache_dir or (Path(root) / "mnist" if root else
                                    Path.home() / ".cache" / "initlab" / "mnist")).expanduser()
        stems, urls = MNIST_FILES[split], _mirror_list(mirrors)
        files = [_cached(stem, folder, download, urls) for stem in stems]
        images, labels = read_idx(files[0], IDX_IMAGES), read_idx(files[1], IDX_LABELS)
        source = str(folder)
    if len(images) != len(labels):
        raise DataUnavailableError(f"mnist: {source}: {len(images)} images but {len(labels)} "
                                   f"labels")
    if labels.size and not 0 <= labels.min() <= labels.max() <= 9:
        raise DataUnavailableError(f"mnist: {source}: labels outside 0..9")
    keep = _subsample(rng, len(labels), samples, "mnist")
    x = images[keep].reshape(len(keep), -1).astype(np.float64) / 255.0  # (N, 784)
    return Dataset("mnist", x, labels[keep].astype(np.int64), "multiclass", 10,
                   meta={"split": split, "source": source})


def _from_path(path: Path, split: str) -> tuple[Array, Array, str]:
    folder = path
    if path.is_dir() and _find(path, MNIST_FILES[split][0]) is None:
        path = path / "mnist.npz"  # a folder holding keras' file
    if path.suffix == ".npz" and path.is_file():
        try:
            with np.load(path) as z:
                return np.asarray(z[f"x_{split}"]), np.asarray(z[f"y_{split}"]), str(path)
        except (OSError, ValueError, KeyError, zlib.error) as e:
            raise DataUnavailableError(f"mnist: cannot read x_{split}/y_{split} from {path}: "
                                       f"{e}") from None
    found = [_find(folder, stem) for stem in MNIST_FILES[split]] if folder.is_dir() else []
    if len(found) != 2 or None in found:
        raise DataUnavailableError(
            f"mnist: no {split} files in {folder} (expected {' and '.join(MNIST_FILES[split])}, "
            f"optionally .gz, or a mnist.npz with x_{split}/y_{split})")
    images, labels = read_idx(found[0], IDX_IMAGES), read_idx(found[1], IDX_LABELS)  # type: ignore[arg-type]
    return images, labels, str(folder)


# ----------------------------------------------------------------------------- registry
Generator = Callable[..., Dataset]
DATASETS: Registry[Generator] = Registry("dataset")
for _fn, _aliases, _desc, _formula in [
    (circle, (), "the article's circle: two rings (binary, 2-D)",
     "r = 1 + U(±1) (y=0), 4 + U(±1) (y=1); angle ~ U(0, 2π)"),
    (spiral, ("moon",), "the article's 'moon': two interleaved spirals (binary, 2-D)",
     "angle = i/n·π (+π if y=0), r = 4i/n + N(1, 0.5²), shifted by ±(y − ½)"),
    (square, (), "the article's square: an XOR checkerboard (binary, 2-D)",
     "|x1|, |x2| ~ U(0.5, 5); y = 1 iff x1·x2 > 0"),
    (gauss, (), "the article's gauss: two Gaussian clouds (binary, 2-D)",
     "y=1 ~ N((−2, −2), I), y=0 ~ N((2, 2), I)"),
    (two_moons, ("moons",), "scikit-learn's two half moons (binary, 2-D)",
     "(cos t, sin t) vs (1 − cos t, ½ − sin t) + N(0, noise²)"),
    (xor, (), "four Gaussian blobs with XOR labels (binary, 2-D)",
     "N((±1, ±1), noise²·I); y = 1 iff the centre has x1·x2 > 0"),
    (teacher, (), "a random teacher MLP: regression or classes",
     "y = f(x) + noise, x ~ N(0, I), W ~ N(0, sigma_w²/fan_in)"),
    (linear_chain, (), "the primer's 9-layer linear chain input (regression)",
     "x ~ N(0, I_dim), y = x·a, a = (1, …, 1)/√dim"),
    (digits, (), "scikit-learn's bundled 8×8 digits, no download (10 classes)",
     "x = pixels / 16 (64 inputs), 1797 samples"),
    (mnist, (), "MNIST 28×28 digits; the article used the 10k test file (10 classes)",
     "x = pixels / 255 (784 inputs), not centred"),
]:
    DATASETS.register(_fn.__name__, _fn, aliases=_aliases, description=_desc, formula=_formula)


def params_of(name: str) -> dict[str, Any]:
    """The parameters `name` accepts, with their defaults (UnknownNameError if no such set)."""
    sig = inspect.signature(DATASETS.get(name))
    return {p.name: p.default for p in list(sig.parameters.values())[1:]}


def load(name: str, *, rng: np.random.Generator, **params: Any) -> Dataset:
    """Generate (or read) the dataset `name` with `params` (see params_of) from `rng`."""
    canonical = DATASETS.canonical(name)
    accepted = params_of(canonical)
    for key in params:
        if key not in accepted:
            raise BadParameterError(canonical, key, f"unknown parameter {key!r}",
                                    choices=list(accepted))
    return DATASETS.get(canonical)(rng, **params)
