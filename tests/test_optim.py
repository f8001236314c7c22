"""initlab.optim against its closed forms (scalar Python arithmetic, step by step) and against
torch.optim when torch is installed (the bench extra; skipped otherwise)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from initlab.nn.optim import Adam, make_optimizer


def _adam_reference(gs: list[float], lr: float, b1: float = 0.9, b2: float = 0.999,
                    eps: float = 1e-8, p: float = 0.0) -> list[float]:
    """Kingma & Ba's Algorithm 1 as torch.optim.Adam writes it, one scalar, in Python floats:
    p <- p - lr * m_hat / (sqrt(v_hat) + eps). Returns p after every step."""
    m = v = 0.0
    out = []
    for t, g in enumerate(gs, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        p -= lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(p)
    return out


def test_adam_first_step_with_a_tiny_gradient() -> None:
    # g = 1e-7, lr = 1: m_hat = g, sqrt(v_hat) = |g|, step = g / (g + eps) = 1/1.1 = 0.90909...
    # (the TF eps-hat form gave 0.2403: eps compared with sqrt(v) before the bias correction)
    opt = make_optimizer("adam", np.array([1.0]))
    p, g = np.zeros((1, 1, 1)), np.full((1, 1, 1), 1e-7)
    opt.step([p], [g], np.array([True]))
    assert p[0, 0, 0] == pytest.approx(-1 / 1.1, rel=1e-12)


@pytest.mark.parametrize("scale", [1e-7, 1e-6, 1e-3, 1.0, 1e3])
def test_adam_matches_the_formula_step_by_step(scale: float) -> None:
    rng = np.random.default_rng(0)
    gs = (scale * rng.standard_normal((60, 3))).tolist()  # 60 steps, 3 members
    lrs = [1.0, 0.01, 0.3]
    opt = Adam(np.array(lrs), beta1=0.8, beta2=0.99, eps=1e-8)
    p = np.full((3, 1, 1), 0.5)
    for t in range(60):
        opt.step([p], [np.array(gs[t]).reshape(3, 1, 1)], np.ones(3, bool))
        for k in range(3):
            ref = _adam_reference([g[k] for g in gs[: t + 1]], lrs[k], 0.8, 0.99, 1e-8, p=0.5)
            assert p[k, 0, 0] == pytest.approx(ref[-1], rel=1e-12, abs=1e-14)


def test_adam_frozen_member_parameters_stay_fixed() -> None:
    rng = np.random.default_rng(1)
    opt = make_optimizer("adam", np.array([0.1, 0.1]))
    p = rng.standard_normal((2, 4, 3))
    active = np.array([True, True])
    for t in range(5):
        g = rng.standard_normal(p.shape)
        if t >= 2:
            active = np.array([True, False])
            g[1] = 0  # the trainer zeroes a frozen member's gradients
        before = p[1].copy()
        opt.step([p], [g], active)
        if t >= 2:
            np.testing.assert_array_equal(p[1], before)


def test_adam_float32_parameters_stay_float32() -> None:
    opt = make_optimizer("adam", np.array([0.1]))
    p = np.ones((1, 2, 2), np.float32)
    opt.step([p], [np.ones_like(p)], np.array([True]))
    assert p.dtype == np.float32 and p[0, 0, 0] == pytest.approx(0.9, rel=1e-6)


def test_adam_against_torch_step_by_step() -> None:
    torch = pytest.importorskip("torch")  # the bench extra; compared when installed
    rng = np.random.default_rng(2)
    for scale in (1e-7, 1e-6, 1.0):
        p0 = rng.standard_normal((5, 4))
        tp = torch.tensor(p0.copy(), dtype=torch.float64, requires_grad=True)
        topt = torch.optim.Adam([tp], lr=0.05, betas=(0.9, 0.999), eps=1e-8)
        opt = make_optimizer("adam", np.array([0.05]))
        p = p0[None].copy()
        for _ in range(60):
            g = scale * rng.standard_normal((5, 4))
            tp.grad = torch.tensor(g)
            topt.step()
            opt.step([p], [g[None]], np.array([True]))
            np.testing.assert_allclose(p[0], tp.detach().numpy(), rtol=1e-12, atol=1e-15)


def test_momentum_against_torch_step_by_step() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal((3, 2))
    tp = torch.tensor(p0.copy(), dtype=torch.float64, requires_grad=True)
    topt = torch.optim.SGD([tp], lr=0.1, momentum=0.9)
    opt = make_optimizer("momentum", np.array([0.1]), momentum=0.9)
    p = p0[None].copy()
    for _ in range(30):
        g = rng.standard_normal((3, 2))
        tp.grad = torch.tensor(g)
        topt.step()
        opt.step([p], [g[None]], np.array([True]))
        np.testing.assert_allclose(p[0], tp.detach().numpy(), rtol=1e-12, atol=1e-15)
