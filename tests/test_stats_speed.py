"""The fast statistics (initlab.nn.stats.layer_stats) against a straightforward reference: the same
keys, shapes, dtypes and values (means and variances to ~1e-9 relative, histogram counts equal)
on populations of every kind: tanh/relu/sigmoid/linear, tiny and wide, shared x and a batch per
member, float32 and float64, diverged members (NaN/inf), saturated nets, zero gradients."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import random_population

from initlab.nn.activations import get_activation
from initlab.nn.model import Grads, Population, Trace

Array = np.ndarray

# ---------------------------------------------------------------------------------------------
# the reference: layer_stats as it was before the speed-up (numpy .mean/.var, log10, histogram by
# where/clip/astype/boolean index/bincount), kept as the definition of the numbers; float32
# values are widened to float64 first (the statistics of the values, not of float32 arithmetic)

STATS = (
    "act_mean", "act_var", "pre_mean", "pre_var", "grad_var", "weight_grad_var", "weight_var",
    "saturated", "dead", "grad_data", "update_data",
)
SATURATION_MARGIN = 0.03


def _flat(a: Array) -> Array:
    if a.ndim == 3 and not a.flags.c_contiguous and np.swapaxes(a, 1, 2).flags.c_contiguous:
        a = np.swapaxes(a, 1, 2)
    return a.reshape(a.shape[0], -1)


def _wide(a: Array) -> Array:
    """The statistics are those of the values themselves: float32 widened (exactly) to float64."""
    return a.astype(np.float64)


def _var(a: Array) -> Array:
    return _flat(_wide(a)).var(axis=1)


def _std_ratio(num: Array, den: Array) -> Array:
    d = np.sqrt(_var(den))
    return np.where(d > 0, np.sqrt(_var(num)) / np.where(d > 0, d, 1.0), np.nan)


def _reference_histogram(values: Array, edges: Array) -> Array:
    M, nb = values.shape[0], len(edges) - 1
    flat = _flat(values)
    finite = ~np.isnan(flat)
    pos = (np.where(finite, flat, edges[0]) - edges[0]) / (edges[-1] - edges[0]) * nb
    idx = np.clip(pos, 0, nb - 1).astype(np.int64)
    idx += (np.arange(M) * nb)[:, None]
    return np.bincount(idx[finite], minlength=M * nb).reshape(M, nb)


def _reference_layer_stats(pop: Population, trace: Trace, grads: Grads, bins: Bins,
                           updates: list[Array] | None = None,
                           ) -> tuple[dict[str, Array], Array, Array]:
    act = pop.activation
    M, L = pop.M, pop.L
    out = {name: np.zeros((M, L)) for name in STATS}
    nb = len(bins.h_edges) - 1
    hist_h = np.zeros((M, L, nb), dtype=np.int64)
    hist_dz = np.zeros((M, L, nb), dtype=np.int64)
    with np.errstate(all="ignore"):
        for l in range(L):
            z, h, dz = _wide(trace.zs[l]), _wide(trace.hs[l + 1]), _wide(grads.dzs[l])
            W, dW = pop.Ws[l], grads.dWs[l]
            flat_h = _flat(h)
            out["act_mean"][:, l] = flat_h.mean(axis=1)
            out["act_var"][:, l] = flat_h.var(axis=1)
            out["pre_mean"][:, l] = _flat(z).mean(axis=1)
            out["pre_var"][:, l] = _var(z)
            out["grad_var"][:, l] = _var(dz)
            out["weight_grad_var"][:, l] = _var(dW)
            out["weight_var"][:, l] = _var(W)
            out["grad_data"][:, l] = _std_ratio(dW, W)
            out["update_data"][:, l] = (_std_ratio(updates[2 * l], W) if updates is not None
                                        else np.nan)
            hidden = l < L - 1
            if hidden and act.bounds is not None:
                lo, hi = act.bounds
                margin = SATURATION_MARGIN * (hi - lo) / 2
                sat = (h <= lo + margin) | (h >= hi - margin)
                out["saturated"][:, l] = _flat(sat).mean(axis=1)
            if hidden and act.family == "relu":
                out["dead"][:, l] = (z <= 0).all(axis=1).mean(axis=1)
            hist_h[:, l] = _reference_histogram(h, bins.h_edges)
            hist_dz[:, l] = _reference_histogram(np.log10(np.abs(dz)), bins.dz_edges)
    return out, hist_h, hist_dz


# ---------------------------------------------------------------------------------------------
# the fast statistics against the reference

from initlab.nn.losses import get_loss  # noqa: E402
from initlab.nn.model import backward, forward  # noqa: E402
from initlab.nn.stats import (  # noqa: E402
    BLOCK,
    PACK,
    Bins,
    default_bins,
    histogram,
    layer_stats,
    log10_abs_histogram,
)
from initlab.nn.train import _Recorder, record_stats  # noqa: E402

_pop = random_population


def _pass(pop: Population, x: Array, reference: bool = False) -> tuple[Trace, Grads]:
    y = np.random.default_rng(5).integers(0, 2, x.shape[-2]).astype(x.dtype)
    trace = forward(pop, x, reference=reference)
    _, dout = get_loss("bce" if pop.sizes[-1] == 1 else "mse").fn(
        trace.out, y if pop.sizes[-1] == 1 else np.zeros((x.shape[-2], pop.sizes[-1]), x.dtype))
    return trace, backward(pop, trace, dout.astype(x.dtype), reference=reference)


def _assert_same(new: tuple[dict[str, Array], Array, Array],
                 ref: tuple[dict[str, Array], Array, Array]) -> None:
    s_new, hh_new, hd_new = new
    s_ref, hh_ref, hd_ref = ref
    assert list(s_new) == list(s_ref)
    for k in s_ref:
        assert s_new[k].shape == s_ref[k].shape and s_new[k].dtype == s_ref[k].dtype, k
        scale = np.nanmax(np.abs(np.where(np.isfinite(s_ref[k]), s_ref[k], 0)), initial=1.0)
        np.testing.assert_allclose(s_new[k], s_ref[k], rtol=1e-9, atol=1e-13 * scale,
                                   equal_nan=True, err_msg=k)
    for a, b in ((hh_new, hh_ref), (hd_new, hd_ref)):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def _check(pop: Population, trace: Trace, grads: Grads, updates: list[Array] | None = None,
           ws: dict | None = None) -> None:
    bins = default_bins(pop.activation)
    _assert_same(layer_stats(pop, trace, grads, bins, updates, ws=ws),
                 _reference_layer_stats(pop, trace, grads, bins, updates))


ACTS = ["tanh", "relu", "sigmoid", "linear", "leaky_relu"]
NETS = {"tiny": ([2, 2, 2, 2, 2, 1], 4, 64), "play": ([2, 6, 3, 1], 7, 50),
        "multi-output": ([3, 5, 4, 3], 3, 33), "one layer": ([2, 1], 3, 20),
        "wide": ([3, 300, 2], 2, 256)}  # wide: one member's z has more than BLOCK values


@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_stats_equal_the_reference(act: str, net: str, dtype: type) -> None:
    sizes, M, B = NETS[net]
    pop = _pop(act, sizes, M, seed=1, dtype=dtype)
    rng = np.random.default_rng(2)
    for x in (rng.normal(size=(B, sizes[0])), rng.normal(size=(M, B, sizes[0]))):
        trace, grads = _pass(pop, x.astype(dtype))
        updates = [(-0.1 * g).astype(dtype) for g in grads.params]
        _check(pop, trace, grads)
        _check(pop, trace, grads, updates)
    if net == "wide":
        assert sizes[1] * B > BLOCK


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_reference_layout_and_reused_workspace(act: str) -> None:
    """Plain C-contiguous (M, B, width) arrays (the reference forward/backward), and one
    workspace kept over calls whose shapes change."""
    pop = _pop(act, [2, 8, 8, 1], M=3, seed=3)
    ws: dict = {}
    rng = np.random.default_rng(4)
    for B, reference in ((40, True), (40, False), (17, False), (40, True)):
        trace, grads = _pass(pop, rng.normal(size=(B, 2)), reference=reference)
        _check(pop, trace, grads, ws=ws)
    assert ws


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("net", ["play", "wide"])
def test_diverged_members_nan_and_inf(net: str, dtype: type) -> None:
    """Members with NaN and +-inf in z, h, dL/dz and the weights: NaN is not counted, +-inf
    go to the end bins, means and variances are what numpy gives."""
    sizes, M, B = NETS[net]
    M = 6
    pop = _pop("tanh", sizes, M, seed=5, dtype=dtype)
    trace, grads = _pass(pop, np.random.default_rng(6).normal(size=(B, sizes[0])).astype(dtype))
    for l in range(pop.L):
        for arrays in (trace.zs, trace.hs[1:], grads.dzs):
            a = arrays[l]
            a[1, 0, 0] = np.nan  # one NaN
            a[2, :, :] = np.inf  # all +inf
            a[3, 0, 0], a[3, -1, -1] = np.inf, -np.inf  # inf - inf
            a[4, ::3, :] = np.nan  # a third NaN
        pop.Ws[l][5] = np.nan
        grads.dWs[l][4, 0, 0] = np.inf
    _check(pop, trace, grads, [g.copy() for g in grads.params])


def test_overflowing_sums() -> None:
    """Finite values whose sum overflows: numpy's inf mean and inf/NaN variance."""
    pop = _pop("linear", [2, 300, 1], M=2, seed=7)
    trace, grads = _pass(pop, np.random.default_rng(8).normal(size=(256, 2)))
    trace.zs[0][0] = 1e308
    trace.zs[0][1, :, :150] = 1e308
    trace.zs[0][1, :, 150:] = -1e308
    _check(pop, trace, grads)


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_saturated_nets(act: str) -> None:
    pop = _pop(act, [3, 16, 16, 1], M=4, seed=9, scale=30.0)
    trace, grads = _pass(pop, np.random.default_rng(10).normal(size=(100, 3)))
    bins = default_bins(pop.activation)
    stats = layer_stats(pop, trace, grads, bins)[0]
    assert (stats["saturated"][:, :-1] > 0.5).all()
    _check(pop, trace, grads)


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_packed_net_whose_blocks_split_the_rows(act: str) -> None:
    """A small net packed into one array whose member is bigger than a block, so blocks start
    inside the output layer's rows: those rows (logits far outside the h range) still get
    clipped into the end bins while the bounded hidden rows skip the clip."""
    pop = _pop(act, [2, 3, 4], M=2, seed=16, scale=40.0)
    B = BLOCK // 2 - 1  # two rows per block: the blocks start at rows 0, 2, 4, 6
    trace, grads = _pass(pop, np.random.default_rng(17).normal(size=(B, 2)))
    assert sum(z.size for z in trace.zs) <= PACK and np.abs(trace.zs[-1]).max() > 5
    _check(pop, trace, grads)


@pytest.mark.parametrize("offset", [0.0, 1.0, 3.0, 1e3, 1e6])
def test_variance_when_the_mean_dwarfs_the_spread(offset: float) -> None:
    """The one-pass variance (sum x^2 - n mean^2) cancels catastrophically where |mean| >> std;
    those segments (and only their members) are recomputed by two passes: numpy's numbers to
    1e-9 whatever the offset (spreads the data resolve: std >> eps |mean|), in members next to
    well-conditioned ones, and exactly 0 for a constant layer."""
    pop = _pop("linear", [2, 6, 3, 1], M=5, seed=13)
    trace, grads = _pass(pop, np.random.default_rng(14).normal(size=(50, 2)))
    noise = np.random.default_rng(15).normal
    for a in (trace.zs[0], trace.hs[1], grads.dzs[1]):
        a[1] = offset + noise(size=a[1].shape)  # member 1: std 1 around the offset
        a[3] = 0.7  # member 3: a constant layer (M2 = 0 exactly)
        a[4] = offset * (1 + 1e-6 * noise(size=a[4].shape))  # member 4: std 1e-6 |mean|
    _check(pop, trace, grads)
    stats = layer_stats(pop, trace, grads, default_bins(pop.activation))[0]
    assert stats["pre_var"][3, 0] == 0.0 and stats["act_var"][3, 0] == 0.0


def test_zero_gradients_and_zero_weights() -> None:
    """dL/dz = 0 (log10 0 = -inf: bin 0), dW = 0, W = 0 (grad_data NaN), h = 0 on bin edges."""
    pop = _pop("relu", [2, 5, 5, 1], M=3, seed=11)
    pop.Ws[1][0] = 0.0
    trace, grads = _pass(pop, np.random.default_rng(12).normal(size=(30, 2)))
    for g in grads.dzs + grads.dWs:
        g[1] = 0.0
    _check(pop, trace, grads, [np.zeros_like(g) for g in grads.params])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log10_histogram_is_exact_at_the_edges(dtype: type) -> None:
    """The bit-pattern tables give exactly the bins of np.log10 + histogram, also for the
    floats next to every edge 10^e_k, 0, denormals, +-inf, NaN and negative numbers."""
    edges = default_bins(get_activation("tanh")).dz_edges
    t = (10.0 ** edges).astype(dtype)
    near = np.concatenate([np.nextafter(t, dtype(0)), t, np.nextafter(t, dtype(np.inf))])
    fi = np.finfo(dtype)
    special = np.array([0.0, np.inf, np.nan, fi.tiny, fi.max, fi.smallest_subnormal, 1e-30,
                        1e30], dtype=dtype)
    rng = np.random.default_rng(13)
    spread = (rng.normal(size=4000) * 10.0 ** rng.uniform(-20, 8, 4000)).astype(dtype)
    v = np.concatenate([near, -near, special, -special, spread])
    values = np.stack([v, v[::-1]])
    with np.errstate(all="ignore"):
        ref = _reference_histogram(np.log10(np.abs(values)), edges)
    np.testing.assert_array_equal(log10_abs_histogram(values, edges), ref)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linear_histogram(dtype: type) -> None:
    """h's bins: the same counts, +-inf in the end bins, NaN not counted; a value on a bin edge
    (to ~1e-15) may fall in the bin below or above it (a*s + c, not (a - e_0)/(e_nb - e_0)*nb)."""
    edges = default_bins(get_activation("relu")).h_edges
    rng = np.random.default_rng(14)
    v = np.concatenate([rng.normal(0, 3, 5000), [np.inf, -np.inf, np.nan, 0.0, 1e30, -1e30]])
    values = np.stack([v, -v, np.zeros_like(v)]).astype(dtype)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(histogram(values, edges), _reference_histogram(values, edges))
    for e in np.concatenate([edges, np.nextafter(edges, -np.inf)]).astype(dtype):
        one = np.array([[e]])
        assert abs(int(np.argmax(histogram(one, edges)))
                   - int(np.argmax(_reference_histogram(one, edges)))) <= 1


def test_record_stats_reuses_its_buffers() -> None:
    """record_stats keeps the weight copies and the work buffers in the recorder: the same
    numbers as copying afresh, step after step, also when the batch changes."""
    pop = _pop("tanh", [2, 6, 6, 1], M=3, seed=14)
    rec = _Recorder()
    bins = default_bins(pop.activation)
    rng = np.random.default_rng(15)
    for step, B in enumerate((32, 32, 10)):
        trace, grads = _pass(pop, rng.normal(size=(B, 2)))
        before = [W.copy() for W in pop.Ws]

        def update(grads: Grads = grads) -> None:
            for p, g in zip(pop.params, grads.params):
                p -= 0.1 * g

        record_stats(rec, step, pop, trace, grads, bins, update)
        updates = [u for W, W0 in zip(pop.Ws, before) for u in (W - W0, np.empty(0))]
        ref = _reference_layer_stats(Population(before, pop.bs, pop.activation), trace, grads,
                                     bins, updates)
        _assert_same((rec.stats[-1], rec.hist_h[-1], rec.hist_dz[-1]), ref)
    assert rec.ws
