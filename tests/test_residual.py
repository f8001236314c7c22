"""Residual blocks and norms: finite-difference gradients of every layer, population members
against one-member references, and the init schemes' block formulas."""

from __future__ import annotations

import numpy as np
import pytest

from initlab.nn.activations import get_activation
from initlab.nn.inits import resolve
from initlab.nn.norms import Norm
from initlab.nn.residual import (
    ResidualMember,
    ResidualPopulation,
    backward,
    forward,
    init_residual,
)


def _pop(norm: str | None, position: str, *, act: str = "tanh", M: int = 3, L: int = 3,
         m: int = 2, n: int = 5, n_in: int = 3, n_out: int = 2,
         scheme: str = "xavier_normal") -> ResidualPopulation:
    members = [ResidualMember(resolve(scheme), None, (7, s), alpha=0.5 + 0.2 * s,
                              train_alpha=True) for s in range(M)]
    pop = init_residual(n_in, n, n_out, L, m, get_activation(act), members,
                        norm=None if norm is None else Norm(norm), position=position)
    rng = np.random.default_rng(1)
    for p in pop.params:  # non-trivial biases, gains and shifts
        if p is not pop.Wb and p is not pop.W_in and p is not pop.W_out and p is not pop.alpha:
            p += 0.1 * rng.standard_normal(p.shape)
    if pop.running_var is not None:
        pop.running_mean += 0.1 * rng.standard_normal(pop.running_mean.shape)  # type: ignore
        pop.running_var *= 1 + rng.random(pop.running_var.shape)
    return pop


def _loss(pop: ResidualPopulation, x: np.ndarray, R: np.ndarray, train: bool) -> np.ndarray:
    return np.einsum("mbk,mbk->m", forward(pop, x, train=train).out, R)


CASES = [(None, "pre"), ("layernorm", "pre"), ("layernorm", "post"), ("rmsnorm", "pre"),
         ("rmsnorm", "post"), ("batchnorm", "pre"), ("batchnorm", "post")]


@pytest.mark.parametrize(("norm", "position"), CASES)
@pytest.mark.parametrize("keep", [True, False])
def test_gradients_match_finite_differences(norm: str | None, position: str, keep: bool) -> None:
    pop = _pop(norm, position)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3))
    R = rng.standard_normal((pop.M, 6, 2))
    for train in ([True, False] if norm == "batchnorm" else [True]):
        grads = backward(pop, forward(pop, x, train=train, keep=keep), R)
        for p, g in zip(pop.params, grads.params, strict=True):
            flat = p.reshape(-1)
            picks = rng.choice(flat.size, size=min(flat.size, 12), replace=False)
            for i in picks:
                old = flat[i]
                flat[i] = old + 1e-6
                up = _loss(pop, x, R, train)
                flat[i] = old - 1e-6
                down = _loss(pop, x, R, train)
                flat[i] = old
                fd = (up - down) / 2e-6  # (M,): only the entry's member moves
                member = np.unravel_index(i, p.shape)[0]
                np.testing.assert_allclose(g.reshape(-1)[i], fd[member], rtol=1e-5, atol=1e-7)
                assert np.all(fd[np.arange(pop.M) != member] == 0)


@pytest.mark.parametrize(("norm", "position"), CASES)
def test_members_equal_one_member_reference(norm: str | None, position: str) -> None:
    pop = _pop(norm, position, act="relu", M=4)
    x = np.random.default_rng(3).standard_normal((8, 3))
    dout = np.random.default_rng(4).standard_normal((4, 8, 2))
    tr = forward(pop, x, record=True)
    g = backward(pop, tr, dout, record=True)
    for k in range(pop.M):
        one = pop.select([k])
        t1 = forward(one, x, record=True)
        g1 = backward(one, t1, dout[k:k + 1], record=True)
        np.testing.assert_allclose(tr.out[k], t1.out[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(tr.xs[:, k], t1.xs[:, 0], rtol=1e-12, atol=1e-14)
        for a, b in zip(g.params, g1.params, strict=True):
            np.testing.assert_allclose(a[k], b[0], rtol=1e-12, atol=1e-13)
        assert tr.record is not None and t1.record is not None
        for key in tr.record:
            np.testing.assert_allclose(tr.record[key][k], t1.record[key][0], rtol=1e-12)


def test_per_member_batches_and_float32() -> None:
    pop = _pop("batchnorm", "pre", act="relu")
    x = np.random.default_rng(5).standard_normal((pop.M, 7, 3))  # one batch per member
    ref = [forward(pop.select([k]), x[k]).out[0] for k in range(pop.M)]
    np.testing.assert_allclose(forward(pop, x).out, np.stack(ref), rtol=1e-12)
    p32 = pop.select(range(pop.M))
    for name in ("W_in", "b_in", "Wb", "bb", "W_out", "b_out", "alpha", "gamma", "beta",
                 "running_mean", "running_var"):
        setattr(p32, name, getattr(pop, name).astype(np.float32))
    out32 = forward(p32, x.astype(np.float32)).out
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, np.stack(ref), rtol=1e-4, atol=1e-5)


def test_batchnorm_running_statistics_follow_torch_rule() -> None:
    norm = Norm("batchnorm")
    rng = np.random.default_rng(6)
    x = 3 + 2 * rng.standard_normal((2, 50, 4))
    rm, rv = np.zeros((2, 1, 4)), np.ones((2, 1, 4))
    g, b = np.ones((2, 1, 4)), np.zeros((2, 1, 4))
    y, _ = norm.forward(x, g, b, running=(rm, rv), update=True)
    np.testing.assert_allclose(rm, 0.1 * x.mean(axis=1, keepdims=True))
    np.testing.assert_allclose(rv, 0.9 + 0.1 * x.var(axis=1, ddof=1, keepdims=True))
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-12)  # batch statistics in training
    y_eval, _ = norm.forward(x, g, b, train=False, running=(rm, rv))
    np.testing.assert_allclose(y_eval, (x - rm) / np.sqrt(rv + 1e-5))


def test_layernorm_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 5, 6))
    g, b = 1 + 0.1 * rng.standard_normal((2, 1, 6)), 0.1 * rng.standard_normal((2, 1, 6))
    dy = rng.standard_normal((2, 5, 6))
    for kind in ("layernorm", "batchnorm"):
        y, cache = Norm(kind).forward(x, g, b)
        dx, dg, db = Norm(kind).backward(dy, g, cache)
        xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, g, b))
        axes = (-1,) if kind == "layernorm" else (1,)
        mean = xt.mean(dim=axes, keepdim=True)
        var = ((xt - mean) ** 2).mean(dim=axes, keepdim=True)
        yt = (xt - mean) / torch.sqrt(var + 1e-5) * gt + bt
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10)
        for ours, theirs in ((dx, xt), (dg, gt), (db, bt)):
            np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_final_evaluation_uses_running_statistics_in_chunks(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    from initlab.nn import residual_train
    from initlab.nn.losses import get_loss

    pop = _pop("batchnorm", "pre", act="relu")
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((40, 3)), rng.standard_normal((40, 2))
    loss = get_loss("mse")
    ref = loss.fn(forward(pop, x, train=False).out, y)[0]
    batch_stats = loss.fn(forward(pop, x, train=True).out, y)[0]
    assert not np.allclose(ref, batch_stats)
    np.testing.assert_allclose(residual_train.evaluate_residual(pop, x, y, loss)[0], ref)
    monkeypatch.setattr(residual_train, "EVAL_BYTES", 1)  # one sample per chunk
    np.testing.assert_allclose(residual_train.evaluate_residual(pop, x, y, loss)[0], ref,
                               rtol=1e-12)
