"""Width parametrizations (initlab.nn.parametrization): the table against TP5 Table 3 and the NTK
formulas, μP == SP at the base width, the forward multiplier's gradients, the config keys."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from initlab.config.schema import load_config
from initlab.errors import ConfigError
from initlab.nn.activations import get_activation
from initlab.nn.losses import get_loss
from initlab.nn.model import MemberInit, backward, forward, init_population
from initlab.nn.optim import make_optimizer
from initlab.nn.parametrization import (
    PARAMETRIZATIONS,
    base_sizes,
    layer_scaling,
    member_multipliers,
    parametrize,
    scalings,
)

RATIOS = [(1.0, 1.0), (4.0, 1.0), (1.0, 8.0), (16.0, 16.0), (0.5, 2.0)]


def expected(name: str, role: str, opt: str, r_in: float, r_out: float) -> tuple[float, ...]:
    """(init_var, mult, lr, bias_lr) written out from TP5 Table 3 (fan_in, fan_out as ratios to
    the base) and the NTK parametrization, independently of the code's exponent table."""
    sgd = opt in ("sgd", "momentum")
    if name == "sp":
        return 1.0, 1.0, 1.0, 1.0
    if name == "ntk":  # W = w / sqrt(r_in), Var(w) = r_in Var_SP, trained with η
        return r_in, 1 / math.sqrt(r_in), 1.0, 1.0
    init = 1 / r_in if role == "output" else 1.0  # output: 1/fan_in² instead of 1/fan_in
    if sgd:
        lr = {"input": r_out, "hidden": 1.0, "output": 1 / r_in}[role]
        bias = r_out
    else:
        lr = {"input": 1.0, "hidden": 1 / r_in, "output": 1 / r_in}[role]
        bias = 1.0
    return init, 1.0, lr, bias


@pytest.mark.parametrize("name,role,opt", list(itertools.product(
    PARAMETRIZATIONS, ("input", "hidden", "output"), ("sgd", "momentum", "adam"))))
def test_table_matches_the_formulas(name: str, role: str, opt: str) -> None:
    for r_in, r_out in RATIOS:
        s = layer_scaling(name, role, opt, r_in, r_out)
        got = (s.init_var, s.mult, s.lr, s.bias_lr)
        assert got == pytest.approx(expected(name, role, opt, r_in, r_out), rel=1e-15)


def test_every_factor_is_one_at_the_base_width() -> None:
    sizes = [64, 128, 128, 128, 10]
    for name, opt in itertools.product(PARAMETRIZATIONS, ("sgd", "momentum", "adam")):
        m = member_multipliers([name], sizes, base_sizes(sizes, 128), opt)
        assert m.trivial, (name, opt)


def test_roles_of_a_depth_4_net() -> None:
    sizes = [64, 256, 256, 256, 256, 10]
    s = scalings("mup", sizes, base_sizes(sizes, 64), "adam")
    assert [x.lr for x in s] == [1.0, 0.25, 0.25, 0.25, 0.25]  # input, 3 hidden, output
    assert [x.init_var for x in s] == [1.0, 1.0, 1.0, 1.0, 0.25]
    s = scalings("mup", sizes, base_sizes(sizes, 64), "sgd")
    assert [x.lr for x in s] == [4.0, 1.0, 1.0, 1.0, 0.25]
    assert [x.bias_lr for x in s] == [4.0, 4.0, 4.0, 4.0, 1.0]
    with pytest.raises(ValueError, match="optimizer"):
        scalings("mup", sizes, base_sizes(sizes, 64), "lbfgs")


def _pop(names: list[str], sizes: list[int], base: int, opt: str = "adam"):  # type: ignore[no-untyped-def]
    from initlab.nn.inits import resolve

    act = get_activation("relu")
    he = resolve("he_normal", activation="relu")
    members = [MemberInit(he, None, (0, s)) for s in range(len(names))]
    pop = init_population(sizes, act, members)
    return parametrize(pop, member_multipliers(names, sizes, base_sizes(sizes, base), opt))


def test_init_rescales_the_same_random_numbers() -> None:
    sizes = [8, 32, 32, 3]
    sp = _pop(["sp"], sizes, 8)
    mup = _pop(["mup"], sizes, 8)
    ntk = _pop(["ntk"], sizes, 8)
    r = 32 / 8
    np.testing.assert_array_equal(mup.Ws[0], sp.Ws[0])
    np.testing.assert_array_equal(mup.Ws[1], sp.Ws[1])
    np.testing.assert_allclose(mup.Ws[2], sp.Ws[2] / math.sqrt(r), rtol=1e-15)
    assert ntk.mults is not None
    for l in (1, 2):  # a · w has SP's values: the same init, another parametrization
        np.testing.assert_allclose(ntk.Ws[l] * ntk.mults[l], sp.Ws[l], rtol=1e-15)
    np.testing.assert_allclose(forward(ntk, np.ones((5, 8))).out, forward(sp, np.ones((5, 8))).out,
                               rtol=1e-12)
    assert sp.mults is None and sp.lr_mults is None


@pytest.mark.parametrize("reference", [False, True])
def test_forward_multiplier_gradients_by_finite_differences(reference: bool) -> None:
    sizes = [3, 16, 12, 2]
    pop = _pop(["ntk", "mup", "sp"], sizes, 4)
    assert pop.mults is not None
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 3))
    y = rng.standard_normal((7, 2))
    loss = get_loss("mse")

    def total(p: object) -> np.ndarray:
        return loss.fn(forward(p, x, reference=reference).out, y)[0]  # type: ignore[arg-type]

    trace = forward(pop, x, reference=reference)
    _, dout = loss.fn(trace.out, y)
    g = backward(pop, trace, dout, reference=reference)
    eps = 1e-6
    for l in range(pop.L):
        for (i, j) in [(0, 0), (1, 1), (2, 0)]:
            for m in range(pop.M):
                W = pop.Ws[l]
                old = W[m, i, j]
                W[m, i, j] = old + eps
                up = total(pop)[m]
                W[m, i, j] = old - eps
                down = total(pop)[m]
                W[m, i, j] = old
                assert g.dWs[l][m, i, j] == pytest.approx((up - down) / (2 * eps), rel=1e-5,
                                                          abs=1e-9)
        b = pop.bs[l]
        old = b[0, 0, 1]
        b[0, 0, 1] = old + eps
        up = total(pop)[0]
        b[0, 0, 1] = old - eps
        down = total(pop)[0]
        b[0, 0, 1] = old
        assert g.dbs[l][0, 0, 1] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
def test_lr_multipliers_scale_each_parameters_step(opt: str) -> None:
    rng = np.random.default_rng(2)
    params = [rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 1, 5))]
    grads = [rng.standard_normal(p.shape) for p in params]
    lr = np.array([0.1, 0.2, 0.3])
    mult = [np.array([1.0, 0.5, 4.0]), np.array([2.0, 1.0, 0.25])]
    a = [p.copy() for p in params]
    make_optimizer(opt, lr, lr_mult=mult).step(a, grads, np.ones(3, bool))
    for i in range(2):
        for m in range(3):
            b = [p[m:m + 1].copy() for p in params]
            o = make_optimizer(opt, lr[m:m + 1] * mult[i][m])
            o.step(b, [g[m:m + 1] for g in grads], np.ones(1, bool))
            np.testing.assert_allclose(a[i][m], b[i][0], rtol=1e-13)


DOC = """\
name: par
data: {name: teacher, samples: 64}
model: {depth: 2, width: 16, activation: relu, base_width: 16}
init:
  - {label: sp, scheme: he_normal}
  - {label: mup, scheme: he_normal, parametrization: mup}
  - {label: ntk, scheme: he_normal, parametrization: ntk}
train: {optimizer: adam, lr: 0.01, epochs: 5}
"""


def test_mup_and_ntk_equal_sp_at_the_base_width(tmp_path: Path) -> None:
    from initlab.api import resolve
    from initlab.experiment import run_experiment

    f = tmp_path / "par.yaml"
    f.write_text(DOC)
    res = run_experiment(resolve(load_config(f)))
    loss = res.arrays["loss"]
    np.testing.assert_array_equal(loss[:, 0], loss[:, 1])
    np.testing.assert_array_equal(loss[:, 0], loss[:, 2])
    assert [v.get("parametrization", "sp") for v in res.summary["variants"]] == \
        ["sp", "mup", "ntk"]


def test_default_sp_leaves_the_resolved_config_as_before(tmp_path: Path) -> None:
    from initlab.api import resolve

    f = tmp_path / "c.yaml"
    f.write_text(DOC.replace(", base_width: 16", "").replace(", parametrization: mup", "")
                 .replace(", parametrization: ntk", ""))
    r = resolve(load_config(f))
    assert "base_width" not in r["model"]
    assert all("parametrization" not in v for v in r["init"])
    g = tmp_path / "d.yaml"
    g.write_text(DOC.replace("parametrization: mup", "parametrization: sp")
                 .replace("parametrization: ntk", "parametrization: sp"))
    assert all("parametrization" not in v for v in resolve(load_config(g))["init"])


def _problems(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(f)
    return [p.format() for p in e.value.problems]


def test_bad_parametrization_is_positioned_with_a_suggestion(tmp_path: Path) -> None:
    (msg,) = _problems(tmp_path, DOC.replace("parametrization: mup", "parametrization: mpu"))
    assert "bad.yaml:6:" in msg and "init.1.parametrization" in msg
    assert "sp, ntk, mup" in msg.replace("'", "").replace(" or", ",") or "mup" in msg
    assert "did you mean 'mup'" in msg


def test_mup_needs_a_base_width(tmp_path: Path) -> None:
    msgs = _problems(tmp_path, DOC.replace(", base_width: 16", ""))
    assert len(msgs) == 2
    assert "bad.yaml:6:" in msgs[0] and "model.base_width" in msgs[0]
    assert "bad.yaml:7:" in msgs[1]


def test_base_width_must_be_positive(tmp_path: Path) -> None:
    (msg,) = _problems(tmp_path, DOC.replace("base_width: 16", "base_width: 0"))
    assert "bad.yaml:3:" in msg and "model.base_width" in msg


def test_residual_nets_refuse_ntk_and_mup(tmp_path: Path) -> None:
    doc = DOC.replace("base_width: 16}", "base_width: 16, residual: {branch: 1}}")
    msgs = _problems(tmp_path, doc)
    assert len(msgs) == 2 and all("plain MLP" in m for m in msgs)
    assert "bad.yaml:6:" in msgs[0] and "init.1.parametrization" in msgs[0]
    assert all(len(m.splitlines()) == 1 for m in msgs)


# ---------------------------------------------------------------- readout: the last layer's init


def _population(tmp_path: Path, doc: str):  # type: ignore[no-untyped-def]
    from initlab.api import resolve
    from initlab.experiment import build_population, setup

    f = tmp_path / "r.yaml"
    f.write_text(doc)
    s = setup(resolve(load_config(f)))
    return s, build_population(s, s.dataset.x[:8])


def test_readout_zeros_starts_the_last_layer_at_zero_and_draws_the_rest_as_before(
        tmp_path: Path) -> None:
    s0, before = _population(tmp_path, DOC)
    s1, after = _population(tmp_path, DOC.replace("he_normal}", "he_normal, readout: zeros}")
                            .replace("mup}", "mup, readout: zeros}")
                            .replace("ntk}", "ntk, readout: zeros}"))
    assert [v.get("readout") for v in s1.cfg["init"]] == [{"scheme": "zeros"}] * 3
    L = after.L
    for l in range(L - 1):  # the same random numbers below the readout, each variant's factors
        np.testing.assert_array_equal(after.Ws[l], before.Ws[l])
    assert (after.Ws[L - 1] == 0).all() and (before.Ws[L - 1] != 0).all()
    assert "readout" not in s0.cfg["init"][0]  # not given: not in the resolved config


def test_readout_scheme_is_scaled_by_the_parametrization(tmp_path: Path) -> None:
    """readout: {scheme: normal, std: 0.5} under μP at 4 x the base width: std 0.5 / sqrt(4)."""
    doc = DOC.replace("width: 16, activation: relu, base_width: 16",
                      "width: 256, activation: relu, base_width: 64").replace(
        "parametrization: mup}", "parametrization: mup, readout: {scheme: normal, std: 0.5}}")
    _, pop = _population(tmp_path, doc)
    W = pop.Ws[-1][1]
    assert W.std() == pytest.approx(0.5 / 2, rel=0.1)  # 256 x n_out draws
    assert pop.Ws[-1][0].std() == pytest.approx(math.sqrt(2 / 256), rel=0.1)  # sp: He


def test_readout_on_a_residual_net(tmp_path: Path) -> None:
    from initlab.api import resolve
    from initlab.experiment import setup
    from initlab.experiment_residual import _members
    from initlab.nn.residual import init_residual

    f = tmp_path / "res.yaml"
    f.write_text(DOC.replace("base_width: 16}", "residual: {branch: 1}}").replace(
        ", parametrization: mup}", ", readout: zeros}").replace(
        "  - {label: ntk, scheme: he_normal, parametrization: ntk}\n", ""))
    s = setup(resolve(load_config(f)))
    pop = init_residual(s.sizes[0], s.sizes[1], s.sizes[-1], 2, 1, s.activation, _members(s))
    assert (pop.W_out[1] == 0).all() and (pop.W_out[0] != 0).all()
    np.testing.assert_array_equal(pop.Wb[0], pop.Wb[1])  # the same seeds, the same draws


def test_bad_readout_scheme_is_positioned(tmp_path: Path) -> None:
    (msg,) = _problems(tmp_path, DOC.replace("parametrization: mup}",
                                             "parametrization: mup, readout: zeroes}"))
    assert "bad.yaml:6:" in msg and "init.1.readout" in msg and "zeros" in msg
    assert len(msg.splitlines()) == 1
