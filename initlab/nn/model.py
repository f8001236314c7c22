"""A population of MLPs that share one architecture, stacked on a leading member axis M.

    W[l]: (M, fan_in, fan_out)     b[l]: (M, 1, fan_out)     h[l]: (M, batch, width)
    z[l] = h[l-1] @ W[l] + b[l];   h[l] = phi(z[l]) for hidden layers; the last layer is linear

A population may carry per-member forward multipliers a[l] (M, 1, 1) (width parametrizations,
initlab.nn.parametrization): then z[l] = a[l] (h[l-1] @ W[l]) + b[l].

One batched matmul serves all M members. No member reads another member's slice, so a member
trained alone and trained inside a population of any size gets the same numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from initlab.nn.activations import Activation
from initlab.nn.workspace import Workspace
from initlab.nn.workspace import buffer as _buf

Array = np.ndarray


@dataclass
class Population:
    """M networks with layer sizes `sizes` = [n_in, *hidden, n_out]."""

    Ws: list[Array]  # W[l]: (M, fan_in, fan_out), l = 1..L stored at index l-1
    bs: list[Array]  # b[l]: (M, 1, fan_out)
    activation: Activation
    info: dict[str, object] = field(default_factory=dict)
    mults: list[Array] | None = None  # a[l]: (M, 1, 1) forward multipliers; None: all 1
    lr_mults: list[Array] | None = None  # (M,) per parameter (params order); None: all 1

    @property
    def M(self) -> int:
        return self.Ws[0].shape[0]

    @property
    def sizes(self) -> list[int]:
        return [self.Ws[0].shape[1], *(W.shape[2] for W in self.Ws)]

    @property
    def L(self) -> int:
        """Number of weight layers (hidden layers + the output layer)."""
        return len(self.Ws)

    @property
    def params(self) -> list[Array]:
        """[W1, b1, W2, b2, ...]: the order optimizers and gradients use."""
        return [p for pair in zip(self.Ws, self.bs) for p in pair]

    def select(self, members: Sequence[int] | Array) -> Population:
        """A copy holding only the given members (for tests and re-runs of one member)."""
        idx = np.asarray(members)
        return Population([W[idx].copy() for W in self.Ws], [b[idx].copy() for b in self.bs],
                          self.activation, dict(self.info),
                          None if self.mults is None else [a[idx].copy() for a in self.mults],
                          None if self.lr_mults is None else [a[idx].copy()
                                                              for a in self.lr_mults])


@dataclass
class Trace:
    """What a forward pass leaves behind: the record a lab studies (Nielsen's zs/activations)."""

    zs: list[Array]  # z[l]: (M, B, width_l), l = 1..L at index l-1
    hs: list[Array]  # h[l]: l = 0..L; h[0] = x ((B, n_in) shared or (M, B, n_in)); h[L] = z[L]
    dphis: list[Array] = field(default_factory=list)  # fast tanh path: phi'(z[l]) (M, width, B)

    @property
    def out(self) -> Array:
        """The output logits z[L]: (M, B, n_out)."""
        return self.zs[-1]


@dataclass
class Grads:
    dWs: list[Array]  # dL/dW[l]: (M, fan_in, fan_out)
    dbs: list[Array]  # dL/db[l]: (M, 1, fan_out)
    dzs: list[Array]  # dL/dz[l]: (M, B, width_l), the back-propagated signal

    @property
    def params(self) -> list[Array]:
        return [g for pair in zip(self.dWs, self.dbs) for g in pair]


CHUNK = 1 << 15  # elements per chunk of fused elementwise work (its temporaries stay in L2)
TANH_EXACT_BELOW = 2.0**-10  # a unit whose |z| stays below this on the whole batch: np.tanh


def _T(a: Array) -> Array:
    return np.swapaxes(a, -1, -2)


def _contract(A: Array, hT: Array, out: Array) -> Array:
    """out[m, j, :] = sum_i A[m, j, i] * hT[m, i, :] for A (M, m, n), hT (.., n, B).

    n = 1 (an outer product) is one broadcast multiply; otherwise one batched BLAS matmul
    (measured faster than unrolled multiply-adds from n = 2 on: 32 us against 60 us at
    M = 32, n = m = 2, B = 512)."""
    if A.shape[2] == 1:
        return np.multiply(A, hT, out=out)  # (M, m, 1) * (.., 1, B)
    return np.matmul(A, hT, out=out)


def _rows(a: Array) -> Array:
    """A C-contiguous (M, width, B) array as (M * width, B) rows (a view)."""
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2])


def _tanh(zT: Array, hT: Array, dT: Array, ws: Workspace | None) -> None:
    """h = tanh(z) and d = tanh'(z) = 1 - h^2, fused, chunk by chunk of whole rows (units):

        e = exp(-2 z),  u = 2 / (1 + e):   h = u - 1,   tanh'(z) = 4 e / (1 + e)^2 = e u^2

    NumPy's float64 tanh is scalar libm (~13 ns an element); its exp is about 2.5 times
    faster, and the rest are cheap passes over data that stays in cache. tanh' = e u^2 has no
    cancellation anywhere, so saturated units keep exact gradients. -2z is clipped at
    log(max float) - 10 (z < -350 in float64) so that e stays finite: there h = -1 exactly and
    tanh' ~ 4e-304 instead of smaller. h = u - 1 is exact to ~4e-16 absolute (relative 1e-15
    where |h| >= 0.4; the rounding of z = h @ W + b itself is of that absolute size when the
    layer's inputs are O(1)). Vanishing signals are measured by their relative size, so a unit
    whose |z| stays below TANH_EXACT_BELOW = 2^-10 on the whole batch takes np.tanh (relative
    error 1e-16); every other unit is accurate to 4e-13 of its largest |h| or better. In
    float32, where NumPy's tanh is vectorized, h is np.tanh(z) (tanh' still e u^2).
    """
    z2, h2, d2 = _rows(zT), _rows(hT), _rows(dT)
    R, B = z2.shape
    step = max(1, CHUNK // max(B, 1))
    u_all = _buf(ws, ("u", min(step, R), B), (min(step, R), B), zT.dtype)
    top = float(np.log(np.finfo(zT.dtype).max)) - 10.0
    for r in range(0, R, step):
        z, h, d = z2[r:r + step], h2[r:r + step], d2[r:r + step]
        u = u_all[: len(z)]
        zmax = np.maximum.reduce(np.abs(z, out=u), axis=1, initial=0.0)  # largest |z| of a unit
        np.multiply(z, -2.0, out=d)
        if not zmax.max(initial=0.0) * 2 < top:  # (NaN too) keep e = exp(-2z) finite
            np.minimum(d, top, out=d)
        np.exp(d, out=d)
        np.add(d, 1.0, out=u)
        np.divide(2.0, u, out=u)
        np.subtract(u, 1.0, out=h)
        np.multiply(d, u, out=d)
        np.multiply(d, u, out=d)
        if z.dtype != np.float64:  # float32: NumPy's tanh is vectorized, and u - 1 would be
            np.tanh(z, out=h)  # exact to only 1e-7 absolute
            continue
        small = np.flatnonzero(zmax < TANH_EXACT_BELOW)
        if small.size:
            h[small] = np.tanh(z[small])


def forward(pop: Population, x: Array, *, reference: bool = False,
            ws: Workspace | None = None, keep: bool = True) -> Trace:
    """z[l] = h[l-1] @ W[l] + b[l]; h[l] = phi(z[l]) (hidden), h[L] = z[L] (output logits).

    x is (B, n_in), shared by every member, or (M, B, n_in), one batch per member.

    The fast path computes in the layout (M, width, B), so that every elementwise operation runs
    over long contiguous rows of the batch (contractions are batched BLAS matmuls), and fuses
    tanh with its derivative (see _tanh); Trace holds (M, B, width) views of those arrays (the
    same numbers). `ws` reuses the buffers of a previous call (the previous Trace is then
    overwritten). `reference=True` runs the straightforward (M, B, width) matmul version.
    `keep=False` (evaluation only): the layers take turns in two sets of buffers, so the
    memory is two layers' whatever the depth, and the Trace holds the output alone.
    """
    x = np.asarray(x)
    dtype = x.dtype
    if reference or any(a.dtype != dtype for a in (*pop.Ws, *pop.bs)) or x.ndim not in (2, 3):
        return _forward_reference(pop, x)
    act = pop.activation
    M, L, B = pop.M, pop.L, x.shape[-2]
    if not keep and ws is None:
        ws = {}
    hT = np.ascontiguousarray(_T(x))  # (n_in, B) or (M, n_in, B)
    zs: list[Array] = []
    hs: list[Array] = [x]
    dphis: list[Array] = []
    for l, (W, b) in enumerate(zip(pop.Ws, pop.bs)):
        slot = l if keep else l % 2  # keep=False: two buffers for all layers
        zT = _buf(ws, ("z", slot), (M, W.shape[2], B), dtype)
        _contract(_T(W), hT, zT)
        if pop.mults is not None:
            zT *= pop.mults[l]  # (M, 1, 1)
        zT += _T(b)  # (M, m, 1)
        if keep or l == L - 1:
            zs.append(_T(zT))
        if l == L - 1:
            break
        if act.name == "tanh":
            hT = _buf(ws, ("h", slot), zT.shape, dtype)
            dT = _buf(ws, ("dphi", slot), zT.shape, dtype)
            _tanh(zT, hT, dT, ws)
            if keep:
                dphis.append(dT)
        elif act.name == "relu":
            hT = np.maximum(zT, 0, out=_buf(ws, ("h", slot), zT.shape, dtype))
        else:
            hT = np.ascontiguousarray(act.phi(zT))
        if keep:
            hs.append(_T(hT))
    hs.append(zs[-1])
    return Trace(zs, hs, dphis)


def backward(pop: Population, trace: Trace, dout: Array, *, reference: bool = False,
             ws: Workspace | None = None) -> Grads:
    """Chain rule layer by layer, from dL/dz[L] = dout back to the input.

        dW[l] = h[l-1]^T @ dz[l];   db[l] = sum_batch dz[l]
        dz[l-1] = (dz[l] @ W[l]^T) * phi'(z[l-1])

    The fast path works in the (M, width, B) layout of `forward` (see there) and takes tanh'
    from the forward pass; Grads.dzs are (M, B, width) views. With `ws`, dz and dW live in its
    buffers: the next call with the same ws overwrites them.
    """
    dtype = pop.Ws[0].dtype
    if reference or dout.dtype != dtype or any(z.dtype != dtype for z in trace.zs):
        return _backward_reference(pop, trace, dout)
    act = pop.activation
    L = pop.L
    dWs: list[Array] = [np.empty(0)] * L
    dbs: list[Array] = [np.empty(0)] * L
    dzs: list[Array] = [np.empty(0)] * L
    dzT = np.ascontiguousarray(_T(dout))  # (M, n_out, B)
    for l in range(L, 0, -1):
        W = pop.Ws[l - 1]
        hT = _T(trace.hs[l - 1])
        if not hT.flags.c_contiguous:
            hT = np.ascontiguousarray(hT)  # the input x
        dzs[l - 1] = _T(dzT)
        dWs[l - 1] = np.matmul(hT, _T(dzT), out=_buf(ws, ("dW", l - 1), W.shape, dtype))
        # (.., n, B) @ (M, B, m) -> (M, n, m), into the step's buffer (no fresh pages)
        a = None if pop.mults is None else pop.mults[l - 1]  # z = a (h @ W) + b
        if a is not None:
            dWs[l - 1] *= a
        dbs[l - 1] = np.add.reduce(dzT, axis=2)[:, None, :]  # (M, 1, m)
        if l > 1:
            dhT = _buf(ws, ("dh", l - 1), (pop.M, W.shape[1], dzT.shape[2]), dtype)
            _contract(W, dzT, dhT)  # (M, n, m) @ (M, m, B)
            if a is not None:
                dhT *= a
            zT = _T(trace.zs[l - 2])
            if act.name == "relu":
                np.multiply(dhT, zT > 0, out=dhT)
            elif act.name == "tanh" and len(trace.dphis) == L - 1:
                dhT *= trace.dphis[l - 2]
            elif act.name != "linear":
                dhT *= act.dphi(zT)
            dzT = dhT
    return Grads(dWs, dbs, dzs)


def _forward_reference(pop: Population, x: Array) -> Trace:
    """The straightforward forward pass: (M, B, width) arrays and one batched matmul per layer."""
    phi = pop.activation.phi
    h = x
    zs: list[Array] = []
    hs: list[Array] = [x]
    for l, (W, b) in enumerate(zip(pop.Ws, pop.bs), start=1):
        z = h @ W  # (B, n) @ (M, n, m) broadcasts to (M, B, m)
        if pop.mults is not None:
            z = z * pop.mults[l - 1]
        z = z + b
        h = phi(z) if l < pop.L else z
        zs.append(z)
        hs.append(h)
    return Trace(zs, hs)


def _backward_reference(pop: Population, trace: Trace, dout: Array) -> Grads:
    """The straightforward backward pass of _forward_reference."""
    dphi = pop.activation.dphi
    L = pop.L
    dWs: list[Array] = [np.empty(0)] * L
    dbs: list[Array] = [np.empty(0)] * L
    dzs: list[Array] = [np.empty(0)] * L
    dz = dout
    for l in range(L, 0, -1):
        h_prev = trace.hs[l - 1]
        dzs[l - 1] = dz
        a = 1.0 if pop.mults is None else pop.mults[l - 1]  # z = a (h @ W) + b
        dWs[l - 1] = (np.swapaxes(h_prev, -1, -2) @ dz) * a  # (.., n, B) @ (M, B, m)
        dbs[l - 1] = dz.sum(axis=1, keepdims=True)
        if l > 1:
            dz = ((dz @ np.swapaxes(pop.Ws[l - 1], 1, 2)) * a) * dphi(trace.zs[l - 2])
    return Grads(dWs, dbs, dzs)


@dataclass(frozen=True)
class MemberInit:
    """How one member starts: weight and bias initializers, its seed words, and the readout's
    own initializer (the last weight layer; None: `weight`, as every other layer)."""

    weight: object  # an initlab.nn.inits Initializer: (rng, fan_in, fan_out, dtype) -> array
    bias: object | None  # an Initializer, drawn as `bias(rng, fan_in, fan_out)`; None = zeros
    seed: tuple[int, ...]
    readout: object | None = None


def member_rngs(seed: Sequence[int]) -> tuple[np.random.Generator, np.random.Generator]:
    """(init rng, shuffle rng) of one member; depends on the member's own seed words only."""
    init_ss, shuffle_ss = np.random.SeedSequence(list(seed)).spawn(2)
    return np.random.default_rng(init_ss), np.random.default_rng(shuffle_ss)


def init_population(
    sizes: Sequence[int],
    activation: Activation,
    members: Sequence[MemberInit],
    *,
    dtype: np.dtype | type = np.float64,
    x_init: Array | None = None,
) -> Population:
    """Draw every member's parameters from its own rng, layer by layer (W[1], b[1], W[2], ...).

    Data-dependent initializers (LSUV, which has a `rescale` method) then rescale the member's
    layers on the batch `x_init`; the iterations used per layer go to `pop.info["lsuv_iters"]`,
    the scale factors they multiplied the drawn weights by to `pop.info["lsuv_scales"]` (both
    {member index: [per layer]}). A member's own `readout` initializer draws W[L] in W[L]'s
    turn (from the same rng: the layers before it get the same numbers as without it) and is
    kept as drawn (LSUV does not rescale it: its scale factor is 1).
    """
    M, L = len(members), len(sizes) - 1
    Ws = [np.empty((M, sizes[l], sizes[l + 1]), dtype=dtype) for l in range(L)]
    bs = [np.zeros((M, 1, sizes[l + 1]), dtype=dtype) for l in range(L)]
    lsuv_iters: dict[int, list[int]] = {}
    lsuv_scales: dict[int, list[float]] = {}
    for m, spec in enumerate(members):
        rng, _ = member_rngs(spec.seed)
        for l in range(L):
            init = spec.readout if l == L - 1 and spec.readout is not None else spec.weight
            Ws[l][m] = init(rng, sizes[l], sizes[l + 1], dtype)  # type: ignore[operator]
            if spec.bias is not None:
                bs[l][m, 0] = spec.bias.bias(  # type: ignore[attr-defined]
                    rng, sizes[l], sizes[l + 1], dtype)
        fit = getattr(spec.weight, "fit", None)
        if fit is not None:
            if x_init is None:
                raise ValueError("a data-dependent initializer (LSUV) needs a data batch")
            W_m = [W[m].astype(np.float64) for W in Ws]
            b_m = [b[m, 0].astype(np.float64) for b in bs]
            iters, scales = fit(W_m, b_m, np.asarray(x_init, np.float64), activation.phi)
            lsuv_iters[m], lsuv_scales[m] = list(iters), [float(f) for f in scales]
            if spec.readout is not None:
                lsuv_scales[m][-1] = 1.0
            for l in range(L if spec.readout is None else L - 1):
                Ws[l][m] = W_m[l]
    info: dict[str, object] = {"lsuv_iters": lsuv_iters, "lsuv_scales": lsuv_scales} \
        if lsuv_iters else {}
    return Population(Ws, bs, activation, info)


OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "adam": 2}  # extra arrays per parameter


def population_memory_bytes(sizes: Sequence[int], M: int, batch: int,
                            dtype: np.dtype | type = np.float64, optimizer: str = "sgd") -> int:
    """Bytes a population of M members of layer sizes `sizes` holds while it trains on batches
    of `batch` samples (an upper estimate; the data set itself is not included):

        itemsize * M * [ P * (3 + S)                          parameters, gradients, one update
                         + batch * (n_in + 4 * sum(hidden) + 3 * n_out + 2 * max(widths)) ]

    P = sum_l fan_in_l * fan_out_l + fan_out_l (parameters per member); S = optimizer state
    arrays per parameter (sgd 0, momentum 1, adam 2); per sample and member: the gathered input
    (minibatches are drawn per member), z, h, phi'(z) and dL/dz of every hidden layer, z and
    dL/dz (and the loss's probabilities) of the output, and two temporaries of the widest layer.
    """
    sizes = [int(s) for s in sizes]
    P = sum(a * b + b for a, b in itertools.pairwise(sizes))
    S = OPTIMIZER_STATE.get(optimizer, 2)
    per_sample = sizes[0] + 4 * sum(sizes[1:-1]) + 3 * sizes[-1] + 2 * max(sizes[1:])
    return int(np.dtype(dtype).itemsize) * M * (P * (3 + S) + batch * per_sample)
