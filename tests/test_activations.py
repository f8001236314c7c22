"""Activations against references: finite differences for dphi, closed forms and an independent
dense Simpson rule for the Gaussian expectations, Monte Carlo for the exact gains, torch's table."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special

from initlab.errors import BadParameterError, UnknownNameError
from initlab.nn.activations import ACTIVATIONS, Activation, gain, gauss_expect, get_activation

NAMES = ["linear", "relu", "leaky_relu", "elu", "selu", "gelu", "silu", "softplus", "tanh",
         "sigmoid", "softsign", "erf"]
# (name, param) pairs: the defaults plus non-default parameters
CASES = [(n, None) for n in NAMES] + [("leaky_relu", 0.2), ("elu", 0.5), ("elu", 2.0)]
TORCH_LESS = ["elu", "gelu", "silu", "softplus", "softsign", "erf"]


def _ids(case: tuple[str, float | None]) -> str:
    return f"{case[0]}" if case[1] is None else f"{case[0]}-{case[1]}"


def test_registry_lists_every_activation_once() -> None:
    assert ACTIVATIONS.names() == NAMES
    for e in ACTIVATIONS:
        assert e.description and e.formula
        assert isinstance(e.obj, Activation) and e.obj.name == e.name


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_dphi_matches_central_differences(case: tuple[str, float | None]) -> None:
    """float64 central differences (h = 1e-5) agree with dphi to relative error < 1e-6."""
    act = get_activation(*case)
    z = np.linspace(-5.0, 5.0, 1001)
    z = z[np.abs(z) > 1e-3]  # stay off the kink at 0 (relu, leaky_relu, elu, selu)
    z = np.concatenate([z, [-12.3, -8.0, 7.5, 11.0]])
    h = 1e-5
    fd = (act.phi(z + h) - act.phi(z - h)) / (2 * h)
    d = act.dphi(z)
    err = np.abs(fd - d)
    assert np.all(err <= 1e-6 * np.abs(d) + 1e-10), (case, float(np.max(err / (np.abs(d) + 1e-4))))


@pytest.mark.parametrize("name", NAMES)
def test_huge_and_infinite_inputs_are_warning_free(name: str) -> None:
    act = get_activation(name)
    z = np.array([-np.inf, -1e300, -1e5, -800.5, -40.5, 40.5, 800.5, 1e5, 1e300, np.inf])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h, d = act.phi(z), act.dphi(z)
        h_nan, _ = act.phi(np.array([np.nan])), act.dphi(np.array([np.nan]))
    assert not np.isnan(h).any() and not np.isnan(d).any()
    assert np.isfinite(d).all()
    assert np.isnan(h_nan).all()
    if act.bounds is not None:
        lo, hi = act.bounds
        assert h[0] == lo and h[-1] == hi  # the limits at -inf / +inf
        assert d[0] == 0 and d[-1] == 0


def test_limits_at_infinity() -> None:
    z = np.array([-np.inf, np.inf])
    expect = {"relu": [0, np.inf], "gelu": [0, np.inf], "silu": [0, np.inf],
              "softplus": [0, np.inf], "elu": [-1, np.inf], "linear": [-np.inf, np.inf],
              "selu": [-1.0507009873554805 * 1.6732632423543772, np.inf]}
    for name, want in expect.items():
        np.testing.assert_allclose(get_activation(name).phi(z), want, rtol=1e-15, err_msg=name)
    np.testing.assert_allclose(get_activation("gelu").dphi(z), [0, 1])
    np.testing.assert_allclose(get_activation("silu").dphi(z), [0, 1])


@pytest.mark.parametrize("name", NAMES)
def test_dtype_is_kept(name: str) -> None:
    act = get_activation(name)
    z = np.linspace(-3, 3, 7, dtype=np.float32)
    assert act.phi(z).dtype == np.float32
    assert act.dphi(z).dtype == np.float32


def test_values_against_direct_formulas() -> None:
    z = np.linspace(-6, 6, 241)
    sig = 1 / (1 + np.exp(-z))
    ref = {
        "linear": z, "relu": np.maximum(z, 0), "leaky_relu": np.where(z > 0, z, 0.01 * z),
        "elu": np.where(z > 0, z, np.expm1(z)), "gelu": 0.5 * z * (1 + special.erf(z / np.sqrt(2))),
        "silu": z * sig, "softplus": np.log(1 + np.exp(z)), "tanh": np.tanh(z), "sigmoid": sig,
        "softsign": z / (1 + np.abs(z)), "erf": special.erf(z),
        "selu": 1.0507009873554804934 * np.where(z > 0, z, 1.6732632423543772848 * np.expm1(z)),
    }
    for name, want in ref.items():
        np.testing.assert_allclose(get_activation(name).phi(z), want, rtol=1e-12, atol=1e-15,
                                   err_msg=name)


def test_families_and_bounds() -> None:
    assert {n for n in NAMES if get_activation(n).family == "relu"} == {"relu", "leaky_relu"}
    bounds = {n: get_activation(n).bounds for n in NAMES if get_activation(n).family}
    assert bounds == {"relu": None, "leaky_relu": None, "tanh": (-1.0, 1.0),
                      "sigmoid": (0.0, 1.0), "softsign": (-1.0, 1.0), "erf": (-1.0, 1.0)}
    assert all(get_activation(n).family == "" for n in NAMES if n not in bounds)


# ---- names and parameters ----------------------------------------------------------------------


def test_aliases_and_case() -> None:
    assert get_activation("identity").name == "linear"
    assert get_activation("Swish").name == "silu"
    assert get_activation("Leaky-ReLU").name == "leaky_relu"
    assert get_activation("TANH") is get_activation("tanh")


def test_parameters() -> None:
    leaky = get_activation("leaky_relu")
    assert (leaky.param, leaky.param_name) == (0.01, "slope")
    assert get_activation("leaky_relu", 0.01) is leaky
    a = get_activation("leaky_relu", 0.2)
    assert a.param == 0.2 and a.phi(np.array([-1.0]))[0] == -0.2
    assert get_activation("leaky_relu", 0.2) is a  # cached: equal arguments, same object
    elu = get_activation("elu", 2)
    assert (elu.param, elu.param_name) == (2.0, "alpha")
    assert elu.phi(np.array([-np.inf]))[0] == -2.0
    assert get_activation("elu").param == 1.0
    assert get_activation("tanh").param is None and get_activation("tanh").param_name is None


@pytest.mark.parametrize("name, param, text", [
    ("tanh", 0.1, "takes no parameter"),
    ("elu", 0.0, "alpha must be > 0"),
    ("elu", -1.0, "alpha must be > 0"),
    ("elu", math.nan, "finite"),
    ("leaky_relu", 1.5, "slope must be in [0, 1]"),
    ("leaky_relu", math.inf, "finite"),
    ("leaky_relu", "0.1", "must be a number"),
])
def test_bad_parameters(name: str, param: object, text: str) -> None:
    with pytest.raises(BadParameterError, match=None) as info:
        get_activation(name, param)  # type: ignore[arg-type]
    assert text in str(info.value) and name in str(info.value)


def test_unknown_name_suggests_the_nearest() -> None:
    with pytest.raises(UnknownNameError) as info:
        get_activation("tanhh")
    msg = str(info.value)
    assert "did you mean 'tanh'" in msg and "sigmoid" in msg and "swish" in msg
    with pytest.raises(UnknownNameError, match="did you mean 'leaky_relu'"):
        gain("leaky_rel")


# ---- gains -------------------------------------------------------------------------------------


def test_torch_gain_table_is_exact() -> None:
    """torch.nn.init.calculate_gain, value for value."""
    assert gain("linear") == 1.0 and gain("identity") == 1.0
    assert gain("sigmoid") == 1.0
    assert gain("tanh") == 5.0 / 3
    assert gain("relu") == math.sqrt(2.0)
    assert gain("leaky_relu") == math.sqrt(2.0 / (1 + 0.01**2))
    assert gain("leaky_relu", 0.2) == math.sqrt(2.0 / (1 + 0.2**2))
    assert gain(get_activation("leaky_relu", 0.3)) == math.sqrt(2.0 / (1 + 0.3**2))
    assert gain("selu") == 3.0 / 4
    assert gain("tanh", method="torch") == gain(get_activation("tanh"))


@pytest.mark.parametrize("name", TORCH_LESS)
def test_torch_gain_missing_points_to_exact(name: str) -> None:
    with pytest.raises(ValueError, match="method='exact'"):
        gain(name)


def test_unknown_gain_method() -> None:
    with pytest.raises(ValueError, match="expected one of: torch, exact; did you mean 'exact'"):
        gain("tanh", method="exakt")


def test_exact_gain_closed_forms() -> None:
    assert gain("linear", method="exact") == 1.0
    assert gain("relu", method="exact") == math.sqrt(2.0)
    assert gain("leaky_relu", 0.2, method="exact") == math.sqrt(2.0 / 1.04)
    assert gain("selu", method="exact") == pytest.approx(1.0, rel=1e-6)  # self-normalizing
    # erf: E[erf(z)^2] = (2/pi) arcsin(2/3)
    assert gain("erf", method="exact") == pytest.approx(
        1 / math.sqrt(2 / math.pi * math.asin(2 / 3)), rel=1e-10)


def _simpson_second_moment(act: Activation) -> float:
    """E[phi(z)^2] by composite Simpson on [-12, 12] with 200,001 points (0 is a node)."""
    z = np.linspace(-12.0, 12.0, 200_001)
    w = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return float(integrate.simpson(act.phi(z) ** 2 * w, x=z))


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_exact_gain_against_dense_simpson(case: tuple[str, float | None]) -> None:
    act = get_activation(*case)
    independent = 1 / math.sqrt(_simpson_second_moment(act))
    assert gain(act, method="exact") == pytest.approx(independent, rel=1e-8)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_exact_gain_preserves_the_second_moment_monte_carlo(case: tuple[str, float | None]) -> None:
    """E[(g phi(z))^2] = 1 by Monte Carlo (1e6 samples, seed 0) within 5 standard errors."""
    act = get_activation(*case)
    g = gain(act, method="exact")
    z = np.random.default_rng(0).standard_normal(1_000_000)
    s = (g * act.phi(z)) ** 2
    se = s.std() / math.sqrt(len(s))
    assert abs(s.mean() - 1) < 5 * se, (case, s.mean(), se)


def test_exact_gain_is_cached() -> None:
    from initlab.nn.activations import _exact_gain

    gain("tanh", method="exact")
    hits = _exact_gain.cache_info().hits
    assert gain(get_activation("tanh"), method="exact") == gain("TANH", method="exact")
    assert _exact_gain.cache_info().hits == hits + 2


# ---- gauss_expect ------------------------------------------------------------------------------

QS = [1e-6, 1e-3, 0.1, 1.0, 10.0, 1e3, 1e4]


@pytest.mark.parametrize("q", QS)
def test_gauss_expect_closed_forms(q: float) -> None:
    relu, leaky = get_activation("relu"), get_activation("leaky_relu", 0.2)
    assert gauss_expect(lambda z: z * z, q) == pytest.approx(q, rel=1e-10)
    assert gauss_expect(lambda z: relu.phi(z) ** 2, q) == pytest.approx(q / 2, rel=1e-10)
    assert gauss_expect(relu.phi, q) == pytest.approx(math.sqrt(q / (2 * math.pi)), rel=1e-10)
    assert gauss_expect(lambda z: leaky.phi(z) ** 2, q) == pytest.approx(1.04 * q / 2, rel=1e-10)
    # erf: E[erf(sqrt(q) z)^2] = (2/pi) arcsin(2q / (1 + 2q))  (Williams 1997)
    erf2 = 2 / math.pi * math.asin(2 * q / (1 + 2 * q))
    assert gauss_expect(lambda z: special.erf(z) ** 2, q) == pytest.approx(erf2, rel=1e-10)
    # odd and shifted-odd functions
    assert abs(gauss_expect(np.tanh, q)) < 1e-12
    assert gauss_expect(get_activation("sigmoid").phi, q) == pytest.approx(0.5, abs=1e-12)
    # E[exp(a z)] = exp(a^2 / 2) with a = sqrt(q), for moderate q
    if q <= 10:
        assert gauss_expect(np.exp, q) == pytest.approx(math.exp(q / 2), rel=1e-10)


@pytest.mark.parametrize("q", QS)
def test_gauss_expect_tanh_against_simpson(q: float) -> None:
    """tanh^2 at scale q, against a dense Simpson rule in z on [-12, 12]."""
    z = np.linspace(-12.0, 12.0, 400_001)
    w = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    ref = float(integrate.simpson(np.tanh(math.sqrt(q) * z) ** 2 * w, x=z))
    assert gauss_expect(lambda x: np.tanh(x) ** 2, q) == pytest.approx(ref, rel=1e-8, abs=1e-14)


def test_gauss_expect_rejects_bad_q() -> None:
    for q in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="q must be"):
            gauss_expect(np.tanh, q)
    assert gauss_expect(lambda z: z * z + 1, 0.0) == pytest.approx(1.0, rel=1e-12)


def test_exact_gain_of_a_home_made_activation() -> None:
    """An Activation built outside the registry gets its own quadrature, not a cached one."""
    cube = Activation("tanh", lambda z: z**3, lambda z: 3 * z**2, None)  # E[z^6] = 15
    assert gain(cube, method="exact") == pytest.approx(1 / math.sqrt(15), rel=1e-10)
    assert gain("tanh", method="exact") == pytest.approx(1.5925374197228312, rel=1e-12)
    with pytest.raises(ValueError, match="no gain"):
        gain(cube)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([np.float64, np.float32]), st.data(), st.sampled_from(NAMES))
def test_any_float_is_warning_free(dtype: type, data: st.DataObject, name: str) -> None:
    """No RuntimeWarning and no NaN from phi or dphi for any float64/float32 input, infinities
    included; saturating ones stay within their bounds."""
    width = 64 if dtype is np.float64 else 32
    zs = data.draw(st.lists(st.floats(allow_nan=False, width=width), min_size=1, max_size=20))
    act = get_activation(name)
    z = np.array(zs, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h, d = act.phi(z), act.dphi(z)
    assert h.dtype == dtype and d.dtype == dtype
    assert not np.isnan(h).any() and np.isfinite(d).all()
    if act.bounds is not None:
        assert np.all((act.bounds[0] <= h) & (h <= act.bounds[1]))
