"""The command line: runs, listings, and every bad-input class (exit 2, FILE:LINE:COL, no
traceback, nothing written)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import SMALL_CONFIG as SMALL
from typer.testing import CliRunner

from initlab.cli import app

runner = CliRunner()


def _write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_version() -> None:
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and re.match(r"initlab \d+\.\d+", r.stdout)


def test_run_writes_the_results_folder(tmp_path: Path) -> None:
    cfg = _write(tmp_path, SMALL)
    out = tmp_path / "res"
    r = runner.invoke(app, ["run", str(cfg), "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    for f in ("config.yaml", "summary.json", "variance.csv", "loss.csv", "loss.png",
              "variance.png", "histograms.png", "gradients.png", "decision_boundary.png",
              "report.md", "report.html", "arrays.npz"):
        assert (out / f).is_file(), f
    summary = json.loads((out / "summary.json").read_text())
    labels = [v["label"] for v in summary["variants"]]
    assert labels == ["zero", "appropriate"]
    zero = summary["variants"][0]
    assert zero["diagnosis"] == "symmetric"
    assert len(zero["final_loss"]) == 2 and len(zero["layers"]) == 3
    for key in ("act_mean", "act_var", "pre_var", "grad_var", "weight_grad_var", "saturated",
                "dead", "act_var_theory"):
        assert key in zero["layers"][0]


def test_run_set_overrides_and_table(tmp_path: Path) -> None:
    cfg = _write(tmp_path, SMALL)
    out = tmp_path / "res"
    r = runner.invoke(app, ["run", str(cfg), "--out", str(out), "--set", "train.epochs=3",
                            "--set", "name=other"])
    assert r.exit_code == 0, r.output
    assert "appropriate" in r.stdout and "symmetric" in r.stdout
    assert json.loads((out / "summary.json").read_text())["epochs"] == 3


def test_report_rerenders_without_training(tmp_path: Path) -> None:
    cfg = _write(tmp_path, SMALL)
    out = tmp_path / "res"
    assert runner.invoke(app, ["run", str(cfg), "--out", str(out), "-q"]).exit_code == 0
    (out / "loss.png").unlink()
    before = (out / "summary.json").read_text()
    r = runner.invoke(app, ["report", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "loss.png").is_file()
    assert json.loads((out / "summary.json").read_text()) == json.loads(before)


def test_report_missing_folder_exit_3(tmp_path: Path) -> None:
    r = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert r.exit_code == 3
    assert "Traceback" not in r.output


@pytest.mark.parametrize("kind", ["inits", "activations", "datasets", "losses", "optimizers"])
def test_list(kind: str) -> None:
    r = runner.invoke(app, ["list", kind])
    assert r.exit_code == 0, r.output
    assert len(r.stdout.splitlines()) > 4


def test_list_unknown_kind_suggests() -> None:
    r = runner.invoke(app, ["list", "init"])
    assert r.exit_code == 2 and "did you mean 'inits'" in r.output


BAD = {
    "yaml_syntax": ("name: x\nmodel: {widths: [4, 3\n", r":\d+:\d+: ", None),
    "unknown_key": (SMALL.replace("train:", "trian:"), r":10:1: trian: ", "train"),
    "unknown_nested_key": (SMALL.replace("epochs: 30", "epoch: 30"), r":10:\d+: train\.epoch",
                           "epochs"),
    "wrong_type": (SMALL.replace("seeds: 2", "seeds: many"), r":2:8: seeds: ", None),
    "unknown_scheme": (SMALL.replace("scheme: appropriate", "scheme: xavier_normall"),
                       r":9:\d+: init\.1\.scheme", "xavier_normal"),
    "unknown_activation": (SMALL.replace("activation: relu", "activation: rellu"),
                           r":6:\d+: model\.activation", "relu"),
    "unknown_dataset": (SMALL.replace("name: circle", "name: circel"), r":3:\d+: data\.name",
                        "circle"),
    "negative_width": (SMALL.replace("[4, 3]", "[4, -3]"), r":5:\d+: model\.widths\.1", None),
    "negative_lr": (SMALL.replace("lr: 0.1", "lr: -0.1"), r":10:\d+: train\.lr", None),
    "python_tag": (SMALL + "evil: !!python/object/apply:os.system ['touch PWNED']\n",
                   r":12:\d+: ", None),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", ["run", "validate"])
def test_bad_input_exit_2_positioned_no_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  case: str, command: str) -> None:
    monkeypatch.chdir(tmp_path)
    text, pattern, suggestion = BAD[case]
    cfg = _write(tmp_path, text)
    args = [command, str(cfg)] + (["--out", str(tmp_path / "res")] if command == "run" else [])
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert re.search(re.escape(str(cfg)) + pattern, r.output), r.output
    if suggestion:
        assert f"did you mean '{suggestion}'" in r.output
    assert not (tmp_path / "res").exists() and not (tmp_path / "PWNED").exists()


def test_missing_file_exit_2(tmp_path: Path) -> None:
    r = runner.invoke(app, ["run", str(tmp_path / "absent.yaml")])
    assert r.exit_code == 2 and "absent.yaml" in r.output and "Traceback" not in r.output


def test_all_problems_at_once(tmp_path: Path) -> None:
    text = SMALL.replace("lr: 0.1", "lr: -1").replace("activation: relu", "activation: rellu")
    r = runner.invoke(app, ["validate", str(_write(tmp_path, text))])
    assert r.exit_code == 2
    assert "train.lr" in r.output and "model.activation" in r.output


def test_failed_run_keeps_previous_results(tmp_path: Path) -> None:
    cfg = _write(tmp_path, SMALL)
    out = tmp_path / "res"
    assert runner.invoke(app, ["run", str(cfg), "--out", str(out), "-q"]).exit_code == 0
    before = (out / "summary.json").read_text()
    bad = _write(tmp_path, SMALL.replace("lr: 0.1", "lr: 0"), "bad.yaml")
    r = runner.invoke(app, ["run", str(bad), "--out", str(out), "-q"])
    assert r.exit_code == 2
    assert (out / "summary.json").read_text() == before


def test_debug_shows_traceback(tmp_path: Path) -> None:
    cfg = _write(tmp_path, SMALL.replace("lr: 0.1", "lr: -1"))
    r = runner.invoke(app, ["run", str(cfg), "--debug"])
    assert r.exit_code != 0 and r.exception is not None
