"""A config's problems in the user's words, each known by its key path (`Found`).

    from_pydantic(err, Config)  pass 2: a pydantic error -> "expected an integer, got a string '5'"
    check_names(doc)            pass 3: datasets, activations, init schemes and losses against
                                their registries, with their parameters and "did you mean"
    check_expect(doc, labels)     `expect:` entries (initlab.check.expect)

`initlab.config.positions.Positions` places each at FILE:LINE:COL.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any, get_args

from pydantic import BaseModel

from initlab.config.positions import Found, Loc
from initlab.errors import BadParameterError, UnknownNameError, suggest

# ---------------------------------------------------------------- pydantic -> plain words

TYPE_WORDS = {
    "int_type": "an integer", "int_from_float": "an integer", "int_parsing": "an integer",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "string_type": "a string", "list_type": "a list", "dict_type": "a mapping",
    "model_type": "a mapping", "model_attributes_type": "a mapping", "none_required": "null",
}


def kind_of(value: Any) -> str:
    """The kind of a YAML value in words: a string, an integer, null..."""
    words = {type(None): "null", bool: "a boolean", int: "an integer", float: "a number",
             str: "a string", list: "a list", dict: "a mapping"}
    return words.get(type(value), type(value).__name__)


def _got(value: Any) -> str:
    """'a string '100'', 'an integer 5', 'null': what the user wrote, in words."""
    shown = repr(show_value(value)) if isinstance(value, str) else show_value(value)
    return "null" if value is None else f"{kind_of(value)} {shown}"


def show_value(value: Any) -> str:
    """`value` as short text (at most 40 characters), for messages."""
    try:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
    except ValueError:  # an int too long to print
        text = "(a huge number)"
    return text if len(text) <= 40 else text[:37] + "..."


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for a in get_args(annotation) if (m := _model_in(a)) is not None), None)


def _fields_at(root: type[BaseModel], loc: Loc) -> list[str]:
    """The keys allowed at `loc` in `root`, for 'did you mean' on unknown keys."""
    model: Any = root
    for part in loc:
        if isinstance(part, str):
            field = model.model_fields.get(part) if model is not None else None
            model = _model_in(field.annotation) if field is not None else None
    return [f for f in model.model_fields if f != "params"] if model is not None else []


def from_pydantic(err: Mapping[str, Any], root: type[BaseModel]) -> Found:
    """One pydantic error of validating `root` (the Config model), in plain words."""
    loc, kind, value = tuple(err["loc"]), err["type"], err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        fields, key = _fields_at(root, loc[:-1]), str(loc[-1])
        return Found(loc, f"unknown key '{key}'", _choices(fields), suggest(key, fields), True)
    if kind == "missing":
        return Found(loc, f"missing key '{loc[-1]}'")
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return Found(loc, f"{show_value(value)!r} is not allowed" if isinstance(value, str) else
                      f"got {_got(value)}", _choices(choices),
                      suggest(value, choices))
    if kind in TYPE_WORDS:
        return Found(loc, f"expected {TYPE_WORDS[kind]}, got {_got(value)}")
    if kind == "finite_number":
        return Found(loc, f"must be a finite number, got {show_value(value)}")
    if kind == "too_short":
        return Found(loc, f"needs at least {ctx.get('min_length', 1)} item(s)")
    message = str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
    scalar = kind != "value_error" and (value is None or isinstance(value, str | int | float))
    return Found(loc, f"{message}, got {show_value(value)}" if scalar else message)



# ---------------------------------------------------------------- names (pass 3)


def _choices(names: Sequence[str]) -> str:
    return "one of: " + ", ".join(names) if names else "no parameters"


def _core(e: Exception) -> str:
    """An error's own message, without the 'expected'/'did you mean' tail Problem adds back."""
    return re.split(r"; (?:expected one of|did you mean)", str(e))[0]


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _mismatch(value: Any, default: Any) -> str | None:
    """Why `value` cannot replace a dataset parameter whose default is `default`, if it can't."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"expected true or false, got {_got(value)}"
    if isinstance(default, int) and not (isinstance(value, int) and not isinstance(value, bool)):
        return f"expected an integer, got {_got(value)}"
    if isinstance(default, float) and not _is_number(value):
        return f"expected a number, got {_got(value)}"
    if isinstance(default, str) and not isinstance(value, str):
        return f"expected a string, got {_got(value)}"
    return None


def _check_data(doc: Mapping[str, Any]) -> list[Found]:
    from initlab.data import datasets as data

    spec = doc.get("data")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        return []
    name, common = spec["name"], ("name", "samples", "seed")
    try:
        accepted = dict(data.params_of(name))
    except UnknownNameError as e:
        return [Found(("data", "name"), f"unknown dataset '{name}'",
                       _choices(data.DATASETS.names()), e.suggestion)]
    found = []
    for key, value in spec.items():
        if key in common:
            continue
        if key not in accepted:
            found.append(Found(("data", key), f"dataset '{name}' has no parameter '{key}'",
                                _choices(sorted(accepted)), suggest(key, [*accepted, *common]),
                                at_key=True))
        elif (why := _mismatch(value, accepted[key])) is not None:
            found.append(Found(("data", key), why))
    return found


def _check_activation(doc: Mapping[str, Any]) -> tuple[list[Found], str | None, float | None]:
    """Problems with model.activation, and the (name, param) that the inits are checked with."""
    from initlab.nn.activations import ACTIVATIONS, get_activation

    model = doc.get("model")
    spec = model.get("activation", "tanh") if isinstance(model, Mapping) else None
    loc: Loc = ("model", "activation")
    key, param, name_loc = None, None, loc
    if isinstance(spec, Mapping):
        extra = [k for k in spec if k != "name"]
        key = extra[0] if len(extra) == 1 else None
        param = spec[key] if key is not None and _is_number(spec[key]) else None
        spec, name_loc = spec.get("name"), (*loc, "name")
    if not isinstance(spec, str) or (isinstance(param, float) and not math.isfinite(param)):
        return [], None, None  # the shape check reports it
    try:
        act = get_activation(spec, param)
    except UnknownNameError as e:
        return [Found(name_loc, f"unknown activation '{spec}'", _choices(ACTIVATIONS.names()),
                       e.suggestion)], None, None
    except (BadParameterError, ValueError, TypeError) as e:
        return [Found((*loc, key) if key else loc, _core(e))], None, None
    if key not in (None, "param", act.param_name):
        allowed = [act.param_name] if act.param_name else []
        return [Found((*loc, key), f"activation '{act.name}' has no parameter '{key}'",
                       " or ".join([*allowed, "param"]) if allowed else "no parameter",
                       suggest(key, allowed), at_key=True)], act.name, act.param
    return [], act.name, act.param


def _check_scheme(spec: Mapping[str, Any], loc: Loc, activation: str | None,
                  activation_param: float | None, keys: Sequence[str] = ()) -> list[Found]:
    """One init spec {scheme, **params} against `inits.resolve`; `keys`: its other keys."""
    from initlab.nn import inits

    scheme = spec.get("scheme")
    if not isinstance(scheme, str):
        return []  # the shape check reports it
    bad = [k for k, x in spec.items() if isinstance(x, float) and not math.isfinite(x)]
    if bad:
        return [Found((*loc, k), f"must be a finite number, got {spec[k]}") for k in bad]
    try:
        inits.resolve(dict(spec), activation=activation, activation_param=activation_param)
    except UnknownNameError as e:
        if e.name == scheme:
            return [Found((*loc, "scheme"), f"unknown init scheme '{scheme}'",
                           _choices(inits.INITS.names()), e.suggestion)]
        key = next((k for k, x in spec.items() if k != "scheme" and x == e.name), None)
        return [Found((*loc, key) if key else loc, f"unknown {e.kind} '{e.name}'",
                       _choices(e.choices), e.suggestion)]
    except BadParameterError as e:
        known = e.param in spec
        unknown_key = known and e.param not in inits.scheme_params(scheme)
        core, hint = _core(e), e.suggestion
        expected = _choices(e.choices) if e.choices and "one of" not in core else None
        if unknown_key:  # a typo of label/bias/lr counts too
            allowed = [*inits.scheme_params(scheme), *keys]
            expected, hint = _choices(allowed), suggest(e.param, allowed)
        return [Found((*loc, e.param) if known else loc, core, expected, hint, unknown_key)]
    except Exception as e:  # any other refusal, in the user's words
        return [Found(loc, f"cannot use this init: {e}")]
    return []


# a variant's keys besides its scheme's
VARIANT_KEYS = ("label", "bias", "lr", "alpha", "train_alpha", "parametrization", "readout")


def _check_residual(doc: Mapping[str, Any]) -> list[Found]:
    """Keys that need a residual net (model.norm, init.N.alpha / train_alpha, the residual init
    schemes) on a plain MLP, and `widths` (unequal layers) on a residual one."""
    from initlab.nn.inits import INITS
    from initlab.nn.residual_inits import SCHEMES

    names = [name for name, *_ in SCHEMES]
    model = doc.get("model")
    if not isinstance(model, Mapping):
        return []
    found: list[Found] = []
    residual = model.get("residual") is not None
    need = "model.residual, e.g. {branch: 2} (a residual net)"
    if not residual and model.get("norm") is not None:
        found.append(Found(("model", "norm"), "a norm needs residual blocks", need))
    if residual and model.get("widths") is not None:
        found.append(Found(("model", "widths"), "a residual net has one width (the stream's)",
                           "depth (blocks) and width instead of widths"))
    variants = doc.get("init")
    for i, v in enumerate(variants if isinstance(variants, list) else []):
        if not isinstance(v, Mapping) or residual:
            continue
        for key in ("alpha", "train_alpha"):
            if v.get(key) is not None:
                found.append(Found(("init", i, key), f"'{key}' is the branch multiplier of "
                                   "residual blocks; this model has none", need, at_key=True))
        scheme = v.get("scheme")
        if isinstance(scheme, str) and scheme in INITS and \
                INITS.canonical(scheme) in names:
            found.append(Found(("init", i, "scheme"), f"init scheme '{scheme}' is for residual "
                               "nets (its layers' roles: branch, stream, readout)", need))
    return found


def _check_init(doc: Mapping[str, Any], activation: str | None,
                activation_param: float | None) -> list[Found]:
    variants = doc.get("init")
    found: list[Found] = []
    labels: dict[str, int] = {}
    for i, v in enumerate(variants if isinstance(variants, list) else []):
        if not isinstance(v, Mapping):
            continue
        weight = {k: x for k, x in v.items() if k not in VARIANT_KEYS}
        found += _check_scheme(weight, ("init", i), activation, activation_param, VARIANT_KEYS)
        for key in ("bias", "readout"):
            spec = {"scheme": v[key]} if isinstance(v.get(key), str) else v.get(key)
            if isinstance(spec, Mapping):
                found += _check_scheme(spec, ("init", i, key), activation, activation_param)
        label = v.get("label")
        if isinstance(label, str) and label in labels:
            found.append(Found(("init", i, "label"), f"duplicate label '{label}' (init."
                                f"{labels[label]} has it too)", "a different label per variant"))
        elif isinstance(label, str):
            labels[label] = i
    return found


def _check_base_width(doc: Mapping[str, Any]) -> list[Found]:
    """ntk and mup variants read widths against model.base_width: it must be given."""
    model, variants = doc.get("model"), doc.get("init")
    if not isinstance(variants, list):
        return []
    model = model if isinstance(model, Mapping) else {}
    scaled = [(i, v["parametrization"]) for i, v in enumerate(variants)
              if isinstance(v, Mapping) and v.get("parametrization") in ("ntk", "mup")]
    if model.get("residual") is not None:
        return [Found(("init", i, "parametrization"), f"parametrization '{name}' is for the "
                      "plain MLP (residual nets: not yet)", "parametrization: sp")
                for i, name in scaled]
    if model.get("base_width") is not None:
        return []
    return [Found(("init", i, "parametrization"), f"parametrization '{name}' needs "
                  "model.base_width (the width where it equals SP)",
                  "model: {..., base_width: 64}, or parametrization: sp") for i, name in scaled]


def _check_loss(doc: Mapping[str, Any]) -> list[Found]:
    from initlab.nn.losses import LOSSES

    train = doc.get("train")
    loss = train.get("loss") if isinstance(train, Mapping) else None
    if not isinstance(loss, str) or loss == "auto" or loss in LOSSES:
        return []
    names = ["auto", *LOSSES.names()]
    return [Found(("train", "loss"), f"unknown loss '{loss}'", _choices(names),
                   suggest(loss, ["auto", *LOSSES.all_names()]))]


def check_names(doc: Mapping[str, Any]) -> list[Found]:
    """Pass 3; a registry module that cannot be imported skips only its own check."""
    found: list[Found] = []
    with suppress(ImportError):
        found += _check_data(doc)
    with suppress(ImportError):
        found += _check_loss(doc)
    activation, param = "tanh", None  # a bad activation is reported once: check inits as tanh
    with suppress(ImportError):
        act_found, name, value = _check_activation(doc)
        found += act_found
        if name is not None:
            activation, param = name, value
    with suppress(ImportError):
        found += _check_init(doc, activation, param)
    with suppress(ImportError):
        found += _check_residual(doc)
    found += _check_base_width(doc)
    return found + _check_layers(doc)


def _check_layers(doc: Mapping[str, Any]) -> list[Found]:
    """measure.layers (histogram layers) within the net's weight layers, the last the output."""
    model, measure = doc.get("model"), doc.get("measure")
    layers = measure.get("layers") if isinstance(measure, Mapping) else None
    if not isinstance(model, Mapping) or not isinstance(layers, list):
        return []
    widths, depth = model.get("widths"), model.get("depth")
    n = len(widths) + 1 if isinstance(widths, list) else depth + 1 if isinstance(depth, int) \
        else None
    return [Found(("measure", "layers", i), f"layer {l} is beyond the net's {n} weight layers",
                  f"layers from 1 to {n}") for i, l in enumerate(layers)
            if n is not None and isinstance(l, int) and not isinstance(l, bool) and l > n]


def check_expect(doc: Mapping[str, Any], labels: list[str] | None,
                 init_overridden: bool = False) -> list[Found]:
    """`expect:` entries (initlab.check.expect): keys, metric paths, one bound; variant labels once
    `init` is valid (`labels`: the validated variants' labels, None if `init` is not), unless
    `--set` replaced `init` (an expectation naming a variant it removed is skipped when checked,
    not an error). Entries that are not mappings are left to the shape check. The same for
    `coordcheck.expect` (checked on a coordcheck's folder by `initlab check`)."""
    section = doc.get("coordcheck")
    found = _check_expect_at(doc, labels, ("expect",), doc.get("expect"), init_overridden)
    if isinstance(section, Mapping):
        found += _check_expect_at(doc, labels, ("coordcheck", "expect"), section.get("expect"),
                                  init_overridden)
    return found


def _check_expect_at(doc: Mapping[str, Any], labels: list[str] | None, at: Loc,
                     entries: Any, init_overridden: bool) -> list[Found]:
    if not isinstance(entries, list):
        return []
    from initlab.check.expect import index_problems, parse_expectations

    init = doc.get("init")
    labels = labels if labels is not None else (
        [v["label"] for v in init] if isinstance(init, list) and all(
            isinstance(v, Mapping) and isinstance(v.get("label"), str) for v in init) else None)
    found, problems = parse_expectations(entries, None if init_overridden else labels)
    if at[0] == "coordcheck":  # checked on a coordcheck's folder: its own kind of variant
        problems += index_problems(found, None, None, kind="coordcheck")
    else:
        problems += index_problems(found, *_seeds_layers(doc), curve=_curve_points(doc),
                                   kind=_kind(doc))
    return [Found((*at, p.index, p.key) if p.key else (*at, p.index), p.message,
                   p.expected, p.suggestion, p.at_key)
            for p in problems if isinstance(entries[p.index], Mapping)]



def _seeds_layers(doc: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """The config's seeds and the rows of its summary's `layers` when known (plain ints): an
    MLP's weight layers (hidden + the readout), a residual net's depth + 2 (input projection,
    blocks, readout), at most SUMMARY_LAYERS of them plus the chosen ones (results.layers)."""
    from initlab.results.layers import summary_layers

    seeds = doc.get("seeds")
    model = doc.get("model")
    model = model if isinstance(model, Mapping) else {}
    widths, measure = model.get("widths"), doc.get("measure")
    depth: int | None = model["depth"] if _int(model.get("depth")) else None
    wanted = measure.get("layers") if isinstance(measure, Mapping) else None
    wanted = [l for l in wanted if _int(l)] if isinstance(wanted, list) else None
    rows: int | None = None
    if _kind(doc) == "residual" and depth is not None and widths is None:
        rows = len({*summary_layers(depth + 2, wanted or None), 1, depth})
    elif _kind(doc) == "mlp" and isinstance(widths, list) and "depth" not in model:
        rows = len(summary_layers(len(widths) + 1, wanted or None))
    elif _kind(doc) == "mlp" and depth is not None and widths is None:
        rows = len(summary_layers(depth + 1, wanted or None))
    return (seeds if _int(seeds) else None), rows


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


def _kind(doc: Mapping[str, Any]) -> str | None:
    """"residual" (model.residual set), "mlp" (a model without it), None (no model yet)."""
    model = doc.get("model")
    if not isinstance(model, Mapping):
        return None
    return "mlp" if model.get("residual") is None else "residual"


def _curve_points(doc: Mapping[str, Any]) -> int | None:
    """Points of summary.json's loss_curve: epochs + 1, at most experiment.CURVE_POINTS."""
    from initlab.experiment import CURVE_POINTS

    train = doc.get("train")
    epochs = train.get("epochs", 1000) if isinstance(train, Mapping) else 1000
    return min(epochs + 1, CURVE_POINTS) if isinstance(epochs, int) and \
        not isinstance(epochs, bool) and epochs >= 0 else None
