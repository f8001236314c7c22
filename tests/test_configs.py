"""Every shipped config runs in a reduced form and shows what its source reports."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

import initlab
from initlab.config.schema import load_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _run(name: str, *overrides: str) -> dict:
    return initlab.run(load_config(CONFIGS / name, overrides=overrides)).summary


def _by_label(summary: dict) -> dict[str, dict]:
    return {v["label"]: v for v in summary["variants"]}


def _act_var(variant: dict) -> np.ndarray:
    return np.array([layer["act_var"] for layer in variant["layers"]], dtype=float)


def test_all_configs_validate() -> None:
    for path in sorted(CONFIGS.glob("*.yaml")):
        load_config(path)


def test_playground_four_buttons() -> None:
    """Article, figure 1: zero stays symmetric at ln 2; too small vanishes; appropriate trains;
    too large explodes."""
    v = _by_label(_run("playground.yaml", "seeds=2", "train.epochs=300"))
    assert v["zero"]["diagnosis"] == "symmetric"
    np.testing.assert_allclose(v["zero"]["final_loss"], np.log(2), atol=1e-6)
    assert v["too_small"]["diagnosis"] == "vanishing"
    assert v["appropriate"]["diagnosis"] == "healthy"
    assert max(v["appropriate"]["final_loss"]) < 0.1
    assert v["too_large"]["diagnosis"] in ("exploding", "diverged")
    assert v["too_large"]["layers"][-1]["act_var"] > 100 * v["appropriate"]["layers"][-1][
        "act_var"]


@pytest.mark.parametrize("dataset", ["spiral", "square", "gauss"])
def test_playground_other_data_sets(dataset: str) -> None:
    v = _by_label(_run("playground.yaml", f"data.name={dataset}", "seeds=1",
                       "train.epochs=50"))
    assert v["zero"]["diagnosis"] == "symmetric"


def test_linear_chain_vanishes_preserves_explodes() -> None:
    """Primer, section II: Var(h[l]) = s^(2l) Var(x) exactly for W = s I."""
    v = _by_label(_run("linear_chain.yaml", "train.epochs=20"))
    for label, s in (("0.5 I", 0.5), ("I", 1.0), ("1.5 I", 1.5)):
        var = _act_var(v[label])[:9]
        np.testing.assert_allclose(var[1:] / var[:-1], s * s, rtol=1e-10)
        theory = np.array([layer["act_var_theory"] for layer in v[label]["layers"]])[:9]
        np.testing.assert_allclose(var, theory, rtol=0.05)  # Var vs E[h^2]: x is not centred
    assert v["0.5 I"]["diagnosis"] == "vanishing"
    assert v["1.5 I"]["diagnosis"] in ("exploding", "diverged")
    assert v["I"]["diagnosis"] in ("healthy", "stalled")


def test_glorot2010_standard_shrinks_normalized_stays_level() -> None:
    """Glorot & Bengio, figure 6: U(+-1/sqrt(n)) shrinks Var by ~1/3 per layer (tanh near 0);
    the normalized init keeps the hidden layers level."""
    v = _by_label(_run("glorot2010.yaml", "model.width=300",
                       "data.n_in=300", "data.samples=400"))
    std, norm = _act_var(v["standard"])[:5], _act_var(v["normalized"])[:5]
    assert (np.diff(std) < 0).all() and std[4] / std[1] < 0.1
    assert norm[4] / norm[1] > 0.4
    assert v["standard"]["diagnosis"] == "vanishing" and v["normalized"]["diagnosis"] == "healthy"


def test_he2015_deep_relu() -> None:
    """He et al., figure 3 (reduced): Xavier's signal dies over 30 ReLU layers and the net
    stalls; He keeps it level and trains."""
    v = _by_label(_run("he2015.yaml", "seeds=2", "train.epochs=150", "model.width=32",
                       "data.samples=256", "measure.every=20"))
    assert v["xavier"]["diagnosis"] == "vanishing"
    assert v["xavier"]["act_ratio"] < 1e-6 and 0.1 < v["he"]["act_ratio"] < 10
    he, xavier = v["he"]["loss_curve"]["mean"], v["xavier"]["loss_curve"]["mean"]
    assert he[-1] < 0.9 * he[0]  # measured: -20% (1.48 -> 1.19)
    assert xavier[-1] > 0.98 * xavier[0]  # measured: -0.3% (1.386 -> 1.381)


def test_digits_four_inits() -> None:
    pytest.importorskip("sklearn")
    v = _by_label(_run("digits.yaml", "seeds=1", "train.epochs=3", "model.width=64"))
    assert v["zero"]["diagnosis"] == "symmetric"
    assert v["standard_normal"]["diagnosis"] == "saturated"
    assert v["xavier"]["diagnosis"] == "healthy"
    assert np.mean(v["xavier"]["final_accuracy"]) > 0.7


def _idx(path: Path, magic: int, arr: np.ndarray) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_mnist_config_on_local_idx_files(tmp_path: Path) -> None:
    """The MNIST config runs on local IDX files (no network): a tiny synthetic stand-in."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(200, 28, 28))
    labels = rng.integers(0, 10, size=200)
    _idx(tmp_path / "t10k-images-idx3-ubyte.gz", 0x803, images)
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 0x801, labels)
    v = _by_label(_run("mnist.yaml", f"data.path={tmp_path}", "seeds=1", "train.epochs=1",
                       "model.width=32"))
    assert v["zero"]["diagnosis"] == "symmetric"
    assert v["standard_normal"]["diagnosis"] == "saturated"
    assert v["standard_normal"]["layers"][0]["saturated"] > 0.5
