"""Architectures: the CIFAR ResNet, LTNet (timm backbone + head), classifier and training-only heads.

Their timm registration (`_timm_registration`, whose pretrained tags are the zoo's releases) is imported by
`ltzoo/__init__` once the methods have declared the zoo's entries.
"""

from .base import LongTailClassifier, inference_state_dict, train_heads_state_dict
from .heads import NormedLinear, ProjectionMLP, build_train_heads, create_classifier
from .ltnet import LTNet
from .resnet_cifar import CifarResNet

__all__ = [
    "CifarResNet", "LTNet", "LongTailClassifier", "NormedLinear", "ProjectionMLP",
    "build_train_heads", "create_classifier", "inference_state_dict", "train_heads_state_dict",
]
