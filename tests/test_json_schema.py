"""`initlab schema` (initlab.config.json_schema): the schema accepts every shipped config, rejects
misspelled keys and unknown names (and initlab rejects those too), the shipped
docs/initlab.schema.json is the current one, and the README shows the editor comment line.

`jsonschema` is not a dependency: `problems` below is a small draft-07 validator of the keywords
the schema uses (it raises on any other keyword, so the schema cannot grow past what is tested).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from initlab.config.json_schema import json_schema, schema_text
from initlab.config.schema import load_config
from initlab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
ANNOTATIONS = {"$schema", "title", "description", "default", "enumDescriptions", "examples"}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, TYPES[kind])


def problems(x: Any, s: Any, root: dict, at: str = "$") -> list[str]:
    """Where `x` breaks schema `s` (draft-07 subset); [] when it is valid."""
    if s is True or s == {}:
        return []
    if s is False:
        return [f"{at}: not allowed"]
    out: list[str] = []
    for key, rule in s.items():
        if key in ANNOTATIONS:
            continue
        if key == "$ref":
            node: Any = root
            for part in rule.removeprefix("#/").split("/"):
                node = node[part]
            out += problems(x, node, root, at)
        elif key == "type":
            kinds = rule if isinstance(rule, list) else [rule]
            if not any(_is(x, k) for k in kinds):
                out.append(f"{at}: {x!r} is not {rule}")
        elif key == "enum":
            if x not in rule:
                out.append(f"{at}: {x!r} not in enum")
        elif key == "const":
            if x != rule:
                out.append(f"{at}: {x!r} != {rule!r}")
        elif key in ("anyOf", "oneOf"):
            good = sum(not problems(x, sub, root, at) for sub in rule)
            if good == 0 or (key == "oneOf" and good > 1):
                out.append(f"{at}: matches {good} of the {key}")
        elif key == "allOf":
            for sub in rule:
                out += problems(x, sub, root, at)
        elif key == "if":
            branch = s.get("then") if not problems(x, rule, root, at) else s.get("else")
            out += problems(x, branch if branch is not None else {}, root, at)
        elif key in ("then", "else"):
            continue  # read with "if"
        elif key == "properties":
            if isinstance(x, dict):
                for name, sub in rule.items():
                    if name in x:
                        out += problems(x[name], sub, root, f"{at}.{name}")
        elif key == "additionalProperties":
            if isinstance(x, dict):
                for name in set(x) - set(s.get("properties", {})):
                    out += problems(x[name], rule, root, f"{at}.{name}")
        elif key == "propertyNames":
            if isinstance(x, dict):
                for name in x:
                    out += problems(name, rule, root, f"{at}.{name} (key)")
        elif key == "required":
            if isinstance(x, dict):
                out += [f"{at}: '{name}' missing" for name in rule if name not in x]
        elif key == "items":
            if isinstance(x, list):
                for i, item in enumerate(x):
                    out += problems(item, rule, root, f"{at}[{i}]")
        elif key in ("minItems", "maxItems", "minProperties", "maxProperties"):
            if isinstance(x, list | dict):
                n, low = len(x), key.startswith("min")
                if (n < rule) if low else (n > rule):
                    out.append(f"{at}: {key} {rule}, has {n}")
        elif key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if _is(x, "number"):
                bad = {"minimum": x < rule, "maximum": x > rule, "exclusiveMinimum": x <= rule,
                       "exclusiveMaximum": x >= rule}[key]
                if bad:
                    out.append(f"{at}: {x} breaks {key} {rule}")
        elif key == "pattern":
            if isinstance(x, str) and not re.search(rule, x):
                out.append(f"{at}: {x!r} does not match {rule}")
        elif key == "definitions":
            continue
        else:
            raise AssertionError(f"the test validator does not know the keyword {key!r}")
    return out


SCHEMA = json_schema()


def check(doc: Any) -> list[str]:
    return problems(doc, SCHEMA, SCHEMA)


def test_the_validator_itself_catches_what_it_is_meant_to() -> None:
    s = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}},
         "additionalProperties": False, "required": ["n"]}
    assert problems({"n": 2}, s, s) == []
    assert problems({"n": 0}, s, s) and problems({"n": 1.5}, s, s) and problems({"n": True}, s, s)
    assert problems({}, s, s) and problems({"n": 1, "m": 1}, s, s)
    with pytest.raises(AssertionError, match="keyword"):
        problems(1, {"multipleOf": 2}, {})


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_is_valid_under_the_schema(path: Path) -> None:
    assert check(yaml.safe_load(path.read_text())) == []


PLAYGROUND = yaml.safe_load((ROOT / "configs" / "playground.yaml").read_text())


def _edit(path: str, value: Any, rename: str | None = None) -> dict:
    """PLAYGROUND with doc[a][b]... = value (or the key renamed to `rename`)."""
    doc = copy.deepcopy(PLAYGROUND)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = doc
    for p in parents:
        node = node[p]
    if rename is not None:
        node[rename] = node.pop(last)
    else:
        node[last] = value
    return doc


BROKEN = {
    "misspelled top-level key": _edit("train", None, rename="trian"),
    "misspelled model key": _edit("model.widths", None, rename="widht"),
    "misspelled train key": _edit("train.lr", None, rename="lrr"),
    "unknown init name (a string)": _edit("init", "he_nromal"),
    "unknown init name (a list entry)": _edit("init.1.scheme", "too_smal"),
    "unknown init parameter": _edit("init.1", {"scheme": "he_normal", "mdoe": "fan_out"}),
    "unknown bias init": _edit("init.1", {"scheme": "he_normal", "bias": "zeroes"}),
    "unknown activation": _edit("model.activation", "rleu"),
    "unknown activation parameter": _edit("model.activation", {"name": "leaky_relu",
                                                               "slpoe": 0.1}),
    "unknown dataset": _edit("data.name", "circel"),
    "unknown dataset parameter": _edit("data", {"name": "circle", "nosie": 0.1}),
    "unknown loss": _edit("train.loss", "bec"),
    "unknown optimizer": _edit("train.optimizer", "adma"),
    "a negative learning rate": _edit("train.lr", -0.1),
    "a name that cannot be a folder": _edit("name", "../x"),
    "an expectation's misspelled key": _edit("expect.0", {"metric": "final_loss", "mx": 1}),
    "an unknown aggregate": _edit("expect.0", {"metric": "final_loss", "aggregate": "avg",
                                               "max": 1}),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_the_schema_rejects_what_initlab_rejects(name: str) -> None:
    doc = BROKEN[name]
    assert check(doc), f"the schema accepts a config with {name}"
    with pytest.raises(ConfigError):
        load_config(doc)


def test_names_and_aliases_are_enums_with_descriptions() -> None:
    from initlab.data.datasets import DATASETS
    from initlab.nn.activations import ACTIVATIONS
    from initlab.nn.inits import INITS

    d = SCHEMA["definitions"]
    for key, registry in (("SchemeName", INITS), ("ActivationName", ACTIVATIONS),
                          ("DatasetName", DATASETS)):
        assert d[key]["enum"] == registry.all_names() or set(d[key]["enum"]) == set(
            registry.all_names())
        assert len(d[key]["enumDescriptions"]) == len(d[key]["enum"])
        assert all(d[key]["enumDescriptions"])
    i = d["SchemeName"]["enum"].index("kaiming_normal")
    assert d["SchemeName"]["enumDescriptions"][i].endswith("(= he_normal)")
    # the models' field descriptions are the schema's
    assert SCHEMA["properties"]["seeds"]["description"].startswith("Seeds per variant")
    assert "Learning rate" in d["TrainConfig"]["properties"]["lr"]["description"]


def test_every_scheme_with_its_parameters_is_accepted() -> None:
    """Each scheme's own parameter names (initlab.nn.inits.scheme_params) and the variant keys
    are allowed beside it: the schema never refuses a key initlab takes."""
    from initlab.nn.inits import INITS, scheme_params

    for entry in INITS:
        for name in (entry.name, *entry.aliases):
            variant = {"scheme": name, "label": "x", "lr": 0.1, "bias": "zeros",
                       **{k: 1 for k in scheme_params(entry.name)}}
            doc = {**PLAYGROUND, "init": [variant, name]}
            assert check(doc) == [], (name, check(doc))


def test_the_shipped_schema_file_is_up_to_date() -> None:
    shipped = ROOT / "docs" / "initlab.schema.json"
    assert shipped.read_text() == schema_text(), \
        "regenerate it: initlab schema --out docs/initlab.schema.json"


def test_initlab_schema_prints_it() -> None:
    proc = subprocess.run([sys.executable, "-m", "initlab.cli", "schema"], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == SCHEMA


def test_readme_shows_the_editor_line_and_the_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "# yaml-language-server: $schema=" in readme
    assert "initlab schema" in readme
