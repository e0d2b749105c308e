"""ltzoo.losses: label losses, class re-weighting, SupCon, BCL, DSCL / PBSD and the two-label mixed loss."""

from ltzoo.losses.base import ClassificationLoss, as_class_counts, upcast
from ltzoo.losses.bcl import BalancedContrastiveLoss
from ltzoo.losses.cross_entropy import CrossEntropyLoss, SoftTargetCrossEntropy
from ltzoo.losses.dscl import DSCLLoss, PBSDLoss
from ltzoo.losses.focal import FocalLoss
from ltzoo.losses.ldam import LDAMLoss, ldam_margins
from ltzoo.losses.logit_adjust import BalancedSoftmaxLoss, LogitAdjustedLoss, log_class_prior, posthoc_logit_adjust
from ltzoo.losses.mixed import mixed_label_loss
from ltzoo.losses.reweighting import DeferredReweighting, class_balanced_weights
from ltzoo.losses.supcon import SupConLoss

__all__ = [
    "BalancedContrastiveLoss",
    "BalancedSoftmaxLoss",
    "ClassificationLoss",
    "CrossEntropyLoss",
    "DSCLLoss",
    "DeferredReweighting",
    "FocalLoss",
    "LDAMLoss",
    "LogitAdjustedLoss",
    "PBSDLoss",
    "SoftTargetCrossEntropy",
    "SupConLoss",
    "as_class_counts",
    "class_balanced_weights",
    "ldam_margins",
    "log_class_prior",
    "mixed_label_loss",
    "posthoc_logit_adjust",
    "upcast",
]
