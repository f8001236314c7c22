"""Work buffers kept from one call to the next: {key: array}. `buffer` gives an array of one
exact shape per key (a training step's arrays); `Scratch` grows one flat buffer per key and
slices it to whatever shape a block needs (the statistics' block-by-block scans).

The engine's steps reuse their arrays instead of allocating new ones every step: NumPy takes an
array of 128 kB or more from the system (mmap) and gives it back when it is freed, so a fresh
one costs a page fault per 4 kB page on first touch (~1 ms per 4 MB on this kind of machine).
"""

from __future__ import annotations

import math

import numpy as np

Array = np.ndarray
Workspace = dict  # {key: array}, owned by one loop (train's step, the statistics' recorder)


def buffer(ws: Workspace | None, key: object, shape: tuple[int, ...],
           dtype: np.dtype | type) -> Array:
    """ws[key] when it has this shape and dtype, else a new array stored there (uninitialized;
    without a workspace simply a new array)."""
    if ws is None:
        return np.empty(shape, dtype)
    a = ws.get(key)
    if a is None or a.shape != shape or a.dtype != dtype:
        a = ws[key] = np.empty(shape, dtype)
    return a


class Scratch:
    """Work buffers, grown on demand and reused from one block to the next, and from one call
    to the next when kept in a Workspace (fresh memory costs page faults: ~1 ms per 4 MB)."""

    def __init__(self, ws: Workspace | None = None) -> None:
        self._bufs: Workspace = {} if ws is None else ws
        self.plans: dict = self._bufs.setdefault("plans", {})  # stats._scan's, by shape and kind

    def get(self, key: str, shape: tuple[int, ...], dtype: np.dtype | type) -> Array:
        dt = np.dtype(dtype)
        n = math.prod(shape)
        buf = self._bufs.get((key, dt))
        if buf is None or buf.size < n:
            buf = self._bufs[(key, dt)] = np.empty(max(n, 1024), dt)
        return buf[:n].reshape(shape)
