"""ltzoo.augment: every augmentation, one module each.

Batched, per image: `crops` (crops, flips), `colour` (jitter, grayscale), `blur`, `autoaugment`, `randaugment`, and
`views` (each recipe's training views, composed from them); `dscl_crops` (DSCL's crops and patches); `boxes`,
`cutmix`, `concutmix`, `lsm`, `saliency` and `paired` (CutMix / SaliencyMix boxes, saliency maps and the
paired-minority engine). The transform protocol, `Compose` and `Normalize` are data plumbing, in
`ltzoo.data.batch_transforms`.
"""

from ltzoo.augment.boxes import box_masks, box_size, centred_boxes, kept_area, random_centres
from ltzoo.augment.paired import PairedBatch, PairedMinorityEngine, PairedMixing, PatchRegion
from ltzoo.augment.saliency import (
    class_activation_maps,
    classifier_weights,
    frozen_batch_norm_statistics,
    grad_cam,
    model_saliency,
    normalize_maps,
    opencv_finegrained_saliency,
    peaks,
    saliency_forward,
    to_uint8_images,
    upsample,
)

__all__ = [
    "PairedBatch",
    "PairedMinorityEngine",
    "PairedMixing",
    "PatchRegion",
    "box_masks",
    "box_size",
    "centred_boxes",
    "class_activation_maps",
    "classifier_weights",
    "frozen_batch_norm_statistics",
    "grad_cam",
    "kept_area",
    "model_saliency",
    "normalize_maps",
    "opencv_finegrained_saliency",
    "peaks",
    "random_centres",
    "saliency_forward",
    "to_uint8_images",
    "upsample",
]
