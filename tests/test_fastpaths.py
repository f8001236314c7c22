"""The fast forward/backward ((M, width, B) layout, unrolled tiny contractions, reused buffers,
tanh' from h) against the straightforward (M, B, width) matmul version (`reference=True`)."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import random_population

from initlab.nn.activations import get_activation
from initlab.nn.losses import get_loss
from initlab.nn.model import Population, backward, forward, population_memory_bytes
from initlab.nn.stats import default_bins, layer_stats

SIZES = [[2, 2, 2, 2, 1], [3, 1, 5, 2], [2, 6, 3, 1], [4, 9, 16, 3], [5, 3, 40, 2]]


_pop = random_population


def _check(pop: Population, x: np.ndarray, rtol: float, ws: dict | None = None) -> None:
    K = pop.sizes[-1]
    y = np.random.default_rng(5).integers(0, K, x.shape[-2]) if K > 1 else \
        np.random.default_rng(5).integers(0, 2, x.shape[-2]).astype(x.dtype)
    loss = get_loss("softmax_ce" if K > 1 else "bce")
    ref_t = forward(pop, x, reference=True)
    fast_t = forward(pop, x, ws=ws)
    assert fast_t.hs[0] is x
    for a, b in zip(fast_t.zs + fast_t.hs, ref_t.zs + ref_t.hs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3)
    _, dout = loss.fn(ref_t.out, y)
    ref_g = backward(pop, ref_t, dout, reference=True)
    fast_g = backward(pop, fast_t, dout, ws=ws)
    for a, b in zip(fast_g.dWs + fast_g.dbs + fast_g.dzs, ref_g.dWs + ref_g.dbs + ref_g.dzs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3 * np.abs(b).max())
    bins = default_bins(pop.activation)
    s_fast, hh_fast, hd_fast = layer_stats(pop, fast_t, fast_g, bins)
    s_ref, hh_ref, hd_ref = layer_stats(pop, ref_t, ref_g, bins)
    for k in s_ref:
        np.testing.assert_allclose(s_fast[k], s_ref[k], rtol=max(1e-9, 10 * rtol), atol=1e-300,
                                   err_msg=k)
    assert np.abs(hh_fast - hh_ref).sum() <= 2 and np.abs(hd_fast - hd_ref).sum() <= 2


@pytest.mark.parametrize("sizes", SIZES)
@pytest.mark.parametrize("act", ["tanh", "relu", "linear", "sigmoid", "leaky_relu"])
def test_fast_forward_backward_equal_the_reference(act: str, sizes: list[int]) -> None:
    pop = _pop(act, sizes, M=3, seed=1)
    rng = np.random.default_rng(2)
    _check(pop, rng.normal(size=(33, sizes[0])), 1e-12)  # shared x (B, n_in)
    _check(pop, rng.normal(size=(3, 17, sizes[0])), 1e-12)  # a batch per member (M, B, n_in)


def test_reused_buffers_give_the_same_numbers_every_step() -> None:
    pop = _pop("tanh", [2, 2, 8, 1], M=4, seed=3)
    ws: dict = {}
    rng = np.random.default_rng(4)
    for B in (16, 16, 9, 16):  # shapes change: buffers are re-made
        _check(pop, rng.normal(size=(B, 2)), 1e-12, ws)
    assert ws


def test_saturated_tanh_keeps_accurate_derivatives_in_the_tails() -> None:
    """|z| up to ~40: 1 - h^2 would cancel to 0 there; the fast path switches to the
    activation's accurate tail formula, so dL/dz of saturated units matches to 1e-12."""
    pop = _pop("tanh", [3, 4, 4, 1], M=2, seed=6, scale=30.0)
    x = np.random.default_rng(7).normal(size=(50, 3))
    t = forward(pop, x)
    assert (np.abs(t.zs[0]) > 20).mean() > 0.3
    _check(pop, x, 1e-12)


def test_float32_fast_path() -> None:
    pop = _pop("tanh", [2, 3, 3, 1], M=2, seed=8, dtype=np.float32)
    x = np.random.default_rng(9).normal(size=(20, 2)).astype(np.float32)
    assert forward(pop, x).out.dtype == np.float32
    _check(pop, x, 1e-5)


def test_population_memory_formula() -> None:
    """itemsize * M * (P * (3 + S) + batch * per-sample units), P parameters per member."""
    sizes = [784, 300, 300, 10]
    P = 784 * 300 + 300 + 300 * 300 + 300 + 300 * 10 + 10
    per_sample = 784 + 4 * 600 + 3 * 10 + 2 * 300
    assert population_memory_bytes(sizes, 8, 100) == 8 * 8 * (3 * P + 100 * per_sample)
    assert population_memory_bytes(sizes, 8, 100, np.float32, "adam") == \
        4 * 8 * (5 * P + 100 * per_sample)


def _fused_tanh(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from initlab.nn.model import _tanh

    zT = np.ascontiguousarray(z)
    h, d = np.empty_like(zT), np.empty_like(zT)
    with np.errstate(all="ignore"):
        _tanh(zT, h, d, None)
    return h, d


def test_fused_tanh_is_accurate_from_vanishing_to_saturated_units() -> None:
    """h = u - 1 (u = 2 / (1 + exp(-2z))) is within 5e-16 of np.tanh everywhere; units whose
    |z| stays below 2^-10 take np.tanh itself (vanishing signals keep their relative accuracy);
    tanh' = e u^2 matches the activation's accurate formula to 1e-14 relative, out to |z| = 1e3,
    where 1 - h^2 would have cancelled to 0."""
    from initlab.nn.model import TANH_EXACT_BELOW

    rng = np.random.default_rng(11)
    scales = np.array([1e-12, 1e-6, TANH_EXACT_BELOW / 4, 0.01, 0.3, 1.0, 3.0, 30.0, 400.0])
    z = rng.normal(size=(3, len(scales), 257)) * scales[None, :, None]
    z[0, -1, :4] = [1e3, -1e3, 355.0, -355.0]  # beyond exp's range unless clipped
    h, d = _fused_tanh(z)
    ref_h, ref_d = np.tanh(z), get_activation("tanh").dphi(z)
    assert np.abs(h - ref_h).max() <= 5e-16
    small = np.abs(z).max(axis=2) < TANH_EXACT_BELOW
    assert small.sum() == 9 and (h[small] == ref_h[small]).all()
    ok = ref_d > 1e-300  # tanh'(z) = 4 e^(-2|z|) below 1e-300 (|z| > 345) is ~0 either way
    np.testing.assert_allclose(d[ok], ref_d[ok], rtol=1e-14)
    assert (d[~ok] <= 1e-300).all() and (d >= 0).all()
    assert (np.abs(h[0, -1, :4]) == 1).all()


def test_fused_tanh_handles_non_finite_inputs() -> None:
    z = np.array([[np.inf, -np.inf, np.nan, 0.0, 2.0]])[None]
    h, d = _fused_tanh(z)
    np.testing.assert_array_equal(h[0, 0, :2], [1.0, -1.0])
    assert np.isnan(h[0, 0, 2]) and np.isnan(d[0, 0, 2])
    assert d[0, 0, 0] == 0 and d[0, 0, 1] < 1e-300 and d[0, 0, 3] == 1.0
    np.testing.assert_allclose(h[0, 0, 3:], np.tanh([0.0, 2.0]), rtol=1e-15)


@pytest.mark.parametrize("B", [0, 1, 2])
def test_tiny_and_empty_batches(B: int) -> None:
    pop = _pop("tanh", [2, 3, 4, 1], M=2, seed=12)
    x = np.random.default_rng(13).normal(size=(B, 2))
    fast, ref = forward(pop, x), forward(pop, x, reference=True)
    for a, b in zip(fast.zs + fast.hs, ref.zs + ref.hs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
