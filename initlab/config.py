"""YAML -> validated `Config`, with every problem positioned at FILE:LINE:COL.

    cfg = load_config("configs/playground.yaml", overrides=["train.lr=0.01"])
    cfg.model.sizes(2, 1) == [2, 6, 3, 1];  cfg.resolved() -> plain dict;  config_hash(cfg)

Three passes, and every problem of all three is reported at once (`ConfigError(problems)`):
  1. read: `yaml.compose` (no object is ever constructed from a tag) -> plain values, refusing
     unsafe tags and duplicate keys, remembering the node of every key path;
  2. shape: the strict pydantic models below (types, ranges, unknown keys);
  3. names: datasets, activations, init schemes and losses against their registries.
A problem's key path (`init.1.scale`) is walked back through the node tree to a line and column.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from initlab.errors import BadParameterError, ConfigError, Problem, UnknownNameError, suggest

Loc = tuple[str | int, ...]
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
LOSS_FOR_TASK = {"binary": "bce", "multiclass": "softmax_ce", "regression": "mse"}
MAX_VALUES = 100_000  # values after alias expansion: guards against "billion laughs" documents
MAX_DEPTH = 50
SET = "--set"  # the `file` of problems in command-line overrides

Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Rate = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]


# ---------------------------------------------------------------- schema (pass 2)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _inline_params(schema: dict[str, Any]) -> None:
    """JSON schema: `params` are written inline in YAML, beside the named keys."""
    schema["properties"].pop("params", None)
    schema["additionalProperties"] = True


def _gather(data: Any, known: set[str]) -> Any:
    """{name: x, noise: 0.1} -> {name: x, params: {noise: 0.1}} (params checked in pass 3)."""
    if not isinstance(data, Mapping):
        return data
    out = {k: v for k, v in data.items() if k in known}
    out["params"] = {k: v for k, v in data.items() if k not in known}
    return out


class DataConfig(_Strict):
    model_config = ConfigDict(json_schema_extra=_inline_params)
    name: str = Field(description="Dataset name (`initlab list datasets`), e.g. circle, digits.")
    samples: int | None = Field(
        default=None, ge=1, description="Number of samples; null: the default.")
    seed: int | None = Field(
        default=None, ge=0, description="Data seed; null: the config's `seed`.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The dataset's own parameters, written inline.")

    @model_validator(mode="before")
    @classmethod
    def _params(cls, data: Any) -> Any:
        return _gather(data, {"name", "samples", "seed"})


class ActivationSpec(_Strict):
    name: str = Field(default="tanh", description="Activation name (`initlab list activations`).")
    param: Finite | None = Field(
        default=None, description="Its parameter (leaky_relu slope, elu alpha), or by name.")

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data}
        if isinstance(data, Mapping) and "param" not in data:
            extra = [k for k in data if k != "name"]
            if len(extra) == 1:  # {name: leaky_relu, slope: 0.1}; the key is checked in pass 3
                return {"name": data.get("name"), "param": data[extra[0]]}
        return data


class ModelConfig(_Strict):
    widths: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None, min_length=1, description="Hidden layer widths; or give depth and width.")
    depth: int | None = Field(
        default=None, ge=1, description="Number of hidden layers (with width).")
    width: int | None = Field(
        default=None, ge=1, description="Width of every hidden layer (with depth).")
    activation: ActivationSpec = Field(default_factory=lambda: ActivationSpec(),
                                       description="Hidden activation: name or {name, param}.")
    bias: bool = Field(default=True, description="Whether layers have biases.")

    @model_validator(mode="after")
    def _one_size(self) -> ModelConfig:
        if self.widths is not None and (self.depth, self.width) != (None, None):
            raise ValueError("give either `widths` or `depth` and `width`, not both")
        if self.widths is None and None in (self.depth, self.width):
            raise ValueError("no layer sizes: give `widths`, or `depth` and `width` together")
        return self

    @property
    def hidden_widths(self) -> list[int]:
        return list(self.widths) if self.widths is not None else [self.width or 0] * (
            self.depth or 0)

    def sizes(self, n_in: int, n_out: int) -> list[int]:
        """Layer sizes [n_in, *hidden widths, n_out]."""
        return [n_in, *self.hidden_widths, n_out]


class SchemeSpec(_Strict):
    model_config = ConfigDict(json_schema_extra=_inline_params)
    scheme: str = Field(description="Init scheme name (`initlab list inits`).")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The scheme's parameters (scale, mode, std...), inline.")

    @model_validator(mode="before")
    @classmethod
    def _params(cls, data: Any) -> Any:
        data = {"scheme": data} if isinstance(data, str) else data
        return _gather(data, set(cls.model_fields) - {"params"})

    @field_validator("scheme")
    @classmethod
    def _canonical(cls, name: str) -> str:
        try:
            from initlab.inits import INITS
            return INITS.canonical(name)
        except (ImportError, UnknownNameError):
            return name  # pass 3 reports it

    def spec(self) -> dict[str, Any]:
        """{scheme, **params}: what `inits.resolve` takes."""
        return {"scheme": self.scheme, **self.params}


class Variant(SchemeSpec):
    label: str | None = Field(
        default=None, description="Name in plots and tables; default: the scheme.")
    bias: SchemeSpec = Field(default_factory=lambda: SchemeSpec(scheme="zeros"),
                             description="Bias init scheme spec; default zeros.")
    lr: Positive | None = Field(
        default=None, description="This variant's learning rate; default: train.lr.")


class TrainConfig(_Strict):
    loss: str = Field(
        default="auto", description="auto (from the data task), bce, softmax_ce or mse.")
    optimizer: Literal["sgd", "momentum", "adam"] = Field(default="sgd", description="Optimizer.")
    lr: Positive = Field(default=0.1, description="Learning rate.")
    momentum: Rate = Field(default=0.9, description="Momentum coefficient (optimizer: momentum).")
    beta1: Rate = Field(default=0.9, description="Adam's first-moment decay.")
    beta2: Rate = Field(default=0.999, description="Adam's second-moment decay.")
    eps: Positive = Field(default=1e-8, description="Adam's epsilon.")
    epochs: int = Field(default=1000, ge=0, description="Training epochs; 0 measures at init only.")
    batch_size: int | None = Field(
        default=None, ge=1, description="Minibatch size; null: full batch.")

    @field_validator("loss")
    @classmethod
    def _canonical(cls, name: str) -> str:
        try:
            from initlab.losses import LOSSES
            return name if name == "auto" else LOSSES.canonical(name)
        except (ImportError, UnknownNameError):
            return name  # pass 3 reports it

    def resolve_loss(self, task: str | None) -> str:
        """The loss name, with `auto` chosen from the data task (kept `auto` if task is None)."""
        return LOSS_FOR_TASK.get(task or "", "auto") if self.loss == "auto" else self.loss


class MeasureConfig(_Strict):
    every: int = Field(default=10, ge=1,
                       description="Record statistics every this many optimizer steps.")
    batch: int = Field(default=1000, ge=1, description="Samples used to measure statistics.")
    bins: int = Field(default=50, ge=1, description="Histogram bins.")


def _as_list(init: Any) -> Any:
    return [init] if isinstance(init, str | Mapping) else init


class Config(_Strict):
    name: str = Field(
        default="config", description="Experiment name, results/<name>/; default: file stem.")
    seeds: int = Field(
        default=1, ge=1, description="Seeds per variant; members = variants x seeds.")
    seed: int = Field(
        default=0, ge=0, description="Base seed: member s uses default_rng([seed, s]).")
    dtype: Literal["float64", "float32"] = Field(default="float64", description="Float precision.")
    data: DataConfig = Field(description="The dataset and its parameters.")
    model: ModelConfig = Field(description="The MLP architecture.")
    init: list[Variant] = Field(
        min_length=1, description="Init variants: a scheme, a spec, or a list of them.")
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(), description="Training.")
    measure: MeasureConfig = Field(default_factory=lambda: MeasureConfig(),
                                   description="Measurements.")
    expect: list[dict[str, Any]] | None = Field(
        default=None, description="Checked by `initlab run` and `initlab check` (docs/check.md):"
        " [{variant?, metric, aggregate?, min | max | between | equals (+ tol)}, ...].")

    sweep: dict[str, Any] | None = Field(
        default=None, description="A grid for `initlab sweep` (docs/sweep.md); `initlab run`"
        " trains the base config and ignores it.")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not NAME_RE.match(name) or ".." in name:
            raise ValueError(f"'{name}' cannot name a results folder: start with a letter or "
                             "digit, then letters, digits, '.', '_' or '-' (no '..')")
        return name

    @field_validator("init", mode="before")
    @classmethod
    def _init_list(cls, init: Any) -> Any:
        return _as_list(init)

    @model_validator(mode="after")
    def _labels(self) -> Config:
        for v, label in zip(self.init, default_labels(self.init), strict=True):
            v.label = label
        return self

    def resolved(self, task: str | None = None) -> dict[str, Any]:
        """Plain dict with every default and label filled (loss `auto` resolved given `task`)."""
        act = self.model.activation
        return {
            "name": self.name, "seeds": self.seeds, "seed": self.seed, "dtype": self.dtype,
            "data": {"name": self.data.name, "samples": self.data.samples,
                     "seed": self.data.seed, **self.data.params},
            "model": {"widths": self.model.hidden_widths,
                      "activation": {"name": act.name, "param": _activation_param(act)},
                      "bias": self.model.bias},
            "init": [{"label": v.label, **_filled(v), "bias": _filled(v.bias),
                      "lr": v.lr if v.lr is not None else self.train.lr} for v in self.init],
            "train": {**self.train.model_dump(), "loss": self.train.resolve_loss(task)},
            "measure": self.measure.model_dump(),
            "expect": self.expect,
        }


def _activation_param(act: ActivationSpec) -> float | None:
    try:
        from initlab.activations import get_activation
        return get_activation(act.name, act.param).param
    except Exception:  # validated earlier; the raw value is the fallback
        return act.param


def _filled(spec: SchemeSpec) -> dict[str, Any]:
    """{scheme, **params} with the scheme's default parameters filled in."""
    defaults: Any = {}
    try:
        from initlab.inits import scheme_params
        defaults = scheme_params(spec.scheme)
    except Exception:  # optional refinement only
        pass
    plain = (str, int, float, bool, type(None))
    filled = {k: v for k, v in dict(defaults or {}).items() if isinstance(v, plain)}
    return {"scheme": spec.scheme, **filled, **spec.params}


def default_labels(variants: Sequence[Variant]) -> list[str]:
    """Explicit labels as given; others the scheme, plus (k=v, ...) when it would repeat."""
    bases = [v.scheme for v in variants]
    taken = {v.label for v in variants if v.label}
    labels: list[str] = []
    for i, v in enumerate(variants):
        if v.label:
            labels.append(v.label)
            continue
        label = bases[i]
        if label in taken or bases.count(label) > 1:
            args = {**v.params, **({"lr": v.lr} if v.lr is not None else {})}
            if args:
                label += "(" + ", ".join(f"{k}={_show(x)}" for k, x in args.items()) + ")"
        n, unique = 2, label
        while unique in taken:
            unique, n = f"{label} #{n}", n + 1
        taken.add(unique)
        labels.append(unique)
    return labels


def config_hash(cfg: Config) -> str:
    """16 hex chars of sha256 over the canonical JSON of `cfg.resolved()`."""
    text = json.dumps(cfg.resolved(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dump_yaml(data: Mapping[str, Any]) -> str:
    """A resolved config as YAML that `load_config` reads back."""
    return yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True, width=100,
                          default_flow_style=None)


# ---------------------------------------------------------------- reading YAML (pass 1)

_TAG = "tag:yaml.org,2002:"
SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp", "binary")}
MERGE = _TAG + "merge"


@dataclass
class _Found:
    """A problem known by its key path; `_Positions` turns it into a positioned Problem."""

    loc: Loc
    message: str
    expected: str | None = None
    suggestion: str | None = None
    at_key: bool = False  # point at the key (unknown key) rather than at its value


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node):
        self.node = node


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-3 as a number (YAML 1.2; PyYAML's 1.1 wants 1.0e-3)."""


_Loader.add_implicit_resolver(
    _TAG + "float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _safe_tag(node: yaml.Node) -> bool:
    if isinstance(node, yaml.MappingNode):
        return node.tag == _TAG + "map"
    if isinstance(node, yaml.SequenceNode):
        return node.tag == _TAG + "seq"
    return node.tag in SCALAR_TAGS


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


class _Reader:
    """Plain values from `yaml.compose`'s node tree: tags other than YAML's plain types are
    refused before anything is constructed; duplicate keys are problems; the key and value node
    of every key path are kept for positioning."""

    def __init__(self, file: str | None):
        self.file = file
        self.nodes: dict[Loc, tuple[yaml.Node | None, yaml.Node]] = {}
        self.problems: list[Problem] = []
        self.broken: set[Loc] = set()
        self.count = 0
        self._scalars = yaml.SafeLoader("")  # its constructor, for plain scalars only

    def read(self, text: str) -> Any:
        try:
            root = yaml.compose(text, Loader=_Loader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f" ({e.context})" if e.context else ""
            self.problems.append(self._problem(mark, (), f"invalid YAML: {e.problem}{where}"))
            return None
        except yaml.reader.ReaderError as e:
            line = text[: e.position].count("\n") + 1
            self.problems.append(Problem(f"invalid character {e.character!r} (line {line})",
                                         file=self.file, expected="printable text"))
            return None
        except (yaml.YAMLError, RecursionError) as e:
            message = "nested too deeply" if isinstance(e, RecursionError) else str(e)
            self.problems.append(Problem(message, file=self.file))
            return None
        if root is None:
            return None
        try:
            return self.value(root, ())
        except _TooLarge as e:
            self.fail(e.node, (), f"nested deeper than {MAX_DEPTH} levels or more than "
                      f"{MAX_VALUES} values (after expanding aliases)")
            return None

    def _problem(self, mark: yaml.Mark | None, loc: Loc, message: str,
                 expected: str | None = None) -> Problem:
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        return Problem(message, ".".join(map(str, loc)), self.file, line, col, expected)

    def fail(self, node: yaml.Node, loc: Loc, message: str, expected: str | None = None) -> None:
        self.problems.append(self._problem(node.start_mark, loc, message, expected))
        self.broken.add(loc)

    def value(self, node: yaml.Node, loc: Loc, key: yaml.Node | None = None, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_VALUES or depth > MAX_DEPTH:
            raise _TooLarge(node)
        self.nodes.setdefault(loc, (key, node))
        if not _safe_tag(node):
            self.fail(node, loc, f"tag '{_short(node.tag)}' not allowed", "plain YAML values")
            return None
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, loc, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.value(n, (*loc, i), None, depth + 1) for i, n in enumerate(node.value)]
        try:
            return self._scalars.construct_object(node)
        except Exception as e:  # e.g. an int of 5000 digits, a bad timestamp
            self.fail(node, loc, f"cannot read this value: {e}")
            return None

    def mapping(self, node: yaml.MappingNode, loc: Loc, depth: int) -> dict[str, Any]:
        pairs = [(k, v) for k, v in node.value if k.tag != MERGE]
        explicit = len(pairs)
        for k, v in node.value:  # `<<: *base` merges; explicit keys win
            if k.tag == MERGE:
                pairs += self.merged(v, (*loc, "<<"))
        out: dict[str, Any] = {}
        first: dict[str, yaml.Node] = {}
        for i, (key_node, value_node) in enumerate(pairs):
            if not isinstance(key_node, yaml.ScalarNode) or not _safe_tag(key_node):
                self.fail(key_node, loc, "a key must be a plain name")
                continue
            key = str(key_node.value)
            if key in first:
                if i < explicit:
                    line = first[key].start_mark.line + 1
                    self.problems.append(self._problem(
                        key_node.start_mark, (*loc, key), f"duplicate key '{key}' (first on "
                        f"line {line}); YAML would silently keep only one", "each key once"))
                continue
            first[key] = key_node
            out[key] = self.value(value_node, (*loc, key), key_node, depth + 1)
        return out

    def merged(self, node: yaml.Node, loc: Loc) -> list[tuple[yaml.Node, yaml.Node]]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        if not all(isinstance(s, yaml.MappingNode) for s in sources):
            self.fail(node, loc, "'<<' merges a mapping or a list of mappings")
            return []
        return [(k, v) for s in sources for k, v in s.value if k.tag != MERGE]


def _read_text(file: str) -> tuple[str, Problem | None]:
    def fail(message: str) -> tuple[str, Problem]:
        return "", Problem(message, file=file)

    try:
        raw = Path(file).read_bytes()
    except FileNotFoundError:
        return fail("no such file")
    except IsADirectoryError:
        return fail("this is a directory, not a config file")
    except PermissionError:
        return fail("cannot read the file: permission denied")
    except OSError as e:
        return fail(f"cannot read the file: {e.strerror or e}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        return fail(f"not UTF-8 text (byte {e.start}, line {line})")
    return text.removeprefix("\ufeff"), None


# ---------------------------------------------------------------- --set overrides


def _normalize(doc: dict[str, Any]) -> None:
    """`init: xavier_normal` -> [{scheme: xavier_normal}], so `init.0.scale=2` has a target."""
    init = _as_list(doc.get("init"))
    if isinstance(init, list):  # `init:` (null) or a number is left to the shape check
        doc["init"] = [{"scheme": v} if isinstance(v, str) else v for v in init]


def _set_path(doc: dict[str, Any], parts: list[str], value: Any) -> tuple[Loc, str | None]:
    """Set doc[a][b][0]... = value; returns the key path (ints for list indices) or an error."""
    node: Any = doc
    loc: list[str | int] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, dict):
            loc.append(part)
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        elif isinstance(node, list):
            if not part.isdigit() or int(part) > len(node):
                return tuple(loc), f"'{part}' is not an index of this list (0..{len(node) - 1})"
            loc.append(int(part))
            if int(part) == len(node):  # one past the end appends
                node.append({})
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        else:
            where = ".".join(map(str, loc))
            return tuple(loc), f"'{where}' is {_kind(node)}, not a mapping or list"
    return tuple(loc), None


def _apply_overrides(doc: dict[str, Any], overrides: Sequence[str]) -> tuple[set[Loc],
                                                                             list[Problem]]:
    done: set[Loc] = set()
    problems: list[Problem] = []
    for text in overrides:
        key, eq, raw = str(text).partition("=")
        parts = key.strip().split(".")
        if not eq or not all(parts):
            problems.append(Problem(f"cannot use '{_show(text)}'", file=SET,
                                    expected="key.path=value, e.g. train.lr=0.01"))
            continue
        reader = _Reader(SET)
        value = reader.read(raw)
        if reader.problems:
            problems += [Problem(p.message, key.strip(), SET, expected=p.expected)
                         for p in reader.problems]
            continue
        loc, error = _set_path(doc, parts, value)
        if error:
            problems.append(Problem(error, key.strip(), SET, expected="a path through mappings"
                                    " and list indices, e.g. init.0.scale"))
            continue
        done.add(loc)
        _normalize(doc)
    return done, problems


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


def _check_data(doc: Mapping[str, Any]) -> list[_Found]:
    from initlab import data

    spec = doc.get("data")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        return []
    name, common = spec["name"], ("name", "samples", "seed")
    try:
        accepted = dict(data.params_of(name))
    except UnknownNameError as e:
        return [_Found(("data", "name"), f"unknown dataset '{name}'",
                       _choices(data.DATASETS.names()), e.suggestion)]
    found = []
    for key, value in spec.items():
        if key in common:
            continue
        if key not in accepted:
            found.append(_Found(("data", key), f"dataset '{name}' has no parameter '{key}'",
                                _choices(sorted(accepted)), suggest(key, [*accepted, *common]),
                                at_key=True))
        elif (why := _mismatch(value, accepted[key])) is not None:
            found.append(_Found(("data", key), why))
    return found


def _check_activation(doc: Mapping[str, Any]) -> tuple[list[_Found], str | None, float | None]:
    """Problems with model.activation, and the (name, param) that the inits are checked with."""
    from initlab.activations import ACTIVATIONS, get_activation

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
        return [_Found(name_loc, f"unknown activation '{spec}'", _choices(ACTIVATIONS.names()),
                       e.suggestion)], None, None
    except (BadParameterError, ValueError, TypeError) as e:
        return [_Found((*loc, key) if key else loc, _core(e))], None, None
    if key not in (None, "param", act.param_name):
        allowed = [act.param_name] if act.param_name else []
        return [_Found((*loc, key), f"activation '{act.name}' has no parameter '{key}'",
                       " or ".join([*allowed, "param"]) if allowed else "no parameter",
                       suggest(key, allowed), at_key=True)], act.name, act.param
    return [], act.name, act.param


def _check_scheme(spec: Mapping[str, Any], loc: Loc, activation: str | None,
                  activation_param: float | None, keys: Sequence[str] = ()) -> list[_Found]:
    """One init spec {scheme, **params} against `inits.resolve`; `keys`: its other keys."""
    from initlab import inits

    scheme = spec.get("scheme")
    if not isinstance(scheme, str):
        return []  # the shape check reports it
    bad = [k for k, x in spec.items() if isinstance(x, float) and not math.isfinite(x)]
    if bad:
        return [_Found((*loc, k), f"must be a finite number, got {spec[k]}") for k in bad]
    try:
        inits.resolve(dict(spec), activation=activation, activation_param=activation_param)
    except UnknownNameError as e:
        if e.name == scheme:
            return [_Found((*loc, "scheme"), f"unknown init scheme '{scheme}'",
                           _choices(inits.INITS.names()), e.suggestion)]
        key = next((k for k, x in spec.items() if k != "scheme" and x == e.name), None)
        return [_Found((*loc, key) if key else loc, f"unknown {e.kind} '{e.name}'",
                       _choices(e.choices), e.suggestion)]
    except BadParameterError as e:
        known = e.param in spec
        unknown_key = known and e.param not in inits.scheme_params(scheme)
        core, hint = _core(e), e.suggestion
        expected = _choices(e.choices) if e.choices and "one of" not in core else None
        if unknown_key:  # a typo of label/bias/lr counts too
            allowed = [*inits.scheme_params(scheme), *keys]
            expected, hint = _choices(allowed), suggest(e.param, allowed)
        return [_Found((*loc, e.param) if known else loc, core, expected, hint, unknown_key)]
    except Exception as e:  # any other refusal, in the user's words
        return [_Found(loc, f"cannot use this init: {e}")]
    return []


def _check_init(doc: Mapping[str, Any], activation: str | None,
                activation_param: float | None) -> list[_Found]:
    variants = doc.get("init")
    found: list[_Found] = []
    labels: dict[str, int] = {}
    for i, v in enumerate(variants if isinstance(variants, list) else []):
        if not isinstance(v, Mapping):
            continue
        weight = {k: x for k, x in v.items() if k not in ("label", "bias", "lr")}
        found += _check_scheme(weight, ("init", i), activation, activation_param,
                               ("label", "bias", "lr"))
        bias = {"scheme": v["bias"]} if isinstance(v.get("bias"), str) else v.get("bias")
        if isinstance(bias, Mapping):
            found += _check_scheme(bias, ("init", i, "bias"), activation, activation_param)
        label = v.get("label")
        if isinstance(label, str) and label in labels:
            found.append(_Found(("init", i, "label"), f"duplicate label '{label}' (init."
                                f"{labels[label]} has it too)", "a different label per variant"))
        elif isinstance(label, str):
            labels[label] = i
    return found


def _check_loss(doc: Mapping[str, Any]) -> list[_Found]:
    from initlab.losses import LOSSES

    train = doc.get("train")
    loss = train.get("loss") if isinstance(train, Mapping) else None
    if not isinstance(loss, str) or loss == "auto" or loss in LOSSES:
        return []
    names = ["auto", *LOSSES.names()]
    return [_Found(("train", "loss"), f"unknown loss '{loss}'", _choices(names),
                   suggest(loss, ["auto", *LOSSES.all_names()]))]


def _check_names(doc: Mapping[str, Any]) -> list[_Found]:
    """Pass 3; a registry module that cannot be imported skips only its own check."""
    found: list[_Found] = []
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
    return found


def _check_expect(doc: Mapping[str, Any], cfg: Config | None) -> list[_Found]:
    """`expect:` entries (initlab.check): keys, metric paths, one bound; variant labels once
    `init` is valid. Entries that are not mappings are left to the shape check."""
    entries = doc.get("expect")
    if not isinstance(entries, list):
        return []
    from initlab.check import parse_expectations

    init = doc.get("init")
    labels = [v.label or "" for v in cfg.init] if cfg is not None else (
        [v["label"] for v in init] if isinstance(init, list) and all(
            isinstance(v, Mapping) and isinstance(v.get("label"), str) for v in init) else None)
    _, problems = parse_expectations(entries, labels)
    return [_Found(("expect", p.index, p.key) if p.key else ("expect", p.index), p.message,
                   p.expected, p.suggestion, p.at_key)
            for p in problems if isinstance(entries[p.index], Mapping)]


# ---------------------------------------------------------------- pydantic -> plain words

TYPE_WORDS = {
    "int_type": "an integer", "int_from_float": "an integer", "int_parsing": "an integer",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "string_type": "a string", "list_type": "a list", "dict_type": "a mapping",
    "model_type": "a mapping", "model_attributes_type": "a mapping", "none_required": "null",
}


def _kind(value: Any) -> str:
    words = {type(None): "null", bool: "a boolean", int: "an integer", float: "a number",
             str: "a string", list: "a list", dict: "a mapping"}
    return words.get(type(value), type(value).__name__)


def _got(value: Any) -> str:
    """'a string '100'', 'an integer 5', 'null': what the user wrote, in words."""
    shown = repr(_show(value)) if isinstance(value, str) else _show(value)
    return "null" if value is None else f"{_kind(value)} {shown}"


def _show(value: Any) -> str:
    try:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
    except ValueError:  # an int too long to print
        text = "(a huge number)"
    return text if len(text) <= 40 else text[:37] + "..."


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for a in get_args(annotation) if (m := _model_in(a)) is not None), None)


def _fields_at(loc: Loc) -> list[str]:
    """The keys allowed at `loc`, for 'did you mean' on unknown keys."""
    model: Any = Config
    for part in loc:
        if isinstance(part, str):
            field = model.model_fields.get(part) if model is not None else None
            model = _model_in(field.annotation) if field is not None else None
    return [f for f in model.model_fields if f != "params"] if model is not None else []


def _from_pydantic(err: Mapping[str, Any]) -> _Found:
    loc, kind, value = tuple(err["loc"]), err["type"], err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        fields, key = _fields_at(loc[:-1]), str(loc[-1])
        return _Found(loc, f"unknown key '{key}'", _choices(fields), suggest(key, fields), True)
    if kind == "missing":
        return _Found(loc, f"missing key '{loc[-1]}'")
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return _Found(loc, f"{_show(value)!r} is not allowed" if isinstance(value, str) else
                      f"got {_got(value)}", _choices(choices),
                      suggest(value, choices))
    if kind in TYPE_WORDS:
        return _Found(loc, f"expected {TYPE_WORDS[kind]}, got {_got(value)}")
    if kind == "finite_number":
        return _Found(loc, f"must be a finite number, got {_show(value)}")
    if kind == "too_short":
        return _Found(loc, f"needs at least {ctx.get('min_length', 1)} item(s)")
    message = str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
    scalar = kind != "value_error" and (value is None or isinstance(value, str | int | float))
    return _Found(loc, f"{message}, got {_show(value)}" if scalar else message)


# ---------------------------------------------------------------- positions


@dataclass
class _Positions:
    file: str | None
    nodes: Mapping[Loc, tuple[yaml.Node | None, yaml.Node]]
    overridden: set[Loc]

    def mark(self, loc: Loc, at_key: bool) -> yaml.Mark | None:
        """The deepest node on `loc`: its key if asked and exact, else its value."""
        for n in range(len(loc), -1, -1):
            head = loc[:n]
            # `init: x` was made a one-element list: init.0.* lives at init.*
            alt = ("init", *head[2:]) if head[:2] == ("init", 0) else head
            for cand in (head, alt):
                if cand in self.nodes:
                    key, value = self.nodes[cand]
                    exact = n == len(loc)
                    return (key if at_key and exact and key is not None else value).start_mark
        return None

    def problem(self, f: _Found) -> Problem:
        path = ".".join(map(str, f.loc))
        if any(f.loc[: len(o)] == o for o in self.overridden):
            return Problem(f.message, path, SET, None, None, f.expected, f.suggestion)
        mark = self.mark(f.loc, f.at_key) if self.file is not None else None
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        return Problem(f.message, path, self.file, line, col, f.expected, f.suggestion)


# ---------------------------------------------------------------- load_config


def _plain(value: Any) -> Any:
    """A deep copy of a caller's mapping, with tuples as lists (as YAML would give)."""
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _stem_name(file: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(file).stem).lstrip("._-")
    return re.sub(r"\.{2,}", ".", name) or "config"


def load_config(source: str | os.PathLike[str] | Mapping[str, Any], *,
                overrides: Sequence[str] = ()) -> Config:
    """Read, override (`key.path=value`, value parsed as YAML) and validate a config.

    Raises ConfigError listing every problem found, each at FILE:LINE:COL when known."""
    if isinstance(source, Mapping):
        file, default, reader = None, "config", _Reader(None)
        try:
            doc: Any = _plain(source)
        except RecursionError:
            raise ConfigError([Problem("nested too deeply")]) from None
    else:
        file = os.fsdecode(source)
        text, unreadable = _read_text(file)
        if unreadable is not None:
            raise ConfigError([unreadable])
        default, reader = _stem_name(file), _Reader(file)
        doc = reader.read(text)
        if doc is None and not reader.problems:
            raise ConfigError([Problem("the file is empty", file=file,
                                       expected="a mapping with data, model and init")])
    if not isinstance(doc, dict):
        raise ConfigError(reader.problems or [Problem(
            f"the top level is {_kind(doc)}", file=file, expected="a mapping of keys "
            "(name, seeds, seed, dtype, data, model, init, train, measure)")])
    _normalize(doc)
    overridden, problems = _apply_overrides(doc, overrides)
    doc.setdefault("name", default)
    found: list[_Found] = []
    cfg = None
    try:
        cfg = Config.model_validate(doc)
    except ValidationError as e:
        found += [_from_pydantic(err) for err in e.errors(include_url=False)]
    except RecursionError:
        found.append(_Found((), "nested too deeply"))
    found += _check_names(doc)
    found += _check_expect(doc, cfg)
    where = _Positions(file, reader.nodes, overridden)
    broken = list(reader.broken)
    problems += [where.problem(f) for f in found
                 if not any(f.loc[: len(b)] == b for b in broken)]
    problems = list(dict.fromkeys([*reader.problems, *problems]))
    if problems or cfg is None:
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.col or 0)))
    return cfg
