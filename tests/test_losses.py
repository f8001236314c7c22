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
from initlab.nn import losses as L
from initlab.nn.losses import LOSSES, Loss, accuracy, get_loss, predict_proba

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


# --- fast paths against the careful forms they were derived from -------------------------------
# _bce / _softmax_ce take a fast path (one exp, arithmetic selects, in place) and redo members
# with a non-finite fast loss by _bce_careful / _softmax_ce_careful, the earlier implementations,
# kept as they were. Here: fast == careful on finite logits of many scales (bitwise for bce with
# hard labels), and members with inf / NaN logits get the careful values.

SCALES = [1e-3, 1e-1, 1.0, 10.0, 100.0, 1e3]


def _ref_mse(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mse before the in-place rewrite."""
    n = z.shape[1] * z.shape[2]
    yy = np.asarray(y)
    if yy.ndim == 1 or (yy.ndim == 2 and z.shape[2] == 1 and yy.shape == z.shape[:2]):
        yy = yy[..., None]
    r = z - np.broadcast_to(yy, z.shape)
    loss = np.sum(r * r / n, axis=(1, 2))
    return loss.astype(z.dtype, copy=False), (2 * (r / n)).astype(z.dtype, copy=False)


def _bce_targets(rng: np.random.Generator, M: int, B: int, K: int, kind: str) -> np.ndarray:
    lead = (M, B) if kind.startswith("member") else (B,)
    shape = (*lead, K) if K > 1 else lead
    if kind.endswith("soft"):
        return rng.uniform(0, 1, shape)
    if kind.endswith("int"):
        return rng.integers(0, 2, shape)
    return rng.integers(0, 2, shape).astype(float)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("K", [1, 3])
@pytest.mark.parametrize("kind", ["shared", "shared_int", "shared_soft", "member", "member_soft"])
def test_bce_fast_equals_careful(scale: float, K: int, kind: str) -> None:
    rng = np.random.default_rng(int(scale * 1000) + K)
    M, B = 6, 40
    z = rng.normal(0, scale, (M, B, K))
    y = _bce_targets(rng, M, B, K, kind)
    loss, dz = L._bce(z, y)
    ref, dref = L._bce_careful(z, y)
    assert loss.dtype == dz.dtype == np.float64 and dz.shape == z.shape
    np.testing.assert_array_equal(dz, dref)  # sigmoid and (p - y) / n: the same operations
    if kind.endswith("soft"):
        np.testing.assert_allclose(loss, ref, rtol=1e-14, atol=0)
    else:
        np.testing.assert_array_equal(loss, ref)  # hard labels: the same terms, bitwise


@pytest.mark.parametrize("name", ["bce", "softmax_ce", "mse"])
def test_a_workspace_changes_no_number(name: str) -> None:
    """loss.fn(z, y, ws=ws) keeps its work arrays (and dz) in ws: bitwise the numbers of a call
    without one, call after call with the same ws as shapes, dtypes and non-finite members
    change; the returned dz is ws's buffer, overwritten by the next call."""
    loss = L.get_loss(name)
    rng = np.random.default_rng(31)
    ws: dict = {}
    for M, B, K, dtype, bad in ((4, 30, 1, np.float64, False), (4, 30, 1, np.float64, True),
                                (3, 17, 2, np.float64, False), (4, 30, 1, np.float32, False)):
        K = 3 if name == "softmax_ce" else K
        z = rng.normal(0, 4, (M, B, K)).astype(dtype)
        if bad:
            z[1, 2, 0], z[2, 0, 0] = np.nan, np.inf
        y = (rng.integers(0, K, B) if name == "softmax_ce"
             else rng.integers(0, 2, (B, K) if K > 1 else B).astype(float))
        ref, dref = loss.fn(z, y)
        got, dz = loss.fn(z, y, ws=ws)
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(dz, dref)
        assert dz.dtype == dtype
    if name == "bce":
        assert any(v is dz for v in ws.values())  # dz lives in the workspace


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("K", [2, 3, 10, 40])
@pytest.mark.parametrize("per_member", [False, True], ids=["shared", "per_member"])
def test_softmax_ce_fast_equals_careful(scale: float, K: int, per_member: bool) -> None:
    rng = np.random.default_rng(int(scale * 1000) + K)
    M, B = 5, 30
    z = rng.normal(0, scale, (M, B, K))
    y = rng.integers(0, K, (M, B) if per_member else B)
    loss, dz = L._softmax_ce(z, y)
    ref, dref = L._softmax_ce_careful(z, y)
    # sum of exp in another order, exp(s) / S rather than exp(s - log S): a few ulps of 1
    np.testing.assert_allclose(loss, ref, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dz, dref, rtol=1e-13, atol=1e-15 / B)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("per_member", [False, True], ids=["shared", "per_member"])
def test_mse_equals_reference(scale: float, per_member: bool) -> None:
    rng = np.random.default_rng(int(scale * 1000))
    M, B, K = 4, 20, 3
    z = rng.normal(0, scale, (M, B, K))
    y = rng.normal(0, scale, (M, B, K) if per_member else (B, K))
    for got, want in zip(L._mse(z, y), _ref_mse(z, y)):
        np.testing.assert_array_equal(got, want)
    y1 = rng.normal(size=B)  # (B,) targets of a single output
    for got, want in zip(L._mse(z[..., :1], y1), _ref_mse(z[..., :1], y1)):
        np.testing.assert_array_equal(got, want)


def test_float32_fast_equals_careful() -> None:
    rng = np.random.default_rng(8)
    z = rng.normal(0, 4, (4, 50, 1)).astype(np.float32)
    for y in (rng.integers(0, 2, 50), rng.integers(0, 2, 50).astype(np.float64)):
        loss, dz = L._bce(z, y)
        ref, dref = L._bce_careful(z, y)
        assert loss.dtype == dz.dtype == np.float32
        np.testing.assert_array_equal(loss, ref)
        np.testing.assert_array_equal(dz, dref)
    soft = rng.uniform(0, 1, (50, 1))
    np.testing.assert_allclose(L._bce(z, soft)[0], L._bce_careful(z, soft)[0], rtol=1e-6)
    z = rng.normal(0, 4, (4, 50, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 50)
    loss, dz = L._softmax_ce(z, labels)
    ref, dref = L._softmax_ce_careful(z, labels)
    assert loss.dtype == dz.dtype == np.float32
    np.testing.assert_allclose(loss, ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dz, dref, rtol=1e-5, atol=1e-8)
    y = rng.normal(size=(50, 5))  # float64 targets: computed in float64, returned as float32
    for got, want in zip(L._mse(z, y), _ref_mse(z, y)):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)


def _sprinkle(rng: np.random.Generator, z: np.ndarray, members: list[int]) -> np.ndarray:
    """z with inf, -inf and NaN logits in the given members."""
    z = z.copy()
    for m, v in zip(members, [np.inf, -np.inf, np.nan, np.inf]):
        idx = rng.choice(z[m].size, size=3, replace=False)
        z[m].flat[idx] = v
    return z


@pytest.mark.parametrize("name, K", [("bce", 1), ("bce", 3), ("softmax_ce", 4)])
def test_non_finite_members_get_the_careful_values(name: str, K: int) -> None:
    """Members with inf/NaN logits (a diverged member's NaN outputs, say) are redone by the careful
    form; the other members keep their fast values; no RuntimeWarning."""
    rng = np.random.default_rng(21)
    M, B = 6, 12
    fast, careful = {"bce": (L._bce, L._bce_careful),
                     "softmax_ce": (L._softmax_ce, L._softmax_ce_careful)}[name]
    z = rng.normal(0, 3, (M, B, K))
    y = (rng.integers(0, K, (M, B)) if name == "softmax_ce"
         else rng.integers(0, 2, (M, B, K) if K > 1 else (M, B)).astype(float))
    clean_loss, clean_dz = fast(z, y)
    z = _sprinkle(rng, z, [1, 2, 4, 5])
    if name == "softmax_ce":  # a row whose labelled logit is -inf (loss inf), and whole inf rows
        z[1, 0, y[1, 0]] = -np.inf
        z[2, 1, :] = -np.inf
        z[5, 2, :] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dz = fast(z, y)
        ref, dref = careful(z, y)
    np.testing.assert_array_equal(loss, ref)
    np.testing.assert_array_equal(dz[[1, 2, 4, 5]], dref[[1, 2, 4, 5]])
    np.testing.assert_array_equal(loss[[0, 3]], clean_loss[[0, 3]])
    np.testing.assert_array_equal(dz[[0, 3]], clean_dz[[0, 3]])
    assert np.isnan(loss[4]) and np.isnan(dz[4]).any()  # NaN logits: NaN, as ever


def test_softmax_ce_minus_inf_logits_need_no_redo() -> None:
    """-inf logits in rows with a finite max stay on the fast path: exp(s) = 0 there, as in
    the careful form."""
    z = np.array([[[-np.inf, 1.0, 2.0], [0.5, -np.inf, -np.inf], [1.7e308, -1.7e308, 0.0]]])
    y = np.array([2, 0, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dz = L._softmax_ce(z, y)
    ref, dref = L._softmax_ce_careful(z, y)
    np.testing.assert_allclose(loss, ref, rtol=1e-15)
    np.testing.assert_allclose(dz, dref, rtol=1e-15, atol=1e-300)
    assert dz[0, 0, 0] == 0.0 and dz[0, 1, 1] == dz[0, 1, 2] == 0.0


def test_bce_non_finite_targets_as_careful() -> None:
    z = np.random.default_rng(2).normal(size=(2, 4, 1))
    for bad in (np.nan, np.inf):
        y = np.array([0.0, 1.0, bad, 0.5])
        with np.errstate(all="ignore"):  # inf - inf in the careful form (it always warned)
            loss, dz = L._bce(z, y)
            ref, dref = L._bce_careful(z, y)
        np.testing.assert_array_equal(loss, ref)
        np.testing.assert_array_equal(dz, dref)


def test_target_shape_errors_are_unchanged() -> None:
    z = np.zeros((2, 4, 3))
    msg = r"bce: targets of shape \(3, 1\) do not fit outputs \(M, B, K\) = \(2, 4, 3\)"
    with pytest.raises(ValueError, match=msg):
        L._bce(z, np.zeros(3))
    with pytest.raises(ValueError, match=r"targets of shape \(2, 4, 3, 1\) do not fit"):
        L._bce(z, np.zeros((2, 4, 3, 1)))
    with pytest.raises(ValueError, match=r"targets of shape \(3, 4, 3\) do not fit"):
        L._mse(z, np.zeros((3, 4, 3)))
    with pytest.raises(ValueError, match=r"targets of shape \(4, 2\) do not fit"):
        L._bce(np.zeros((2, 4, 1)), np.zeros((4, 2)))  # (B, M): not (M, B)
    with pytest.raises(ValueError, match=r"labels must have shape \(B,\) or \(M, B\)"):
        L._softmax_ce(z, np.zeros((2, 4, 1), dtype=int))
    assert L._bce(np.zeros((2, 0, 1)), np.zeros(0))[0].tolist() == [0.0, 0.0]  # empty batch
