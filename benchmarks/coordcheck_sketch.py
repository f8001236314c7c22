"""An independent NumPy sketch of the coordinate check (issue 20), without initlab: the reference
numbers `initlab coordcheck configs/coordcheck.yaml` is compared with (docs/width.md).

    python benchmarks/coordcheck_sketch.py [--seeds 12] [--order shuffled|stored|gaussian]

Depth-4 ReLU MLP (64 -> 4 x n -> 10, biases at 0), He init, softmax cross-entropy, Adam
(lr 0.01, torch's form), widths 64..1024, 3 forward passes (t = 0 at init, an update between
each), batches of 256 consecutive samples of the bundled digits (pixels / 16) in a shuffled
order (`stored`: sklearn's order, which cycles through the classes 0..9, so that every batch is
class-balanced; `gaussian`: N(0, 1) inputs with random labels). Three variants:

    sp                    every layer He, every lr 0.01
    mup (random readout)  TP5 Table 3, Adam column, base width 64, r = n / 64: readout
                          Var = He / r (1/fan_in²), hidden and readout lr 0.01 / r
    mup (zero readout)    the same with the readout started at 0 (mup's examples)

It prints, per variant, the least-squares slope of log mean|h| against log width for every
step t and layer (h1..h4, out), each with the standard deviation of that slope over 200
bootstrap resamplings of the seeds.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

WIDTHS = (64, 128, 256, 512, 1024)


def coord(x: np.ndarray, y: np.ndarray, n: int, mup: bool, zero_readout: bool, seed: int,
          steps: int = 3, lr: float = 0.01, base: int = 64, batch: int = 256,
          depth: int = 4) -> np.ndarray:
    """mean |h| (steps, layers) of one net of width n."""
    rng = np.random.default_rng(seed)
    sizes = [x.shape[1], *[n] * depth, int(y.max()) + 1]
    L, r = len(sizes) - 1, n / base
    Ws = [rng.standard_normal((a, b)) * np.sqrt(2.0 / a) for a, b in itertools.pairwise(sizes)]
    bs = [np.zeros(b) for b in sizes[1:]]
    lrs = [lr] * L
    if mup:
        Ws[-1] *= np.sqrt(1.0 / r)
        lrs = [lr] + [lr / r] * (L - 1)
    if zero_readout:
        Ws[-1][:] = 0.0
    params, rates = Ws + bs, lrs + [lr] * L
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    out = np.zeros((steps, L))
    for t in range(steps):
        idx = np.arange(t * batch, (t + 1) * batch) % len(x)
        h, hs, zs = x[idx], [x[idx]], []
        for l in range(L):
            z = h @ Ws[l] + bs[l]
            h = np.maximum(z, 0.0) if l < L - 1 else z
            zs.append(z)
            hs.append(h)
            out[t, l] = np.abs(h).mean()
        if t == steps - 1:
            break
        p = np.exp(h - h.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        d = p
        d[np.arange(batch), y[idx]] -= 1.0
        d /= batch
        gW, gb = [d] * L, [d] * L
        for l in reversed(range(L)):
            gW[l], gb[l] = hs[l].T @ d, d.sum(axis=0)
            if l > 0:
                d = (d @ Ws[l].T) * (zs[l - 1] > 0)
        k = t + 1
        for i, (q, g) in enumerate(zip(params, gW + gb)):
            m1[i] = 0.9 * m1[i] + 0.1 * g
            m2[i] = 0.999 * m2[i] + 0.001 * g * g
            q -= rates[i] * (m1[i] / (1 - 0.9**k)) / (np.sqrt(m2[i] / (1 - 0.999**k)) + 1e-8)
    return out


def slope(l1: np.ndarray) -> float:
    if not (l1 > 0).all():
        return float("nan")
    lx = np.log(WIDTHS) - np.log(WIDTHS).mean()
    return float(lx @ (np.log(l1) - np.log(l1).mean()) / (lx @ lx))


def data(order: str) -> tuple[np.ndarray, np.ndarray]:
    if order == "gaussian":
        rng = np.random.default_rng(1)
        return rng.standard_normal((1024, 64)), rng.integers(0, 10, 1024)
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.data / 16.0, d.target
    if order == "shuffled":
        perm = np.random.default_rng(12345).permutation(len(y))
        x, y = x[perm], y[perm]
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--order", choices=("shuffled", "stored", "gaussian"), default="shuffled")
    a = ap.parse_args()
    x, y = data(a.order)
    boot = np.random.default_rng(0)
    print(f"digits order: {a.order}; {a.seeds} seeds; widths {', '.join(map(str, WIDTHS))}")
    for name, mup, zero in (("sp", False, False), ("mup (random readout)", True, False),
                            ("mup (zero readout)", True, True)):
        l1 = np.array([[coord(x, y, n, mup, zero, 1000 + s) for s in range(a.seeds)]
                       for n in WIDTHS])  # (W, S, T, L)
        T, L = l1.shape[2], l1.shape[3]
        resampled = [l1[:, boot.integers(0, a.seeds, a.seeds)].mean(axis=1) for _ in range(200)]
        spread = np.array([[[slope(m[:, t, l]) for l in range(L)] for t in range(T)]
                           for m in resampled]).std(axis=0)
        mean = l1.mean(axis=1)
        print(name)
        print("        " + " ".join(f"{n:>10}" for n in [*(f"h{i}" for i in range(1, L)),
                                                         "out"]))
        for t in range(T):
            cells = []
            for l in range(L):
                s = slope(mean[:, t, l])
                cells.append("      zero" if np.isnan(s) else f"{s:+.2f}±{spread[t, l]:.2f}"
                             .rjust(10))
            print(f"  t = {t} " + " ".join(cells))


if __name__ == "__main__":
    main()
