"""results.py: round trip, strict JSON, atomic replacement and recovery."""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest
import yaml
from fakes import fake_result, written_binary  # noqa: F401 (a shared fixture)

from initlab.errors import InitlabError
from initlab.report import plots
from initlab.report.render import write_result
from initlab.results import folder as results
from initlab.results.folder import (
    NotAResultsFolderError,
    ResultsNotFoundError,
    atomic_write_text,
    json_safe,
    load_result,
)


def _strict(text: str) -> object:
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def _leftovers(parent) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("res") / "fake"
    result = fake_result()
    write_result(result, out, plots=False)
    return result, out


def test_round_trip_gives_equal_summary_and_arrays(written):
    result, out = written
    back = load_result(out)
    assert back.summary == json_safe(result.summary)
    assert set(back.arrays) == set(result.arrays)
    for k, v in result.arrays.items():
        np.testing.assert_array_equal(back.arrays[k], v, err_msg=k)
    assert back.config["versions"]["numpy"] == np.__version__
    assert {k: v for k, v in back.config.items() if k != "versions"} == result.config


def test_summary_json_is_strict_and_nan_becomes_null(written):
    result, out = written
    data = _strict((out / "summary.json").read_text())
    last = data["variants"][-1]
    assert last["diverged"][0] is True
    assert last["final_loss"][0] is None  # NaN in memory
    assert math.isnan(result.summary["variants"][-1]["final_loss"][0])


def test_json_safe_converts_numpy_and_non_finite():
    obj = {"a": np.float32(1.5), "b": np.array([1.0, np.nan, np.inf]), "c": (np.int64(3),),
           1: [float("-inf"), {"d": np.bool_(True)}]}
    safe = json_safe(obj)
    assert safe == {"a": 1.5, "b": [1.0, None, None], "c": [3], "1": [None, {"d": True}]}
    _strict(json.dumps(safe, allow_nan=False))


def test_folder_has_every_file_and_tables_are_long_format(written_binary):  # noqa: F811
    result, out = written_binary
    names = {p.name for p in out.iterdir()}
    assert names == {"config.yaml", "summary.json", "arrays.npz", "variance.csv", "loss.csv",
                     "report.md", "report.html", "loss.png", "variance.png", "variance_steps.png",
                     "histograms.png",
                     "gradients.png", "decision_boundary.png", "signal_propagation.png"}
    assert _leftovers(out.parent) == []
    rows = list(csv.DictReader((out / "variance.csv").open()))
    assert set(rows[0]) == {"variant", "layer", "width", "when", "stat", "mean", "std"}
    assert {r["when"] for r in rows} == {"init", "final"}
    assert any(r["stat"] == "act_var_theory" and r["when"] == "init" for r in rows)
    assert {r["stat"] for r in rows} >= set(results.VARIANCE_STATS)
    loss_rows = list(csv.DictReader((out / "loss.csv").open()))
    assert len(loss_rows) == result.arrays["loss"].size
    assert set(loss_rows[0]) == {"step", "epoch", "variant", "seed", "loss"}
    assert any(r["loss"] == "" for r in loss_rows)  # the diverged member's NaN/inf
    assert yaml.safe_load((out / "config.yaml").read_text())["versions"]["python"]


def test_failed_write_leaves_previous_folder_intact(tmp_path, monkeypatch):
    out = tmp_path / "run"
    write_result(fake_result(variants=2, epochs=5), out, plots=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(result):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(plots, "plot_variance", boom)
    with pytest.raises(RuntimeError, match="plot failed"):
        write_result(fake_result(variants=3, epochs=7), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path) == []


def test_successful_write_replaces_and_cleans_up(tmp_path):
    out = tmp_path / "run"
    write_result(fake_result(variants=2, epochs=5), out, plots=False)
    write_result(fake_result(variants=3, epochs=5), out, plots=False)
    assert len(load_result(out).summary["variants"]) == 3
    assert _leftovers(tmp_path) == []


def test_leftover_old_folder_is_restored(tmp_path):
    out = tmp_path / "run"
    write_result(fake_result(variants=2, epochs=5), out, plots=False)
    os.rename(out, tmp_path / ".run.old-999-abcd")  # killed between the two renames
    back = load_result(out)
    assert out.is_dir() and len(back.summary["variants"]) == 2
    assert _leftovers(tmp_path) == []


def test_leftover_old_folder_is_restored_before_a_failing_write(tmp_path, monkeypatch):
    out = tmp_path / "run"
    write_result(fake_result(variants=2, epochs=5), out, plots=False)
    os.rename(out, tmp_path / ".run.old-999-abcd")
    monkeypatch.setattr(results, "variance_csv", lambda result: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_result(fake_result(variants=3, epochs=5), out, plots=False)
    assert len(load_result(out).summary["variants"]) == 2
    assert _leftovers(tmp_path) == []


def test_stale_old_beside_existing_folder_is_removed(tmp_path):
    out = tmp_path / "run"
    write_result(fake_result(variants=2, epochs=5), out, plots=False)
    (tmp_path / ".run.old-1-dead").mkdir()
    write_result(fake_result(variants=3, epochs=5), out, plots=False)
    assert _leftovers(tmp_path) == []


def test_missing_folder_or_files_raise_a_clear_error(tmp_path):
    with pytest.raises(ResultsNotFoundError, match="no results folder") as info:
        load_result(tmp_path / "nope")
    assert isinstance(info.value, InitlabError) and info.value.exit_code == 3
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "summary.json").write_text("{}")
    with pytest.raises(ResultsNotFoundError, match=r"config\.yaml, arrays\.npz"):
        load_result(tmp_path / "half")


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_refuses_to_replace_a_folder_initlab_did_not_write(tmp_path):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(NotAResultsFolderError, match="refusing"):
        write_result(fake_result(variants=1, epochs=2), precious, plots=False)
    assert (precious / "notes.txt").read_text() == "keep me"
    assert _leftovers(tmp_path) == []
    (tmp_path / "empty").mkdir()
    assert (write_result(fake_result(variants=1, epochs=2), tmp_path / "empty", plots=False)
            / "summary.json").is_file()
