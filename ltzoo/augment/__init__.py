"""ltzoo.augment: CutMix / SaliencyMix boxes, saliency maps (CAM, Grad-CAM, OpenCV) and the paired-minority engine."""

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
