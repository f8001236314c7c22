"""initlab.config: a valid config loads; every bad input is a ConfigError at FILE:LINE:COL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from initlab.config.schema import Config, config_hash, dump_yaml, load_config
from initlab.errors import ConfigError, Problem

EXAMPLE = """\
name: playground-circle
seeds: 5
seed: 0
data: {name: circle, samples: 100}
model:
  widths: [6, 3]
  activation: relu
init:
  - {label: zero, scheme: zeros}
  - {label: appropriate, scheme: variance_scaling, scale: 1, mode: fan_in}
  - xavier_normal
train: {loss: bce, optimizer: sgd, lr: 0.1, epochs: 2000, batch_size: null}
measure: {every: 10}
"""


def write(tmp_path: Path, text: str | bytes, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def edit(old: str, new: str) -> str:
    assert old in EXAMPLE
    return EXAMPLE.replace(old, new)


def problems(source: Any, overrides: tuple[str, ...] = ()) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_config(source, overrides=overrides)
    assert info.value.problems
    return info.value.problems


def only(tmp_path: Path, text: str | bytes, overrides: tuple[str, ...] = ()) -> Problem:
    path = write(tmp_path, text)
    found = problems(path, overrides)
    assert len(found) == 1, [p.format() for p in found]
    assert found[0].file == str(path) or found[0].file == "--set"
    return found[0]


def where(p: Problem) -> tuple[str, int | None, int | None]:
    return p.path, p.line, p.col


def at(text: str, line: int, token: str) -> tuple[int, int]:
    """(line, col) of `token` on a 1-based line of `text`."""
    return line, text.splitlines()[line - 1].index(token) + 1


# ---------------------------------------------------------------- valid configs


def test_example_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, EXAMPLE))
    assert cfg.name == "playground-circle" and cfg.seeds == 5
    assert cfg.data.name == "circle" and cfg.data.samples == 100
    assert cfg.model.sizes(2, 1) == [2, 6, 3, 1] and cfg.model.hidden_widths == [6, 3]
    assert cfg.model.activation.name == "relu"
    assert [v.label for v in cfg.init] == ["zero", "appropriate", "xavier_normal"]
    assert cfg.init[1].params == {"scale": 1, "mode": "fan_in"}
    assert cfg.init[0].bias.scheme == "zeros" and cfg.init[0].lr is None
    assert cfg.train.batch_size is None and cfg.measure.every == 10


def test_resolved_round_trips_and_hash_is_stable(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, EXAMPLE))
    resolved = cfg.resolved()
    assert resolved["init"][2] | {"bias": {"scheme": "zeros"}, "lr": 0.1} == resolved["init"][2]
    assert resolved["train"]["momentum"] == 0.9 and resolved["measure"]["bins"] == 50
    json.dumps(resolved)  # plain data
    again = load_config(resolved)
    assert again.resolved() == resolved and config_hash(again) == config_hash(cfg)
    reread = load_config(write(tmp_path, dump_yaml(resolved), "dumped.yaml"))
    assert config_hash(reread) == config_hash(cfg)
    h = config_hash(cfg)
    assert len(h) == 16 and int(h, 16) >= 0
    assert config_hash(load_config(write(tmp_path, EXAMPLE), overrides=["train.lr=0.2"])) != h


def test_defaults_short_forms_and_labels(tmp_path: Path) -> None:
    text = """\
data: {name: circle}
model: {depth: 3, width: 4}
init: xavier_normal
"""
    cfg = load_config(write(tmp_path, text, "my config.yaml"))
    assert cfg.name == "my-config"  # the file stem, made safe
    assert cfg.model.sizes(2, 1) == [2, 4, 4, 4, 1] and cfg.model.activation.name == "tanh"
    assert [v.label for v in cfg.init] == ["xavier_normal"] and cfg.seeds == 1
    assert cfg.resolved()["model"]["widths"] == [4, 4, 4]
    assert cfg.resolved(task="binary")["train"]["loss"] == "bce"
    assert cfg.train.resolve_loss("multiclass") == "softmax_ce"
    assert cfg.resolved()["train"]["loss"] == "auto"

    text = """\
name: labels
data: {name: circle}
model: {widths: [3]}
init:
  - {scheme: variance_scaling, scale: 1}
  - {scheme: variance_scaling, scale: 2}
  - {scheme: zeros, lr: 0.5}
"""
    cfg = load_config(write(tmp_path, text))
    assert [v.label for v in cfg.init] == ["variance_scaling(scale=1)",
                                           "variance_scaling(scale=2)", "zeros"]
    assert cfg.resolved()["init"][2]["lr"] == 0.5


def test_mapping_source_is_not_mutated() -> None:
    source = {"name": "m", "data": {"name": "circle"}, "model": {"widths": (4,)},
              "init": {"scheme": "zeros"}}
    snapshot = json.dumps(source)
    cfg = load_config(source, overrides=["init.0.bias=zeros"])
    assert cfg.model.hidden_widths == [4] and json.dumps(source) == snapshot
    bad = problems({**source, "seeds": 0})
    assert [(p.file, p.path) for p in bad] == [(None, "seeds")]


def test_every_field_is_documented() -> None:
    schema = Config.model_json_schema()
    models = [schema, *schema["$defs"].values()]
    for model in models:
        for name, prop in model.get("properties", {}).items():
            assert prop.get("description"), name
    assert "params" not in schema["$defs"]["DataConfig"]["properties"]


# ---------------------------------------------------------------- positions of bad input


def test_yaml_syntax_error(tmp_path: Path) -> None:
    p = only(tmp_path, edit("widths: [6, 3]", "widths: [6, 3"))
    assert p.message.startswith("invalid YAML") and p.line is not None and p.line >= 6


def test_unknown_top_level_key(tmp_path: Path) -> None:
    p = only(tmp_path, edit("train:", "trian:"))
    assert where(p) == ("trian", 12, 1) and p.suggestion == "train"
    assert p.message == "unknown key 'trian'"


def test_unknown_nested_key(tmp_path: Path) -> None:
    text = edit("epochs: 2000", "epoch: 2000")
    p = only(tmp_path, text)
    assert where(p) == ("train.epoch", *at(text, 12, "epoch:")) and p.suggestion == "epochs"


def test_wrong_type(tmp_path: Path) -> None:
    p = only(tmp_path, edit("seeds: 5", "seeds: five"))
    assert where(p) == ("seeds", 2, 8) and "integer" in p.message


def test_unknown_scheme(tmp_path: Path) -> None:
    p = only(tmp_path, edit("  - xavier_normal", "  - xavier_normall"))
    assert where(p) == ("init.2.scheme", 11, 5) and p.suggestion == "xavier_normal"
    text = edit("scheme: zeros}", "scheme: zeroes}")
    p = only(tmp_path, text)
    assert where(p) == ("init.0.scheme", *at(text, 9, "zeroes")) and p.suggestion == "zeros"


def test_unknown_scheme_param(tmp_path: Path) -> None:
    text = edit("scale: 1,", "scal: 1,")
    p = only(tmp_path, text)
    assert where(p) == ("init.1.scal", *at(text, 10, "scal:")) and p.suggestion == "scale"


def test_unknown_activation(tmp_path: Path) -> None:
    p = only(tmp_path, edit("activation: relu", "activation: rleu"))
    assert where(p) == ("model.activation", 7, 15) and p.suggestion == "relu"


def test_unknown_dataset_and_dataset_param(tmp_path: Path) -> None:
    from initlab.data.datasets import params_of

    p = only(tmp_path, edit("name: circle", "name: circel"))
    assert where(p) == ("data.name", 4, 14) and p.suggestion == "circle"
    real = sorted(params_of("circle"))[0]
    typo = real[:-1] + real[-1] * 2 + "x"
    text = edit("samples: 100", f"samples: 100, {typo}: 1")
    p = only(tmp_path, text)
    assert where(p) == (f"data.{typo}", *at(text, 4, typo)) and p.suggestion == real


def test_bad_widths(tmp_path: Path) -> None:
    p = only(tmp_path, edit("[6, 3]", "[6, -3]"))
    assert where(p) == ("model.widths.1", 6, 15) and "greater than" in p.message
    p = only(tmp_path, edit("widths: [6, 3]", "widths: [6, 3]\n  depth: 2\n  width: 3"))
    assert where(p) == ("model", 6, 3) and "not both" in p.message
    p = only(tmp_path, edit("  widths: [6, 3]\n", ""))
    assert where(p) == ("model", 6, 3) and "widths" in p.message


@pytest.mark.parametrize("lr, words", [("0", "greater than 0"), ("-1", "greater than 0"),
                                       (".nan", "finite"), (".inf", "finite"),
                                       ("1e999", "finite"), ("1.0e999", "finite"),
                                       ("fast", "number")])
def test_bad_lr(tmp_path: Path, lr: str, words: str) -> None:
    text = edit("lr: 0.1", f"lr: {lr}")
    p = only(tmp_path, text)
    assert where(p) == ("train.lr", *at(text, 12, lr)) and words in p.message


def test_duplicate_labels_and_duplicate_keys(tmp_path: Path) -> None:
    p = only(tmp_path, edit("label: appropriate", "label: zero"))
    assert where(p) == ("init.1.label", 10, 13) and "duplicate label" in p.message
    p = only(tmp_path, edit("seed: 0\n", "seed: 0\nseeds: 3\n"))
    assert where(p) == ("seeds", 4, 1) and "duplicate key" in p.message


def test_python_tags_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    attack = f'!!python/object/apply:os.system ["touch {marker}"]'
    p = only(tmp_path, edit("  - xavier_normal", f"  - {attack}"))
    assert where(p)[:2] == ("init.2", 11) and "not allowed" in p.message
    p = only(tmp_path, attack + "\n")
    assert "not allowed" in p.message and p.line == 1
    p = only(tmp_path, edit("seed: 0", "seed: !!python/name:os.system"))
    assert where(p) == ("seed", 3, 7)
    assert not marker.exists()


def test_bad_name(tmp_path: Path) -> None:
    p = only(tmp_path, edit("name: playground-circle", "name: ../../etc"))
    assert where(p) == ("name", 1, 7) and ".." in p.message
    p = only(tmp_path, edit("name: playground-circle", "name: café/x"))
    assert p.path == "name"


@pytest.mark.parametrize("content, words", [("", "empty"), ("# only a comment\n", "empty"),
                                            ("- a\n- b\n", "top level"),
                                            (b"name: \xff\xfe\n", "UTF-8"),
                                            ("name: a\x00b\n", "character")])
def test_unusable_files(tmp_path: Path, content: str | bytes, words: str) -> None:
    p = only(tmp_path, content)
    assert words in p.message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    [p] = problems(tmp_path / "nope.yaml")
    assert p.file == str(tmp_path / "nope.yaml") and p.line is None and "no such" in p.message
    [p] = problems(tmp_path)
    assert "directory" in p.message


def test_all_problems_at_once(tmp_path: Path) -> None:
    text = (EXAMPLE.replace("seeds: 5", "seeds: 0").replace("train:", "trian:")
            .replace("[6, 3]", "[6, 0]").replace("scheme: zeros", "scheme: zeroes"))
    found = problems(write(tmp_path, text))
    assert [p.path for p in found] == ["seeds", "model.widths.1", "init.0.scheme", "trian"]
    assert [p.line for p in found] == sorted(p.line or 0 for p in found)
    assert all(":" in p.format() for p in found)


# ---------------------------------------------------------------- --set overrides


def test_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    cfg = load_config(path, overrides=["train.lr=0.01", "model.widths=[4, 4]", "init.1.scale=2",
                                       "name=other", "data.samples=50"])
    assert cfg.train.lr == 0.01 and cfg.model.hidden_widths == [4, 4] and cfg.name == "other"
    assert cfg.init[1].params["scale"] == 2 and cfg.data.samples == 50
    cfg = load_config(path, overrides=["init=xavier_normal", "init.0.lr=5e-1", "train.eps=1e-6"])
    assert [(v.scheme, v.lr) for v in cfg.init] == [("xavier_normal", 0.5)]
    assert cfg.train.eps == 1e-6  # 1e-6 is a number (YAML 1.2), not PyYAML's string


def test_bad_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    found = problems(path, ("train.lr", "seeds.x=1", "init.9.scheme=zeros", "train.lr=-1",
                            "init.0.scheme=zeroes", "seed=[1"))
    assert all(p.file == "--set" and p.line is None for p in found)
    assert {p.path for p in found} == {"", "seeds.x", "init.9.scheme", "train.lr",
                                       "init.0.scheme", "seed"}
    assert [p.suggestion for p in found if p.path == "init.0.scheme"] == ["zeros"]


# ---------------------------------------------------------------- hostile input


@pytest.mark.parametrize("text", [
    "seeds: " + "9" * 5000 + "\n",                        # beyond Python's int-string limit
    "seeds: " + "9" * 400 + "\n",
    "expect: " + "[" * 600 + "]" * 600 + "\n",             # deep nesting
    "expect:\n" + "".join("  " * i + "- \n" for i in range(200)),
    "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
    "name: ☃\ndata: {name: \"\\u0000\"}\n",
    "? [a, b]\n: 1\n",
    "x: *nope\n",
    "--- {}\n--- {}\n",
])
def test_hostile_input_is_a_config_error(tmp_path: Path, text: str) -> None:
    assert problems(write(tmp_path, text))


def test_merge_keys(tmp_path: Path) -> None:
    text = EXAMPLE + "base: &b {lr: 0.3}\n"
    assert problems(write(tmp_path, text))[0].path == "base"
    text = EXAMPLE.replace("train: {", "x: &t {epochs: 5, lr: 0.3}\ntrain: {<<: *t, ")
    assert [p.path for p in problems(write(tmp_path, text))] == ["x"]


def test_losses_and_optimizers(tmp_path: Path) -> None:
    from initlab.nn.losses import LOSSES

    alias = next(a for e in LOSSES if e.name == "softmax_ce" for a in e.aliases)
    cfg = load_config(write(tmp_path, edit("loss: bce", f"loss: {alias}")))
    assert cfg.train.loss == "softmax_ce"  # aliases become the canonical name
    text = edit("loss: bce", "loss: bcee")
    p = only(tmp_path, text)
    assert where(p) == ("train.loss", *at(text, 12, "bcee")) and p.suggestion == "bce"
    text = edit("optimizer: sgd", "optimizer: adamm")
    p = only(tmp_path, text)
    assert where(p) == ("train.optimizer", *at(text, 12, "adamm")) and p.suggestion == "adam"


def test_activation_parameters(tmp_path: Path) -> None:
    from initlab.nn.activations import get_activation

    name = get_activation("leaky_relu").param_name
    cfg = load_config(write(tmp_path, edit("activation: relu",
                                           f"activation: {{name: leaky_relu, {name}: 0.2}}")))
    assert (cfg.model.activation.name, cfg.model.activation.param) == ("leaky_relu", 0.2)
    text = edit("activation: relu", "activation: {name: leaky_relu, alpah: 0.2}")
    p = only(tmp_path, text)
    assert where(p) == ("model.activation.alpah", *at(text, 7, "alpah"))
    text = edit("activation: relu", "activation: {name: lekay_relu}")
    p = only(tmp_path, text)
    assert where(p) == ("model.activation.name", *at(text, 7, "lekay")) and \
        p.suggestion == "leaky_relu"


def test_bad_scheme_value_points_at_the_value(tmp_path: Path) -> None:
    text = edit("mode: fan_in", "mode: fan_inn")
    p = only(tmp_path, text)
    assert where(p) == ("init.1.mode", *at(text, 10, "fan_inn")) and p.suggestion == "fan_in"
    text = edit("  - xavier_normal", "  - {scheme: xavier_normal, bias: {scheme: constant}}")
    assert only(tmp_path, text).path.startswith("init.2.bias")


def test_variant_key_typos_suggest_variant_keys(tmp_path: Path) -> None:
    text = edit("{label: zero, scheme: zeros}", "{lable: zero, scheme: zeros}")
    p = only(tmp_path, text)
    assert where(p) == ("init.0.lable", *at(text, 9, "lable")) and p.suggestion == "label"
