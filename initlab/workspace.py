"""Work buffers kept from one call to the next: {key: array}.

The engine's steps reuse their arrays instead of allocating new ones every step: NumPy takes an
array of 128 kB or more from the system (mmap) and gives it back when it is freed, so a fresh
one costs a page fault per 4 kB page on first touch (~1 ms per 4 MB on this kind of machine).
"""

from __future__ import annotations

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
