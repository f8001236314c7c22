"""Residual configs end to end: validation, the acceptance numbers of issue 19 (measured
stream variance against 2^L and against the mean-field recursion, Fixup/ReZero at init and
training) and the shipped residual configs in reduced form."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import initlab
from initlab.config.schema import load_config
from initlab.errors import ConfigError
from initlab.nn.activations import get_activation
from initlab.theory.residual import growth_per_block, stream_profile

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
DATA = {"name": "teacher", "samples": 256, "n_in": 16, "n_out": 4, "task": "classes"}


def _cfg(**model: object) -> dict:
    base = {"depth": 30, "width": 64, "activation": "relu", "residual": {"branch": 1}}
    return {"data": DATA, "model": {**base, **model}, "init": [{"scheme": "he_normal"}],
            "train": {"epochs": 0}}


def _run(cfg: dict, *overrides: str) -> dict:
    return initlab.run(load_config(cfg, overrides=overrides)).summary


def _by_label(summary: dict) -> dict[str, dict]:
    return {v["label"]: v for v in summary["variants"]}


def _col(variant: dict, key: str, where: str = "layers") -> np.ndarray:
    return np.array([row.get(key, math.nan) for row in variant[where]], dtype=float)


# ---------------------------------------------------------------- theory, closed forms

def test_stream_recursion_closed_forms() -> None:
    relu = get_activation("relu")
    L = 30
    he = stream_profile(relu, 1.0, np.full((L, 1), 2.0), np.zeros((L, 1)), np.ones(L))
    np.testing.assert_allclose(he[:L + 1], 2.0 ** np.arange(L + 1))  # q doubles every block
    assert growth_per_block(he) == pytest.approx(2.0)
    scaled = stream_profile(relu, 1.0, np.full((1000, 1), 2.0), np.zeros((1000, 1)),
                            np.full(1000, 1e-3))  # alpha = 1/sqrt(L)
    assert scaled[1000] == pytest.approx((1 + 1e-3) ** 1000) and abs(scaled[1000] - math.e) < 2e-3
    pre = stream_profile(relu, 1.0, np.full((L, 1), 2.0), np.zeros((L, 1)), np.ones(L),
                         norm="layernorm", eps=0.0)
    np.testing.assert_allclose(pre[:L + 1], 1.0 + np.arange(L + 1))  # +1 per block
    post = stream_profile(relu, 3.0, np.full((L, 1), 2.0), np.zeros((L, 1)), np.ones(L),
                          norm="layernorm", position="post", eps=0.0)
    np.testing.assert_allclose(post[1:L + 1], 1.0)
    two = stream_profile(relu, 1.0, np.full((L, 2), 2.0), np.zeros((L, 2)), np.ones(L))
    np.testing.assert_allclose(two[:L + 1], 2.0 ** np.arange(L + 1))  # He branch of 2 keeps q


# ---------------------------------------------------------------- acceptance

def test_he_no_norm_stream_grows_as_two_to_the_L_and_theory_follows() -> None:
    v = _by_label(_run(_cfg()))["he_normal"]
    act, theory = _col(v, "act_var"), _col(v, "act_var_theory")
    ratio = act[30] / act[0]
    assert 2**30 / 10 < ratio < 2**30 * 10
    # within a factor 10 at every block (the readout's 4 units are too few to average)
    assert np.all(np.abs(np.log10(act / theory))[:31] < 1)
    assert v["diagnosis"] in ("exploding", "diverged")
    assert "stream" in v["sentence"]


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm", "batchnorm"])
@pytest.mark.parametrize("position", ["pre", "post"])
def test_normed_stream_matches_theory_within_factor_two(norm: str, position: str) -> None:
    v = _by_label(_run(_cfg(norm=norm, norm_position=position)))["he_normal"]
    act, theory = _col(v, "act_var")[:-1], _col(v, "act_var_theory")[:-1]
    assert np.all(np.abs(np.log2(act / theory)) < 1), (act / theory).round(3)


def test_fixup_and_rezero_at_init() -> None:
    cfg = _cfg(residual={"branch": 2})
    cfg["init"] = [{"label": "fixup", "scheme": "fixup"},
                   {"label": "skipinit", "scheme": "skipinit"}, {"label": "gpt2", "scheme": "gpt2"}]
    v = _by_label(_run(cfg, "seeds=2"))
    fixup, rezero = _col(v["fixup"], "act_var"), _col(v["skipinit"], "act_var")
    assert np.all((fixup[1:31] / fixup[0] >= 0.5) & (fixup[1:31] / fixup[0] <= 2))
    assert np.all(rezero[1:31] == rezero[0])  # alpha = 0: exactly the input projection's
    assert v["skipinit"]["diagnosis"] == "identity_at_init"
    assert v["skipinit"]["alpha"]["init"] == [0.0] * 30 and v["skipinit"]["alpha_trained"]
    assert v["fixup"]["alpha_trained"] and not v["gpt2"]["alpha_trained"]
    assert _col(v["fixup"], "branch_var")[1:31].max() == 0  # zero last branch layer


def test_fixup_and_rezero_train_30_blocks() -> None:
    cfg = _cfg(residual={"branch": 2})
    cfg["init"] = [{"scheme": "fixup"}, {"scheme": "rezero"}]
    cfg["train"] = {"optimizer": "adam", "lr": 0.001, "epochs": 150}  # full batch: 150 steps
    cfg["measure"] = {"every": 50}
    s = _run(cfg)
    for v in s["variants"]:
        assert s["steps"] == 150
        assert np.mean(v["final_loss"]) <= 0.8 * v["loss_curve"]["mean"][0], v["label"]
    alpha = _by_label(s)["rezero"]["alpha"]["final"]
    assert len(alpha) == 30 and max(abs(a) for a in alpha) > 0  # alphas were learned


def test_alpha_per_variant_and_gpt2_scaling() -> None:
    cfg = _cfg(norm="layernorm")
    cfg["init"] = [{"label": "a0.1", "scheme": "he_normal", "alpha": 0.1},
                   {"label": "gpt2", "scheme": "gpt2"},
                   {"label": "plain", "scheme": "normal", "std": 0.02}]
    v = _by_label(_run(cfg))
    assert v["a0.1"]["alpha"]["init"] == pytest.approx([0.1] * 30)
    gpt2, plain = _col(v["gpt2"], "act_var"), _col(v["plain"], "act_var")
    assert plain[30] - plain[0] > 10 * (gpt2[30] - gpt2[0]) > 0  # 1/sqrt(L) on the branches


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize(("model", "init", "where", "text"), [
    ({"norm": "layernorm"}, {"scheme": "he_normal"}, "model.norm", "needs residual"),
    ({}, {"scheme": "fixup"}, "init.0.scheme", "for residual nets"),
    ({}, {"scheme": "he_normal", "alpha": 0.1}, "init.0.alpha", "branch multiplier"),
])
def test_residual_keys_on_plain_nets_are_refused(tmp_path: Path, model: dict, init: dict,
                                                 where: str, text: str) -> None:
    import yaml

    doc = {"data": DATA, "model": {"depth": 3, "width": 8, **model}, "init": [init]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert where in msg and text in msg and "c.yaml:" in msg


def test_bad_norm_names_are_positioned_with_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data: {name: circle}\nmodel:\n  depth: 3\n  width: 8\n"
                    "  residual: {branch: 0}\n  norm: layernrom\n  norm_position: middle\n"
                    "init: he_normal\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert "c.yaml:6:" in msg and "layernorm" in msg  # did you mean
    assert "c.yaml:7:" in msg and "c.yaml:5:" in msg


# ---------------------------------------------------------------- shipped configs, reduced

def test_fixup_config_reduced() -> None:
    summary = initlab.run(load_config(CONFIGS / "fixup.yaml", overrides=[
        "seeds=1", "model.depth=40", "train.epochs=2"])).summary
    s = _by_label(summary)
    assert [c["variant"] for c in summary["comparisons"]] == ["fixup", "rezero"]
    for v in s.values():  # the outcome measures of issue 18, in optimizer steps
        assert v["loss_curve"]["steps"] == [0, 8, 16] and len(v["final_loss_tail"]) == 1
        assert "no training" not in v["sentence"]
    assert s["he"]["diagnosis"] in ("exploding", "diverged")
    assert s["he"]["stream_ratio"] > 1e8
    for label in ("fixup", "rezero"):
        assert s[label]["diagnosis"] != "diverged"
        assert np.mean(s[label]["final_loss"]) < s[label]["loss_curve"]["mean"][0]


def test_batchnorm_identity_config_reduced() -> None:
    v = initlab.run(load_config(CONFIGS / "batchnorm_identity.yaml", overrides=[
        "seeds=1", "model.depth=40", "train.epochs=0"])).summary["variants"][0]
    act, branch = _col(v, "act_var")[1:41], _col(v, "branch_var")[1:41]
    slope = np.polyfit(np.arange(1, 41), act, 1)[0]
    assert 0.5 < slope < 2  # linear growth, about +1 per block
    assert np.all((branch > 0.3) & (branch < 3))  # branches stay O(1)
    share = branch / act
    assert share[-1] < 0.1 < share[0]  # deep blocks are near the identity
    trained = initlab.run(load_config(CONFIGS / "batchnorm_identity.yaml", overrides=[
        "seeds=1", "model.depth=10", "train.epochs=1"])).summary["variants"][0]
    assert trained["loss_curve"]["mean"][0] < 10  # the init loss on batch statistics


def test_gpt2_scaling_config_reduced() -> None:
    v = _by_label(initlab.run(load_config(CONFIGS / "gpt2_scaling.yaml", overrides=[
        "seeds=1", "model.depth=16", "model.width=128", "train.epochs=0"])).summary)
    g, p = _col(v["gpt2"], "act_var"), _col(v["no-scaling"], "act_var")
    assert (p[16] - p[0]) / (g[16] - g[0]) == pytest.approx(16, rel=0.5)  # N = 16 blocks


def test_rezero_10k_config_reduced() -> None:
    result = initlab.run(load_config(CONFIGS / "rezero_10k.yaml", overrides=[
        "model.depth=300", "train.epochs=1", "train.batch_size=16", "measure.every=8"]))
    s = _by_label(result.summary)
    from initlab.report.residual_plots import plot_residual

    fig = plot_residual(result)  # the float32 He stream overflows after ~128 blocks
    assert fig is not None
    fig.canvas.draw()
    w, h = fig.canvas.get_width_height()
    assert w <= 4000 and h <= 4000
    lo, hi = fig.axes[0].get_ylim()
    assert 0 < lo < hi <= 1e101  # set by what is finite: the overflow is left out, not drawn
    assert s["he"]["diagnosis"] in ("diverged", "exploding")
    assert np.mean(s["rezero"]["final_loss"]) <= 0.9 * s["rezero"]["loss_curve"]["mean"][0]
    assert s["rezero"]["diagnosis"] != "diverged"


# ---------------------------------------------------------------- theory command, memory plan

def test_theory_command_on_a_residual_config() -> None:
    import json

    from typer.testing import CliRunner

    from initlab.cli import app

    r = CliRunner().invoke(app, ["theory", str(CONFIGS / "fixup.yaml"), "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["label"]: row for row in json.loads(r.stdout)}
    assert rows["he"]["growth_per_block"] == pytest.approx(2.0)  # He, m = 2: B(q) = q
    assert rows["he"]["stream_ratio"] == pytest.approx(2.0**100)
    assert rows["fixup"]["stream_ratio"] == 1.0 and rows["rezero"]["stream_ratio"] == 1.0
    # alpha = 1/sqrt(L): (1 + 1/L)^L, close to e
    assert rows["he"]["stream_ratio_alpha_1_over_sqrt_L"] == pytest.approx(1.01**100)


def test_memory_plan_of_residual_nets_counts_no_boundary() -> None:
    from initlab import resources
    from initlab.api import resolve
    from initlab.nn.residual import residual_memory_bytes

    cfg = resolve(load_config({"data": {"name": "circle", "samples": 100},
                               "model": {"depth": 2000, "width": 16, "activation": "relu",
                                         "residual": {"branch": 1}},
                               "init": ["rezero"], "train": {"epochs": 1, "batch_size": 10}}))
    plan = resources.estimate(cfg, resources.data_shape(cfg))
    assert plan.parts["boundary"] == 0 and plan.residual
    assert plan.parts["population"] == residual_memory_bytes(
        2, 16, 1, 2000, 1, 1, 100, np.float64, "sgd") + (64 << 20)
    assert plan.total < 1 << 30
