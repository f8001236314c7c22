"""The coordinate check: slopes of synthetic power laws, SP blows up and μP stays flat under Adam
(issue 20's acceptance, on smaller widths), the command's files, and `initlab check` on them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from initlab.api import resolve
from initlab.cli import app
from initlab.config.schema import load_config
from initlab.sweep.coordcheck import FLAT_SLOPE, fit_slope, run_coordcheck, variant_summary

runner = CliRunner()

CONFIG = """\
name: cc
seeds: 8
data: {name: digits}
model: {depth: 4, width: 64, activation: relu, base_width: 64}
init:
  - {label: sp, scheme: he_normal}
  - {label: mup, scheme: he_normal, parametrization: mup, readout: zeros}
train: {optimizer: adam, lr: 0.01, batch_size: 128, epochs: 1}
coordcheck:
  widths: [64, 128, 256, 512]
  steps: 3
  expect:
    - {variant: sp, metric: "max_slope[1]", min: 0.4}
    - {variant: mup, metric: "max_abs_slope[0]", max: 0.15}
    - {variant: mup, metric: "max_abs_slope[1]", max: 0.15}
    - {variant: mup, metric: "max_abs_slope[2]", max: 0.15}
"""


@pytest.mark.parametrize("power,verdict", [(0.0, "flat"), (0.1, "flat"), (0.5, "growing"),
                                           (-0.5, "shrinking"), (-1.0, "shrinking")])
def test_slope_of_a_power_law_is_its_exponent(power: float, verdict: str) -> None:
    w = [32, 64, 128, 256, 512]
    slope, v = fit_slope(w, [3.0 * x**power for x in w])
    assert slope == pytest.approx(power, abs=1e-12)
    assert v == verdict


def test_a_layer_at_zero_is_zero_not_diverged() -> None:
    """A readout started at zero (readout: zeros) has l1 = 0 at t = 0 at every width."""
    assert fit_slope([64, 128, 256], [0.0, 0.0, 0.0]) == (None, "zero")
    assert fit_slope([64, 128, 256], [0.0, 0.0, 1.0]) == (None, "zero")
    assert fit_slope([64, 128, 256], [0.0, 2.0, 4.0]) == (pytest.approx(1.0), "growing")
    assert fit_slope([64, 128, 256], [0.0, 0.0, float("nan")]) == (None, "diverged")


def test_a_blown_up_layer_is_diverged() -> None:
    assert fit_slope([1, 2, 4], [1.0, 2.0, float("inf")]) == (pytest.approx(1.0), "diverged")
    assert fit_slope([1, 2, 4], [1.0, float("nan"), float("nan")]) == (None, "diverged")


@pytest.fixture(scope="module")
def coord(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    f = tmp_path_factory.mktemp("cc") / "cc.yaml"
    f.write_text(CONFIG)
    cfg = resolve(load_config(f))
    return run_coordcheck(cfg, [64, 128, 256, 512], 3, workers=0)


def test_sp_blows_up_and_mup_stays_flat_under_adam(coord) -> None:  # type: ignore[no-untyped-def]
    """Depth-4 ReLU, He, Adam lr 0.01, widths 64..512, 8 seeds: under SP a layer after the
    first grows with width (slope > 0.4) after an update, the readout like width^1.5 or
    faster; under μP (TP5 Table 3, the readout started at zero as in mup's examples) every
    |slope| stays below 0.15 (issue 20's bound) at every step, the readout at t = 0 being
    exactly 0 at every width (verdict `zero`). Measured: SP's steepest +1.74, μP's 0.07."""
    sp = {(e["step"], e["layer"]): e for e in coord.slopes if e["variant"] == "sp"}
    mup = {(e["step"], e["layer"]): e for e in coord.slopes if e["variant"] == "mup"}
    L = coord.layers
    assert L == 5
    steepest = max(sp[(t, l)]["slope"] for t in (1, 2) for l in range(2, L + 1))
    assert steepest > 0.4
    assert sp[(1, L)]["slope"] > 1.2
    for (t, l), e in mup.items():
        if (t, l) == (0, L):
            assert e["slope"] is None and e["verdict"] == "zero"
            assert (coord.l1[1, :, 0, L - 1] == 0).all()
        else:
            assert abs(e["slope"]) < FLAT_SLOPE, (t, l, e["slope"])
            assert e["verdict"] == "flat"
    # at init SP and μP are the same network below the readout (the same He draws)
    assert all(mup[(0, l)]["slope"] == sp[(0, l)]["slope"] for l in range(1, L))
    summary = variant_summary(coord, 1)
    assert summary["max_abs_slope"][0] == max(abs(mup[(0, l)]["slope"]) for l in range(1, L))
    assert summary["max_abs_slope"][1] == max(abs(mup[(1, l)]["slope"]) for l in range(1, L + 1))


def test_mup_random_readout_shrinks_like_one_over_sqrt_width_at_init(tmp_path: Path) -> None:
    """Table 3's random readout (Var ∝ 1/fan_in²): the same draws as SP's readout times
    sqrt(base / n), so its slope at init is exactly 0.5 below SP's."""
    f = tmp_path / "cc.yaml"
    f.write_text(CONFIG.replace("readout: zeros}", "}").replace("seeds: 8", "seeds: 2"))
    cc = run_coordcheck(resolve(load_config(f)), [64, 128, 256, 512], 1, workers=0)
    sp, mup = (next(e["slope"] for e in cc.slopes if e["variant"] == v and e["layer"] == 5)
               for v in ("sp", "mup"))
    assert mup == pytest.approx(sp - 0.5, abs=1e-9)
    assert mup < -FLAT_SLOPE


def test_coord_data_matches_an_independent_loop(tmp_path: Path) -> None:
    """initlab's coordinate data equal a plain NumPy forward/backward/Adam loop (TP5 Table 3's
    Adam column written out: hidden and readout lr / r, input and biases lr) on the same
    initial weights and the same batches (batch_order), for SP, μP and μP with a zero
    readout."""
    from initlab.experiment import build_population, setup
    from initlab.sweep.coordcheck import batch_order, coord_data, width_config

    f = tmp_path / "cc.yaml"
    f.write_text(CONFIG.replace("seeds: 8", "seeds: 1").replace(
        "  - {label: sp,", "  - {label: mup-random, scheme: he_normal, parametrization: mup}\n"
        "  - {label: sp,"))
    n, B, T, lr = 96, 128, 3, 0.01
    cfg = width_config(resolve(load_config(f)), n)
    l1 = coord_data(cfg, T)  # (T, M, L)
    s = setup(cfg)
    x, y = s.dataset.x, s.dataset.y
    order = batch_order(cfg, len(x))
    assert sorted(order) == list(range(len(x))) and (order[:B] != np.arange(B)).any()
    pop = build_population(s, x[order[:B]])
    L = pop.L
    assert s.parametrizations == ["mup", "sp", "mup"]
    for m, par in enumerate(s.parametrizations):
        Ws = [W[m].copy() for W in pop.Ws]
        bs = [b[m, 0].copy() for b in pop.bs]
        r = n / 64
        params = Ws + bs
        lrs = [lr / r if par == "mup" and l > 0 else lr for l in range(L)] + [lr] * L
        mom = [np.zeros_like(p) for p in params]
        vel = [np.zeros_like(p) for p in params]
        for t in range(T):
            idx = order[np.arange(t * B, t * B + B) % len(x)]
            hs, zs, h = [x[idx]], [], x[idx]
            for l in range(L):
                z = h @ Ws[l] + bs[l]
                h = np.maximum(z, 0) if l < L - 1 else z
                zs.append(z)
                hs.append(h)
                np.testing.assert_allclose(l1[t, m, l], np.abs(h).mean(), rtol=1e-10)
            p = np.exp(h - h.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            d = p.copy()
            d[np.arange(B), y[idx]] -= 1
            d /= B
            gW: list[np.ndarray] = [d] * L
            gb: list[np.ndarray] = [d] * L
            for l in reversed(range(L)):
                gW[l], gb[l] = hs[l].T @ d, d.sum(0)
                if l > 0:
                    d = (d @ Ws[l].T) * (zs[l - 1] > 0)
            for i, (q, g) in enumerate(zip(params, gW + gb, strict=True)):
                mom[i] = 0.9 * mom[i] + 0.1 * g
                vel[i] = 0.999 * vel[i] + 0.001 * g * g
                q -= lrs[i] * (mom[i] / (1 - 0.9 ** (t + 1))) / (
                    np.sqrt(vel[i] / (1 - 0.999 ** (t + 1))) + 1e-8)
    assert (pop.Ws[-1][2] == 0).all() and (pop.Ws[-1][0] != 0).all()


def test_members_do_not_depend_on_population_mates(tmp_path: Path) -> None:
    """The μP variant checked alone gives the numbers it gets beside SP."""
    f = tmp_path / "cc.yaml"
    f.write_text(CONFIG)
    both = resolve(load_config(f))
    alone = resolve(load_config(f, overrides=[
        'init=[{label: mup, scheme: he_normal, parametrization: mup, readout: zeros}]',
        "coordcheck.expect=null"]))
    a = run_coordcheck(both, [32, 64], 2, workers=0)
    b = run_coordcheck(alone, [32, 64], 2, workers=0)
    np.testing.assert_allclose(a.l1[1], b.l1[0], rtol=1e-12)


def test_command_writes_its_files_and_check_asserts_slopes(tmp_path: Path) -> None:
    f = tmp_path / "cc.yaml"  # narrow widths (fast): only SP's blow-up is asserted
    f.write_text(CONFIG.replace("seeds: 8", "seeds: 2").split("  expect:")[0] + "  expect:\n"
                 '    - {variant: sp, metric: "max_slope[1]", min: 0.4}\n')
    out = tmp_path / "out"
    r = runner.invoke(app, ["coordcheck", str(f), "--widths", "32,64,128", "--steps", "3",
                            "--workers", "0", "--out", str(out)])
    assert r.exit_code == 0, r.output
    for name in ("coord.csv", "summary.json", "coord.png", "report.md", "config.yaml"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "coord.csv").open()))
    assert set(rows[0]) == {"variant", "width", "step", "layer", "l1", "l1_std", "l1_min",
                            "l1_max"}
    assert len(rows) == 2 * 3 * 3 * 5
    s = json.loads((out / "summary.json").read_text())
    assert len(s["slopes"]) == 2 * 3 * 5
    assert set(s["slopes"][0]) == {"variant", "layer", "step", "slope", "verdict"}
    r = runner.invoke(app, ["check", str(out)])
    assert r.exit_code == 0, r.output
    # a bound the SP variant cannot meet fails the check
    cfg = (out / "config.yaml").read_text().replace("min: 0.4", "max: 0.1")
    (out / "config.yaml").write_text(cfg)
    r = runner.invoke(app, ["check", str(out)])
    assert r.exit_code == 1, r.output


def test_bad_widths_and_missing_widths(tmp_path: Path) -> None:
    f = tmp_path / "cc.yaml"
    f.write_text(CONFIG.replace("  widths: [64, 128, 256, 512]\n", ""))
    r = runner.invoke(app, ["coordcheck", str(f), "--widths", "32,x"])
    assert r.exit_code == 2 and "--widths" in r.output
    r = runner.invoke(app, ["coordcheck", str(f), "--workers", "0", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "coordcheck.widths" in r.output and "Traceback" not in r.output
    g = tmp_path / "typo.yaml"
    g.write_text(CONFIG.replace("  steps: 3", "  step: 3"))
    r = runner.invoke(app, ["coordcheck", str(g)])
    assert r.exit_code == 2 and "typo.yaml:11:" in r.output and "steps" in r.output
