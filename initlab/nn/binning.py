"""Histogram bin indices of many values at once, exactly as NumPy's straightforward formulas
put them, written for speed (initlab.nn.stats counts them with np.bincount):

  - uniform bins (LinearBins): bin = floor(a nb / (e_nb - e_0) - e_0 nb / (e_nb - e_0)) clipped
    to the end bins (values known to lie inside the edges skip the clip), NaN into a dropped bin
    nb. A value within ~1e-15 of a bin edge may fall on the other side of it than
    (a - e_0) / (e_nb - e_0) nb puts it (a = 0 is exact);
  - bins of log10 |a| (Log10AbsBins) with no logarithm (NumPy's float64 log10 is scalar libm):
    |a| <= |b| exactly when their IEEE bit patterns compare so, so the bin is read from a table
    indexed by the float's top bits (sign, exponent, 4 mantissa bits), plus one where a bin
    edge lies inside that table cell and the float's bits are at or above the edge's. The
    edges' bit patterns are found once by bisection on np.log10 itself: the counts are exactly
    those of np.log10 and the histogram.

Work buffers come from a workspace.Scratch, kept from one call to the next in a Workspace.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from initlab.nn.workspace import Scratch

Array = np.ndarray

class LinearBins:
    """Bin index of every value over the uniform `edges`: floor((a - e_0) nb / (e_nb - e_0))
    clipped to 0..nb-1 (+-inf into the end bins); NaN (looked for only when asked) gets nb, a
    bin that is dropped. Work buffers of `shape` (the largest block), sliced for smaller ones."""

    def __init__(self, edges: Array, scratch: Scratch, shape: tuple[int, ...],
                 itype: np.dtype | type = np.intp, within: tuple[float, float] | None = None
                 ) -> None:
        nb = len(edges) - 1
        self.nb = float(nb)
        self.scale = np.float64(nb / (edges[-1] - edges[0]))
        self.shift = np.float64((0.0 - edges[0]) / (edges[-1] - edges[0]) * nb)  # a = 0: exact
        self.pos = scratch.get("pos", shape, np.float64)
        self.idx = scratch.get("idx", shape, itype)
        # values known to lie within (lo, hi) strictly inside the edges need no clip
        self.inside = within is not None and edges[0] < within[0] and within[1] < edges[-1]

    def __call__(self, blk: Array, nan: bool, inside_rows: int = 0) -> Array:
        """`inside_rows`: the block's leading rows are known to lie `within` (finite)."""
        R, u = blk.shape[:2]
        pos, idx = self.pos[:R, :u], self.idx[:R, :u]
        np.multiply(blk, self.scale, out=pos)
        np.add(pos, self.shift, out=pos)
        k = 0 if nan or not self.inside else max(0, min(inside_rows, u))
        if k < u:
            np.clip(pos[:, k:], 0.0, self.nb - 1.0, out=pos[:, k:])
        if nan:
            np.copyto(pos, self.nb, where=np.isnan(pos))
        np.copyto(idx, pos, casting="unsafe")
        return idx


# float dtype -> (signed, unsigned integer dtypes of its size, mantissa bits)
_INT: dict[np.dtype, tuple[np.dtype, np.dtype, int]] = {
    np.dtype(np.float64): (np.dtype(np.int64), np.dtype(np.uint64), 52),
    np.dtype(np.float32): (np.dtype(np.int32), np.dtype(np.uint32), 23)}
CELL_MANTISSA_BITS = 4  # a table cell spans at most 2^(1/16): 0.019 decades, a bin 0.28


def _log10_abs_bin_of(mag_bits: Array, edges: Array, dtype: np.dtype) -> Array:
    """The bin of log10 |a| for the non-negative a with these bits, exactly as np.log10 and the
    histogram compute it (the reference definition, on the very same np.log10)."""
    nb = len(edges) - 1
    v = np.log10(mag_bits.astype(_INT[dtype][0]).view(dtype))
    pos = (np.where(True, v, edges[0]) - edges[0]) / (edges[-1] - edges[0]) * nb
    return np.clip(pos, 0, nb - 1).astype(np.int64)


@lru_cache(maxsize=16)
def log10_abs_tables(edges_key: tuple[float, ...], dtype_str: str
                     ) -> tuple[int, Array, Array] | None:
    """(shift, lo, cut): the value with bits b (unsigned view u, signed view s) falls in bin
    lo[c] + (s >= cut[c]) of log10 |a|, c = u >> shift (cells of negative numbers come after
    the positive ones); NaN in bin nb. None when a bin is narrower than a cell."""
    edges = np.array(edges_key)
    dtype = np.dtype(dtype_str)
    itype, _, mant = _INT[dtype]
    nbits = 8 * dtype.itemsize
    nb = len(edges) - 1
    inf_bits = int(np.array(np.inf, dtype).view(itype))
    with np.errstate(all="ignore"):
        # thr[k-1] = the smallest magnitude bit pattern in bin >= k, by bisection, all k at once
        k = np.arange(1, nb)
        lo, hi = np.zeros(nb - 1, np.int64), np.full(nb - 1, inf_bits, np.int64)
        while (lo < hi).any():
            mid = lo + (hi - lo) // 2
            ok = _log10_abs_bin_of(mid, edges, dtype) >= k
            hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid + 1)
    thr = hi
    shift = mant - CELL_MANTISSA_BITS
    start = np.arange(1 << (nbits - 1 - shift), dtype=np.int64) << shift  # positive cells
    first = np.searchsorted(thr, start, side="right")  # the bin of the cell's first value
    last = np.searchsorted(thr, start + ((1 << shift) - 1), side="right")
    inf_cell = inf_bits >> shift
    if (last[:inf_cell] - first[:inf_cell] > 1).any():
        return None  # two edges in one cell
    cut = np.where(last > first, thr[np.minimum(first, nb - 2)], start + (1 << shift))
    cut[inf_cell] = inf_bits + 1  # +-inf: bin nb-1; the NaNs beyond: nb
    first[inf_cell + 1:], cut[inf_cell + 1:] = nb - 1, start[inf_cell + 1:]  # NaN: nb
    # negative numbers: the same bins; their signed bit patterns are the magnitude's - 2^(n-1)
    lo_tab = np.concatenate([first, first]).astype(np.int32)  # bins < 2^31
    cut_tab = np.concatenate([cut, cut + np.int64(np.iinfo(itype).min)]).astype(itype)
    return shift, lo_tab, cut_tab


class Log10AbsBins:
    """Bin index of log10 |a| over the uniform `edges` (0: bin 0; +-inf: nb-1; NaN: nb, a bin
    that is dropped), from the bit patterns where the dtype allows (module docstring), else
    by np.log10 and LinearBins."""

    def __init__(self, edges: Array, dtype: np.dtype, scratch: Scratch,
                 shape: tuple[int, ...], itype: np.dtype | type = np.intp) -> None:
        self.tables = (log10_abs_tables(tuple(edges.tolist()), dtype.str)
                       if dtype in _INT else None)
        if self.tables is None:
            self.linear = LinearBins(edges, scratch, shape, itype)
            return
        self.itype, self.utype, _ = _INT[dtype]
        self.ucell = scratch.get("cell", shape, np.uint64)
        self.cut = scratch.get("cut", shape, self.itype)
        self.above = scratch.get("above", shape, bool)
        self.idx = scratch.get("idx", shape, itype)
        self.lo_tab = self.tables[1] if itype == np.int32 else self.tables[1].astype(itype)

    def __call__(self, blk: Array, nan: bool, inside_rows: int = 0) -> Array:
        if self.tables is None:
            return self.linear(np.log10(np.abs(blk)), True)
        shift, _, cut_tab = self.tables
        lo_tab = self.lo_tab
        R, u = blk.shape[:2]
        ucell, cut, above, idx = (self.ucell[:R, :u], self.cut[:R, :u], self.above[:R, :u],
                                  self.idx[:R, :u])
        np.right_shift(blk.view(self.utype), shift, out=ucell, casting="unsafe")
        cell = ucell.view(np.intp)  # < 2^63: the same numbers
        np.take(cut_tab, cell, out=cut, mode="clip")
        np.greater_equal(blk.view(self.itype), cut, out=above)
        np.take(lo_tab, cell, out=idx, mode="clip")
        np.add(idx, above, out=idx)
        return idx
