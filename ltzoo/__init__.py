"""ltzoo: a timm-style model zoo for long-tailed image recognition."""

from . import methods  # noqa: F401  (each method module declares its zoo methods: registry.METHODS, the entries)
from .factory import create_model
from .hub import push_to_hub, save_pretrained
from .models import _timm_registration  # noqa: F401  (architectures + released weights with timm: needs the above)
from .registry import get_pretrained_cfg, is_model, list_models, list_pretrained

__version__ = "0.1.0"

__all__ = [
    "__version__", "create_model", "get_pretrained_cfg", "is_model", "list_models", "list_pretrained",
    "push_to_hub", "save_pretrained",
]
