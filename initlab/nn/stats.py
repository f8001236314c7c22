"""Per-member, per-layer statistics of one forward/backward pass (the makemore diagnostics).

Every statistic is an (M, L) array: member m, weight layer l = 1..L at column l-1. Variances
are taken over the batch and the layer's units together. Histograms use fixed bins, the same
for every layer, member and step, so they can be compared side by side.

Recording runs every few training steps, so it is written for speed (same numbers as the
straightforward numpy version: tests/test_stats_speed.py). An array is read as X (M, U, B): the
(M, width, B) buffer the engine's (M, B, width) arrays are views of (rows = units), and a small
net's layers all packed into one float64 such array (a copy; segments = layers), so that a few
NumPy calls serve every layer. X is read once, in blocks of about BLOCK values (whole members
where they fit) whose statistics are all taken while the block is in the CPU cache, in work
buffers kept in a Workspace from one call to the next:
  - mean and variance: each row r gets s_r = sum x and q_r = sum x^2 (BLAS products with the
    cached block); a segment's M2 = sum q - n mean^2 where that is well conditioned (sum x^2 <=
    8 M2, i.e. |mean| < 2.6 std: relative error ~1e-14), else exactly by two passes over that
    member's rows, combined as Chan et al. (_variance); where that is inf/NaN, numpy's .var.
    float32 values are widened to float64 (exactly, block by block) first: the statistics of
    the values themselves, whatever the training precision;
  - the histograms of h and of log10 |dL/dz|: initlab.nn.binning's bin indices (exact, no
    logarithm), every (member, layer) counted by one np.bincount.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from initlab.nn.activations import Activation
from initlab.nn.binning import LinearBins, Log10AbsBins
from initlab.nn.model import Grads, Population, Trace
from initlab.nn.workspace import Scratch, Workspace

Array = np.ndarray

STATS = (
    "act_mean", "act_var", "pre_mean", "pre_var", "grad_var", "weight_grad_var", "weight_var",
    "saturated", "dead", "grad_data", "update_data",
)
SATURATION_MARGIN = 0.03  # |h| within 3% of the bound (tanh: |h| > 0.97, as in makemore)
DZ_LOG10_RANGE = (-12.0, 2.0)  # histogram of log10 |dL/dz|; smaller magnitudes fall in bin 0
BLOCK = 1 << 16  # elements per block: a block and its work buffers stay in the CPU cache


@dataclass(frozen=True)
class Bins:
    """Fixed histogram bins: `h_edges` over h, `dz_edges` over log10 |dL/dz|."""

    h_edges: Array
    dz_edges: Array


def default_bins(activation: Activation, bins: int = 50) -> Bins:
    """h over the activation's range plus 20% (tanh: [-1.2, 1.2], the article's figure 2);
    unbounded activations over [-4, 4]. Values outside fall into the end bins."""
    if activation.bounds is not None:
        lo, hi = activation.bounds
        pad = 0.1 * (hi - lo)
        h_range = (lo - pad, hi + pad)
    else:
        h_range = (-4.0, 4.0)
    return Bins(np.linspace(*h_range, bins + 1), np.linspace(*DZ_LOG10_RANGE, bins + 1))


def _flat(a: Array) -> Array:
    """(M, ...) -> (M, n) without a copy where possible: the engine's (M, B, width) arrays are
    views of (M, width, B) ones, and these statistics do not depend on the order of elements."""
    if a.ndim == 3 and not a.flags.c_contiguous and np.swapaxes(a, 1, 2).flags.c_contiguous:
        a = np.swapaxes(a, 1, 2)
    return a.reshape(a.shape[0], -1)


# ---------------------------------------------------------------------------------------------
# one pass over an array: every statistic block by block


@dataclass
class _Summary:
    """Statistics of each (member, segment): mean, var (M, S); hist (M, S, nb); saturated, dead
    (M, S), the last two only where asked for."""

    mean: Array
    var: Array
    hist: Array | None = None
    saturated: Array | None = None
    dead: Array | None = None


def _units(a: Array) -> tuple[Array, bool]:
    """An (M, B, width) array as X (M, U, B') with contiguous rows, no copy where possible, and
    whether X's axis 1 are the units (X = a's (M, width, B) base) or the samples (X = a)."""
    t = np.swapaxes(a, 1, 2)
    if t.flags.c_contiguous:
        return t, True
    if a.flags.c_contiguous:
        return a, False
    return np.ascontiguousarray(t), True


def _blocks(M: int, U: int, B: int) -> list[tuple[int, int, int, int]]:
    """(r0, r1, u0, u1) blocks of an (M, U, B) array of about BLOCK elements: several whole
    members to a block where a member fits, else rows u0:u1 of one member."""
    if U * B <= BLOCK:
        R = max(1, BLOCK // max(U * B, 1))
        return [(r, min(M, r + R), 0, U) for r in range(0, M, R)]
    k = max(1, BLOCK // max(B, 1))
    return [(r, r + 1, u, min(U, u + k)) for r in range(M) for u in range(0, U, k)]


@dataclass
class _Plan:
    """What a scan of one kind of X needs besides X: blocks, segments, binner and work buffers.
    Built once per (shape, segments, kind) and kept in the Workspace (per-call setup was a
    quarter of a small net's record)."""

    widths: Array  # (S,) rows per segment
    seg: Array  # (U,) segment of each row
    blocks: list[tuple[int, int, int, int]]
    dtype: np.dtype  # of the computation: X's, or float64 when widened
    wide: Array | None  # block buffer for widening
    ones: Array  # (B, 1)
    nb: int
    binner: LinearBins | Log10AbsBins | None
    offset: Array  # (Rmax, U, 1) bin-index offset of block row r, row u's segment
    sat: tuple[float, float, Array, Array] | None  # (lo, hi, buffers) of saturation


def _plan(X: Array, starts: Array, scratch: Scratch, h_edges: Array | None,
          dz_edges: Array | None, bounds: tuple[float, float] | None, widen: bool) -> _Plan:
    key = ("plan", X.shape, X.dtype.str, widen, starts.tobytes(), bounds,
           None if h_edges is None else h_edges.tobytes(),
           None if dz_edges is None else dz_edges.tobytes())
    plan = scratch.plans.get(key)
    if plan is not None:
        return plan
    M, U, B = X.shape
    S = len(starts)
    widths = np.subtract(np.append(starts[1:], U), starts)
    seg = np.repeat(np.arange(S), widths)
    blocks = _blocks(M, U, B)
    Rmax, umax = max(r1 - r0 for r0, r1, _, _ in blocks), max(u1 - u0 for _, _, u0, u1 in blocks)
    shape = (Rmax, umax, B)
    dtype = np.dtype(np.float64) if widen else X.dtype
    edges = h_edges if h_edges is not None else dz_edges
    nb = 0 if edges is None else len(edges) - 1
    # bin indices as int32 where they fit (half the memory traffic of intp, faster casts)
    itype = np.int32 if Rmax * S * (nb + 1) < 2**31 else np.intp
    binner: LinearBins | Log10AbsBins | None = None
    if h_edges is not None:
        binner = LinearBins(h_edges, scratch, shape, itype, within=bounds)
    elif dz_edges is not None:
        binner = Log10AbsBins(dz_edges, dtype, scratch, shape, itype)
    sat = None
    if bounds is not None:
        margin = SATURATION_MARGIN * (bounds[1] - bounds[0]) / 2
        sat = (bounds[0] + margin, bounds[1] - margin,
               scratch.get("sat", shape, bool), scratch.get("sat2", shape, bool))
    plan = scratch.plans[key] = _Plan(
        widths, seg, blocks, dtype, scratch.get("wide", shape, dtype) if dtype != X.dtype else None,
        np.ones((B, 1), dtype), nb, binner,
        ((np.arange(Rmax) * (S * (nb + 1)))[:, None]
         + (seg * (nb + 1))[None, :]).astype(itype)[:, :, None], sat)
    return plan


def _scan(X: Array, starts: Array, scratch: Scratch, *, h_edges: Array | None = None,
          dz_edges: Array | None = None, bounds: tuple[float, float] | None = None,
          dead: bool = False, bounded_rows: int = 0, widen: bool = False) -> _Summary:
    """Statistics of the segments of X (M, U, B): segment j is rows starts[j]..starts[j+1]-1 of
    each member (a layer). Mean and variance as numpy's .mean and .var of the segment (`widen`:
    of its values as float64, each block widened exactly in a cached buffer); with
    `h_edges` the histogram of X, with `dz_edges` the histogram of log10 |X|; with `bounds`
    (lo, hi) the fraction of X <= lo + margin or >= hi - margin, and X's first `bounded_rows`
    rows (a bounded activation's h) known to lie within them; with `dead` (X's rows are the
    units of z) the fraction of rows with every z <= 0.

    Block by block each row r gets its sum s_r and sum of squares q_r (two BLAS products);
    mean = sum_r s_r / n and the variance from them (_variance), n = rows * B."""
    M, U, B = X.shape
    P = _plan(X, starts, scratch, h_edges, dz_edges, bounds, widen)
    S, nb, binner = len(starts), P.nb, P.binner
    sums = np.empty((M, U), P.dtype)
    sq = np.empty((M, U), P.dtype)
    hist = np.zeros((M, S, nb + 1), np.intp) if binner is not None else None
    near = np.empty((M, U), np.intp) if P.sat is not None else None
    top = np.empty((M, U), P.dtype) if dead else None
    for r0, r1, u0, u1 in P.blocks:
        blk = X[r0:r1, u0:u1]
        R, u = r1 - r0, u1 - u0
        if P.wide is not None:
            np.copyto(P.wide[:R, :u], blk)
            blk = P.wide[:R, :u]
        rows = blk.reshape(R * u, B)
        # one product per row, as for q_r (faster than numpy's add.reduce): a row's sum does
        # not depend on its position in the block, unlike one matrix-vector product's (BLAS
        # kernels round rows by their place in groups), so a member's statistics do not
        # depend on which members share its population (initlab.parallel's chunks)
        s = np.matmul(rows[:, None, :], P.ones).reshape(R, u)
        sums[r0:r1, u0:u1] = s
        sq[r0:r1, u0:u1] = np.matmul(rows[:, None, :], rows[:, :, None]).reshape(R, u)
        if binner is not None and hist is not None:
            idx = binner(blk, not np.isfinite(s).all(), bounded_rows - u0)
            if R > 1 or S > 1:
                idx += P.offset[:R, u0:u1]
            hist[r0:r1] += np.bincount(idx.reshape(-1), minlength=R * S * (nb + 1)
                                       ).reshape(R, S, nb + 1)
        if near is not None and P.sat is not None:
            sat_lo, sat_hi, sat, sat2 = P.sat
            lo_ = np.less_equal(blk, sat_lo, out=sat[:R, :u])
            lo_ |= np.greater_equal(blk, sat_hi, out=sat2[:R, :u])
            near[r0:r1, u0:u1] = np.count_nonzero(lo_, axis=2)
        if top is not None:
            top[r0:r1, u0:u1] = np.max(blk, axis=2)
    n = P.widths * B
    mean = np.add.reduceat(sums, starts, axis=1) / n
    v = _variance(X, starts, P.widths, sums, sq, mean, P.seg)
    return _Summary(
        mean, v, None if hist is None else hist[:, :, :nb],
        None if near is None else np.add.reduceat(near, starts, axis=1) / n,
        None if top is None else np.add.reduceat(top <= 0, starts, axis=1) / P.widths)


WELL_CONDITIONED = 8.0  # sum x^2 <= this * M2: the one-pass variance keeps ~1e-14 (see _variance)


def _variance(X: Array, starts: Array, widths: Array, sums: Array, sq: Array, mean: Array,
              seg: Array | None = None) -> Array:
    """var (M, S) of X's segments from its rows' sums and sums of squares: M2 = sum x^2 - n mean^2
    where that is well conditioned, else exactly by two passes.

    The one-pass formula's rounding error is about eps_sum * sum x^2 (Cauchy-Schwarz bounds the
    mean's share by the same), so where sum x^2 <= WELL_CONDITIONED * M2 (|mean| < 2.6 std) its
    relative error stays below ~10 eps_sum: 1e-14 for the BLAS sums here. Elsewhere (a segment
    whose mean dwarfs its spread: saturated units, a constant layer) the member's rows get the
    deviations' squares d = x - s_r / B, combined exactly (Chan et al.):
    M2 = sum_r sum d^2 + B sum_r (s_r / B - mean)^2; where that is inf/NaN, numpy's .var."""
    U, B = X.shape[1:]
    n = widths * B
    s2 = np.add.reduceat(sq, starts, axis=1)
    m2 = s2 - np.add.reduceat(sums, starts, axis=1) * mean
    exact = ~(s2 <= WELL_CONDITIONED * m2)  # and inf/NaN
    redo = np.flatnonzero(exact.any(axis=1))
    if len(redo) and seg is None:
        seg = np.repeat(np.arange(len(starts)), widths)
    step = max(1, BLOCK * 16 // (U * B))  # members at a time: bounded temporaries
    for i in range(0, len(redo), step):
        ms = redo[i:i + step]
        row_mean = sums[ms] / B  # (k, U)
        d = X[ms] - row_mean[:, :, None]  # (k, U, B)
        dmean = row_mean - mean[ms][:, seg]
        m2[ms] = (np.add.reduceat(np.einsum("kub,kub->ku", d, d), starts, axis=1)
                  + B * np.add.reduceat(dmean * dmean, starts, axis=1))
    v = m2 / n
    for m, j in zip(*np.nonzero(~np.isfinite(v))):  # inf/NaN (diverged): numpy's numbers
        v[m, j] = X[m, starts[j]:starts[j] + widths[j]].astype(sums.dtype).var()
    return v


def _var(a: Array) -> Array:
    """Variance of each member's slice over all axes but the first: (M, ...) -> (M,)."""
    with np.errstate(all="ignore"):
        return _scan(_flat(a)[:, None, :], np.zeros(1, np.intp), Scratch()).var[:, 0]


def histogram(values: Array, edges: Array) -> Array:
    """Counts per member over fixed uniform `edges`, vectorized: (M, ...) -> (M, bins).
    Out-of-range values (and +-inf) are clipped into the end bins; NaN is not counted."""
    with np.errstate(all="ignore"):
        return _scan(_flat(values)[:, None, :], np.zeros(1, np.intp), Scratch(),
                     h_edges=np.asarray(edges)).hist[:, 0]  # type: ignore[index]


def log10_abs_histogram(values: Array, edges: Array) -> Array:
    """histogram(np.log10(np.abs(values)), edges), without the logarithm: (M, ...) -> (M, bins)
    (0 in bin 0, +-inf in the last, NaN not counted)."""
    with np.errstate(all="ignore"):
        return _scan(_flat(values)[:, None, :], np.zeros(1, np.intp), Scratch(),
                     dz_edges=np.asarray(edges)).hist[:, 0]  # type: ignore[index]


def _std_ratio(var_num: Array, var_den: Array) -> Array:
    """std(num) / std(den) from the variances; NaN where std(den) is not > 0."""
    d = np.sqrt(var_den)
    return np.where(d > 0, np.sqrt(var_num) / np.where(d > 0, d, 1.0), np.nan)


PACK = 1 << 19  # nets with at most this many z values in all: every layer in one pass


def _pack(arrays: list[Array], scratch: Scratch, key: str) -> tuple[Array, Array, bool]:
    """Layers' (M, B, width) arrays as one float64 (M, U, B) array X with the layers' units one
    after another (a copy, float32 widened exactly), or a single array's view (_units); with the
    layers' first rows in X and whether X's rows are units."""
    if len(arrays) == 1:
        X, by_unit = _units(arrays[0])
        return X, np.zeros(1, np.intp), by_unit
    widths = [a.shape[2] for a in arrays]
    starts = np.array([0, *itertools.accumulate(widths[:-1])], np.intp)
    M, B = arrays[0].shape[:2]
    X = scratch.get(key, (M, sum(widths), B), np.float64)
    np.concatenate([a.transpose(0, 2, 1) for a in arrays], axis=1, out=X)
    return X, starts, True


def _layer_groups(pop: Population, trace: Trace, members: int) -> list[list[int]]:
    """Layers scanned together: all of a small net (one pass, few NumPy calls), else one at
    a time; decided for a population of `members` members (see layer_stats)."""
    L = pop.L
    small = sum(z[0].size for z in trace.zs) * members <= PACK
    same = all(a.ndim == 3 for a in trace.zs + trace.hs[1:])
    return [list(range(L))] if small and same and L > 1 else [[l] for l in range(L)]


def _weight_vars(arrays: list[Array], scratch: Scratch, members: int) -> list[Array]:
    """Variance (M,) of each (M, ...) array's values as float64: small ones (in a population of
    `members`) all in one pass."""
    M = arrays[0].shape[0]
    if sum(a[0].size for a in arrays) * members <= PACK:
        sizes = [a[0].size for a in arrays]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        X = scratch.get("weights", (M, sum(sizes), 1), np.float64)
        np.concatenate([a.reshape(M, -1, 1) for a in arrays], axis=1, out=X)
        x = X[:, :, 0]  # rows of one value: a row's sum is the value itself
        widths = np.array(sizes)
        var = _variance(X, starts, widths, x, x * x, np.add.reduceat(x, starts, axis=1) / widths)
        return [var[:, j] for j in range(len(arrays))]
    out = []
    for a in arrays:
        if a.ndim == 3:
            out.append(_scan(a, np.zeros(1, np.intp), scratch, widen=True).var[:, 0])
        else:
            out.append(_flat(a).astype(np.float64).var(axis=1))
    return out


def layer_stats(
    pop: Population,
    trace: Trace,
    grads: Grads,
    bins: Bins,
    updates: list[Array] | None = None,
    ws: Workspace | None = None,
    population: int | None = None,
    hist_layers: Sequence[int] | None = None,
) -> tuple[dict[str, Array], Array, Array]:
    """Statistics of every layer: ({name: (M, L)}, hist_h (M, K, nb), hist_dz (M, K, nb)), the
    histograms of the K layers `hist_layers` (0-based, ascending; default: all L).

    grad_data = std(dW)/std(W); update_data = std(delta W)/std(W) for the applied update
    (NaN when `updates` is not given); dead = fraction of units with z <= 0 on the whole batch
    (ReLU family only); saturated = fraction of h within 3% of the activation's bound.
    `ws` keeps the work buffers for the next call. `population`: the member count of the whole
    population that `pop` is a part of (default pop.M): the layers are packed as for it, so a
    member's numbers do not depend on how the population is split (initlab.parallel).
    """
    act = pop.activation
    M, L = pop.M, pop.L
    out = {name: np.zeros((M, L)) for name in STATS}
    nb = len(bins.h_edges) - 1
    where = {int(l): i for i, l in enumerate(range(L) if hist_layers is None else hist_layers)}
    hist_h = np.zeros((M, len(where), nb), dtype=np.int64)
    hist_dz = np.zeros((M, len(where), nb), dtype=np.int64)
    scratch = Scratch(ws)
    relu = act.family == "relu"
    with np.errstate(all="ignore"):
        members = M if population is None else population
        for group in _layer_groups(pop, trace, members):
            cols = np.array(group)
            hidden = cols < L - 1
            last_only = len(group) == 1 and not hidden[0]
            binned = [j for j, l in enumerate(group) if l in where]  # histograms wanted
            h_kw = {"h_edges": bins.h_edges if binned else None,
                    "bounds": None if act.bounds is None or last_only else act.bounds}
            Z, starts, by_unit = _pack([trace.zs[l] for l in group], scratch, "Z")
            if last_only and trace.hs[L] is trace.zs[L - 1]:  # h[L] = z[L]: one scan
                sz = sh = _scan(Z, starts, scratch, widen=True,
                                **h_kw)  # type: ignore[arg-type]
            else:
                sz = _scan(Z, starts, scratch, dead=relu and by_unit, widen=True)
                H = _pack([trace.hs[l + 1] for l in group], scratch, "H")[0]
                # hidden layers' h lie within a bounded activation's range (rows of units
                # when packed; a single layer's array is all hidden or all output)
                bounded = H.shape[1] if hidden.all() else int(starts[np.argmin(hidden)])
                sh = _scan(H, starts, scratch, bounded_rows=bounded, widen=True,
                           **h_kw)  # type: ignore[arg-type]
            sd = _scan(_pack([grads.dzs[l] for l in group], scratch, "D")[0], starts, scratch,
                       dz_edges=bins.dz_edges if binned else None, widen=True)
            out["act_mean"][:, cols], out["act_var"][:, cols] = sh.mean, sh.var
            out["pre_mean"][:, cols], out["pre_var"][:, cols] = sz.mean, sz.var
            out["grad_var"][:, cols] = sd.var
            if sh.saturated is not None:
                out["saturated"][:, cols[hidden]] = sh.saturated[:, hidden]
            if relu and sz.dead is not None:
                out["dead"][:, cols[hidden]] = sz.dead[:, hidden]
            elif relu and hidden.any():
                out["dead"][:, cols[hidden]] = np.stack(
                    [(np.max(trace.zs[l], axis=1) <= 0).mean(axis=1) for l in cols[hidden]], 1)
            if binned:
                assert sh.hist is not None and sd.hist is not None
                at = [where[group[j]] for j in binned]
                hist_h[:, at], hist_dz[:, at] = sh.hist[:, binned], sd.hist[:, binned]
        wv = _weight_vars(list(pop.Ws) + list(grads.dWs)
                          + ([updates[2 * l] for l in range(L)] if updates is not None else []),
                          scratch, members)
        var_W, var_dW = np.stack(wv[:L], 1), np.stack(wv[L:2 * L], 1)
        out["weight_var"][:], out["weight_grad_var"][:] = var_W, var_dW
        out["grad_data"][:] = _std_ratio(var_dW, var_W)
        out["update_data"][:] = (_std_ratio(np.stack(wv[2 * L:], 1), var_W)
                                 if updates is not None else np.nan)
    return out, hist_h, hist_dz
