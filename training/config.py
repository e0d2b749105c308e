"""Training configs: one YAML per zoo entry, `key=value` overrides, strict keys, a fingerprint for resume checks.

The YAML files in training/configs/ are the recipes' one source (hand-kept, validated here). What a config's name
already says is not repeated in it: `name` is `<arch>_<method>_<dataset>`, so `data.dataset` and `method.name` come
from it, and `data.imb_factor` from the tag (`if100...` -> 100 on CIFAR-LT). A later stage of a multi-stage recipe
(`<name>.<tag>.<stage>.yaml`) states its method, `<method>_<stage>` (e.g. `dscl_probe`), since the name alone
cannot say which stage it is. A file or override may state any of these anyway; it must then agree with the name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ltzoo import registry
from ltzoo.benchmarks import BENCHMARKS, imb_factor_of
from ltzoo.methods import check_method_options
from ltzoo.models import CifarResNet, LTNet


class _Loader(yaml.SafeLoader):
    """PyYAML (YAML 1.1) reads `1e-3` as the string '1e-3'; read exponent floats without a dot as floats (YAML 1.2)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


class ConfigError(ValueError):
    """A config that cannot train: unknown key, bad value, or a missing required field."""


@dataclass
class DataConfig:
    dataset: str
    imb_factor: float | None = None  # CIFAR-LT only
    root: str | None = None  # data dir; None resolves LTZOO_DATA, the shared data, torchvision's folder
    batch_size: int = 128  # global batch: split evenly over processes
    num_workers: int = 8  # split-file datasets only; CIFAR runs in-process on batched tensors
    subset: int | None = None  # keep N training images (seeded choice; smoke tests)
    subset_seed: int = 0  # seed of the CIFAR-LT per-class selection


@dataclass
class OptimConfig:
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4
    nesterov: bool = False
    backbone_lr_scale: float = 1.0  # LR multiplier of everything but the classifier (Places-LT: 0.01)


@dataclass
class TrainConfig:
    name: str
    tag: str
    epochs: int
    data: DataConfig
    method: dict[str, Any]  # {"name": ..., **options of ltzoo.methods.build_method}
    schedule: dict[str, Any]  # ltzoo.scheduler.build_scheduler fields; base_lr is optim.lr, epochs the top-level epochs
    optim: OptimConfig = field(default_factory=OptimConfig)
    model: dict[str, Any] = field(default_factory=dict)  # extra architecture kwargs
    seed: int = 0
    precision: str = "auto"  # auto (bf16 where native), bf16, fp32
    channels_last: bool = True
    # train through torch.compile(model): evaluation, checkpoints and exports use the plain model (its own keys);
    # resume stays bitwise exact, but compiled weights are eager's only to float rounding and a CPU step measured no
    # faster, so it is off by default; recorded in the run's history (not the fingerprint), as hardware is (README)
    compile: bool = False
    eval_every: int = 10
    select: str = "last"  # the exported epoch: the last, or the best top-1 on the val split (every eval_every epochs)
    keep_checkpoints: int = 2
    run_dir: str = "~/.cache/ltzoo/runs/{name}.{tag}"
    release_dir: str | None = None  # None: <run_dir>/export, or releases/ with train.py --release

    @property
    def full_name(self) -> str:
        return f"{self.name}.{self.tag}"

    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir.format(name=self.name, tag=self.tag)).expanduser()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """Hash of the settings that shape the weights; fields at their default are left out, so adding a new
        option (with a default) later does not orphan existing checkpoints."""
        d = _without_defaults(self)
        for key in ("run_dir", "release_dir", "eval_every", "keep_checkpoints", "compile"):
            d.pop(key, None)
        for key in ("root", "num_workers"):
            d.get("data", {}).pop(key, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _without_defaults(obj: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = _without_defaults(value)
        elif f.default is not dataclasses.MISSING and value == f.default:
            continue
        elif f.default_factory is not dataclasses.MISSING and value == f.default_factory():
            continue
        else:
            out[f.name] = value
    return out


_NESTED = {"data": DataConfig, "optim": OptimConfig}
PRECISIONS = ("auto", "bf16", "fp32")
SELECTIONS = ("last", "val")


def _at_least(low: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: math.isfinite(v) and v >= low), f">= {low:g}"


# Ranges of the numeric fields (None passes where a field allows it): checked when the config loads, so a value
# that would fail (or silently misbehave) mid-run stops the run before any data loads.
RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": _at_least(1),
    "seed": _at_least(0),
    "eval_every": _at_least(1),
    "keep_checkpoints": _at_least(1),
    "data.batch_size": _at_least(1),
    "data.num_workers": _at_least(0),
    "data.subset": _at_least(1),
    "data.subset_seed": _at_least(0),
    "optim.lr": ((lambda v: math.isfinite(v) and v > 0), "> 0"),
    "optim.momentum": ((lambda v: 0 <= v < 1), "in [0, 1)"),
    "optim.weight_decay": _at_least(0),
    "optim.backbone_lr_scale": _at_least(0),
}

# The class each architecture of a zoo name builds: a config's `model:` section may set its constructor's arguments
# (checked when the config loads: an unknown one would stop the run only once the data has loaded).
ARCH_CLASSES: dict[str, type] = {"resnet32": CifarResNet, "resnet50": LTNet, "resnext50": LTNet, "resnet152": LTNet}
# What the zoo name or create_model sets; a `model:` section does not.
_MODEL_ARGS_NOT_SET_HERE = frozenset({"self", "num_classes", "backbone", "depth", "device", "dtype"})
# Ranges of the architecture arguments that would otherwise fail (or misbehave) only in the first forward pass.
MODEL_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "drop_rate": ((lambda v: 0 <= v < 1), "in [0, 1)"),
    "drop_path_rate": ((lambda v: 0 <= v < 1), "in [0, 1)"),
}


def _set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise ConfigError(f"override {dotted!r}: {p!r} is not a section")
    d[last] = value


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {[f'{where}{k}' for k in unknown]}; known keys here: {sorted(known)}")
    missing = [f.name for f in dataclasses.fields(cls)
               if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
               and f.name not in values]
    if missing:
        raise ConfigError(f"missing required key(s) {[f'{where}{k}' for k in missing]}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for k, v in values.items():
        if k in _NESTED and cls is TrainConfig:
            if not isinstance(v, dict):
                raise ConfigError(f"{where}{k} must be a mapping, got {v!r}")
            v = _build(_NESTED[k], v, f"{k}.")
        else:
            v = _checked(v, hints[k], f"{where}{k}")
        kwargs[k] = v
    return cls(**kwargs)


def _checked(value: Any, hint: Any, key: str) -> Any:
    """`value` if it has the field's type (an int is accepted, as a float, where a float is expected); else a
    ConfigError naming the key, so `optim.lr=abc` stops before training instead of deep inside the optimiser."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    for t in allowed:
        origin = typing.get_origin(t) or t
        if origin is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if origin in (int, float) and isinstance(value, bool):
            continue
        if origin is not type(None) and isinstance(value, origin):
            return value
    names = " or ".join("null" if t is type(None) else getattr(typing.get_origin(t) or t, "__name__", str(t))
                        for t in allowed)
    raise ConfigError(f"{key} must be {names}, got {value!r} ({type(value).__name__})")


def _name_parts(name: str) -> tuple[str, str]:
    """(method, dataset) of a zoo name `<arch>_<method>_<dataset>`, or a ConfigError saying what a name is made of."""
    arch = next((a for a in registry.ARCHS if name.startswith(f"{a}_")), None)
    dataset = next((d for d in BENCHMARKS if name.endswith(f"_{d}")), None)
    method = name[len(arch) + 1 : -len(dataset) - 1] if arch and dataset else ""
    if not method:
        raise ConfigError(f"name {name!r} is not <arch>_<method>_<dataset> (arch one of {sorted(registry.ARCHS)}, "
                          f"dataset one of {sorted(BENCHMARKS)})")
    return method, dataset


def _stage_methods(method: str) -> list[str]:
    """The method names of a method's later training stages (`dscl` -> ['dscl_probe'])."""
    stages = registry.METHODS[method].stages if method in registry.METHODS else ()
    return [f"{method}_{stage}" for stage in stages if stage]


def _with_name_fields(raw: dict[str, Any], stage: str | None) -> dict[str, Any]:
    """`raw` with `data.dataset`, `data.imb_factor` and `method.name` filled in from `name`, `tag` and the file's
    stage; a stated value that disagrees with them is a one-line ConfigError naming both."""
    name, tag = raw.get("name"), raw.get("tag")
    if not (isinstance(name, str) and isinstance(tag, str)):
        return raw  # a missing or mistyped name or tag: _build names it
    method, dataset = _name_parts(name)
    if isinstance(raw.setdefault("data", {}), dict):  # else _build names the mistyped section
        raw["data"] = _data_of(dict(raw["data"]), name, tag, dataset)
    if isinstance(raw.setdefault("method", {}), dict):
        raw["method"] = _method_of(dict(raw["method"]), name, method, stage)
    return raw


def _data_of(data: dict[str, Any], name: str, tag: str, dataset: str) -> dict[str, Any]:
    if data.setdefault("dataset", dataset) != dataset:
        raise ConfigError(f"data.dataset {data['dataset']!r} disagrees with name {name!r} (dataset {dataset!r}); "
                          "leave data.dataset out, the name gives it")
    try:
        factor = imb_factor_of(dataset, tag)
    except ValueError:
        raise ConfigError(f"tag {tag!r} of {name!r} names no imbalance factor; a {dataset} tag starts with one of "
                          f"{sorted(BENCHMARKS[dataset].imb_factors)}") from None
    if data.setdefault("imb_factor", factor) != factor:
        raise ConfigError(f"data.imb_factor {data['imb_factor']!r} disagrees with tag {tag!r} of {name!r} "
                          f"(imbalance factor {factor!r}); leave data.imb_factor out, the tag gives it")
    return data


def _method_of(options: dict[str, Any], name: str, method: str, stage: str | None) -> dict[str, Any]:
    expected = f"{method}_{stage}" if stage else method
    if stage and expected not in _stage_methods(method):
        raise ConfigError(f"config file stage {stage!r}: {method!r} has no such stage (its later stages' methods: "
                          f"{_stage_methods(method)})")
    stated = options.pop("name", expected)
    allowed = [expected] if stage else [method, *_stage_methods(method)]
    if stated not in allowed:
        where = f"stage {stage!r} of {name!r}" if stage else f"name {name!r}"
        raise ConfigError(f"method.name {stated!r} disagrees with {where} (method {' or '.join(map(repr, allowed))}); "
                          "leave method.name out of a first-stage config, the name gives it")
    return {"name": stated, **options}


def _file_stage(path: Path, raw: dict[str, Any]) -> str | None:
    """`probe` for a later-stage file `<name>.<tag>.probe.yaml`; None for `<name>.<tag>.yaml` or another name."""
    prefix = f"{raw.get('name')}.{raw.get('tag')}."
    rest = path.name[len(prefix) : -len(".yaml")] if path.name.startswith(prefix) and path.suffix == ".yaml" else ""
    return rest or None


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """A config from its `to_dict()` form (as a release's config.json records it), with the same key checks."""
    return _build(TrainConfig, _with_name_fields(dict(values), None), "")


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config and apply `a.b=value` overrides (values parsed as YAML)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; configs live in training/configs/<name>.<tag>.yaml")
    raw = _parse_yaml(path.read_text(), f"config file {path}") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(raw).__name__}")
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        _set_dotted(raw, key.strip(), _parse_yaml(value, f"override {item!r}"))
    cfg = _build(TrainConfig, _with_name_fields(raw, _file_stage(path, raw)), "")
    for key, (in_range, requirement) in RANGES.items():
        value = cfg
        for part in key.split("."):
            value = getattr(value, part)
        if value is not None and not in_range(value):
            raise ConfigError(f"{key} must be {requirement}, got {value!r}")
    _check_model_args(cfg)
    try:
        cfg.resolved_run_dir()
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"run_dir {cfg.run_dir!r} may name only {{name}} and {{tag}} in braces ({type(e).__name__}: "
                          f"{e})") from None
    if cfg.optim.nesterov and cfg.optim.momentum == 0:
        raise ConfigError("optim.nesterov needs optim.momentum > 0")
    if cfg.precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {cfg.precision!r}")
    if cfg.select not in SELECTIONS:
        raise ConfigError(f"select must be one of {SELECTIONS}, got {cfg.select!r}")
    try:  # the method's options too, so a bad one costs no data load
        check_method_options(cfg.method["name"], {k: v for k, v in cfg.method.items() if k != "name"},
                             cfg.data.batch_size)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return cfg


def _check_model_args(cfg: TrainConfig) -> None:
    """The `model:` section's keys are arguments of the name's architecture, its rates are in range, and a pinned
    backbone sha256 is one, beside the pretrained backbone it pins."""
    cls = ARCH_CLASSES[next(a for a in registry.ARCHS if cfg.name.startswith(f"{a}_"))]
    allowed = set(inspect.signature(cls.__init__).parameters) - _MODEL_ARGS_NOT_SET_HERE
    unknown = sorted(set(cfg.model) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) {[f'model.{k}' for k in unknown]}; {cls.__name__} takes {sorted(allowed)}")
    for key, (in_range, requirement) in MODEL_RANGES.items():
        value = cfg.model.get(key)
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                      and in_range(value)):
            raise ConfigError(f"model.{key} must be {requirement}, got {value!r}")
    pinned = cfg.model.get("pretrained_backbone_sha256")
    if pinned is not None:
        if not cfg.model.get("pretrained_backbone"):
            raise ConfigError("model.pretrained_backbone_sha256 pins the weights of model.pretrained_backbone: true; "
                              "set both or neither")
        if not (isinstance(pinned, str) and len(pinned) == 64 and set(pinned) <= set("0123456789abcdef")):
            raise ConfigError(f"model.pretrained_backbone_sha256 must be 64 lowercase hex digits, got {pinned!r}")


def _parse_yaml(text: str, where: str) -> Any:
    """`text` parsed as YAML, or a one-line ConfigError naming `where` and the problem's line and column."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where} is not valid YAML: {problem}{at}") from None
