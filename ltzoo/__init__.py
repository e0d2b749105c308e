"""ltzoo: a timm-style model zoo for long-tailed image recognition."""

from . import models  # noqa: F401  (registers ltzoo architectures with timm)
from .factory import create_model
from .hub import push_to_hub, save_pretrained
from .registry import get_pretrained_cfg, is_model, list_models, list_pretrained

__version__ = "0.1.0"

__all__ = [
    "__version__", "create_model", "get_pretrained_cfg", "is_model", "list_models", "list_pretrained",
    "push_to_hub", "save_pretrained",
]
