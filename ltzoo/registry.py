"""The zoo's table: every `{arch}_{method}_{dataset}[.{tag}]` name, its architecture, recipe and weights.

Data-driven like timm's pretrained cfgs: `ARCHS`, `METHODS` and the benchmarks (`ltzoo.benchmarks.BENCHMARKS`)
describe the parts, `ENTRIES` lists which combinations exist (one row each), and `releases.json` (written by the
training export, never by hand) adds the sha256 and the metrics measured by `ltzoo validate` for each published tag.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from timm.models import PretrainedCfg, split_model_name_tag

from .benchmarks import get_benchmark, imb_factor_of

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
class Method:
    """A training method as the zoo names it: its paper, the classifier head its models carry, its training stages."""

    title: str
    paper: str  # arXiv id or DOI of the paper that defines (or, for CE, benchmarks) the method
    classifier: str = "linear"
    cosine_scale: float = 1.0
    # training stages in order, as config-file suffixes: "" is `<name>.<tag>.yaml`, "probe" `<name>.<tag>.probe.yaml`;
    # the last stage's export is the released model
    stages: tuple[str, ...] = ("",)
    base: str | None = "ce"  # the method it builds on, which the results table compares it with (None: CE itself)


METHODS = {
    "ce": Method("Cross-entropy", "arXiv:1906.07413", base=None),
    "ce_drw": Method("Cross-entropy with deferred re-weighting", "arXiv:1906.07413"),
    "ldam_drw": Method("LDAM loss with deferred re-weighting", "arXiv:1906.07413", classifier="cosine",
                       cosine_scale=30.0),
    "bsce": Method("Balanced Softmax cross-entropy", "arXiv:2007.10740"),
    "bcl": Method("Balanced contrastive learning", "arXiv:2207.09052", classifier="cosine", cosine_scale=30.0),
    "concutmix": Method("Contrastive CutMix (on BCL)", "arXiv:2407.04911", classifier="cosine", cosine_scale=30.0,
                        base="bcl"),
    "smcl": Method("Saliency masked contrastive learning", "arXiv:2406.02223", base="ce_drw"),
    "ce_lsm": Method("Cross-entropy + saliency-guided local semantic mixing", "doi:10.3390/make7030107"),
    "ce_drw_lsm": Method("CE-DRW + saliency-guided local semantic mixing", "doi:10.3390/make7030107", base="ce_drw"),
    "ldam_drw_lsm": Method(
        "LDAM-DRW + saliency-guided local semantic mixing", "doi:10.3390/make7030107", classifier="cosine",
        cosine_scale=30.0, base="ldam_drw",
    ),
    "dscl": Method("Decoupled supervised contrastive learning + patch-based self distillation", "arXiv:2403.06151",
                   stages=("", "probe")),
}


_BASELINES = ("ce", "ce_drw", "ldam_drw", "bsce")
_LSM = ("ce_lsm", "ce_drw_lsm", "ldam_drw_lsm")

# (arch, method, dataset, tags): tags in order, the first is the default. Large-scale tags name the recipe length.
ENTRIES: list[tuple[str, str, str, tuple[str, ...]]] = [
    *[("resnet32", m, d, CIFAR_TAGS) for m in METHODS for d in ("cifar10_lt", "cifar100_lt") if m != "concutmix"],
    ("resnet32", "concutmix", "cifar10_lt", CIFAR_TAGS),
    ("resnet32", "concutmix", "cifar100_lt", (*CIFAR_TAGS, "if100_e400")),
    *[("resnet50", m, "imagenet_lt", ("e100",)) for m in _BASELINES],
    *[("resnet50", m, "inat2018", ("e200",) if m in ("ce_drw", "ldam_drw") else ("e100",)) for m in _BASELINES],
    ("resnet152", "ce", "places_lt", ("e30",)),
    ("resnet152", "bsce", "places_lt", ("e30",)),
    ("resnet50", "bcl", "imagenet_lt", ("e90",)),
    ("resnext50", "bcl", "imagenet_lt", ("e90",)),
    ("resnet50", "bcl", "inat2018", ("e100",)),
    ("resnet50", "concutmix", "imagenet_lt", ("e100",)),
    ("resnext50", "concutmix", "imagenet_lt", ("e90", "e180")),
    ("resnet50", "concutmix", "inat2018", ("e100",)),
    ("resnet152", "concutmix", "places_lt", ("e100",)),
    ("resnext50", "smcl", "imagenet_lt", ("e100",)),
    ("resnet50", "smcl", "imagenet_lt", ("e100",)),
    *[("resnet50", m, "imagenet_lt", ("e100",)) for m in _LSM],
    *[("resnet50", m, "inat2018", ("e200",)) for m in _LSM],
    ("resnet50", "dscl", "imagenet_lt", ("e200",)),
]

# (method, dataset) whose recipe is ltzoo's own rather than the paper's, and why; the model card and `ltzoo info` say so
LTZOO_RECIPES: dict[tuple[str, str], str] = {
    **{("dscl", d): "the DSCL paper trains no CIFAR model; this ResNet-32 recipe is ltzoo's extension"
       for d in ("cifar10_lt", "cifar100_lt")},
    **{("smcl", d): "the SMCL paper publishes neither code nor hyper-parameters, so the method's details and this "
       "recipe are ltzoo's reconstruction from its abstract (CMO's recipe plus saliency masking and SupCon; unlike "
       "CMO's gate, it augments up to the last epoch, which measured better on CIFAR-10-LT IF 100)"
       for d in ("cifar10_lt", "cifar100_lt", "imagenet_lt")},
    **{(m, "cifar10_lt"): "the LSM paper reports no CIFAR-10-LT setting; this is its CIFAR-100-LT recipe with the "
       "CIFAR-LT baselines' lr 0.1 instead of 0.01 and mixing up to the last epoch instead of CMO's gate, both of "
       "which measured better on CIFAR-10-LT IF 100"
       for m in _LSM},
}

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
    """One registered family ``{arch}_{method}_{dataset}`` and its tags (``if100`` …); the first is the default."""

    arch: str
    method: str
    dataset: str
    tags: tuple[str, ...]

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
        """Keyword arguments of the timm architecture (beyond num_classes) that this entry needs."""
        method = METHODS[self.method]
        args: dict[str, Any] = {"classifier": method.classifier}
        if method.cosine_scale != 1.0:
            args["cosine_scale"] = method.cosine_scale
        if self.arch == "resnet152" and self.method in _BASELINES:
            args["embed_dim"] = 512
        return args

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
    table = {}
    for arch, method, dataset, tags in ENTRIES:
        entry = ZooEntry(arch, method, dataset, tags)
        if entry.name in table:
            raise RuntimeError(f"duplicate zoo entry {entry.name}")
        table[entry.name] = entry
    return table


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
