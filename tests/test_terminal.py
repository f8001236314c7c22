"""What the terminal says (issue 18): overrides named in errors, expectations skipped when an
override removes their variants, brackets printed verbatim, output that fits 80/100/120 columns."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from initlab.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
PLAYGROUND = str(ROOT / "configs" / "playground.yaml")


def test_an_overrides_error_names_the_override_with_did_you_mean() -> None:
    r = runner.invoke(app, ["run", PLAYGROUND, "--set", "trian.lr=0.1", "--dry-run"])
    assert r.exit_code == 2
    assert r.stderr.startswith("--set: trian.lr: unknown key 'trian'")
    assert "did you mean 'train'?" in r.stderr and "playground.yaml:" not in r.stderr


def test_an_init_override_skips_the_expectations_of_removed_variants(tmp_path: Path) -> None:
    """The README's `--set init=he_normal` on the playground runs (exit 0); the six
    expectations about zero ... too_large are skipped, with one line saying why."""
    r = runner.invoke(app, ["run", PLAYGROUND, "--set", "init=he_normal", "--set",
                            "train.epochs=20", "--set", "seeds=1", "--out",
                            str(tmp_path / "he"), "-q"])
    assert r.exit_code == 0, r.output
    assert "unknown variant" not in r.output
    lines = [x for x in r.stdout.splitlines() if x.startswith("skip")]
    assert len(lines) == 1 and "6 expectation(s)" in lines[0] and "too_small" in lines[0]
    assert "expectations: 0 passed, 0 failed, 6 skipped" in r.stdout


def test_a_typo_in_an_expectations_variant_is_still_an_error() -> None:
    r = runner.invoke(app, ["run", PLAYGROUND, "--set", "expect.0.variant=zer", "--dry-run"])
    assert r.exit_code == 2 and "unknown variant 'zer'" in r.stderr


def test_a_grid_axis_replaces_the_configs_axis_of_the_same_key() -> None:
    from initlab.sweep.plan import make_plan

    plan = make_plan(str(ROOT / "configs" / "depth_sweep.yaml"), ["model.depth=5,20"])
    assert [a.name for a in plan.axes] == ["model.activation", "model.depth", "init"]
    assert len(plan.cells) == 2 * 2 * 4
    r = runner.invoke(app, ["sweep", str(ROOT / "configs" / "depth_sweep.yaml"), "--grid",
                            "model.depth=5", "--grid", "model.depth=3", "--dry-run"])
    assert r.exit_code == 2 and "swept twice" in r.stderr
