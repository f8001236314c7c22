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
    # on an 80-column terminal the reason wraps at words (it ran past 80 and broke words)
    r = runner.invoke(app, ["run", PLAYGROUND, "--set", "init=he_normal", "--set",
                            "train.epochs=20", "--set", "seeds=1", "--out",
                            str(tmp_path / "he80"), "-q"], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    shown = [x for x in r.stdout.splitlines() if not x.startswith("results:")]
    assert max(map(len, shown)) <= 80, shown
    assert "6 expectation(s) name variants these results do not have (zero, too_small, " \
        "appropriate, too_large): an override (--set init=...) replaced them" in " ".join(shown)


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


def _run_bracketed(tmp_path: Path, *extra: str) -> object:
    return runner.invoke(app, ["run", PLAYGROUND, "--set",
                               "init=[{label: 'he [fan_out]', scheme: he_normal, mode: fan_out}]",
                               "--set", "train.epochs=20", "--set", "seeds=1", "--out",
                               str(tmp_path / "b"), *extra])


def test_a_label_with_brackets_prints_verbatim(tmp_path: Path) -> None:
    r = _run_bracketed(tmp_path)
    assert r.exit_code == 0, r.output
    rows = [x for x in r.stdout.splitlines() if x.lstrip().startswith("he [fan_out]")]
    assert rows, r.stdout  # the table row
    assert any(x.startswith("he [fan_out]: ") for x in r.stdout.splitlines())  # the sentence
    listing = runner.invoke(app, ["list", "inits"], env={"COLUMNS": "300"})
    assert "[a, b]" in listing.stdout


def test_the_tables_fit_80_100_and_120_columns(tmp_path: Path) -> None:
    import json

    from rich.console import Console

    from initlab.cli import console

    r = _run_bracketed(tmp_path, "-q")
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    full = initlab_run_summary()
    for width in (80, 100, 120):
        for s in (summary, full):
            c = Console(width=width, record=True, highlight=False)
            c.print(console.summary_table(s, width=width))
            comp = console.comparison_table(s)
            if comp is not None:
                c.print(comp)
            text = c.export_text()
            assert max(len(x.rstrip()) for x in text.splitlines()) <= width
            for v in s["variants"]:
                assert v["label"] in text and v["diagnosis"] in text  # no column squeezed away
            assert "±" not in text or s["seeds"] > 1
    assert "paired over seeds" in text


def initlab_run_summary() -> dict:
    import initlab
    from initlab.config import load_config

    cfg = load_config(PLAYGROUND, overrides=["train.epochs=30", "seeds=3"])
    return initlab.run(cfg, plots=False).summary


def test_the_header_compresses_repeated_widths() -> None:
    from initlab.cli.console import network_text

    assert network_text([2, *[32] * 50, 1]) == "2 → 32 × 50 → 1"
    assert network_text([2, 6, 3, 1]) == "2 → 6 → 3 → 1"
    assert network_text([784, 300, 300, 10]) == "784 → 300 → 300 → 10"


def test_the_dry_run_plan_compresses_the_layer_sizes_too() -> None:
    """`run --dry-run` listed all 52 sizes of a 50-layer net ('sizes [2, 32, 32, ...]')."""
    r = runner.invoke(app, ["run", str(ROOT / "configs" / "depth_sweep.yaml"), "--set",
                            "model.depth=50", "--dry-run"])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.stdout.splitlines() if "model:" in x)
    assert "sizes 2 → 32 × 50 → 1," in line and "32, 32" not in line, line


def test_help_shows_no_python_types() -> None:
    for cmd in (["run", "--help"], ["sweep", "--help"], ["check", "--help"], ["--help"]):
        r = runner.invoke(app, cmd, env={"COLUMNS": "100"})
        assert r.exit_code == 0
        for noise in ("<bool>", "<list[str]>", "<str>", "{config}", "<path>"):
            assert noise not in r.stdout, (cmd, noise)
    assert "initlab run [OPTIONS] CONFIG" in runner.invoke(app, ["run", "--help"]).stdout


def test_validate_says_digits_needs_the_datasets_extra(monkeypatch) -> None:
    from initlab.data import datasets

    digits = str(ROOT / "configs" / "digits.yaml")
    r = runner.invoke(app, ["validate", digits])
    if datasets.needs("digits")[2]:  # type: ignore[index]
        assert r.exit_code == 0 and "initlab[datasets]" in r.stdout
    monkeypatch.setattr(datasets, "needs", lambda name: ("scikit-learn", "initlab[datasets]",
                                                         False) if name == "digits" else None)
    r = runner.invoke(app, ["validate", digits, PLAYGROUND])
    assert r.exit_code == 2
    assert "needs scikit-learn, which is not installed; pip install 'initlab[datasets]'" in \
        r.stderr
    assert "ok " in r.stdout and "playground.yaml" in r.stdout


def test_the_sweep_table_fits_80_columns_without_breaking_words(monkeypatch) -> None:
    """depth_sweep's three axes at 80 columns: headers are the keys' last parts (the caption
    names the full keys), so no value or header is broken over two lines."""
    from rich.console import Console

    from initlab.cli import sweep as cli_sweep
    from initlab.sweep.plan import make_plan

    plan = make_plan(str(ROOT / "configs" / "depth_sweep.yaml"), ["model.depth=5,20"])
    inits = ["xavier_normal", "he_normal", "lecun_normal", "orthogonal"]
    rows = [{"cell": i, "status": "done", "model.activation": act, "model.depth": depth,
             "init": init, "variant": init, "final_loss_mean": 0.692, "final_loss_std": 0.000661,
             "seeds": 3, "diagnosis": "vanishing", "var_ratio": 3.11e-08}
            for i, (act, depth, init) in enumerate(
                (a, d, n) for a in ("tanh", "relu") for d in (5, 20) for n in inits)]
    for width in (80, 100, 120):
        console = Console(width=width, record=True, highlight=False)
        monkeypatch.setattr(cli_sweep, "out", console)
        cli_sweep._print_table(plan, rows)
        text = console.export_text()
        lines = text.splitlines()
        assert max(len(x.rstrip()) for x in lines) <= width
        header = next(x for x in lines if "final loss" in x)
        assert header.split()[:3] == ["activation", "depth", "init"], header
        assert all(any(f" {n} " in x for x in lines) for n in inits)  # whole, on one line
        assert "0.692±0.000661" in text
        assert "activation = model.activation" in " ".join(text.split())
