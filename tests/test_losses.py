"""Losses against references: finite differences for dz, known values, direct formulas, huge
logits without warnings, shared vs per-member targets, accuracy; torch if it is installed."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from initlab.errors import UnknownNameError
from initlab.losses import LOSSES, Loss, accuracy, get_loss, predict_proba

M, B = 3, 5


def _case(name: str, K: int, per_member: bool, rng: np.random.Generator):
    z = rng.normal(0, 2, size=(M, B, K))
    lead = (M, B) if per_member else (B,)
    if name == "bce":
        y = rng.integers(0, 2, (*lead, K) if K > 1 else lead).astype(float)
    elif name == "softmax_ce":
        y = rng.integers(0, K, lead)
    else:
        y = rng.normal(size=(*lead, K))
    return z, y


CASES = [("bce", 1), ("bce", 3), ("softmax_ce", 4), ("softmax_ce", 2), ("mse", 1), ("mse", 3)]


def test_registry() -> None:
    assert LOSSES.names() == ["bce", "softmax_ce", "mse"]
    assert {get_loss(a).name for a in ("binary_cross_entropy", "BCE_with_logits")} == {"bce"}
    for a in ("cross_entropy", "ce", "softmax_cross_entropy", "Cross-Entropy"):
        assert get_loss(a).name == "softmax_ce"
    assert get_loss("mean_squared_error").name == "mse"
    assert [get_loss(n).task for n in LOSSES.names()] == ["binary", "multiclass", "regression"]
    assert all(e.description and e.formula for e in LOSSES)
    loss = get_loss("mse")
    assert isinstance(loss, Loss) and get_loss(loss) is loss


def test_unknown_loss_suggests_the_nearest() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'softmax_ce'") as info:
        get_loss("softmax_cee")
    assert "bce" in str(info.value) and "mse" in str(info.value)


@pytest.mark.parametrize("per_member", [False, True], ids=["shared", "per_member"])
@pytest.mark.parametrize("name, K", CASES)
def test_dz_matches_central_differences(name: str, K: int, per_member: bool) -> None:
    """float64 central differences (h = 1e-6) of loss[m] agree with dz[m] to rel. error < 1e-6."""
    rng = np.random.default_rng(7)
    z, y = _case(name, K, per_member, rng)
    loss = get_loss(name)
    value, dz = loss.fn(z, y)
    assert value.shape == (M,) and dz.shape == z.shape
    h = 1e-6
    fd = np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        fd[idx] = (loss.fn(zp, y)[0][idx[0]] - loss.fn(zm, y)[0][idx[0]]) / (2 * h)
    rel = np.linalg.norm(fd - dz) / (np.linalg.norm(fd) + np.linalg.norm(dz))
    assert rel < 1e-6, (name, K, rel)


def test_known_values() -> None:
    zeros = np.zeros((2, 4, 1))
    np.testing.assert_allclose(get_loss("bce").fn(zeros, np.array([0, 1, 1, 0]))[0], math.log(2))
    for K in (2, 3, 10):
        z = np.full((2, 4, K), 3.7)  # uniform logits
        np.testing.assert_allclose(get_loss("ce").fn(z, np.array([0, 1, K - 1, 0]))[0],
                                   math.log(K), rtol=1e-14)
    z = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    y = np.array([[0.0, 0.0], [0.0, 2.0]])
    loss, dz = get_loss("mse").fn(z, y)
    np.testing.assert_allclose(loss, [(1 + 4 + 9 + 4) / 4])
    np.testing.assert_allclose(dz, 2 * (z - y) / 4)


def test_against_direct_formulas() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(0, 3, size=(M, B, 1))
    y = rng.uniform(0, 1, size=B)  # soft labels
    p = 1 / (1 + np.exp(-z[..., 0]))
    ref = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)
    loss, dz = get_loss("bce").fn(z, y)
    np.testing.assert_allclose(loss, ref, rtol=1e-12)
    np.testing.assert_allclose(dz[..., 0], (p - y) / B, rtol=1e-12)
    z = rng.normal(0, 3, size=(M, B, 4))
    labels = rng.integers(0, 4, size=B)
    sm = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    ref = -np.log(sm[:, np.arange(B), labels]).mean(axis=1)
    loss, dz = get_loss("softmax_ce").fn(z, labels)
    np.testing.assert_allclose(loss, ref, rtol=1e-12)
    np.testing.assert_allclose(dz, (sm - np.eye(4)[labels]) / B, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(predict_proba("ce", z), sm, rtol=1e-12)
    np.testing.assert_allclose(predict_proba("bce", z), 1 / (1 + np.exp(-z)), rtol=1e-12)
    assert predict_proba("mse", z) is None


def test_huge_logits_are_stable_and_warning_free() -> None:
    z = np.array([[[np.inf], [np.inf], [-np.inf], [-np.inf], [1e300], [-1e300], [800.0]]])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        per_sample = [get_loss("bce").fn(z[:, i:i + 1], y[i:i + 1]) for i in range(len(y))]
        _, dz = get_loss("bce").fn(z, y)
    values = [float(v[0][0]) for v in per_sample]
    assert values[:4] == [0.0, math.inf, 0.0, math.inf]
    assert values[4] == 0.0 and values[5] == 1e300 and values[6] == 800.0
    np.testing.assert_array_equal(dz[0, :, 0] * len(y), [0, 1, 0, -1, 0, -1, 1])

    z = np.array([[[np.inf, 0.0, 1.0], [1e300, -1e300, 0.0], [np.inf, np.inf, 0.0],
                   [-np.inf, -np.inf, -np.inf], [1.7e308, 1.7e308, -1.7e308]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dz = get_loss("softmax_ce").fn(z, np.array([0, 1, 2, 0, 0]))
        right, _ = get_loss("softmax_ce").fn(z[:, :1], np.array([0]))
        halves, _ = get_loss("softmax_ce").fn(z[:, 2:3], np.array([0]))
        acc = accuracy("ce", z, np.array([0, 1, 2, 0, 0]))
    assert loss[0] == math.inf and right[0] == 0.0
    assert halves[0] == pytest.approx(math.log(2))  # two +inf logits share the probability
    assert np.isfinite(dz).all()
    np.testing.assert_allclose(acc, [3 / 5])  # argmax takes the first of tied maxima

    z = np.array([[[1e300], [np.inf]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dz = get_loss("mse").fn(z, np.array([[0.0], [0.0]]))
    assert loss[0] == math.inf and dz[0, 0, 0] == 1e300


@pytest.mark.parametrize("name, K", CASES)
def test_shared_targets_equal_tiled_per_member_targets(name: str, K: int) -> None:
    rng = np.random.default_rng(11)
    z, y = _case(name, K, False, rng)
    tiled = np.broadcast_to(y, (M, *y.shape)).copy()
    a, da = get_loss(name).fn(z, y)
    b, db = get_loss(name).fn(z, tiled)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(da, db)


@pytest.mark.parametrize("name, K", CASES)
def test_per_member_targets_act_member_by_member(name: str, K: int) -> None:
    """Member m's loss and dz depend only on z[m] and y[m]: same as computing it alone."""
    rng = np.random.default_rng(12)
    z, y = _case(name, K, True, rng)
    loss, dz = get_loss(name).fn(z, y)
    for m in range(M):
        alone, dz_alone = get_loss(name).fn(z[m:m + 1], y[m])
        np.testing.assert_allclose(loss[m], alone[0], rtol=1e-15)
        np.testing.assert_allclose(dz[m], dz_alone[0], rtol=1e-15)


def test_bad_targets() -> None:
    z = np.zeros((2, 4, 3))
    with pytest.raises(ValueError, match="labels must be in"):
        get_loss("ce").fn(z, np.array([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="shape"):
        get_loss("ce").fn(z, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="do not fit"):
        get_loss("mse").fn(z, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\(M, B, K\)"):
        get_loss("bce").fn(np.zeros((4, 1)), np.zeros(4))


def test_accuracy() -> None:
    z = np.array([[[2.0], [-1.0], [0.5], [-3.0]], [[-2.0], [-1.0], [-0.5], [3.0]]])
    y = np.array([1, 0, 0, 0])
    np.testing.assert_allclose(accuracy("bce", z, y), [3 / 4, 1 / 2])
    np.testing.assert_allclose(accuracy(get_loss("bce"), z, np.array([[1, 0, 0, 0], [0, 0, 0, 1]])),
                               [3 / 4, 1.0])
    z = np.array([[[0.0, 1.0, 0.0], [2.0, 1.0, 0.0]], [[0.0, 0.0, 5.0], [0.0, 9.0, 0.0]]])
    np.testing.assert_allclose(accuracy("softmax_ce", z, np.array([1, 0])), [1.0, 0.0])
    np.testing.assert_allclose(accuracy("ce", z, np.array([[1, 1], [2, 1]])), [0.5, 1.0])
    assert accuracy("mse", z, np.zeros((2, 3))) is None


def test_float32_is_kept() -> None:
    z = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    for name, y in (("bce", np.zeros((3, 4))), ("softmax_ce", np.array([0, 1, 3])),
                    ("mse", np.zeros((3, 4)))):
        loss, dz = get_loss(name).fn(z, y)
        assert loss.dtype == np.float32 and dz.dtype == np.float32, name


def test_against_torch_if_installed() -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(5)
    z = rng.normal(0, 3, size=(1, 8, 4))
    labels = rng.integers(0, 4, size=8)
    targets = rng.normal(size=(8, 4))
    bits = rng.integers(0, 2, size=(8, 4)).astype(float)
    zt = torch.tensor(z[0])
    ours = {"softmax_ce": get_loss("ce").fn(z, labels)[0][0],
            "mse": get_loss("mse").fn(z, targets)[0][0],
            "bce": get_loss("bce").fn(z, bits)[0][0]}
    theirs = {"softmax_ce": F.cross_entropy(zt, torch.tensor(labels)).item(),
              "mse": F.mse_loss(zt, torch.tensor(targets)).item(),
              "bce": F.binary_cross_entropy_with_logits(zt, torch.tensor(bits)).item()}
    for k in ours:
        assert ours[k] == pytest.approx(theirs[k], rel=1e-12), k


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.data())
def test_any_logits_are_warning_free(n: int, data: st.DataObject) -> None:
    """No RuntimeWarning for any float logits (infinities included); dz stays finite for the
    classification losses, and losses are >= 0 (never NaN)."""
    big = st.sampled_from([1.7e308, -1.7e308, math.inf, -math.inf, 1e300, -1e300, 0.0])
    logit = st.one_of(st.floats(allow_nan=False), big)
    z = np.array(data.draw(st.lists(logit, min_size=3 * n, max_size=3 * n))).reshape(1, n, 3)
    bits = np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n)))
    labels = np.array(data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lb, db = get_loss("bce").fn(z[..., :1], bits)
        lc, dc = get_loss("softmax_ce").fn(z, labels)
        lm, _ = get_loss("mse").fn(z, np.zeros((n, 3)))
        accuracy("bce", z[..., :1], bits)
        accuracy("softmax_ce", z, labels)
    assert not np.isnan(lm).any() and (lm >= 0).all()
    for loss, dz in ((lb, db), (lc, dc)):
        assert not np.isnan(loss).any() and (loss >= 0).all()
        assert np.isfinite(dz).all()
