"""torch.hub entry points: one per ltzoo registry name and one per `name.tag`, generated from the registry.

    model = torch.hub.load("<owner>/ltzoo", "resnet32_smcl_cifar100_lt", pretrained=True)
    model = torch.hub.load("<owner>/ltzoo", "resnet32_smcl_cifar100_lt.if50", pretrained=True)
    model = torch.hub.load("<owner>/ltzoo", "resnet32_smcl_cifar100_lt", tag="if50", pretrained=True)  # the same
    model = torch.hub.load("/path/to/ltzoo", "resnext50_smcl_imagenet_lt", source="local")

Works from a plain checkout: torch.hub puts the repository folder on sys.path, and `ltzoo` is imported from it.
"""

import os as _os
import sys as _sys
from collections.abc import Callable as _Callable

_REPO_DIR = _os.path.dirname(_os.path.abspath(__file__))
if _REPO_DIR not in _sys.path:  # loaded by file path rather than by torch.hub
    _sys.path.insert(0, _REPO_DIR)

import ltzoo as _ltzoo  # noqa: E402
from ltzoo import registry as _registry  # noqa: E402
from ltzoo.benchmarks import BENCHMARKS as _BENCHMARKS  # noqa: E402

dependencies = ["torch", "torchvision", "timm", "huggingface_hub", "safetensors"]


def _doc(name: str) -> str:
    entry, tag = _registry.resolve(name)
    method, dataset = _registry.METHODS[entry.method], _BENCHMARKS[entry.dataset]
    tags = ", ".join(f"{t} (default)" if t == entry.default_tag else t for t in entry.tags)
    which = f"tag {tag}" if "." in name else "the default tag, or of `tag`"
    return (
        f"{name}: {method.title} ({method.paper}) on {dataset.title}, architecture {entry.timm_arch}.\n\n"
        f"Weight tags: {tags}.\n"
        f"pretrained: load the published weights of {which} (verified by sha256).\n"
        "Other keyword arguments (num_classes, checkpoint_path, with_heads, ...) go to ltzoo.create_model."
    )


def _entry_point(name: str) -> _Callable[..., object]:
    """The entry point of a name (then `tag` picks the weights, as `name.tag` would) or of a `name.tag`."""
    if "." in name:
        def entry(pretrained: bool = False, **kwargs: object) -> object:
            return _ltzoo.create_model(name, pretrained=pretrained, **kwargs)
    else:
        def entry(pretrained: bool = False, tag: str | None = None, **kwargs: object) -> object:
            return _ltzoo.create_model(f"{name}.{tag}" if tag else name, pretrained=pretrained, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = _doc(name)
    return entry


for _name in _ltzoo.list_models() + _ltzoo.list_models(include_tags=True):
    globals()[_name] = _entry_point(_name)
