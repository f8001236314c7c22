"""A population of residual MLPs, stacked on a leading member axis M (like nn.model's MLPs).

The network, in the symbols of the code (He et al. 2016's pre-activation blocks):

    x_0 = x @ W_in + b_in                                       input projection to width n
    f_l(u) = phi(... phi(phi(u) @ Wb[l, 0] + bb[l, 0]) ...) @ Wb[l, m-1] + bb[l, m-1]
                                                                the branch: m = `branch` dense
                                                                layers, phi before each of them
    pre:   x_l = x_{l-1} + alpha_l * f_l(N_l(x_{l-1}))           (N = identity without a norm)
    post:  x_l = N_l(x_{l-1} + alpha_l * f_l(x_{l-1}))
    out  = N_L(x_L) @ W_out + b_out  (pre-norm nets: a final norm N_L; otherwise out = x_L @ W_out
                                      + b_out)

Shapes (member axis first, so optimizers and per-member masks apply unchanged):

    W_in (M, n_in, n)   Wb (M, L, m, n, n)   W_out (M, n, n_out)   alpha (M, L)
    b_in (M, 1, n)      bb (M, L, m, 1, n)   b_out (M, 1, n_out)   gamma, beta (M, K, 1, n)

K = L norm layers (+1 final one for pre-norm nets). The stream x_0..x_L is kept as one
(L + 1, M, B, n) array; the inside of each block is kept too when it fits in CACHE_BUDGET bytes,
else recomputed block by block in the backward pass from the kept stream (gradient
checkpointing: twice the forward work, memory O(L M B n)). No member reads another's slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from initlab.nn.norms import Norm, NormCache
from initlab.nn.workspace import Workspace
from initlab.nn.workspace import buffer as _buf

Array = np.ndarray
CACHE_BUDGET = 256 << 20  # bytes of block internals kept from forward to backward
ROLES = ("input", "branch", "branch_out", "output")


def _T(a: Array) -> Array:
    return np.swapaxes(a, -1, -2)


@dataclass
class ResidualPopulation:
    """M residual MLPs of one architecture; see the module docstring for the block formula."""

    W_in: Array
    b_in: Array
    Wb: Array
    bb: Array
    W_out: Array
    b_out: Array
    alpha: Array  # (M, L) branch multipliers
    alpha_trained: Array  # (M,) bool: alpha is a trained parameter of this member
    activation: Any  # an initlab Activation (name, phi, dphi)
    norm: Norm | None = None
    position: str = "pre"
    gamma: Array | None = None  # (M, K, 1, n)
    beta: Array | None = None
    running_mean: Array | None = None  # batchnorm: (M, K, 1, n)
    running_var: Array | None = None
    info: dict[str, object] = field(default_factory=dict)

    @property
    def M(self) -> int:
        return int(self.W_in.shape[0])

    @property
    def blocks(self) -> int:
        return int(self.Wb.shape[1])

    @property
    def branch(self) -> int:
        return int(self.Wb.shape[2])

    @property
    def width(self) -> int:
        return int(self.W_in.shape[2])

    @property
    def final_norm(self) -> bool:
        return self.norm is not None and self.position == "pre"

    @property
    def params(self) -> list[Array]:
        """[W_in, b_in, Wb, bb, W_out, b_out, alpha, (gamma, beta)]: optimizers' order."""
        ps = [self.W_in, self.b_in, self.Wb, self.bb, self.W_out, self.b_out, self.alpha]
        if self.norm is not None:
            assert self.gamma is not None and self.beta is not None
            ps += [self.gamma, self.beta]
        return ps

    def select(self, members: Sequence[int] | Array) -> ResidualPopulation:
        """A copy holding only the given members."""
        idx = np.asarray(members)

        def pick(a: Array | None) -> Array | None:
            return None if a is None else a[idx].copy()

        return ResidualPopulation(
            self.W_in[idx].copy(), self.b_in[idx].copy(), self.Wb[idx].copy(),
            self.bb[idx].copy(), self.W_out[idx].copy(), self.b_out[idx].copy(),
            self.alpha[idx].copy(), self.alpha_trained[idx].copy(), self.activation, self.norm,
            self.position, pick(self.gamma), pick(self.beta), pick(self.running_mean),
            pick(self.running_var), dict(self.info))


@dataclass
class BlockCache:
    u: Array  # the branch's input: N_l(x_{l-1}) (pre), x_{l-1} (post / no norm)
    pre: list[Array]  # phi's inputs, one per branch layer (pre[0] is u)
    acts: list[Array]  # phi's outputs, one per branch layer
    f: Array  # the branch's output f_l, before alpha
    norm_in: NormCache | None = None  # pre-norm
    y: Array | None = None  # post: x_{l-1} + alpha f before N_l
    norm_out: NormCache | None = None  # post-norm


@dataclass
class ResidualTrace:
    """What a forward pass leaves: the stream (L + 1, M, B, n), the readout and its input."""

    x: Array  # the input batch
    xs: Array  # x_0..x_L
    readout_in: Array  # (M, B, n): N_L(x_L) or x_L
    out: Array  # (M, B, n_out)
    train: bool
    caches: list[BlockCache] | None
    final_cache: NormCache | None
    record: dict[str, Array] | None = None  # per block (M, L): branch_var, sum_var, dead, ...

    @property
    def zs(self) -> list[Array]:  # the interface train/losses read: trace.out
        return [self.out]


@dataclass
class ResidualGrads:
    dW_in: Array
    db_in: Array
    dWb: Array
    dbb: Array
    dW_out: Array
    db_out: Array
    dalpha: Array
    dgamma: Array | None
    dbeta: Array | None
    dxs: Array | None  # (L + 1, M, B, n) dL/dx_l when recorded
    dout: Array

    @property
    def params(self) -> list[Array]:
        gs = [self.dW_in, self.db_in, self.dWb, self.dbb, self.dW_out, self.db_out, self.dalpha]
        if self.dgamma is not None and self.dbeta is not None:
            gs += [self.dgamma, self.dbeta]
        return gs


def _phi(act: Any, z: Array) -> Array:
    if act.name == "relu":
        return np.maximum(z, 0)
    if act.name == "linear":
        return z
    return np.asarray(act.phi(z))


def _dphi_mul(act: Any, da: Array, z: Array) -> Array:
    if act.name == "relu":
        return np.multiply(da, z > 0, out=da)
    if act.name == "linear":
        return da
    da *= act.dphi(z)
    return da


def _norm_args(pop: ResidualPopulation, k: int) -> tuple[Array, Array, tuple[Array, Array] | None]:
    assert pop.gamma is not None and pop.beta is not None
    running = None
    if pop.running_mean is not None and pop.running_var is not None:
        running = (pop.running_mean[:, k], pop.running_var[:, k])
    return pop.gamma[:, k], pop.beta[:, k], running


def block_forward(pop: ResidualPopulation, l: int, x: Array, out: Array, *, train: bool = True,
                  update: bool = False) -> BlockCache:
    """x_l of block l (0-based) from x = x_{l-1}, written into `out`; returns the block's cache.
    `update`: batchnorm's running statistics move (once per training step, not on recompute)."""
    act, norm, m = pop.activation, pop.norm, pop.branch
    post = pop.position == "post"
    nin = None
    u = x
    if norm is not None and not post:
        g, b, running = _norm_args(pop, l)
        u, nin = norm.forward(x, g, b, train=train, running=running, update=update)
    pre, acts = [], []
    h = u
    for j in range(m):
        a = _phi(act, h)
        pre.append(h)
        acts.append(a)
        h = a @ pop.Wb[:, l, j] + pop.bb[:, l, j]  # (M, B, n) @ (M, n, n)
    al = pop.alpha[:, l, None, None]  # (M, 1, 1)
    cache = BlockCache(u, pre, acts, h, nin)
    if not post:
        np.multiply(h, al, out=out)
        out += x
        return cache
    y = x + al * h
    cache.y = y
    if norm is not None:
        g, b, running = _norm_args(pop, l)
        out[...], cache.norm_out = norm.forward(y, g, b, train=train, running=running,
                                                update=update)
    else:
        out[...] = y
    return cache


def _cache_bytes(pop: ResidualPopulation, B: int, itemsize: int) -> int:
    per_block = (2 * pop.branch + 4) * pop.M * B * pop.width * itemsize
    return per_block * pop.blocks


def forward(pop: ResidualPopulation, x: Array, *, train: bool = True, update: bool = False,
            keep: bool | None = None, record: bool = False,
            ws: Workspace | None = None) -> ResidualTrace:
    """The whole net on x ((B, n_in) shared or (M, B, n_in)); see the module docstring.

    train: batchnorm uses batch statistics (else its running ones); update: and moves the
    running ones. keep: keep every block's internals (None: when they fit in CACHE_BUDGET).
    record: per block statistics of the branch in trace.record (branch_var, sum_var, dead,
    saturated: (M, L) float64). `ws` reuses the stream buffer of a previous call."""
    x = np.asarray(x)
    dtype = pop.W_in.dtype
    M, L, n, B = pop.M, pop.blocks, pop.width, x.shape[-2]
    if keep is None:
        keep = _cache_bytes(pop, B, np.dtype(dtype).itemsize) <= CACHE_BUDGET
    xs = _buf(ws, "xs", (L + 1, M, B, n), dtype)
    np.matmul(x, pop.W_in, out=xs[0])
    xs[0] += pop.b_in
    caches: list[BlockCache] | None = [] if keep else None
    rec = {k: np.zeros((M, L)) for k in ("branch_var", "sum_var", "dead", "saturated")} \
        if record else None
    act = pop.activation
    bounds = getattr(act, "bounds", None)
    for l in range(L):
        c = block_forward(pop, l, xs[l], xs[l + 1], train=train, update=update)
        if caches is not None:
            caches.append(c)
        if rec is not None:
            f = c.f.astype(np.float64)
            rec["branch_var"][:, l] = f.reshape(M, -1).var(axis=1)
            s = xs[l] + pop.alpha[:, l, None, None] * c.f if c.y is None else c.y
            rec["sum_var"][:, l] = s.reshape(M, -1).astype(np.float64).var(axis=1)
            z = np.concatenate(c.pre, axis=2)  # (M, B, m n): phi's inputs
            if getattr(act, "family", "") == "relu":
                rec["dead"][:, l] = (z.max(axis=1) <= 0).mean(axis=1)
            if bounds is not None:
                a = np.concatenate(c.acts, axis=2)
                margin = 0.03 * (bounds[1] - bounds[0]) / 2
                rec["saturated"][:, l] = ((a <= bounds[0] + margin)
                                          | (a >= bounds[1] - margin)).reshape(M, -1).mean(1)
    fc = None
    r = xs[L]
    if pop.final_norm:
        assert pop.norm is not None
        g, b, running = _norm_args(pop, L)
        r, fc = pop.norm.forward(xs[L], g, b, train=train, running=running, update=update)
    out = r @ pop.W_out + pop.b_out
    return ResidualTrace(x, xs, r, out, train, caches, fc, rec)


def _block_backward(pop: ResidualPopulation, l: int, c: BlockCache, dxo: Array,
                    g: ResidualGrads) -> Array:
    """dL/dx_{l-1} from dxo = dL/dx_l; the block's parameter gradients go into g."""
    norm, act = pop.norm, pop.activation
    post = pop.position == "post"
    dy = dxo
    if post and norm is not None:
        assert c.norm_out is not None and pop.gamma is not None
        assert g.dgamma is not None and g.dbeta is not None
        dy, g.dgamma[:, l], g.dbeta[:, l] = norm.backward(dxo, pop.gamma[:, l], c.norm_out)
    g.dalpha[:, l] = np.einsum("mbn,mbn->m", dy, c.f)
    dz = dy * pop.alpha[:, l, None, None]
    for j in range(pop.branch - 1, -1, -1):
        np.matmul(_T(c.acts[j]), dz, out=g.dWb[:, l, j])
        g.dbb[:, l, j] = dz.sum(axis=1, keepdims=True)
        dz = _dphi_mul(act, dz @ _T(pop.Wb[:, l, j]), c.pre[j])
    if norm is not None and not post:
        assert c.norm_in is not None and pop.gamma is not None
        assert g.dgamma is not None and g.dbeta is not None
        dz, g.dgamma[:, l], g.dbeta[:, l] = norm.backward(dz, pop.gamma[:, l], c.norm_in)
    return dy + dz


def backward(pop: ResidualPopulation, trace: ResidualTrace, dout: Array, *,
             record: bool = False, ws: Workspace | None = None) -> ResidualGrads:
    """Chain rule from dL/dout back to the input (blocks recomputed when not kept):

        dalpha_l = sum dL/dx_l * f_l;  through the branch as nn.model.backward;  the skip adds
        dL/dx_l to dL/dx_{l-1}.  Members whose alpha is not trained get dalpha = 0.
    record: keep dL/dx_l for l = 0..L in grads.dxs."""
    dtype = pop.W_in.dtype
    M, L = pop.M, pop.blocks
    dout = np.asarray(dout, dtype=dtype)
    nk = pop.gamma.shape[1] if pop.gamma is not None else 0
    n = pop.width
    g = ResidualGrads(
        np.empty(0), np.empty(0), _buf(ws, "dWb", pop.Wb.shape, dtype),
        _buf(ws, "dbb", pop.bb.shape, dtype), _T(trace.readout_in) @ dout,
        dout.sum(axis=1, keepdims=True), np.zeros((M, L), dtype),
        np.zeros((M, nk, 1, n), dtype) if pop.norm is not None else None,
        np.zeros((M, nk, 1, n), dtype) if pop.norm is not None else None,
        _buf(ws, "dxs", trace.xs.shape, dtype) if record else None, dout)
    dx = dout @ _T(pop.W_out)
    if pop.final_norm and pop.norm is not None:
        assert trace.final_cache is not None and pop.gamma is not None
        assert g.dgamma is not None and g.dbeta is not None
        dx, g.dgamma[:, L], g.dbeta[:, L] = pop.norm.backward(dx, pop.gamma[:, L],
                                                              trace.final_cache)
    scratch = _buf(ws, "x_re", trace.xs.shape[1:], dtype) if trace.caches is None else None
    for l in range(L - 1, -1, -1):
        if g.dxs is not None:
            g.dxs[l + 1] = dx
        if trace.caches is not None:
            c = trace.caches[l]
        else:
            assert scratch is not None
            c = block_forward(pop, l, trace.xs[l], scratch, train=trace.train, update=False)
        dx = _block_backward(pop, l, c, dx, g)
    if g.dxs is not None:
        g.dxs[0] = dx
    x = trace.x
    g.dW_in = (_T(x) @ dx) if x.ndim == 3 else np.einsum("bi,mbn->min", x, dx)
    g.db_in = dx.sum(axis=1, keepdims=True)
    g.dalpha[~pop.alpha_trained] = 0
    return g


# ------------------------------------------------------------------------------ initialization
@dataclass(frozen=True)
class ResidualMember:
    """How one member starts: its weight initializer (role-aware when it has `for_role`), bias
    initializer (None: zeros), seed words, initial alpha (None: the scheme's `alpha0`, else 1),
    whether alpha is trained (None: the scheme's `trains_alpha`, else no) and the readout's own
    initializer (W_out; None: the weight initializer's, for its `output` role)."""

    weight: Any
    bias: Any | None
    seed: tuple[int, ...]
    alpha: float | None = None
    train_alpha: bool | None = None
    readout: Any | None = None


def role_init(init: Any, role: str, blocks: int, branch: int) -> Any:
    """The initializer a layer of `role` (ROLES) gets: init.for_role(...) for the residual
    schemes (fixup, rezero, gpt2), the same initializer for every layer otherwise."""
    for_role = getattr(init, "for_role", None)
    return init if for_role is None else for_role(role, blocks, branch)


def member_alpha(spec: ResidualMember) -> tuple[float, bool]:
    """(initial alpha, trained) of a member: its own values, else its scheme's, else (1, no)."""
    a0 = getattr(spec.weight, "alpha0", None)
    alpha = spec.alpha if spec.alpha is not None else (1.0 if a0 is None else float(a0))
    trained = spec.train_alpha if spec.train_alpha is not None else bool(
        getattr(spec.weight, "trains_alpha", False))
    return float(alpha), bool(trained)


def init_residual(n_in: int, width: int, n_out: int, blocks: int, branch: int, activation: Any,
                  members: Sequence[ResidualMember], *, norm: Norm | None = None,
                  position: str = "pre", dtype: np.dtype | type = np.float64
                  ) -> ResidualPopulation:
    """Draw every member's parameters from its own rng in the order W_in, b_in, then block by
    block and layer by layer (Wb[l, j], bb[l, j]), then W_out, b_out; norm gains 1, shifts 0,
    batchnorm running mean 0 and variance 1 (torch's)."""
    from initlab.nn.model import member_rngs

    M, L, m, n = len(members), blocks, branch, width
    W_in = np.empty((M, n_in, n), dtype)
    b_in = np.zeros((M, 1, n), dtype)
    Wb = np.empty((M, L, m, n, n), dtype)
    bb = np.zeros((M, L, m, 1, n), dtype)
    W_out = np.empty((M, n, n_out), dtype)
    b_out = np.zeros((M, 1, n_out), dtype)
    alpha = np.empty((M, L), dtype)
    trained = np.zeros(M, bool)
    for k, spec in enumerate(members):
        rng, _ = member_rngs(spec.seed)
        layers = [("input", n_in, n, W_in[k], b_in[k, 0])]
        layers += [("branch_out" if j == m - 1 else "branch", n, n, Wb[k, l, j], bb[k, l, j, 0])
                   for l in range(L) for j in range(m)]
        layers.append(("output", n, n_out, W_out[k], b_out[k, 0]))
        for role, fan_in, fan_out, W, b in layers:
            init = spec.readout if role == "output" and spec.readout is not None else \
                role_init(spec.weight, role, L, m)
            W[...] = init(rng, fan_in, fan_out, dtype)
            if spec.bias is not None:
                b[...] = spec.bias(rng, 1, fan_out, dtype)
        a0, trained[k] = member_alpha(spec)
        alpha[k] = a0
    pop = ResidualPopulation(W_in, b_in, Wb, bb, W_out, b_out, alpha, trained, activation, norm,
                             position)
    if norm is not None:
        K = L + 1 if position == "pre" else L
        pop.gamma = np.ones((M, K, 1, n), dtype)
        pop.beta = np.zeros((M, K, 1, n), dtype)
        if norm.kind == "batchnorm":
            pop.running_mean = np.zeros((M, K, 1, n), dtype)
            pop.running_var = np.ones((M, K, 1, n), dtype)
    return pop


def residual_memory_bytes(n_in: int, width: int, n_out: int, blocks: int, branch: int, M: int,
                          batch: int, dtype: np.dtype | type = np.float64,
                          optimizer: str = "sgd", norm: str | None = None) -> int:
    """Bytes a residual population holds while it trains on batches of `batch` (an upper
    estimate, the data set not included):

        itemsize * M * [ P (3 + S)                 parameters, gradients, update, optimizer
                         + 2 (L + 1) B n           the stream and its gradient (records)
                         + min(cache, CACHE_BUDGET / (itemsize M)) ]   block internals kept

    P = n_in n + n + L (m (n^2 + n) + 1 + 2 n [norm]) + n n_out + n_out; S = 0, 1, 2 for sgd,
    momentum, adam; cache = (2 m + 4) L B n. Recording also copies W_in, Wb, W_out once."""
    L, m, n = blocks, branch, width
    S = {"sgd": 0, "momentum": 1}.get(optimizer, 2)
    P = n_in * n + n + L * (m * (n * n + n) + 1 + (2 * n if norm else 0)) + n * n_out + n_out
    item = int(np.dtype(dtype).itemsize)
    cache = min((2 * m + 4) * L * batch * n, CACHE_BUDGET // max(1, item * M))
    return item * M * (P * (4 + S) + 2 * (L + 1) * batch * n + cache)
