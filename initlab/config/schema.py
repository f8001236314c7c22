"""YAML -> validated `Config`, with every problem positioned at FILE:LINE:COL.

    cfg = load_config("configs/playground.yaml", overrides=["train.lr=0.01"])
    cfg.model.sizes(2, 1) == [2, 6, 3, 1];  cfg.resolved() -> plain dict;  config_hash(cfg)

Three passes, and every problem of all three is reported at once (`ConfigError(problems)`):
  1. read (initlab.config.positions): `yaml.compose` (no object is ever constructed from a tag)
     -> plain values, refusing unsafe tags and duplicate keys, remembering the node of every
     key path;
  2. shape: the strict pydantic models below (types, ranges, unknown keys), their errors put in
     plain words by initlab.config.problems;
  3. names (initlab.config.problems): datasets, activations, init schemes and losses against
     their registries.
A problem's key path (`init.1.scale`) is walked back through the node tree to a line and column.
`--set key.path=value` overrides are applied between reading and checking.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from initlab.config.positions import (
    MAX_DEPTH,
    MAX_VALUES,
    MERGE,
    SCALAR_TAGS,
    SET,
    Found,
    Loc,
    Positions,
    YamlReader,
    read_text,
)
from initlab.config.problems import check_expect, check_names, from_pydantic, kind_of, show_value
from initlab.config.width import CoordcheckConfig, variant_keys, width_keys
from initlab.errors import ConfigError, Problem, UnknownNameError

__all__ = [  # the public names, some of them from initlab.config.positions
    "LOSS_FOR_TASK", "MAX_DEPTH", "MAX_VALUES", "MERGE", "NAME_RE", "SCALAR_TAGS", "SET",
    "ActivationSpec", "Config", "DataConfig", "Loc", "MeasureConfig", "ModelConfig",
    "SchemeSpec", "TrainConfig", "Variant", "config_hash", "default_labels", "dump_yaml",
    "load_config",
]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
LOSS_FOR_TASK = {"binary": "bce", "multiclass": "softmax_ce", "regression": "mse"}

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


class ResidualSpec(_Strict):
    branch: int = Field(default=2, ge=1,
                        description="Dense layers per residual branch (m >= 1).")


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
    residual: ResidualSpec | None = Field(
        default=None, description="Residual blocks {branch: m} (depth = blocks, width = the "
        "stream's); null: the plain MLP (docs/residual.md).")
    norm: Literal["layernorm", "rmsnorm", "batchnorm"] | None = Field(
        default=None, description="Normalization of residual nets; null: none.")
    norm_position: Literal["pre", "post"] = Field(
        default="pre", description="pre: x + alpha f(N(x)); post: N(x + alpha f(x)).")
    base_width: int | None = Field(default=None, ge=1, description="Where ntk/mup equal SP.")

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
            from initlab.nn.inits import INITS
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
    alpha: Finite | None = Field(
        default=None, description="Residual nets: the initial branch multiplier; default: "
        "the scheme's (rezero 0, else 1).")
    train_alpha: bool | None = Field(
        default=None, description="Residual nets: whether alpha is trained; default: the "
        "scheme's (fixup, rezero: yes).")
    parametrization: Literal["sp", "ntk", "mup"] = Field("sp", description="scaling, docs/width.md")
    readout: SchemeSpec | None = Field(None, description="The last layer's init; default: scheme")


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
            from initlab.nn.losses import LOSSES
            return name if name == "auto" else LOSSES.canonical(name)
        except (ImportError, UnknownNameError):
            return name  # pass 3 reports it

    def resolve_loss(self, task: str | None) -> str:
        """The loss name, with `auto` chosen from the data task (kept `auto` if task is None)."""
        return LOSS_FOR_TASK.get(task or "", "auto") if self.loss == "auto" else self.loss


class MeasureConfig(_Strict):
    every: int = Field(default=10, ge=1, description="Record statistics every this many steps.")
    batch: int = Field(default=1000, ge=1, description="Samples used to measure statistics.")
    bins: int = Field(default=50, ge=2, description="Histogram bins (at least 2).")
    layers: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None, min_length=1, max_length=12, description="Histogram layers (a spread).")


def _as_list(init: Any) -> Any:
    return [init] if isinstance(init, str | Mapping) else init


class Config(_Strict):
    name: str = Field(
        default="config", description="Experiment name, results/<name>/; default: file stem.")
    seeds: int = Field(
        default=1, ge=1, description="Seeds per variant; members = variants x seeds.")
    seed: int = Field(
        default=0, ge=0, description="Base seed: member s uses SeedSequence([seed, s]).")
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
    coordcheck: CoordcheckConfig | None = Field(None, description="`initlab coordcheck`")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not NAME_RE.match(name) or ".." in name or len(name) > 200:  # + .tmp-<pid>-<rand>
            raise ValueError(f"'{name[:60]}' cannot name a results folder: start with a letter"
                             " or digit, then letters, digits, . _ - (no '..'; <= 200 chars)")
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
                      "bias": self.model.bias, **self._residual(), **width_keys(self.model)},
            "init": [{"label": v.label, **_filled(v), "bias": _filled(v.bias),
                      "lr": v.lr if v.lr is not None else self.train.lr, **variant_keys(v, _filled),
                      **{k: getattr(v, k) for k in ("alpha", "train_alpha")
                         if getattr(v, k) is not None}} for v in self.init],
            "train": {**self.train.model_dump(), "loss": self.train.resolve_loss(task)},
            "measure": self.measure.model_dump(exclude_none=True),
            "expect": self.expect,
        }

    def _residual(self) -> dict[str, Any]:
        """The residual keys of `resolved()["model"]` (none for a plain MLP: same hash)."""
        m = self.model
        if m.residual is None:
            return {}
        return {"residual": m.residual.model_dump(), "norm": m.norm,
                "norm_position": m.norm_position}


def _activation_param(act: ActivationSpec) -> float | None:
    try:
        from initlab.nn.activations import get_activation
        return get_activation(act.name, act.param).param
    except Exception:  # validated earlier; the raw value is the fallback
        return act.param


def _filled(spec: SchemeSpec) -> dict[str, Any]:
    """{scheme, **params} with the scheme's default parameters filled in."""
    defaults: Any = {}
    try:
        from initlab.nn.inits import scheme_params
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
            args = {**v.params, **({"lr": v.lr} if v.lr is not None else {}), **variant_keys(v)}
            if args:
                label += "(" + ", ".join(f"{k}={show_value(x)}" for k, x in args.items()) + ")"
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


def resolved_with_hash(cfg: Config) -> dict[str, Any]:
    """The fully resolved config dict (defaults and labels filled) with its `config_hash`."""
    resolved = cfg.resolved()
    resolved["config_hash"] = config_hash(cfg)
    return resolved


def dump_yaml(data: Mapping[str, Any]) -> str:
    """A resolved config as YAML that `load_config` reads back."""
    return yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True, width=100,
                          default_flow_style=None)


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
            return tuple(loc), f"'{where}' is {kind_of(node)}, not a mapping or list"
    return tuple(loc), None


def _apply_overrides(doc: dict[str, Any], overrides: Sequence[str]) -> tuple[set[Loc],
                                                                             list[Problem]]:
    done: set[Loc] = set()
    problems: list[Problem] = []
    for text in overrides:
        key, eq, raw = str(text).partition("=")
        parts = key.strip().split(".")
        if not eq or not all(parts):
            problems.append(Problem(f"cannot use '{show_value(text)}'", file=SET,
                                    expected="key.path=value, e.g. train.lr=0.01"))
            continue
        reader = YamlReader(SET)
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
        file, default, reader = None, "config", YamlReader(None)
        try:
            doc: Any = _plain(source)
        except RecursionError:
            raise ConfigError([Problem("nested too deeply")]) from None
    else:
        file = os.fsdecode(source)
        text, unreadable = read_text(file)
        if unreadable is not None:
            raise ConfigError([unreadable])
        default, reader = _stem_name(file), YamlReader(file)
        doc = reader.read(text)
        if doc is None and not reader.problems:
            raise ConfigError([Problem("the file is empty", file=file,
                                       expected="a mapping with data, model and init")])
    if not isinstance(doc, dict):
        raise ConfigError(reader.problems or [Problem(
            f"the top level is {kind_of(doc)}", file=file, expected="a mapping of keys "
            "(name, seeds, seed, dtype, data, model, init, train, measure)")])
    _normalize(doc)
    overridden, problems = _apply_overrides(doc, overrides)
    doc.setdefault("name", default)
    found: list[Found] = []
    cfg = None
    try:
        cfg = Config.model_validate(doc)
    except ValidationError as e:
        found += [from_pydantic(err, Config) for err in e.errors(include_url=False)]
    except RecursionError:
        found.append(Found((), "nested too deeply"))
    found += check_names(doc)
    found += check_expect(doc, [v.label or "" for v in cfg.init] if cfg is not None else None,
                          any(o[:1] == ("init",) for o in overridden))
    where = Positions(file, reader.nodes, overridden)
    broken = list(reader.broken)
    problems += [where.problem(f) for f in found
                 if not any(f.loc[: len(b)] == b for b in broken)]
    problems = list(dict.fromkeys([*reader.problems, *problems]))
    if problems or cfg is None:
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.col or 0)))
    return cfg
