"""The population trainer against references: finite differences, closed forms, symmetry,
member independence and determinism."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from initlab.nn import inits
from initlab.nn.activations import ACTIVATIONS, get_activation
from initlab.nn.losses import get_loss
from initlab.nn.model import MemberInit, Population, backward, forward, init_population
from initlab.nn.stats import default_bins
from initlab.nn.train import Schedule, symmetric_members, train

ACTS = [e.name for e in ACTIVATIONS]
LOSSES = ["bce", "softmax_ce", "mse"]


def _targets(loss: str, rng: np.random.Generator, B: int, K: int) -> np.ndarray:
    if loss == "bce":
        return rng.integers(0, 2, B).astype(float)
    if loss == "softmax_ce":
        return rng.integers(0, K, B)
    return rng.normal(size=(B, K))


def _random_pop(act: str, sizes: list[int], M: int, seed: int) -> Population:
    rng = np.random.default_rng(seed)
    Ws = [rng.normal(0, 1 / np.sqrt(a), size=(M, a, b)) for a, b in itertools.pairwise(sizes)]
    bs = [rng.normal(0, 0.1, size=(M, 1, b)) for b in sizes[1:]]
    return Population(Ws, bs, get_activation(act))


@pytest.mark.parametrize("loss_name", LOSSES)
@pytest.mark.parametrize("act", ACTS)
def test_gradients_match_finite_differences(act: str, loss_name: str) -> None:
    """Central differences (h = 1e-6, float64) agree with backprop to rel. error < 1e-6."""
    K = 1 if loss_name == "bce" else 3
    sizes, M, B = [3, 5, 4, K], 2, 7
    pop = _random_pop(act, sizes, M, seed=1)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(B, 3))
    y = _targets(loss_name, rng, B, K)
    loss = get_loss(loss_name)
    trace = forward(pop, x)
    _, dout = loss.fn(trace.out, y)
    grads = backward(pop, trace, dout)
    eps = 1e-6
    for p, g in zip(pop.params, grads.params):
        fd = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = loss.fn(forward(pop, x).out, y)[0][idx[0]]
            p[idx] = old - eps
            down = loss.fn(forward(pop, x).out, y)[0][idx[0]]
            p[idx] = old
            fd[idx] = (up - down) / (2 * eps)
        rel = np.linalg.norm(fd - g) / max(np.linalg.norm(fd) + np.linalg.norm(g), 1e-12)
        assert rel < 1e-6, (act, loss_name, rel)


def _members(schemes: list[str], seeds: int, **params: float) -> list[MemberInit]:
    return [MemberInit(inits.resolve(s, **params), None, (0, k))
            for s in schemes for k in range(seeds)]


def _circle(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    from initlab.data.datasets import load

    ds = load("circle", rng=np.random.default_rng(0), samples=n)
    return ds.x, ds.y.astype(float)


@pytest.mark.parametrize("optimizer,batch", [("sgd", None), ("momentum", 16), ("adam", 16)])
def test_member_alone_equals_member_in_population(optimizer: str, batch: int | None) -> None:
    """A member's numbers do not depend on who else shares its population (16 members,
    including one that diverges)."""
    x, y = _circle()
    act = get_activation("tanh")
    members = _members(["xavier_normal", "he_normal", "orthogonal", "lecun_uniform"], 4)
    lr = np.full(16, 0.05)
    lr[3] = 1e300  # this member's weights blow up: it must not disturb the others
    sched = Schedule(loss=get_loss("bce"), epochs=30, batch_size=batch, every=7,
                     optimizer=optimizer)
    bins = default_bins(act)

    def shuffles(ms: list[MemberInit]) -> list[np.random.Generator]:
        from initlab.nn.model import member_rngs

        return [member_rngs(m.seed)[1] for m in ms]

    pop = init_population([2, 8, 8, 1], act, members)
    hist = train(pop, x, y, sched, lr, bins, shuffles(members))
    for m in (0, 5, 14):
        alone = init_population([2, 8, 8, 1], act, [members[m]])
        h1 = train(alone, x, y, sched, lr[m:m + 1], bins, shuffles([members[m]]))
        np.testing.assert_allclose(h1.loss[:, 0], hist.loss[:, m], rtol=1e-10, atol=1e-13)
        for W_alone, W_pop in zip(alone.Ws, pop.Ws):
            np.testing.assert_allclose(W_alone[0], W_pop[m], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(h1.stats["act_var"][:, 0], hist.stats["act_var"][:, m],
                                   rtol=1e-9, atol=1e-14)
    assert np.abs(pop.Ws[0][3]).max() > 1e100


def test_divergence_is_recorded_and_frozen() -> None:
    """A linear chain with a huge step overflows to inf/NaN: that member is frozen at the
    step it diverged, with finite numbers before it; the others train on untouched."""
    a = get_activation("linear")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 2))
    y = x @ np.array([[1.0], [-1.0]])
    members = [MemberInit(inits.resolve("identity", scale=1.5), None, (0, 0)),
               MemberInit(inits.resolve("identity", scale=1.0), None, (0, 0))]
    pop = init_population([2] + [2] * 9 + [1], a, members)
    hist = train(pop, x, y, Schedule(loss=get_loss("mse"), epochs=200), np.array([10.0, 1e-3]),
                 default_bins(a))
    assert hist.diverged_step[0] > 0 and hist.diverged_step[1] == -1
    step = hist.diverged_step[0]
    assert np.isfinite(hist.loss[:step, 0]).all() and not np.isfinite(hist.loss[step, 0])
    assert np.isfinite(hist.final_loss[1]) and hist.final_loss[1] < hist.loss[0, 1]


@pytest.mark.parametrize("scheme,kw", [("zeros", {}), ("constant", {"value": 0.3})])
@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid"])
def test_symmetric_init_never_breaks(scheme: str, kw: dict[str, float], act: str) -> None:
    """Zero/constant init: every hidden unit of a layer stays identical through training."""
    x, y = _circle()
    a = get_activation(act)
    members = [MemberInit(inits.resolve(scheme, **kw), None, (0, s)) for s in range(2)]
    pop = init_population([2, 6, 3, 1], a, members)
    hist = train(pop, x, y, Schedule(loss=get_loss("bce"), epochs=200), np.full(2, 0.5),
                 default_bins(a))
    assert hist.symmetric is not None and hist.symmetric.all()
    for W in pop.Ws[:-1]:
        assert np.ptp(W, axis=2).max() <= 1e-12 * (1 + np.abs(W).max())
    if scheme == "zeros":
        # only the output bias can learn: the loss tends to that of the class prior (ln 2)
        np.testing.assert_allclose(hist.final_loss, np.log(2), atol=1e-4)


def test_random_init_breaks_symmetry() -> None:
    x, y = _circle()
    a = get_activation("tanh")
    pop = init_population([2, 6, 3, 1], a, _members(["xavier_normal"], 2))
    train(pop, x, y, Schedule(loss=get_loss("bce"), epochs=5), np.full(2, 0.1), default_bins(a))
    assert not symmetric_members(pop).any()


@pytest.mark.parametrize("s", [0.5, 1.0, 1.5])
def test_linear_chain_grows_exactly_s_to_the_l(s: float) -> None:
    """The primer's 9 x 2 identity chain: h[l] = s^l x exactly, Var(h[l]) = s^(2l) Var(x)."""
    a = get_activation("linear")
    sizes = [2] + [2] * 9 + [1]
    pop = init_population(sizes, a, [MemberInit(inits.resolve("identity", scale=s), None,
                                                 (0, 0))])
    x = np.random.default_rng(0).normal(size=(256, 2))
    trace = forward(pop, x)
    for l in range(1, 10):
        np.testing.assert_allclose(trace.hs[l][0], s**l * x, rtol=1e-13)
    np.testing.assert_allclose(trace.out[0, :, 0], s**10 * x[:, 0], rtol=1e-13)
    from initlab.theory.meanfield import act_var_profile

    q0 = float(np.mean(x**2))
    pred = act_var_profile(a, [s * s] * 10, 0.0, q0, 10)
    np.testing.assert_allclose(pred[:9], [s ** (2 * l) * q0 for l in range(1, 10)], rtol=1e-12)


def test_float32_population_trains() -> None:
    x, y = _circle()
    a = get_activation("tanh")
    pop = init_population([2, 8, 1], a, _members(["xavier_normal"], 3), dtype=np.float32)
    hist = train(pop, x.astype(np.float32), y.astype(np.float32),
                 Schedule(loss=get_loss("bce"), epochs=100), np.full(3, 0.5), default_bins(a))
    assert pop.Ws[0].dtype == np.float32
    assert (hist.final_loss < hist.loss[0]).all()


def test_epochs_zero_measures_init_only() -> None:
    x, y = _circle()
    a = get_activation("tanh")
    members = _members(["xavier_normal"], 2)
    pop = init_population([2, 8, 1], a, members)
    W0 = [W.copy() for W in pop.Ws]
    hist = train(pop, x, y, Schedule(loss=get_loss("bce"), epochs=0), np.full(2, 0.1),
                 default_bins(a))
    assert hist.steps == 0 and list(hist.stat_steps) == [0]
    for W, W_init in zip(pop.Ws, W0):
        np.testing.assert_array_equal(W, W_init)


DETERMINISM = """
import hashlib, numpy as np
from initlab.experiment import run_experiment
cfg = {"name": "det", "seeds": 2, "seed": 3, "data": {"name": "spiral", "samples": 60},
       "model": {"widths": [5, 4], "activation": "tanh"},
       "init": [{"label": "x", "scheme": "xavier_normal"}, {"label": "h", "scheme": "he_normal"}],
       "train": {"loss": "bce", "optimizer": "adam", "lr": 0.01, "epochs": 20, "batch_size": 16},
       "measure": {"every": 5}}
r = run_experiment(cfg)
h = hashlib.sha256()
for k in sorted(r.arrays):
    h.update(np.ascontiguousarray(r.arrays[k]).tobytes())
print(h.hexdigest())
"""


def test_same_config_same_numbers_in_fresh_processes() -> None:
    digests = {subprocess.run([sys.executable, "-c", DETERMINISM], capture_output=True,
                              text=True, check=True).stdout.strip() for _ in range(2)}
    assert len(digests) == 1


def test_lsuv_iterations_per_variant_seed_and_layer_in_the_summary_and_report() -> None:
    """summary.json's lsuv_iters and lsuv_scales: per seed, per layer, the rescalings LSUV used
    on the init batch and the factor they multiplied the orthogonal draw by (the same numbers
    Lsuv.fit gives for that member's weights); null for other inits. The scales, applied to
    the member's own draw, give unit Var(z) in every layer on the batch."""
    import initlab
    from initlab.nn.model import member_rngs
    from initlab.report import document

    cfg = {"name": "lsuv", "seeds": 2, "data": {"name": "circle", "samples": 64},
           "model": {"widths": [8, 8], "activation": "tanh", "bias": True},
           "init": [{"label": "lsuv", "scheme": "lsuv", "tol": 0.01},
                    {"label": "he", "scheme": "he_normal"}],
           "train": {"epochs": 1}, "measure": {"batch": 64}}
    result = initlab.run(initlab.load_config(cfg))
    lsuv, he = result.summary["variants"]
    assert he["lsuv_iters"] is None and he["lsuv_scales"] is None
    iters, scales = lsuv["lsuv_iters"], lsuv["lsuv_scales"]
    assert len(iters) == 2 and all(len(per_layer) == 3 for per_layer in iters)
    assert len(scales) == 2 and all(len(per_layer) == 3 for per_layer in scales)
    # recompute seed 1 by hand: the member's own orthogonal draw, rescaled on the same batch
    from initlab.experiment import load_data

    ds = load_data(result.config)  # the run's data set (its rng is [seed, 0xDA7A])
    init = inits.resolve("lsuv", tol=0.01)
    rng, _ = member_rngs((0, 1))
    drawn = [init(rng, a, b) for a, b in itertools.pairwise([2, 8, 8, 1])]
    bs = [np.zeros(b) for b in (8, 8, 1)]
    Ws = [W.copy() for W in drawn]
    mine_iters, mine_scales = init.fit(Ws, bs, ds.x, np.tanh)
    assert mine_iters == iters[1]
    np.testing.assert_allclose(scales[1], mine_scales, rtol=1e-12)
    h = ds.x
    for l, (W0, s) in enumerate(zip(drawn, scales[1])):  # std(W0) x scale reaches Var(z) = 1
        assert float(np.std(s * W0)) == pytest.approx(s * float(np.std(W0)), rel=1e-12)
        z = h @ (s * W0)
        assert abs(z.var() - 1) < 0.01, (l, z.var())
        h = np.tanh(z)
    assert any(i > 0 for per_layer in iters for i in per_layer)
    text = document.render_markdown(result, [])
    first = ", ".join(f"×{document.fmt(f)} ({i})" for f, i in zip(scales[0], iters[0]))
    assert f"LSUV per layer, scale factor (rescalings): seed 0: {first}" in text
    html = document.render_html(result, [])
    assert f"seed 0: {first}" in html
    # results written before lsuv_scales: the rescalings alone
    del lsuv["lsuv_scales"]
    old = document.render_markdown(result, [])
    assert f"LSUV rescalings per layer: seed 0: {', '.join(map(str, iters[0]))}" in old


def test_lsuv_iterations_are_the_same_with_workers() -> None:
    import initlab

    cfg = {"name": "lsuv", "seeds": 3, "data": {"name": "circle", "samples": 64},
           "model": {"widths": [8, 8], "activation": "tanh"},
           "init": [{"label": "he", "scheme": "he_normal"}, {"label": "lsuv", "scheme": "lsuv"}],
           "train": {"epochs": 1}, "measure": {"batch": 64}}
    one = initlab.run(initlab.load_config(cfg)).summary["variants"]
    assert one[0]["lsuv_iters"] is None and len(one[1]["lsuv_iters"]) == 3
    two = initlab.run(initlab.load_config(cfg), workers=2).summary["variants"]
    assert [v["lsuv_iters"] for v in two] == [v["lsuv_iters"] for v in one]
    assert [v["lsuv_scales"] for v in two] == [v["lsuv_scales"] for v in one]
    assert one[1]["lsuv_scales"] is not None and one[0]["lsuv_scales"] is None
