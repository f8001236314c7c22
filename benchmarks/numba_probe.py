"""Would a compiled kernel reach the seed net's 2x-torch-batched target? A probe, not a feature.

    pip install -e '.[bench]' numba && python benchmarks/numba_probe.py

One hidden layer of seed_tiny's forward pass (32 members x 2 units x 512 samples, float64):
z = W^T h + b, h' = tanh(z), tanh'(z), timed three ways at one thread: initlab's NumPy path
(batched matmul + bias + the fused exp tanh of initlab.nn.model._tanh), the same math as one
numba kernel (every element once, in registers), and NumPy's exp alone on as many elements.
numba's exp is the C library's scalar exp (no SIMD math library on this machine), so the fused
kernel is bound by the same exp as NumPy: the probe measures how much fusing buys on top.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from initlab.nn.model import _tanh

M, N, B = 32, 2, 512


def best_of(f: Callable[[], object], k: int = 300, rounds: int = 5) -> float:
    f()
    best = np.inf
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(k):
            f()
        best = min(best, (time.perf_counter() - t) / k)
    return best


def main() -> None:
    try:
        import numba
    except ImportError:
        raise SystemExit("numba is not installed: pip install numba") from None

    @numba.njit(cache=False)
    def fused(hT, W, b, zT, outT, dT):  # type: ignore[no-untyped-def]
        for m in range(hT.shape[0]):
            for j in range(W.shape[2]):
                z, h, d = zT[m, j], outT[m, j], dT[m, j]
                z[:] = b[m, j, 0]
                for i in range(hT.shape[1]):  # row-wise multiply-adds (vectorized by LLVM)
                    w, x = W[m, i, j], hT[m, i]
                    for t in range(z.shape[0]):
                        z[t] += x[t] * w
                for t in range(z.shape[0]):  # the exp is a scalar call per element
                    e = np.exp(-2.0 * z[t])
                    u = 2.0 / (1.0 + e)
                    h[t] = u - 1.0
                    d[t] = e * u * u

    rng = np.random.default_rng(0)
    hT = np.tanh(rng.normal(size=(M, N, B)))
    W = rng.normal(size=(M, N, N))
    b = rng.normal(size=(M, N, 1)) * 0.1
    zT, outT, dT = (np.empty((M, N, B)) for _ in range(3))
    z2, h2, d2 = (np.empty((M, N, B)) for _ in range(3))
    ws: dict = {}

    def numpy_layer() -> None:
        np.matmul(np.swapaxes(W, 1, 2), hT, out=z2)
        np.add(z2, b, out=z2)  # b (M, N, 1): the (M, width, B) layout of model.forward
        _tanh(z2, h2, d2, ws)

    def numba_layer() -> None:
        fused(hT, W, b, zT, outT, dT)

    numpy_layer()
    numba_layer()
    assert np.allclose(outT, h2, atol=1e-14) and np.allclose(dT, d2, rtol=1e-12)
    x = rng.normal(size=M * N * B)
    n = M * N * B
    with threadpool_limits(1):
        t_np, t_nb, t_exp = best_of(numpy_layer), best_of(numba_layer), best_of(lambda: np.exp(x))
    print(f"numba {numba.__version__}, numpy {np.__version__}; one (32, 2, 512) tanh layer:")
    print(f"  initlab NumPy path  {t_np * 1e6:7.1f} us  {t_np / n * 1e9:5.2f} ns/element")
    print(f"  numba fused kernel  {t_nb * 1e6:7.1f} us  {t_nb / n * 1e9:5.2f} ns/element")
    print(f"  np.exp alone        {t_exp * 1e6:7.1f} us  {t_exp / n * 1e9:5.2f} ns/element")
    print(f"  fusing buys {t_np / t_nb:.2f}x on this layer")


if __name__ == "__main__":
    main()
