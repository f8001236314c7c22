"""Data sets: shapes, balance, seeds, the article's exact recipes, digits and the MNIST reader.

No network: the MNIST tests write tiny IDX/.gz/.npz files themselves, use a file:// mirror for
the download path and http://127.0.0.1:9/ (discard port: connection refused) for the offline one.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from initlab.data import datasets as data
from initlab.data.datasets import DATASETS, load, params_of
from initlab.errors import (
    BadParameterError,
    DataUnavailableError,
    MissingDependencyError,
    UnknownNameError,
)

GENERATED = ["circle", "spiral", "square", "gauss", "two_moons", "xor", "teacher", "linear_chain"]
ARTICLE = ["circle", "spiral", "square", "gauss"]
BINARY_2D = [*ARTICLE, "two_moons", "xor"]


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- common contract
@pytest.mark.parametrize("name", GENERATED)
def test_shapes_dtypes_and_task(name: str) -> None:
    ds = load(name, rng=rng())
    n = params_of(name)["samples"]
    assert ds.name == name and ds.x.shape == (n, ds.n_in) and ds.x.dtype == np.float64
    assert np.all(np.isfinite(ds.x))
    if ds.task == "regression":
        assert ds.y.shape == (n, ds.n_out) and ds.y.dtype == np.float64 and ds.n_classes is None
    else:
        assert ds.y.shape == (n,) and ds.y.dtype.kind == "i"
        assert ds.n_out == (1 if ds.task == "binary" else ds.n_classes)
    assert ds.x_test is None and ds.y_test is None


@pytest.mark.parametrize("name", BINARY_2D)
@pytest.mark.parametrize("samples", [2, 100, 101])
def test_binary_sets_are_balanced_in_every_prefix(name: str, samples: int) -> None:
    ds = load(name, rng=rng(), samples=samples)
    assert ds.x.shape == (samples, 2) and ds.task == "binary" and ds.n_classes == 2
    assert ds.n_in == 2 and ds.n_out == 1
    counts = np.cumsum(ds.y == 1) - np.cumsum(ds.y == 0)  # class 1 minus class 0 per prefix
    assert set(np.unique(ds.y)) <= {0, 1} and np.all(np.abs(counts) <= 1)


def test_the_article_defaults_are_100_points_50_per_class() -> None:
    for name in ARTICLE:
        assert params_of(name) == {"samples": 100}
        assert np.bincount(load(name, rng=rng()).y).tolist() == [50, 50]


@pytest.mark.parametrize("name", GENERATED)
def test_same_seed_same_data_different_seed_different_data(name: str) -> None:
    a, b, c = (load(name, rng=rng(s)) for s in (7, 7, 8))
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)


def test_moon_is_the_articles_name_for_spiral() -> None:
    a, b = load("moon", rng=rng(3)), load("spiral", rng=rng(3))
    assert np.array_equal(a.x, b.x) and a.name == "spiral" and params_of("moon") == {"samples": 100}


def test_registry_lists_every_set_with_a_description() -> None:
    assert set(GENERATED) | {"digits", "mnist"} == set(DATASETS.names())
    assert all(e.description and e.formula for e in DATASETS)


# ----------------------------------------------------------------------------- the article's sets
def test_circle_radii_are_1_and_4_plus_uniform_noise() -> None:
    ds = load("circle", rng=rng(), samples=20_000)
    r = np.hypot(ds.x[:, 0], ds.x[:, 1])
    assert r[ds.y == 0].min() >= 0 and r[ds.y == 0].max() <= 2
    assert r[ds.y == 1].min() >= 3 and r[ds.y == 1].max() <= 5
    # U(-1, 1) noise: mean 0 (± 5 standard errors of 0.577/√10⁴), std 1/√3
    assert abs(r[ds.y == 0].mean() - 1) < 0.03 and abs(r[ds.y == 1].mean() - 4) < 0.03
    assert abs(r[ds.y == 1].std() - 1 / np.sqrt(3)) < 0.02


def test_gauss_class_means_and_unit_covariance() -> None:
    ds = load("gauss", rng=rng(), samples=20_000)
    # 10⁴ points per class: the standard error of a mean is 0.01; tolerance 0.05 (5 s.e.)
    assert np.allclose(ds.x[ds.y == 1].mean(axis=0), [-2, -2], atol=0.05)
    assert np.allclose(ds.x[ds.y == 0].mean(axis=0), [2, 2], atol=0.05)
    assert np.allclose(np.cov(ds.x[ds.y == 1].T), np.eye(2), atol=0.05)


def test_square_is_an_xor_checkerboard() -> None:
    ds = load("square", rng=rng(), samples=4000)
    x1, x2 = ds.x.T
    assert np.array_equal(ds.y, (x1 * x2 > 0).astype(int))  # class 1 in quadrants I and III
    assert np.all((np.abs(ds.x) >= 0.5) & (np.abs(ds.x) <= 5))
    quadrant = (x1 > 0) * 2 + (x2 > 0)
    assert np.all(np.bincount(quadrant) > 800)  # all four quadrants are used (p = ±1)


@pytest.mark.parametrize("samples", [100, 20_000])
def test_spiral_follows_the_article_formula(samples: int) -> None:
    """Undo the ±(y − ½) shift: the point is r·(cos a, sin a) with a = i/n·π (+π for class 0),
    and r − 4i/n ~ N(1, 0.5²) (variance 0.25)."""
    ds = load("spiral", rng=rng(), samples=samples)
    y = ds.y
    i, n = np.arange(samples) // 2, samples // 2
    a = i / n * np.pi + np.where(y == 1, 0, np.pi)
    u, v = ds.x[:, 0] - (y - 0.5), ds.x[:, 1] + (y - 0.5)
    assert np.allclose(u * np.sin(a) - v * np.cos(a), 0, atol=1e-12)  # on the ray at angle a
    noise = u * np.cos(a) + v * np.sin(a) - 4 * i / n
    if samples == 20_000:  # s.e. of the mean 0.0035, of the std 0.0025
        assert abs(noise.mean() - 1) < 0.02 and abs(noise.std() - 0.5) < 0.02


# ----------------------------------------------------------------------------- the other sets
def test_two_moons_without_noise_lie_on_the_two_arcs() -> None:
    ds = load("two_moons", rng=rng(), samples=50, noise=0.0)
    top, bottom = ds.x[ds.y == 0], ds.x[ds.y == 1]
    assert np.allclose(np.hypot(*top.T), 1) and np.all(top[:, 1] >= -1e-12)
    assert np.allclose(np.hypot(bottom[:, 0] - 1, bottom[:, 1] - 0.5), 1)
    assert np.all(bottom[:, 1] <= 0.5 + 1e-12)


def test_xor_blobs_and_labels() -> None:
    ds = load("xor", rng=rng(), samples=8, noise=0.0)
    assert np.array_equal(np.abs(ds.x), np.ones((8, 2)))
    assert np.array_equal(ds.y, (ds.x[:, 0] * ds.x[:, 1] > 0).astype(int))
    noisy = load("xor", rng=rng(), samples=4000, noise=0.3)
    agree = (noisy.x[:, 0] * noisy.x[:, 1] > 0) == noisy.y
    assert agree.mean() > 0.9


def test_linear_chain_target_is_x_dot_a_with_unit_variance() -> None:
    ds = load("linear_chain", rng=rng(), samples=20_000)
    a = np.ones(2) / np.sqrt(2)
    assert ds.task == "regression" and ds.n_in == 2 and ds.n_out == 1
    assert np.allclose(ds.y[:, 0], ds.x @ a) and np.allclose(ds.meta["a"], a)
    assert abs(ds.y.var() - 1) < 0.05
    assert load("linear_chain", rng=rng(), dim=5, samples=10).x.shape == (10, 5)


def test_teacher_regression_and_classes() -> None:
    reg = load("teacher", rng=rng(), samples=500, n_in=4, n_out=3, hidden=[8, 8])
    assert reg.x.shape == (500, 4) and reg.y.shape == (500, 3) and reg.n_out == 3
    assert reg.meta["sizes"] == [4, 8, 8, 3] and reg.y.std() > 0.1
    noisy = load("teacher", rng=rng(), samples=500, n_in=4, n_out=3, hidden=[8, 8], noise=0.5)
    assert np.array_equal(noisy.x, reg.x)  # same teacher and inputs, noise drawn last
    assert abs((noisy.y - reg.y).std() - 0.5) < 0.05
    binary = load("teacher", rng=rng(), task="classes", hidden=16)
    assert binary.task == "binary" and binary.n_out == 1 and set(binary.y) == {0, 1}
    multi = load("teacher", rng=rng(), task="classes", n_classes=5)
    assert multi.task == "multiclass" and multi.n_out == 5 and multi.n_classes == 5
    assert np.bincount(multi.y, minlength=5).min() > 0
    by_n_out = load("teacher", rng=rng(), task="classes", n_out=4)  # n_classes defaults to n_out
    assert by_n_out.task == "multiclass" and by_n_out.n_classes == 4


def test_teacher_other_activations_come_from_the_registry() -> None:
    pytest.importorskip("initlab.nn.activations")
    ds = load("teacher", rng=rng(), activation="relu", samples=50)
    assert ds.meta["activation"] == "relu" and np.all(np.isfinite(ds.y))
    with pytest.raises(BadParameterError, match="activation"):
        load("teacher", rng=rng(), activation="tahn")


# ----------------------------------------------------------------------------- errors
def test_unknown_dataset_suggests_the_nearest() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'circle'") as e:
        load("circel", rng=rng())
    assert "gauss" in e.value.choices


def test_unknown_parameter_lists_the_accepted_ones() -> None:
    with pytest.raises(BadParameterError, match="did you mean 'noise'") as e:
        load("two_moons", rng=rng(), nosie=0.2)
    assert e.value.choices == ["noise", "samples"] and e.value.param == "nosie"


@pytest.mark.parametrize("name,params", [
    ("circle", {"samples": 0}), ("circle", {"samples": -5}), ("gauss", {"samples": 2.5}),
    ("square", {"samples": True}), ("two_moons", {"noise": -0.1}),
    ("xor", {"noise": float("nan")}), ("linear_chain", {"dim": 0}),
    ("teacher", {"task": "classify"}), ("teacher", {"hidden": [8, 0]}),
    ("teacher", {"hidden": "wide"}), ("teacher", {"task": "classes", "n_classes": 1}),
    ("mnist", {"split": "validation"}), ("mnist", {"download": "yes"}),
    ("mnist", {"samples": 0, "download": False}),
])
def test_bad_values_are_bad_parameters(name: str, params: dict[str, object]) -> None:
    with pytest.raises(BadParameterError) as e:
        load(name, rng=rng(), **params)
    assert e.value.param in params and e.value.param in str(e.value)


# ----------------------------------------------------------------------------- digits
def test_digits() -> None:
    pytest.importorskip("sklearn")
    ds = load("digits", rng=rng())
    assert ds.x.shape == (1797, 64) and ds.task == "multiclass" and ds.n_out == 10
    assert ds.x.min() == 0 and ds.x.max() == 1 and set(ds.y) == set(range(10))
    sub = load("digits", rng=rng(1), samples=300, test_fraction=0.2)
    assert sub.x.shape == (240, 64) and sub.x_test is not None and sub.y_test is not None
    assert sub.x_test.shape == (60, 64) and sub.y_test.shape == (60,)
    again = load("digits", rng=rng(1), samples=300, test_fraction=0.2)
    assert again.y_test is not None and np.array_equal(sub.y_test, again.y_test)
    assert np.array_equal(sub.x, again.x)
    for bad in ({"samples": 5000}, {"test_fraction": 1.0}, {"samples": 0}):
        with pytest.raises(BadParameterError):
            load("digits", rng=rng(), **bad)


def test_digits_without_sklearn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import now fails
    with pytest.raises(MissingDependencyError, match=r"initlab\[datasets\]"):
        load("digits", rng=rng())


# ----------------------------------------------------------------------------- MNIST
def idx_bytes(a: np.ndarray) -> bytes:
    code = 0x0800 | a.ndim
    return struct.pack(f">I{a.ndim}I", code, *a.shape) + a.astype(np.uint8).tobytes()


def tiny_mnist(n: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    return g.integers(0, 256, (n, 28, 28), dtype=np.uint8), g.integers(0, 10, n, dtype=np.uint8)


def write_split(folder: Path, split: str = "test", gz: bool = False, n: int = 20,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    images, labels = tiny_mnist(n, seed)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, a in zip(data.MNIST_FILES[split], (images, labels)):
        blob = idx_bytes(a)
        (folder / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(blob) if gz else blob)
    return images, labels


def check(ds: data.Dataset, images: np.ndarray, labels: np.ndarray) -> None:
    assert ds.x.shape == (len(images), 784) and ds.x.dtype == np.float64
    assert np.array_equal(ds.x, images.reshape(len(images), -1) / 255.0)  # not centred
    assert np.array_equal(ds.y, labels) and ds.task == "multiclass" and ds.n_out == 10


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("split", ["test", "train"])
def test_mnist_idx_round_trip(tmp_path: Path, gz: bool, split: str) -> None:
    images, labels = write_split(tmp_path, split, gz, seed=split == "train")
    ds = load("mnist", rng=rng(), path=str(tmp_path), split=split, download=False)
    check(ds, images, labels)
    assert ds.meta["split"] == split


def test_mnist_reads_the_dotted_spelling(tmp_path: Path) -> None:
    images, labels = tiny_mnist()
    (tmp_path / "t10k-images.idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "t10k-labels.idx1-ubyte").write_bytes(idx_bytes(labels))
    check(load("mnist", rng=rng(), path=str(tmp_path)), images, labels)


def test_mnist_npz_file_or_folder(tmp_path: Path) -> None:
    images, labels = tiny_mnist()
    np.savez(tmp_path / "mnist.npz", x_train=images[:5], y_train=labels[:5], x_test=images,
             y_test=labels)
    check(load("mnist", rng=rng(), path=str(tmp_path / "mnist.npz")), images, labels)
    check(load("mnist", rng=rng(), path=str(tmp_path), split="train"), images[:5], labels[:5])


def test_mnist_samples_is_a_reproducible_subset(tmp_path: Path) -> None:
    images, labels = write_split(tmp_path)
    a, b = (load("mnist", rng=rng(4), path=str(tmp_path), samples=7) for _ in range(2))
    assert a.x.shape == (7, 784) and np.array_equal(a.x, b.x)
    rows = [int(np.flatnonzero((images.reshape(20, -1) / 255.0 == r).all(axis=1))[0])
            for r in a.x]
    assert rows == sorted(rows) and np.array_equal(a.y, labels[rows])
    with pytest.raises(BadParameterError, match="samples"):
        load("mnist", rng=rng(), path=str(tmp_path), samples=21)


@pytest.mark.parametrize("damage", ["truncate", "magic", "gzip", "empty", "count"])
def test_mnist_rejects_corrupt_files(tmp_path: Path, damage: str) -> None:
    images, labels = tiny_mnist()
    img, lab = idx_bytes(images), idx_bytes(labels)
    name = "t10k-images-idx3-ubyte"
    if damage == "truncate":
        img = img[:-100]
    elif damage == "magic":
        img = idx_bytes(labels)  # a label file where images belong
    elif damage == "gzip":
        name, img = name + ".gz", gzip.compress(img)[:-20]
    elif damage == "empty":
        img = b""
    else:
        lab = idx_bytes(labels[:19])
    (tmp_path / name).write_bytes(img)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(lab)
    with pytest.raises(DataUnavailableError, match="mnist: "):
        load("mnist", rng=rng(), path=str(tmp_path))


def test_mnist_missing_files_under_an_explicit_path(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError, match="no test files in"):
        load("mnist", rng=rng(), path=str(tmp_path))


def test_mnist_offline_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError) as e:
        load("mnist", rng=rng(), cache_dir=str(tmp_path), download=False)
    assert f"no local files in {tmp_path}" in str(e.value)
    assert "pass data.path=" in str(e.value)


def test_mnist_offline_download_fails_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError) as e:
        load("mnist", rng=rng(), cache_dir=str(tmp_path), mirrors="http://127.0.0.1:9/")
    text = str(e.value)
    assert text.startswith(f"mnist: no local files in {tmp_path} and download failed (")
    assert "127.0.0.1:9" in text and text.endswith(
        "; put the four IDX files there or pass data.path=...")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_mnist_mirror_and_cache_from_the_environment(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INITLAB_CACHE", str(tmp_path))
    monkeypatch.setenv("INITLAB_MNIST_MIRROR", "http://127.0.0.1:9/a, http://127.0.0.1:9/b")
    with pytest.raises(DataUnavailableError) as e:
        load("mnist", rng=rng())
    assert str(tmp_path / "mnist") in str(e.value)
    assert "127.0.0.1:9/a/" in str(e.value) and "127.0.0.1:9/b/" in str(e.value)


def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, np.ndarray, np.ndarray]:
    """A file:// mirror holding tiny .gz files whose digests replace the real ones."""
    mirror = tmp_path / "mirror"
    images, labels = write_split(mirror, "test", gz=True)
    for stem in data.MNIST_FILES["test"]:
        digest = hashlib.sha256((mirror / f"{stem}.gz").read_bytes()).hexdigest()
        monkeypatch.setitem(data.MNIST_SHA256, f"{stem}.gz", digest)
    return mirror.as_uri() + "/", images, labels


def test_mnist_downloads_once_into_the_cache(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    url, images, labels = served(tmp_path, monkeypatch)
    cache = tmp_path / "cache"
    bad = "http://127.0.0.1:9/"
    check(load("mnist", rng=rng(), cache_dir=str(cache), mirrors=[bad, url]), images, labels)
    assert sorted(p.name for p in cache.iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]  # no temp files left
    check(load("mnist", rng=rng(), cache_dir=str(cache), mirrors=bad), images, labels)  # offline


def test_mnist_rejects_a_download_with_the_wrong_checksum(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    url, _, _ = served(tmp_path, monkeypatch)
    monkeypatch.setitem(data.MNIST_SHA256, "t10k-images-idx3-ubyte.gz", "0" * 64)
    with pytest.raises(DataUnavailableError, match="SHA-256 mismatch"):
        load("mnist", rng=rng(), cache_dir=str(tmp_path / "cache"), mirrors=url)
    assert not (tmp_path / "cache" / "t10k-images-idx3-ubyte.gz").exists()


def test_mnist_rejects_a_corrupt_cached_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    url, images, labels = served(tmp_path, monkeypatch)
    cache = tmp_path / "cache"
    write_split(cache, "test", gz=True, seed=1)  # valid IDX, but not the files we know
    with pytest.raises(DataUnavailableError, match="fails its SHA-256 check") as e:
        load("mnist", rng=rng(), cache_dir=str(cache), download=False)
    assert "download is disabled" in str(e.value)
    with pytest.raises(DataUnavailableError, match=r"SHA-256 check .* download failed"):
        load("mnist", rng=rng(), cache_dir=str(cache), mirrors="http://127.0.0.1:9/")
    check(load("mnist", rng=rng(), cache_dir=str(cache), mirrors=url), images, labels)  # fixed


def test_mnist_uncompressed_files_in_the_cache_are_read_as_they_are(tmp_path: Path) -> None:
    images, labels = write_split(tmp_path)
    check(load("mnist", rng=rng(), cache_dir=str(tmp_path), download=False), images, labels)


def test_read_idx_header(tmp_path: Path) -> None:
    labels = np.arange(10, dtype=np.uint8)
    p = tmp_path / "labels"
    p.write_bytes(idx_bytes(labels))
    assert idx_bytes(labels)[:4] == b"\x00\x00\x08\x01"
    assert np.array_equal(data.read_idx(p, data.IDX_LABELS), labels)
    with pytest.raises(DataUnavailableError, match="not an IDX file"):
        data.read_idx(p, data.IDX_IMAGES)
