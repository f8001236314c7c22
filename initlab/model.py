"""A population of MLPs that share one architecture, stacked on a leading member axis M.

    W[l]: (M, fan_in, fan_out)     b[l]: (M, 1, fan_out)     h[l]: (M, batch, width)
    z[l] = h[l-1] @ W[l] + b[l];   h[l] = phi(z[l]) for hidden layers; the last layer is linear

One batched matmul serves all M members. No member reads another member's slice, so a member
trained alone and trained inside a population of any size gets the same numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from initlab.activations import Activation

Array = np.ndarray


@dataclass
class Population:
    """M networks with layer sizes `sizes` = [n_in, *hidden, n_out]."""

    Ws: list[Array]  # W[l]: (M, fan_in, fan_out), l = 1..L stored at index l-1
    bs: list[Array]  # b[l]: (M, 1, fan_out)
    activation: Activation
    info: dict[str, object] = field(default_factory=dict)

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
                          self.activation, dict(self.info))


@dataclass
class Trace:
    """What a forward pass leaves behind: the record a lab studies (Nielsen's zs/activations)."""

    zs: list[Array]  # z[l]: (M, B, width_l), l = 1..L at index l-1
    hs: list[Array]  # h[l]: l = 0..L; h[0] = x ((B, n_in) shared or (M, B, n_in)); h[L] = z[L]

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


def forward(pop: Population, x: Array) -> Trace:
    """z[l] = h[l-1] @ W[l] + b[l]; h[l] = phi(z[l]) (hidden), h[L] = z[L] (output logits).

    x is (B, n_in), shared by every member, or (M, B, n_in), one batch per member.
    """
    phi = pop.activation.phi
    h = x
    zs: list[Array] = []
    hs: list[Array] = [x]
    for l, (W, b) in enumerate(zip(pop.Ws, pop.bs), start=1):
        z = h @ W + b  # (B, n) @ (M, n, m) broadcasts to (M, B, m)
        h = phi(z) if l < pop.L else z
        zs.append(z)
        hs.append(h)
    return Trace(zs, hs)


def backward(pop: Population, trace: Trace, dout: Array) -> Grads:
    """Chain rule layer by layer, from dL/dz[L] = dout back to the input.

        dW[l] = h[l-1]^T @ dz[l];   db[l] = sum_batch dz[l]
        dz[l-1] = (dz[l] @ W[l]^T) * phi'(z[l-1])
    """
    dphi = pop.activation.dphi
    L = pop.L
    dWs: list[Array] = [np.empty(0)] * L
    dbs: list[Array] = [np.empty(0)] * L
    dzs: list[Array] = [np.empty(0)] * L
    dz = dout
    for l in range(L, 0, -1):
        h_prev = trace.hs[l - 1]
        dzs[l - 1] = dz
        dWs[l - 1] = np.swapaxes(h_prev, -1, -2) @ dz  # (.., n, B) @ (M, B, m) -> (M, n, m)
        dbs[l - 1] = dz.sum(axis=1, keepdims=True)
        if l > 1:
            dz = (dz @ np.swapaxes(pop.Ws[l - 1], 1, 2)) * dphi(trace.zs[l - 2])
    return Grads(dWs, dbs, dzs)


@dataclass(frozen=True)
class MemberInit:
    """How one member starts: weight and bias initializers and its seed words."""

    weight: object  # an initlab.inits Initializer: (rng, fan_in, fan_out, dtype) -> array
    bias: object | None  # an Initializer applied to shape (1, fan_out); None = zeros
    seed: tuple[int, ...]


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
    layers on the batch `x_init`; the iterations used per layer go to `pop.info["lsuv_iters"]`.
    """
    M, L = len(members), len(sizes) - 1
    Ws = [np.empty((M, sizes[l], sizes[l + 1]), dtype=dtype) for l in range(L)]
    bs = [np.zeros((M, 1, sizes[l + 1]), dtype=dtype) for l in range(L)]
    lsuv_iters: dict[int, list[int]] = {}
    for m, spec in enumerate(members):
        rng, _ = member_rngs(spec.seed)
        for l in range(L):
            Ws[l][m] = spec.weight(rng, sizes[l], sizes[l + 1], dtype)  # type: ignore[operator]
            if spec.bias is not None:
                bs[l][m] = spec.bias(rng, 1, sizes[l + 1], dtype)  # type: ignore[operator]
        rescale = getattr(spec.weight, "rescale", None)
        if rescale is not None:
            if x_init is None:
                raise ValueError("a data-dependent initializer (LSUV) needs a data batch")
            W_m = [W[m].astype(np.float64) for W in Ws]
            b_m = [b[m, 0].astype(np.float64) for b in bs]
            lsuv_iters[m] = list(rescale(W_m, b_m, np.asarray(x_init, np.float64),
                                         activation.phi))
            for l in range(L):
                Ws[l][m] = W_m[l]
    info: dict[str, object] = {"lsuv_iters": lsuv_iters} if lsuv_iters else {}
    return Population(Ws, bs, activation, info)


OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "adam": 2}  # extra arrays per parameter


def population_memory_bytes(sizes: Sequence[int], M: int, batch: int,
                            dtype: np.dtype | type = np.float64, optimizer: str = "sgd") -> int:
    """Bytes a population of M members of layer sizes `sizes` holds while it trains on batches
    of `batch` samples (an upper estimate; the data set itself is not included):

        itemsize * M * [ P * (3 + S)                          parameters, gradients, one update
                         + batch * (n_in + 3 * sum(hidden) + 3 * n_out + 2 * max(widths)) ]

    P = sum_l fan_in_l * fan_out_l + fan_out_l (parameters per member); S = optimizer state
    arrays per parameter (sgd 0, momentum 1, adam 2); per sample and member: the gathered input
    (minibatches are drawn per member), z, h and dL/dz of every hidden layer, z and dL/dz (and
    the loss's probabilities) of the output, and two temporaries of the widest layer.
    """
    sizes = [int(s) for s in sizes]
    P = sum(a * b + b for a, b in itertools.pairwise(sizes))
    S = OPTIMIZER_STATE.get(optimizer, 2)
    per_sample = sizes[0] + 3 * sum(sizes[1:-1]) + 3 * sizes[-1] + 2 * max(sizes[1:])
    return int(np.dtype(dtype).itemsize) * M * (P * (3 + S) + batch * per_sample)
