"""The zoo's table: every `{arch}_{method}_{dataset}[.{tag}]` name, its architecture, recipe and weights.

Data-driven like timm's pretrained cfgs: `ARCHS` and the benchmarks (`ltzoo.benchmarks.BENCHMARKS`)
describe the parts; `METHODS` holds each method's declaration, made once in its own module with
`register_method` (its classifier, stages and the recipes it has, from which the entries derive: `entries()`),
as timm's `@register_model` fills its registry; and `releases.json` (written by the training export, never by
hand) adds the sha256 and the metrics measured by `ltzoo validate` for each published tag.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from timm.models import PretrainedCfg, split_model_name_tag

from .benchmarks import BENCHMARKS, get_benchmark, imb_factor_of

CIFAR_TAGS = ("if100", "if50", "if10")
HUB_NAMESPACE_ENV = "LTZOO_HUB_NAMESPACE"
DEFAULT_HUB_NAMESPACE = "ltzoo"
RELEASES_FILE = Path(__file__).with_name("releases.json")
# Where the repository explains how a recipe id is trained. ltzoo names recipes, never the training scripts' files or
# commands: those belong to the repository's training/ folder, and each release's config.json and card carry the
# command that trained it.
RECIPE_DOC = 'the command that trains a recipe: ltzoo\'s README, "Rebuild any checkpoint"'



@dataclass(frozen=True)
class Arch:
    """A zoo architecture: the timm architecture ltzoo.models registers, and what timm's pretrained cfg says about its
    modules. `classifier` is the name of the module `model.get_classifier()` returns (timm resets and adapts the
    head by it), `first_conv` the stem's conv, `reduction` the input pixels per feature-map pixel."""

    timm_name: str
    first_conv: str
    reduction: int
    classifier: str = "fc"


ARCHS = {
    "resnet32": Arch("resnet32_cifar", "conv1", 4),
    "resnet50": Arch("lt_resnet50", "backbone.conv1", 32),
    "resnext50": Arch("lt_resnext50_32x4d", "backbone.conv1", 32),
    "resnet152": Arch("lt_resnet152", "backbone.conv1", 32),
}


@dataclass(frozen=True)
class Recipe:
    """Where a method has a training recipe: a zoo entry `{arch}_{method}_{dataset}` and its tags (the first is the
    default); `model_args` are extra architecture arguments its models need (e.g. an embedding layer), and
    `ltzoo_recipe` says why the recipe is ltzoo's own rather than the paper's (None: it is the paper's)."""

    arch: str
    dataset: str
    tags: tuple[str, ...] = CIFAR_TAGS
    model_args: dict[str, Any] = field(default_factory=dict)
    ltzoo_recipe: str | None = None


def cifar_recipes(ltzoo_recipe: str | None = None, cifar10: str | None = None) -> tuple[Recipe, Recipe]:
    """The ResNet-32 recipes on CIFAR-10-LT and CIFAR-100-LT (IF 100, 50, 10); `cifar10` overrides the note of
    CIFAR-10-LT alone."""
    return (Recipe("resnet32", "cifar10_lt", ltzoo_recipe=cifar10 or ltzoo_recipe),
            Recipe("resnet32", "cifar100_lt", ltzoo_recipe=ltzoo_recipe))


@dataclass(frozen=True)
class Method:
    """A training method as the zoo names it, declared once beside its class with `register_method`: the class that
    trains it and the options its name binds, its paper, the classifier head its models carry (the loss reads the
    same scale), its training stages and the benchmarks it has recipes for."""

    name: str
    cls: Callable[..., Any]  # the TrainingMethod subclass (ltzoo.methods); called with class_counts, epochs, options
    title: str
    paper: str  # arXiv id or DOI of the paper that defines (or, for CE, benchmarks) the method
    options: dict[str, Any] = field(default_factory=dict)  # constructor options the name binds (ce_drw: drw on)
    classifier: str = "linear"
    cosine_scale: float = 1.0
    # training stages in order, as config-file suffixes: "" is `<name>.<tag>.yaml`, "probe" `<name>.<tag>.probe.yaml`;
    # the last stage's export is the released model
    stages: tuple[str, ...] = ("",)
    base: str | None = "ce"  # the method it builds on, which the results table compares it with (None: CE itself)
    recipes: tuple[Recipe, ...] = ()
    stage_of: str | None = None  # a later training stage of that zoo method (dscl_probe), not a zoo method itself


# zoo method name -> its declaration, filled by `register_method` as `ltzoo.methods` imports each method module
# (`import ltzoo` does), the way timm's `@register_model` fills `timm.models._registry`
METHODS: dict[str, Method] = {}
CLASSIFIERS = ("linear", "cosine")


def register_method(
    name: str,
    cls: Callable[..., Any],
    *,
    title: str,
    paper: str,
    options: dict[str, Any] | None = None,
    classifier: str = "linear",
    cosine_scale: float | None = None,
    stages: tuple[str, ...] = ("",),
    base: str | None = "ce",
    recipes: tuple[Recipe, ...] = (),
    stage_of: str | None = None,
) -> Method:
    """Declare a zoo method (called once, in the method's own module, beside its class); returns the declaration.

    A cosine classifier needs its scale s (the loss reads the same s); the bound options must be options of
    `cls` (its `option_defaults()`); a recipe must name a known architecture and benchmark. A mistake is an error
    at import, not a silent wrong entry."""
    if name in METHODS:
        raise RuntimeError(f"method {name!r} is registered twice")
    if classifier not in CLASSIFIERS:
        raise ValueError(f"method {name!r}: unknown classifier {classifier!r}; choose one of {', '.join(CLASSIFIERS)}")
    if (classifier == "cosine") != (cosine_scale is not None):
        raise ValueError(f"method {name!r}: a cosine classifier needs its cosine_scale, a linear one takes none")
    options = dict(options or {})
    parameters = cls.option_defaults()  # TrainingMethod's: the config options the class takes
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        raise ValueError(f"method {name!r} binds {unknown}, which {cls.__name__} does not take")
    for recipe in recipes:
        if recipe.arch not in ARCHS or recipe.dataset not in BENCHMARKS:
            raise ValueError(f"method {name!r}: a recipe on unknown architecture {recipe.arch!r} or benchmark "
                             f"{recipe.dataset!r}")
    method = Method(name, cls, title, paper, options, classifier, cosine_scale or 1.0, tuple(stages), base,
                    tuple(recipes), stage_of)
    METHODS[name] = method
    _entries.cache_clear()
    return method


def zoo_methods() -> dict[str, Method]:
    """The registered zoo methods in registration order (a later stage such as dscl_probe is part of its method)."""
    return {name: m for name, m in METHODS.items() if m.stage_of is None}


# Numbers the papers report (top-1 %, ResNet-32): labelled as the paper's, never as ours; the README's results table
# and `ltzoo report` print them beside the measured top-1. The LDAM-DRW paper's Table 2 gives top-1 error; the
# accuracy here is 100 minus it.
PAPER_TOP1: dict[str, tuple[str, str]] = {
    "resnet32_ce_cifar10_lt.if100": ("70.36", "LDAM-DRW paper, Table 2"),
    "resnet32_ce_cifar10_lt.if10": ("86.39", "LDAM-DRW paper, Table 2"),
    "resnet32_ldam_drw_cifar10_lt.if100": ("77.03", "LDAM-DRW paper, Table 2"),
    "resnet32_ldam_drw_cifar10_lt.if10": ("88.16", "LDAM-DRW paper, Table 2"),
    "resnet32_bcl_cifar10_lt.if100": ("84.32", "BCL, secondary quote"),
    "resnet32_bcl_cifar10_lt.if50": ("87.24", "BCL, secondary quote"),
    "resnet32_bcl_cifar10_lt.if10": ("91.12", "BCL, secondary quote"),
    "resnet32_concutmix_cifar10_lt.if100": ("86.07", "ConCutMix README"),
    "resnet32_concutmix_cifar10_lt.if50": ("88.00", "ConCutMix README"),
    "resnet32_concutmix_cifar10_lt.if10": ("91.42", "ConCutMix README"),
}


class UnknownModelError(ValueError):
    """A name that is not in the zoo; the message lists the closest registered names."""


@dataclass(frozen=True)
class ZooEntry:
    """One registered family ``{arch}_{method}_{dataset}`` and its tags (``if100`` …); the first is the default.
    Built from a method's declared `Recipe`, whose extra architecture arguments and ltzoo-recipe note it carries."""

    arch: str
    method: str
    dataset: str
    tags: tuple[str, ...]
    extra_args: dict[str, Any] = field(default_factory=dict)
    ltzoo_recipe: str | None = None  # why the recipe is ltzoo's own, not the paper's (None: the paper's)

    @property
    def name(self) -> str:
        return f"{self.arch}_{self.method}_{self.dataset}"

    @property
    def default_tag(self) -> str:
        return self.tags[0]

    @property
    def timm_arch(self) -> str:
        return ARCHS[self.arch].timm_name

    @property
    def model_args(self) -> dict[str, Any]:
        """Keyword arguments of the timm architecture (beyond num_classes) that this entry needs: the declared
        classifier (and its scale) and the recipe's extra arguments."""
        method = METHODS[self.method]
        args: dict[str, Any] = {"classifier": method.classifier}
        if method.classifier == "cosine":
            args["cosine_scale"] = method.cosine_scale
        return {**args, **self.extra_args}

    def recipe_ids(self, tag: str) -> list[str]:
        """The recipe of each training stage, in order: `name.tag`, then `name.tag.<stage>` for each later stage.
        The repository's training scripts map an id to its config and command (see `RECIPE_DOC`)."""
        return [f"{self.name}.{tag}{'.' + stage if stage else ''}" for stage in METHODS[self.method].stages]

    def recipe_id(self, tag: str) -> str:
        """The recipe whose export is the released model (the last stage's)."""
        return self.recipe_ids(tag)[-1]

    def rebuild_hint(self, tag: str) -> str:
        """How a user rebuilds this tag's weights: its recipe ids in stage order and where the command is explained."""
        return f"rebuild them from the recipe {' then '.join(self.recipe_ids(tag))} ({RECIPE_DOC})"


@lru_cache(maxsize=1)
def _entries() -> dict[str, ZooEntry]:
    """Every zoo entry, from the recipes the registered methods declare (cleared by each registration)."""
    table = {}
    for method in zoo_methods().values():
        for recipe in method.recipes:
            entry = ZooEntry(recipe.arch, method.name, recipe.dataset, recipe.tags, dict(recipe.model_args),
                             recipe.ltzoo_recipe)
            if entry.name in table:
                raise RuntimeError(f"duplicate zoo entry {entry.name}")
            table[entry.name] = entry
    return table


def entries() -> list[ZooEntry]:
    """The zoo's entries, one per declared recipe, in the methods' registration order."""
    return list(_entries().values())


def _load_releases(path: Path | None = None) -> dict[str, dict[str, Any]]:
    path = path or RELEASES_FILE  # read at call time, so RELEASES_FILE can be repointed
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def releases() -> dict[str, dict[str, Any]]:
    """Published weights: `name.tag` -> {"sha256": ..., "metrics": {...}, "validate_command": ...}."""
    return _load_releases()


def hub_namespace() -> str:
    """The Hub organisation releases live under (``$LTZOO_HUB_NAMESPACE`` or the default)."""
    return os.environ.get(HUB_NAMESPACE_ENV, DEFAULT_HUB_NAMESPACE)


def split_name(model_name: str) -> tuple[str, str]:
    """'resnet32_ce_cifar10_lt.if50' -> ('resnet32_ce_cifar10_lt', 'if50'); no tag gives '' (timm's own split)."""
    return split_model_name_tag(model_name)


def _unknown(model_name: str, candidates: list[str]) -> UnknownModelError:
    close = difflib.get_close_matches(model_name, candidates, n=5, cutoff=0.6)
    hint = f" Closest registered names: {', '.join(close)}." if close else ""
    return UnknownModelError(f"Unknown ltzoo model {model_name!r}.{hint} See `ltzoo list` for all names.")


def resolve(model_name: str) -> tuple[ZooEntry, str]:
    """Resolve a name with an optional tag to its entry and tag (the default tag when none is given)."""
    name, tag = split_name(model_name)
    entry = _entries().get(name)
    if entry is None:
        raise _unknown(model_name, list_models(include_tags=True) + list_models())
    if not tag:
        return entry, entry.default_tag
    if tag not in entry.tags:
        raise UnknownModelError(
            f"{name!r} has no tag {tag!r}; its tags are {', '.join(entry.tags)} (default {entry.default_tag})."
        )
    return entry, tag


def is_model(model_name: str) -> bool:
    """Whether ``model_name`` (with or without a tag) names a zoo entry."""
    try:
        resolve(model_name)
    except UnknownModelError:
        return False
    return True


def get_entry(model_name: str) -> ZooEntry:
    """The ZooEntry a name resolves to; an unknown name raises UnknownModelError with close matches."""
    return resolve(model_name)[0]


@dataclass
class LtzooPretrainedCfg(PretrainedCfg):
    """timm's PretrainedCfg plus what a zoo release carries beside its weights.

    A dataclass subclass is where timm tolerates extra keys: `generate_default_cfgs`, `resolve_pretrained_cfg`
    and `build_model_with_cfg` keep it, and `model.pretrained_cfg` (its `to_dict()`) then holds `sha256` (of
    model.safetensors, checked on every load), `zoo_name`, `recipe` (its id), `paper`, `metrics`, `imb_factor` and
    `model_args`: the architecture arguments the weights need (the cosine head and its scale), which the
    architectures' entry functions apply, so `timm.create_model("<arch>.<tag>")` builds the right head.
    """

    zoo_name: str | None = None
    model_args: dict[str, Any] | None = None  # "name.tag" in the zoo's spelling
    sha256: str | None = None
    recipe: str | None = None
    paper: str | None = None
    metrics: dict[str, Any] | None = None
    imb_factor: float | None = None


def timm_tag(entry: ZooEntry, tag: str) -> str:
    """The timm pretrained tag of a zoo name: resnet32_ce_cifar10_lt.if100 -> resnet32_cifar.ce_cifar10_lt_if100."""
    return f"{entry.method}_{entry.dataset}_{tag}"


def arch_cfg(arch: str, benchmark: str) -> LtzooPretrainedCfg:
    """A weightless cfg: architecture `arch` (a key of ARCHS) on `benchmark`, its classes, input and normalisation."""
    row, data = ARCHS[arch], get_benchmark(benchmark)
    return LtzooPretrainedCfg(
        architecture=row.timm_name,
        num_classes=data.num_classes,
        input_size=data.input_size,
        fixed_input_size=False,
        mean=data.mean,
        std=data.std,
        crop_pct=data.crop_pct,
        crop_mode="center",
        interpolation="bilinear",
        pool_size=tuple(s // row.reduction for s in data.input_size[1:]),
        first_conv=row.first_conv,
        classifier=row.classifier,
        license="apache-2.0",
    )


def pretrained_cfg(model_name: str) -> LtzooPretrainedCfg:
    """The timm pretrained cfg of a zoo name (and tag): transforms, Hub id, and the release's sha256 and metrics."""
    entry, tag = resolve(model_name)
    full = f"{entry.name}.{tag}"
    release = releases().get(full, {})
    return dataclasses.replace(
        arch_cfg(entry.arch, entry.dataset),
        tag=timm_tag(entry, tag),
        hf_hub_id=f"{hub_namespace()}/{full}",
        paper_ids=METHODS[entry.method].paper,
        zoo_name=full,
        model_args=entry.model_args,
        sha256=release.get("sha256"),
        recipe=entry.recipe_id(tag),
        paper=METHODS[entry.method].paper,
        metrics=release.get("metrics"),
        imb_factor=imb_factor_of(entry.dataset, tag),
    )


def get_pretrained_cfg(model_name: str) -> dict[str, Any]:
    """`pretrained_cfg(model_name)` as a dict with every field (None where a value is unknown, e.g. no sha256)."""
    return {k: v for k, v in asdict(pretrained_cfg(model_name)).items() if k != "imb_factor" or v is not None}


def timm_pretrained_cfgs() -> dict[str, LtzooPretrainedCfg]:
    """Every published release as a timm `arch.tag` row, e.g. `resnet32_cifar.ce_cifar10_lt_if100`."""
    rows = {}
    for full in sorted(releases()):
        entry, tag = resolve(full)
        rows[f"{entry.timm_arch}.{timm_tag(entry, tag)}"] = pretrained_cfg(full)
    return rows


def release_of_hub_repo(repo_id: str) -> str | None:
    """The published `name.tag` a Hub repo id of the zoo's namespace holds, if any (its sha256 is then known)."""
    namespace, _, repo = repo_id.partition("/")
    if namespace == hub_namespace() and repo in releases():
        return repo
    return None


def has_weights(model_name: str) -> bool:
    """Whether the name's tag has released weights (a sha256 in ``releases.json``)."""
    return get_pretrained_cfg(model_name)["sha256"] is not None


def list_models(
    filter: str | list[str] = "", pretrained: bool = False, include_tags: bool | None = None
) -> list[str]:
    """Registered names matching fnmatch pattern(s); `pretrained=True` keeps only published weights (with tags).

    As in `timm.list_models`, a `name.tag` matches a pattern that matches it or its name, so
    `list_models("*cifar10_lt", pretrained=True)` lists the tagged releases of every `*cifar10_lt` name."""
    if include_tags is None:
        include_tags = pretrained
    names = []
    for entry in _entries().values():
        candidates = [f"{entry.name}.{t}" for t in entry.tags] if include_tags else [entry.name]
        for candidate in candidates:
            if pretrained and not any(r.startswith(f"{candidate}.") or r == candidate for r in releases()):
                continue
            names.append(candidate)
    patterns = [filter] if isinstance(filter, str) else list(filter)
    patterns = [p for p in patterns if p]
    if patterns:
        names = [n for n in names if any(fnmatch.fnmatch(n, p) or fnmatch.fnmatch(n.split(".", 1)[0], p)
                                         for p in patterns)]
    return sorted(names)


def list_pretrained(filter: str = "") -> list[str]:
    """Every `name.tag` with published weights."""
    return list_models(filter, pretrained=True, include_tags=True)
