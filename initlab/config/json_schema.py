"""The config's JSON Schema, for editors (`initlab schema`; docs/initlab.schema.json).

    json_schema() -> dict     # draft-07; every name a registry knows as an enum

Built from the pydantic models of initlab.config.schema (their field descriptions become the
schema's `description`s), then completed with what pass 3 checks by name: datasets and their
parameters, activations and their parameter, init schemes (weights and biases) and their
parameters, losses, `expect:` entries' keys and aggregates. Each enum carries the registry's
one-line descriptions (`enumDescriptions`, shown by VS Code's YAML extension). A YAML editor
given this schema completes and checks configs:

    # yaml-language-server: $schema=initlab.schema.json

The schema is a subset of what `initlab validate` checks (it cannot read the values' ranges
that depend on each other, nor the data); what it rejects, initlab rejects too. Names are
matched as written in the registries (lower case; initlab also accepts '-' for '_').
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from initlab.config.schema import NAME_RE, Config
from initlab.registry import Registry

DRAFT = "http://json-schema.org/draft-07/schema#"


def _enum(registry: Registry[Any], extra: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """{type: string, enum: [names and aliases], enumDescriptions: [...]} of a registry."""
    names, descriptions = [], []
    for name, text in extra:
        names.append(name)
        descriptions.append(text)
    for entry in registry:
        for key in (entry.name, *entry.aliases):
            names.append(key)
            alias = f" (= {entry.name})" if key != entry.name else ""
            descriptions.append(f"{entry.description}{alias}".strip())
    return {"type": "string", "enum": names, "enumDescriptions": descriptions}


def _keys_for(registry: Registry[Any], key: str, params: Any, common: Iterable[str],
              ) -> list[dict[str, Any]]:
    """One `if {key: name} then {only these keys}` per registry entry (aliases included)."""
    rules = []
    for entry in registry:
        allowed = sorted({*common, *params(entry.name)})
        rules.append({"if": {"properties": {key: {"enum": [entry.name, *entry.aliases]}},
                             "required": [key]},
                      "then": {"propertyNames": {"enum": allowed}}})
    return rules


def _scheme_object(base: dict[str, Any], keys: Iterable[str], description: str,
                   ) -> dict[str, Any]:
    """A scheme spec: a name, or {scheme, its parameters, `keys`} (Variant, bias)."""
    from initlab.nn.inits import INITS, scheme_params

    obj = copy.deepcopy(base)
    name = {"$ref": "#/definitions/SchemeName"}
    obj["properties"]["scheme"] = {**name, "description": "The init scheme."}
    obj["allOf"] = _keys_for(INITS, "scheme", scheme_params, ["scheme", *keys])
    return {"anyOf": [name, obj], "description": description}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft-07) of an initlab config file, as a dict (see the module doc)."""
    from initlab.check.expect import AGGREGATES, KEYS
    from initlab.data.datasets import DATASETS, params_of
    from initlab.nn.activations import ACTIVATIONS
    from initlab.nn.inits import INITS
    from initlab.nn.losses import LOSSES

    schema = Config.model_json_schema(ref_template="#/definitions/{model}")
    defs = schema.pop("$defs")
    props = schema["properties"]

    data = defs["DataConfig"]
    defs["DatasetName"] = {**_enum(DATASETS), "description": "A data set (`initlab list "
                           "datasets`)."}
    data["properties"]["name"] = {"$ref": "#/definitions/DatasetName",
                                  "description": data["properties"]["name"]["description"]}
    data["allOf"] = _keys_for(DATASETS, "name", params_of, ["name", "samples", "seed"])

    act = defs["ActivationSpec"]
    defs["ActivationName"] = {**_enum(ACTIVATIONS), "description": act["properties"]["name"][
        "description"]}
    act_name = {"$ref": "#/definitions/ActivationName"}
    act["properties"]["name"] = {**act_name, "default": "tanh",
                                 "description": "The activation."}
    act["additionalProperties"] = True  # {name: leaky_relu, slope: 0.1}
    act["allOf"] = _keys_for(ACTIVATIONS, "name", lambda n: [
        p for p in [ACTIVATIONS.get(n).param_name] if p], ["name", "param"])
    act["maxProperties"] = 2
    defs["Activation"] = {"anyOf": [act_name, {"$ref": "#/definitions/ActivationSpec"}],
                          "description": "An activation name, or {name, param}."}
    model = defs["ModelConfig"]["properties"]
    model["activation"] = {"$ref": "#/definitions/Activation",
                           "description": model["activation"].get("description", "")}

    defs["SchemeName"] = {**_enum(INITS), "description": "An init scheme (`initlab list "
                          "inits`)."}
    variant = defs.pop("Variant")
    bias_spec = defs.pop("SchemeSpec")
    variant_keys = [k for k in variant["properties"] if k != "scheme"]
    variant["properties"]["bias"] = {"$ref": "#/definitions/Bias",
                                     "description": variant["properties"]["bias"]["description"]}
    variant["properties"]["readout"] = {"anyOf": [{"$ref": "#/definitions/Readout"},
                                                  {"type": "null"}],
                                        "description": variant["properties"]["readout"][
                                            "description"]}
    defs["Variant"] = _scheme_object(variant, variant_keys, "An init variant: a scheme name "
                                     "or {scheme, its parameters, label, bias, lr, ...}.")
    defs["Bias"] = _scheme_object(bias_spec, [], "The bias init: a scheme name or {scheme, its "
                                  "parameters}.")
    defs["Readout"] = _scheme_object(bias_spec, [], "The readout's (last weight layer's) init: "
                                     "a scheme name or {scheme, its parameters}.")
    props["init"] = {"anyOf": [{"$ref": "#/definitions/Variant"},
                               {"type": "array", "minItems": 1,
                                "items": {"$ref": "#/definitions/Variant"}}],
                     "description": props["init"]["description"]}

    loss = defs["TrainConfig"]["properties"]["loss"]
    loss.update(_enum(LOSSES, [("auto", "from the data set's task: bce, softmax_ce or mse")]))

    keys: dict[str, Any] = {
            "variant": {"type": "string", "description": "A variant's label; all if none."},
            "metric": {"type": "string", "description": "A metric (docs/check.md), e.g. "
                       "final_loss, layers[-1].act_var / layers[0].act_var."},
            "aggregate": {"type": "string", "enum": list(AGGREGATES),
                          "description": "How the per-seed values are reduced."},
            "min": {"type": "number"}, "max": {"type": "number"},
            "between": {"type": "array", "items": {"type": "number"},
                        "minItems": 2, "maxItems": 2},
            "equals": {"description": "A number (with tol) or a text, e.g. healthy."},
            "tol": {"type": "number", "minimum": 0}}
    entry = {"type": "object", "required": ["metric"], "additionalProperties": False,
             "properties": keys}
    missing = set(KEYS) - set(keys)
    if missing:  # a new key of initlab.check.expect must be described here
        raise RuntimeError(f"json_schema: expect keys without a schema: {sorted(missing)}")
    defs["Expectation"] = entry
    props["expect"] = {"anyOf": [{"type": "array", "items": {"$ref": "#/definitions/Expectation"}},
                                 {"type": "null"}],
                       "description": props["expect"]["description"]}
    schema.pop("required", None)
    schema["required"] = ["data", "model", "init"]
    props["name"]["pattern"] = NAME_RE.pattern
    return {"$schema": DRAFT, "title": "initlab config",
            "description": "An initlab experiment config (README: The config file; "
                           "`initlab validate FILE` checks everything this schema cannot).",
            **{k: v for k, v in schema.items() if k != "title"}, "definitions": defs}


def schema_text() -> str:
    """json_schema() as the text `initlab schema` prints (stable: sorted keys, 2-space indent)."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
