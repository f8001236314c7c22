"""initlab.nn.inits against the published formulas (torch.nn.init, jax/Keras VarianceScaling, the
papers), with fixed seeds and stated statistical tolerances.

Tolerance for a second moment: with N i.i.d. entries, mean(W²) estimates E[W²] with relative
standard deviation sqrt(Var(W²)) / E[W²] / sqrt(N), which is sqrt(2 / N) for a normal and less
for uniform (sqrt(0.8 / N)) and the truncated normal. We allow 5 of those (a fixed seed makes the
test deterministic anyway; 5 sigma keeps it honest if the seed changes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest

from initlab.errors import BadParameterError, UnknownNameError
from initlab.nn import inits
from initlab.nn.inits import INITS, TRUNC_STD, resolve, sample, scheme_params

SHAPES = [(400, 300), (256, 512), (1000, 100)]  # square-ish, wide, tall; >= 1e5 entries each


def fan(mode: str, fan_in: int, fan_out: int) -> float:
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
            "fan_geo_avg": math.sqrt(fan_in * fan_out)}[mode]


def assert_second_moment(W: np.ndarray, expected: float) -> None:
    tol = 5 * math.sqrt(2 / W.size)  # 5 sigma of the relative error of mean(W²) (normal: worst)
    got = float(np.mean(W.astype(np.float64) ** 2))
    assert abs(got / expected - 1) < tol, (got, expected, tol)


# ----------------------------------------------------------------------------- variance scaling
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", inits.MODES)
@pytest.mark.parametrize("distribution", ["normal", "truncated_normal", "uniform"])
def test_variance_scaling_realized_variance(shape: tuple[int, int], mode: str,
                                            distribution: str) -> None:
    fan_in, fan_out = shape
    init = resolve("variance_scaling", scale=2.0, mode=mode, distribution=distribution)
    W = init(np.random.default_rng(1), fan_in, fan_out)
    expected = 2.0 / fan(mode, fan_in, fan_out)  # std = sqrt(scale / n)
    assert W.shape == shape
    assert init.variance(fan_in, fan_out) == pytest.approx(expected, rel=1e-14)
    assert_second_moment(W, expected)
    assert abs(W.mean()) < 5 * math.sqrt(expected / W.size)  # 5 sigma of the sample mean


@pytest.mark.parametrize("shape", SHAPES)
def test_truncated_normal_cut_at_two_sigma(shape: tuple[int, int]) -> None:
    W = sample("variance_scaling", *shape, seed=3, scale=1.0, mode="fan_in",
               distribution="truncated_normal")
    sigma = math.sqrt(1.0 / shape[0]) / TRUNC_STD  # the pre-truncation std
    assert np.abs(W).max() <= 2 * sigma * (1 + 1e-12)
    # the density at the cut is phi(2)/0.954 > 0, so with >= 1e5 draws some land within 1%
    assert np.abs(W).max() > 0.99 * 2 * sigma
    # the realized std is exact: that is what dividing by 0.8796 is for
    assert_second_moment(W, 1.0 / shape[0])


def test_trunc_std_constant_is_the_truncated_std() -> None:
    from scipy import stats

    assert stats.truncnorm(-2, 2).std() == pytest.approx(TRUNC_STD, rel=1e-15)


@pytest.mark.parametrize("shape", SHAPES)
def test_uniform_bound_exact(shape: tuple[int, int]) -> None:
    W = sample("variance_scaling", *shape, seed=4, scale=3.0, mode="fan_out",
               distribution="uniform")
    bound = math.sqrt(3 * 3.0 / shape[1])  # sqrt(3 · scale / n)
    assert np.abs(W).max() <= bound
    assert np.abs(W).max() > bound * (1 - 1e-3)  # P(all 1e5 draws miss the top 0.1%) ~ e^-100


def test_untruncated_normal_is_keras_alias_of_normal() -> None:
    a = sample("variance_scaling", 30, 40, distribution="untruncated_normal", seed=5)
    b = sample("variance_scaling", 30, 40, distribution="normal", seed=5)
    np.testing.assert_array_equal(a, b)
    assert resolve("variance_scaling", distribution="untruncated_normal").describe()[
        "distribution"] == "normal"


def test_dict_spec() -> None:
    spec = {"scheme": "variance_scaling", "scale": 2, "mode": "fan_out",
            "distribution": "uniform"}
    init = resolve(spec)
    assert init.variance(10, 40) == pytest.approx(2 / 40)
    assert init.describe() == {"scheme": "variance_scaling", "scale": 2.0, "mode": "fan_out",
                               "distribution": "uniform"}
    np.testing.assert_array_equal(sample(spec, 10, 40, seed=2),
                                  sample("variance_scaling", 10, 40, seed=2, scale=2,
                                         mode="fan_out", distribution="uniform"))


# ----------------------------------------------------------------------------- named schemes
S2, S5 = math.sqrt(2), math.sqrt(5)
# (scheme, params, distribution, std(fan_in, fan_out)) straight from torch.nn.init / the papers
NAMED = [
    ("lecun_normal", {}, "normal", lambda i, o: math.sqrt(1 / i)),
    ("lecun_uniform", {"gain": 2.0}, "uniform", lambda i, o: 2 * math.sqrt(1 / i)),
    ("xavier_normal", {}, "normal", lambda i, o: math.sqrt(2 / (i + o))),
    ("xavier_normal", {"gain": 5 / 3}, "normal", lambda i, o: 5 / 3 * math.sqrt(2 / (i + o))),
    ("xavier_uniform", {}, "uniform", lambda i, o: math.sqrt(2 / (i + o))),
    ("xavier_uniform", {"gain": S2}, "uniform", lambda i, o: S2 * math.sqrt(2 / (i + o))),
    ("he_normal", {}, "normal", lambda i, o: S2 / math.sqrt(i)),
    ("he_normal", {"mode": "fan_out"}, "normal", lambda i, o: S2 / math.sqrt(o)),
    ("he_normal", {"a": 0.2}, "normal", lambda i, o: math.sqrt(2 / 1.04) / math.sqrt(i)),
    ("he_normal", {"nonlinearity": "relu", "a": 0.5}, "normal", lambda i, o: S2 / math.sqrt(i)),
    ("he_normal", {"gain": 1.0}, "normal", lambda i, o: 1 / math.sqrt(i)),
    ("he_uniform", {}, "uniform", lambda i, o: S2 / math.sqrt(i)),
    ("he_uniform", {"mode": "fan_out", "a": 1.0}, "uniform", lambda i, o: 1 / math.sqrt(o)),
    ("glorot_standard", {}, "uniform", lambda i, o: 1 / math.sqrt(3 * i)),
    ("torch_linear_default", {}, "uniform",
     lambda i, o: math.sqrt(2 / (1 + S5**2)) / math.sqrt(i)),
    ("playground", {"v": 4.0}, "normal", lambda i, o: math.sqrt(4 / i)),
]


@pytest.mark.parametrize("shape", [(300, 400), (500, 200)])
@pytest.mark.parametrize("name,params,distribution,std", NAMED)
def test_named_scheme_formula(name: str, params: dict, distribution: str, std,
                              shape: tuple[int, int]) -> None:
    init = resolve(name, **params)
    assert init.describe()["distribution"] == distribution
    s = std(*shape)
    assert init.variance(*shape) == pytest.approx(s**2, rel=1e-12)
    W = init(np.random.default_rng(7), *shape)
    assert_second_moment(W, s**2)
    if distribution == "uniform":  # torch: bound = sqrt(3) · std
        assert np.abs(W).max() <= math.sqrt(3) * s * (1 + 1e-12)
        assert np.abs(W).max() > math.sqrt(3) * s * (1 - 1e-3)


def test_glorot_standard_and_torch_linear_default_are_one_over_sqrt_fan_in() -> None:
    for name in ("glorot_standard", "torch_linear_default"):
        W = sample(name, 64, 5000, seed=0)
        assert np.abs(W).max() <= 1 / 8 * (1 + 1e-12)
        assert np.abs(W).max() > 1 / 8 * (1 - 1e-3)


@pytest.mark.parametrize("alias,name", [("glorot_normal", "xavier_normal"),
                                        ("glorot_uniform", "xavier_uniform"),
                                        ("kaiming_normal", "he_normal"),
                                        ("kaiming_uniform", "he_uniform"),
                                        ("eye", "identity"), ("trunc_normal", "truncated_normal"),
                                        ("Xavier-Normal", "xavier_normal"),
                                        (" HE_NORMAL ", "he_normal")])
def test_aliases_give_the_same_numbers(alias: str, name: str) -> None:
    np.testing.assert_array_equal(sample(alias, 20, 30, seed=9), sample(name, 20, 30, seed=9))
    assert resolve(alias).describe()["scheme"] == name


def test_case_and_seed_reproducibility_and_dtype() -> None:
    a = sample("he_uniform", 40, 30, seed=11)
    np.testing.assert_array_equal(a, sample("he_uniform", 40, 30, seed=11))
    assert not np.array_equal(a, sample("he_uniform", 40, 30, seed=12))
    b = sample("he_uniform", 40, 30, seed=11, dtype=np.float32)
    assert b.dtype == np.float32
    np.testing.assert_array_equal(b, a.astype(np.float32))  # same draws, cast


# ----------------------------------------------------------------------------- elementary
def test_normal_uniform_defaults_are_torchs() -> None:
    W = sample("normal", 400, 300, seed=1)  # torch normal_: mean 0, std 1
    assert abs(W.mean()) < 5 / math.sqrt(W.size)
    assert_second_moment(W, 1.0)
    U = sample("uniform", 400, 300, seed=1)  # torch uniform_: a = 0, b = 1
    assert U.min() >= 0 and U.max() < 1 and U.min() < 1e-3 and U.max() > 1 - 1e-3
    assert abs(U.mean() - 0.5) < 5 * math.sqrt(1 / 12 / U.size)
    assert resolve("uniform", low=-1, high=1).variance(3, 3) == pytest.approx(1 / 3)
    assert resolve("normal", mean=2, std=3).variance(3, 3) == pytest.approx(13)


def test_constant_zeros_ones() -> None:
    np.testing.assert_array_equal(sample("constant", 3, 4, value=0.3), np.full((3, 4), 0.3))
    np.testing.assert_array_equal(sample("zeros", 3, 4), np.zeros((3, 4)))
    np.testing.assert_array_equal(sample("ones", 3, 4), np.ones((3, 4)))


@pytest.mark.parametrize("mean,std,a,b", [(0, 1, -2, 2), (1, 2, 0, 1), (0, 1, 3, 4),
                                          (0, 0.5, -math.inf, 0.1), (-1, 1, -40, -5)])
def test_truncated_normal_absolute_bounds(mean: float, std: float, a: float, b: float) -> None:
    from scipy import stats

    W = sample("truncated_normal", 300, 400, seed=2, mean=mean, std=std, a=a, b=b)
    assert a <= W.min() and W.max() <= b  # torch's trunc_normal_: bounds are absolute values
    ref = stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    # 5 sigma of the sample mean; second moment as above (relative to the reference variance)
    assert abs(W.mean() - ref.mean()) < 5 * ref.std() / math.sqrt(W.size)
    assert abs(W.var() / ref.var() - 1) < 5 * math.sqrt(2 / W.size)
    init = resolve("truncated_normal", mean=mean, std=std, a=a, b=b)
    assert init.variance(3, 3) == pytest.approx(ref.var() + ref.mean() ** 2, rel=1e-10)


@pytest.mark.parametrize("shape", [(50, 50), (80, 30), (30, 80), (1, 7), (7, 1)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal(shape: tuple[int, int], gain: float) -> None:
    fan_in, fan_out = shape
    W = sample("orthogonal", fan_in, fan_out, seed=4, gain=gain)
    gram = W.T @ W if fan_in >= fan_out else W @ W.T  # columns / rows orthonormal
    np.testing.assert_allclose(gram / gain**2, np.eye(min(shape)), atol=1e-10)
    init = resolve("orthogonal", gain=gain)
    assert np.mean(W**2) == pytest.approx(init.variance(fan_in, fan_out), rel=1e-10)


def test_orthogonal_sign_correction_makes_it_haar() -> None:
    # Without d = sign(diag(R)), numpy's QR gives a biased Q (its diagonal tends negative).
    # With it, Q is Haar: E[Q_11] = 0. Over 2000 draws of 3x3, std of the mean ~ 0.58/sqrt(2000).
    rng = np.random.default_rng(0)
    q11 = [resolve("orthogonal")(rng, 3, 3)[0, 0] for _ in range(2000)]
    assert abs(np.mean(q11)) < 5 * math.sqrt(1 / 3 / 2000)


@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (5, 3)])
def test_identity_exact(shape: tuple[int, int]) -> None:
    np.testing.assert_array_equal(sample("identity", *shape, scale=1.5), 1.5 * np.eye(*shape))
    np.testing.assert_array_equal(sample("eye", *shape), np.eye(*shape))
    assert resolve("identity", scale=1.5).variance(*shape) == pytest.approx(
        np.mean((1.5 * np.eye(*shape)) ** 2))


@pytest.mark.parametrize("fan_in,fan_out,sparsity,k", [(20, 10, 0.3, 3), (50, 40, 0.1, 4),
                                                       (7, 9, 0.5, 5), (5, 6, 0.0, 0)])
def test_sparse_zero_pattern(fan_in: int, fan_out: int, sparsity: float, k: int) -> None:
    W = sample("sparse", fan_in, fan_out, seed=8, sparsity=sparsity, std=0.01)
    # torch's sparse_ zeroes ceil(sparsity · rows) of each column of its (out, in) weight, i.e.
    # in our (fan_in, fan_out) layout k = ceil(sparsity · fan_out) entries of every row.
    np.testing.assert_array_equal((W == 0).sum(axis=1), np.full(fan_in, k))
    np.testing.assert_array_equal(W, sample("sparse", fan_in, fan_out, seed=8,
                                            sparsity=sparsity, std=0.01))
    other = sample("sparse", fan_in, fan_out, seed=9, sparsity=sparsity, std=0.01)
    assert not np.array_equal(W == 0, other == 0) or k == 0


def test_sparse_nonzero_std_and_variance() -> None:
    init = resolve("sparse", sparsity=0.25, std=0.1)
    W = init(np.random.default_rng(0), 500, 400)
    assert_second_moment(W[W != 0], 0.01)
    assert init.variance(500, 400) == pytest.approx(0.01 * 0.75)


# ----------------------------------------------------------------------------- playground
@pytest.mark.parametrize("name,v", [("zero", 0.0), ("too_small", 0.01), ("appropriate", 1.0),
                                    ("too_large", 100.0)])
def test_playground_buttons(name: str, v: float) -> None:
    init = resolve(name)
    assert init.variance(6, 3) == pytest.approx(v / 6)  # N(0, v / fan_in)
    np.testing.assert_array_equal(sample(name, 300, 400, seed=1),
                                  sample("playground", 300, 400, seed=1, v=v))
    W = sample(name, 300, 400, seed=1)
    if v == 0:
        assert not W.any()
    else:
        assert_second_moment(W, v / 300)


# ----------------------------------------------------------------------------- gain="auto"
def test_gain_auto_needs_an_activation() -> None:
    with pytest.raises(BadParameterError, match="activation"):
        resolve("he_normal", gain="auto")
    with pytest.raises(BadParameterError, match="'auto'"):
        resolve("xavier_normal", gain="tahn")


def test_gain_auto_relu_is_he() -> None:
    activations = pytest.importorskip("initlab.nn.activations")
    init = resolve("he_normal", gain="auto", activation="relu")
    assert init.describe()["scale"] == pytest.approx(2.0, rel=1e-9)
    assert activations.gain("relu", method="exact") == pytest.approx(math.sqrt(2), rel=1e-9)
    np.testing.assert_allclose(sample("he_normal", 30, 20, gain="auto", activation="relu"),
                               sample("he_normal", 30, 20), rtol=1e-9)


@pytest.mark.parametrize("scheme", ["lecun_normal", "xavier_uniform", "he_uniform",
                                    "orthogonal"])
def test_gain_auto_tanh(scheme: str) -> None:
    activations = pytest.importorskip("initlab.nn.activations")
    g = activations.gain("tanh", None, method="exact")
    auto = resolve(scheme, gain="auto", activation="tanh")
    assert auto.variance(30, 20) == pytest.approx(resolve(scheme, gain=g).variance(30, 20))
    assert auto.describe()["gain"] == pytest.approx(g)
    assert auto.describe()["gain_from"] == "tanh"
    json.dumps(auto.describe())


def test_kaiming_nonlinearity_uses_torch_gain() -> None:
    pytest.importorskip("initlab.nn.activations")
    assert resolve("he_normal", nonlinearity="tanh").variance(9, 1) == pytest.approx(
        (5 / 3) ** 2 / 9)


# ----------------------------------------------------------------------------- LSUV
def _forward_zs(Ws: list[np.ndarray], bs: list[np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    zs, h = [], x
    for l, (W, b) in enumerate(zip(Ws, bs)):
        zs.append(h @ W + b)
        h = np.tanh(zs[-1]) if l < len(Ws) - 1 else zs[-1]
    return zs


@pytest.mark.parametrize("tol", [0.1, 0.01])
def test_lsuv_unit_variance_on_a_tanh_net(tol: float) -> None:
    sizes, rng = [20, 64, 64, 64, 3], np.random.default_rng(0)
    init = resolve("lsuv", tol=tol)
    Ws = [init(rng, sizes[l], sizes[l + 1]) for l in range(len(sizes) - 1)]
    for W in Ws:  # the start is orthonormal
        gram = W.T @ W if W.shape[0] >= W.shape[1] else W @ W.T
        np.testing.assert_allclose(gram, np.eye(min(W.shape)), atol=1e-10)
    bs = [rng.normal(0, 0.3, n) for n in sizes[1:]]  # non-zero biases: rescaling must iterate
    x = 3 * rng.standard_normal((500, 20))
    before = [W.copy() for W in Ws]
    iters = init.rescale(Ws, bs, x, np.tanh)
    assert len(iters) == 4 and all(1 <= it <= 10 for it in iters), iters
    for z in _forward_zs(Ws, bs, x):
        assert abs(z.var() - 1) < tol
    for W, W0 in zip(Ws, before):  # rescaled in place, direction kept
        ratio = W / W0
        np.testing.assert_allclose(ratio, ratio[0, 0], rtol=1e-12)


def test_lsuv_fit_returns_the_scale_factor_of_each_layer() -> None:
    """fit's scales: W_l = s_l * (the orthogonal draw), so std(W_l) = s_l * std(draw), and the
    draw multiplied by them gives Var(z_l) = 1 within tol on the batch, layer after layer."""
    sizes, rng = [20, 64, 64, 3], np.random.default_rng(3)
    init = resolve("lsuv", tol=0.02)
    Ws = [init(rng, sizes[l], sizes[l + 1]) for l in range(len(sizes) - 1)]
    bs = [rng.normal(0, 0.3, n) for n in sizes[1:]]
    x = 3 * rng.standard_normal((500, 20))
    drawn = [W.copy() for W in Ws]
    iters, scales = init.fit(Ws, bs, x, np.tanh)
    assert iters == resolve("lsuv", tol=0.02).rescale([W.copy() for W in drawn], bs, x, np.tanh)
    assert len(scales) == 3 and all(s != 1.0 for s in scales), scales
    for W, W0, s in zip(Ws, drawn, scales):
        np.testing.assert_allclose(W, s * W0, rtol=1e-12)
        assert W.std() == pytest.approx(s * W0.std(), rel=1e-12)
    for z in _forward_zs([s * W0 for s, W0 in zip(scales, drawn)], bs, x):
        assert abs(z.var() - 1) < 0.02
    # a layer already at unit variance is not rescaled: factor exactly 1
    one = resolve("lsuv", tol=10.0).fit([W.copy() for W in drawn], bs, x, np.tanh)
    assert one == ([0, 0, 0], [1.0, 1.0, 1.0])


def test_lsuv_max_iter_and_gain() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 10))
    Ws = [resolve("lsuv")(rng, 10, 10) for _ in range(2)]
    assert resolve("lsuv", max_iter=0).rescale(Ws, [np.zeros(10)] * 2, x, np.tanh) == [0, 0]
    init = resolve("lsuv", gain=2.0, tol=0.05)
    init.rescale(Ws, [np.zeros(10)] * 2, x, np.tanh)
    for z in _forward_zs(Ws, [np.zeros(10)] * 2, x):
        assert abs(z.var() / 4 - 1) < 0.05  # target Var(z) = gain²
    assert init.variance(10, 10) is None


# ----------------------------------------------------------------------------- errors
def test_unknown_scheme_lists_choices_and_nearest() -> None:
    with pytest.raises(UnknownNameError) as e:
        resolve("xavier_normall")
    assert "did you mean 'xavier_normal'" in str(e.value)
    assert "he_normal" in str(e.value) and e.value.suggestion == "xavier_normal"


def test_unknown_parameter_lists_accepted_and_nearest() -> None:
    with pytest.raises(BadParameterError) as e:
        resolve("variance_scaling", scael=2)
    msg = str(e.value)
    assert "scael" in msg and "did you mean 'scale'" in msg
    assert "distribution, mode, scale" in msg and e.value.param == "scael"
    with pytest.raises(BadParameterError, match="takes no parameters"):
        resolve("zeros", std=1)
    with pytest.raises(BadParameterError, match="did you mean 'std'"):
        resolve({"scheme": "normal", "sdt": 0.1})


@pytest.mark.parametrize("scheme,params,match", [
    ("variance_scaling", {"mode": "fan_inn"}, "did you mean 'fan_in'"),
    ("variance_scaling", {"distribution": "truncated"}, "did you mean 'truncated_normal'"),
    ("he_normal", {"mode": "fanout"}, "did you mean 'fan_out'"),
    ("variance_scaling", {"scale": -1}, "scale must be >= 0"),
    ("normal", {"std": -0.1}, "std must be >= 0"),
    ("truncated_normal", {"std": -1}, "std must be >= 0"),
    ("truncated_normal", {"a": 2, "b": -2}, "a must be < b"),
    ("uniform", {"low": 1, "high": 0}, "low must be <= high"),
    ("sparse", {"sparsity": 1.0}, r"sparsity must be in \[0, 1\)"),
    ("sparse", {"sparsity": -0.1}, r"sparsity must be in \[0, 1\)"),
    ("xavier_normal", {"gain": -1}, "gain must be >= 0"),
    ("normal", {"std": "big"}, "must be a number"),
    ("normal", {"std": math.nan}, "finite"),
    ("lsuv", {"tol": 0}, "tol must be > 0"),
    ("lsuv", {"max_iter": 2.5}, "max_iter"),
    ("constant", {}, "missing required parameter 'value'"),
])
def test_bad_values(scheme: str, params: dict, match: str) -> None:
    with pytest.raises(BadParameterError, match=match) as e:
        resolve(scheme, **params)
    assert str(e.value).startswith(scheme)


def test_bad_choice_error_carries_choices_and_suggestion() -> None:
    with pytest.raises(BadParameterError) as e:
        resolve("variance_scaling", mode="fan_inn")
    assert e.value.param == "mode" and e.value.suggestion == "fan_in"
    assert "fan_geo_avg" in e.value.choices


def test_spec_without_scheme_and_bad_shape() -> None:
    with pytest.raises(BadParameterError, match="'scheme'"):
        resolve({"scale": 2})
    with pytest.raises(BadParameterError, match="fan_in must be an int >= 1"):
        sample("he_normal", 0, 3)


# ----------------------------------------------------------------------------- registry
def test_registry_entries_and_scheme_params_round_trip() -> None:
    for entry in INITS:
        assert entry.description and entry.formula, entry.name
        defaults = scheme_params(entry.name)
        if entry.name == "constant":
            assert defaults == {"value": None}
            continue
        # the config layer fills every default in; resolving them must give the default scheme
        init = resolve(entry.name, **defaults)
        assert init.describe() == resolve(entry.name).describe()
        json.dumps(init.describe())
        assert init(np.random.default_rng(0), 4, 3).shape == (4, 3)
    assert scheme_params("kaiming_normal") == {"mode": "fan_in", "a": 0.0,
                                               "nonlinearity": "leaky_relu", "gain": None}


def test_describe_and_direct_use() -> None:
    d = resolve("he_normal", mode="fan_out", a=0.1).describe()
    assert d["scheme"] == "he_normal" and d["mode"] == "fan_out" and d["a"] == 0.1
    assert d["scale"] == pytest.approx(2 / 1.01)
    assert inits.he_normal().describe()["scheme"] == "he_normal"
    init = inits.VarianceScaling(2.0, "fan_avg", "uniform")
    assert resolve(init) is init and init.describe()["scheme"] == "variance_scaling"


# ----------------------------------------------------------------------------- torch (optional)
def test_against_torch() -> None:
    torch = pytest.importorskip("torch")  # never installed by us; compared when present
    torch.manual_seed(0)
    out_f, in_f = 300, 400
    for name, fn, kw in [("xavier_normal", torch.nn.init.xavier_normal_, {}),
                         ("xavier_uniform", torch.nn.init.xavier_uniform_, {"gain": 2.0}),
                         ("he_normal", torch.nn.init.kaiming_normal_, {"mode": "fan_out"}),
                         ("he_uniform", torch.nn.init.kaiming_uniform_, {"a": 0.3})]:
        t = torch.empty(out_f, in_f)
        fn(t, **kw)
        ours = resolve(name, **kw)
        assert_second_moment(t.numpy().T.astype(np.float64), ours.variance(in_f, out_f))
    lin = torch.nn.Linear(in_f, out_f)
    bound = float(lin.weight.detach().abs().max())
    assert bound <= 1 / math.sqrt(in_f) and bound > (1 - 1e-3) / math.sqrt(in_f)
    t = torch.empty(out_f, in_f)
    torch.nn.init.sparse_(t, sparsity=0.1)
    k = resolve("sparse").zeros_per_row(out_f)  # our row == torch's column
    np.testing.assert_array_equal((t.numpy().T == 0).sum(axis=1), np.full(in_f, k))
    # zeros per column: torch's ceil(sparsity · rows), except where rounding the product to 9
    # decimals moves it onto an integer (documented in Sparse: 0.07 of 100 is 7 here, 8 in torch)
    for sparsity, rows in [(0.3, 10), (0.1, 50), (0.5, 7), (0.07, 100), (0.28, 25)]:
        t = torch.empty(rows, 4)
        torch.nn.init.sparse_(t, sparsity=sparsity)
        theirs = int((t == 0).sum(dim=0)[0])
        ours = resolve("sparse", sparsity=sparsity).zeros_per_row(rows)
        assert theirs == math.ceil(sparsity * rows)
        assert ours == (theirs - 1 if (sparsity, rows) in [(0.07, 100), (0.28, 25)] else theirs)


def test_kaiming_nonlinearity_errors() -> None:
    pytest.importorskip("initlab.nn.activations")
    with pytest.raises(BadParameterError, match="did you mean 'tanh'"):
        resolve("he_normal", nonlinearity="tahn")
    with pytest.raises(BadParameterError, match="no gain"):  # torch's table has no gelu
        resolve("he_normal", nonlinearity="gelu")


def test_gain_auto_leaky_relu_uses_the_activation_param() -> None:
    pytest.importorskip("initlab.nn.activations")
    init = resolve("he_normal", gain="auto", activation="leaky_relu", activation_param=0.2)
    assert init.variance(10, 5) == pytest.approx(2 / (1 + 0.2**2) / 10, rel=1e-9)
    assert init.describe()["activation_param"] == 0.2


def test_initializers_pickle_and_hash() -> None:
    import pickle

    # sweeps ship initializers to worker processes
    for name in ("too_large", "he_normal", "lsuv", "sparse", "orthogonal"):
        init = resolve(name)
        clone = pickle.loads(pickle.dumps(init))
        assert clone == init and hash(clone) == hash(init)
        np.testing.assert_array_equal(clone(np.random.default_rng(0), 5, 4),
                                      init(np.random.default_rng(0), 5, 4))


def test_non_string_choice_is_a_bad_parameter() -> None:
    with pytest.raises(BadParameterError, match="distribution must be one of"):
        resolve("variance_scaling", distribution=["normal"])
    with pytest.raises(BadParameterError, match="mode must be one of"):
        resolve("variance_scaling", mode=None)


# ----------------------------------------------------------------------------- bias initializers
def _population_biases(scheme: str | dict, sizes: list[int], seed: int = 0) -> list[np.ndarray]:
    """The biases init_population draws with `scheme` as the bias initializer (the real path)."""
    from initlab.nn.activations import get_activation
    from initlab.nn.model import MemberInit, init_population

    member = MemberInit(resolve("he_normal"), resolve(scheme), (seed, 0))
    pop = init_population(sizes, get_activation("tanh"), [member])
    return [b[0, 0] for b in pop.bs]


def test_torch_linear_default_bias_sees_the_layer_fan_in() -> None:
    # torch's nn.Linear.reset_parameters: bias ~ U(±1/sqrt(fan_in)), fan_in of the weight.
    # Before the fix the bias was drawn with fan_in = 1: U(±1) (max |b| 0.95 on 400 -> 50).
    sizes = [400, 50, 3]
    bs = _population_biases("torch_linear_default", sizes)
    for fan_in, fan_out, b in zip(sizes[:-1], sizes[1:], bs):
        assert b.shape == (fan_out,)
        assert np.abs(b).max() <= 1 / math.sqrt(fan_in)
    init = resolve("torch_linear_default")
    b = init.bias(np.random.default_rng(1), 400, 100_000)  # many draws: the law, not the bound
    assert np.abs(b).max() <= 1 / 20 and np.abs(b).max() > 0.999 / 20
    assert_second_moment(b, 1 / (3 * 400))  # U(±a): Var = a²/3
    assert init.bias_variance(400, 50) == pytest.approx(1 / (3 * 400))


@pytest.mark.parametrize("scheme,var", [
    ("he_normal", lambda i, o: 2 / i),
    ({"scheme": "he_normal", "mode": "fan_out"}, lambda i, o: 2 / o),
    ("xavier_uniform", lambda i, o: 2 / (i + o)),
    ("lecun_normal", lambda i, o: 1 / i),
    ({"scheme": "variance_scaling", "scale": 3.0, "mode": "fan_geo_avg"},
     lambda i, o: 3 / math.sqrt(i * o)),
])
def test_fan_based_bias_uses_the_layer_fans(scheme: str | dict,
                                            var: Callable[[int, int], float]) -> None:
    init = resolve(scheme)
    fan_in, fan_out = 300, 200_000
    b = init.bias(np.random.default_rng(2), fan_in, fan_out)
    assert b.shape == (fan_out,)
    assert_second_moment(b, var(fan_in, fan_out))
    assert init.bias_variance(fan_in, fan_out) == pytest.approx(var(fan_in, fan_out))
    # the population path too (he_normal on 400 -> 50 was N(0, 2) before the fix)
    b1 = _population_biases(scheme, [400, 50, 2])[0]
    assert np.mean(b1**2) < 10 * var(400, 50)


def test_elementwise_bias_schemes_are_unchanged() -> None:
    # schemes with no fan in their law draw the same numbers as before (one (1, fan_out) row)
    for spec in ({"scheme": "normal", "std": 0.1}, {"scheme": "uniform", "low": -1, "high": 2},
                 {"scheme": "constant", "value": -0.5}, {"scheme": "truncated_normal"}):
        init = resolve(spec)
        np.testing.assert_array_equal(init.bias(np.random.default_rng(3), 400, 50),
                                      init(np.random.default_rng(3), 1, 50)[0])
        assert init.bias_variance(400, 50) == init.variance(1, 50)


def test_bias_against_torch_linear() -> None:
    torch = pytest.importorskip("torch")  # the bench extra; compared when installed
    from scipy import stats as sps

    torch.manual_seed(0)
    in_f, out_f = 400, 50
    theirs = np.concatenate([torch.nn.Linear(in_f, out_f).bias.detach().numpy()
                             for _ in range(200)]).astype(np.float64)
    ours = resolve("torch_linear_default").bias(np.random.default_rng(0), in_f, out_f * 200)
    assert np.abs(theirs).max() <= 1 / math.sqrt(in_f) + 1e-7
    # the same law: a two-sample KS test on 10 000 draws each (p < 1e-4 would be a mismatch;
    # the old fan_in = 1 bias gives p ~ 0)
    assert sps.ks_2samp(theirs, ours).pvalue > 1e-4


def test_theory_reads_the_bias_variance_of_the_layer() -> None:
    from initlab.cli.theory import layer_sigmas

    sw, sb = layer_sigmas(resolve("he_normal"), resolve("torch_linear_default"), [400, 50, 1])
    assert sw == pytest.approx([2.0, 2.0]) and sb == pytest.approx([1 / 1200, 1 / 150])
