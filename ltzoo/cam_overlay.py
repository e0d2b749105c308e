"""`ltzoo cam`: draw images with the model's CAM and the SMCL mask box (the box a training step would paste over,
centred on the CAM peak, docs/methods/smcl.md §3.2–3.3) to PNG files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image
from torch import Tensor, nn

from .augment import centred_boxes, kept_area, model_saliency, normalize_maps, peaks, upsample
from .benchmarks import BENCHMARKS
from .data.batch_transforms import Normalize
from .data.cifar import cifar_lt


def overlay_figure(image: np.ndarray, cam: np.ndarray, box: Sequence[int] | None = None, title: str = "",
                   alpha: float = 0.5) -> Figure:
    """An (H, W, 3) uint8 image under its [0, 1] CAM (jet colours), with the box (x1, y1, x2, y2) in white
    (x = rows) and the peak as a cross."""
    figure = Figure(figsize=(3.2, 3.4), dpi=100)
    axes = figure.add_subplot()
    axes.imshow(image, interpolation="nearest")
    axes.imshow(cam, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0, interpolation="bilinear")
    row, col = np.unravel_index(np.argmax(cam), cam.shape)
    axes.plot([col], [row], marker="x", color="white", markersize=8)
    if box is not None:
        x1, y1, x2, y2 = box
        axes.add_patch(Rectangle((y1 - 0.5, x1 - 0.5), y2 - y1, x2 - x1, fill=False, edgecolor="white", linewidth=2))
    axes.set_title(title, fontsize=8)
    axes.set_axis_off()
    figure.tight_layout()
    return figure


def save_cam_overlays(model: nn.Module, images: Tensor, labels: Tensor | None, mean: Sequence[float],
                      std: Sequence[float], out_dir: str | Path, lam: float = 0.5, kind: str = "cam",
                      target: str = "label", class_names: Sequence[str] | None = None) -> list[Path]:
    """Write `<out_dir>/cam_<i>.png` for uint8 RGB `images` (B, 3, H, W): the `minmax` CAM (or Grad-CAM) of each
    label (of the prediction with `target="pred"` or without labels) at input size, and the SMCL box of ratio λ
    centred on its peak. Returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    height, width = images.shape[-2:]
    normalised = Normalize(mean, std)(images)
    with torch.no_grad():
        predicted = model(normalised).argmax(dim=1)
    targets = predicted if labels is None or target == "pred" else labels
    maps = normalize_maps(upsample(model_saliency(model, normalised, targets, kind), (height, width)), "minmax")
    boxes = centred_boxes(peaks(maps), height, width, lam)
    name = (lambda k: class_names[k]) if class_names else str
    paths = []
    for i, (image, cam, box) in enumerate(zip(images, maps, boxes)):
        known = "" if labels is None else f"label {name(int(labels[i]))}, "
        title = (f"{known}predicted {name(int(predicted[i]))}\n"
                 f"{kind} of {name(int(targets[i]))}; box λ̂ = {kept_area(box[None], height, width).item():.3f}")
        figure = overlay_figure(image.permute(1, 2, 0).numpy(), cam.numpy(), box.tolist(), title)
        paths.append(out_dir / f"cam_{i}.png")
        figure.savefig(paths[-1])
    return paths


def cifar_test_images(zoo_dataset: str, indices: Sequence[int], data_dir: str | Path | None = None
                      ) -> tuple[Tensor, Tensor, list[str]]:
    """Images (uint8, B × 3 × 32 × 32), labels and class names of the balanced CIFAR test set at `indices`."""
    if zoo_dataset not in BENCHMARKS or BENCHMARKS[zoo_dataset].kind != "cifar_lt":
        raise ValueError(f"only CIFAR-LT entries come with test images here, not {zoo_dataset!r}; "
                         "pass image files instead")
    test = cifar_lt(BENCHMARKS[zoo_dataset].cifar, "test", root=data_dir)
    chosen = np.asarray(indices)
    images = torch.from_numpy(np.ascontiguousarray(test.images[chosen])).permute(0, 3, 1, 2)
    return images, torch.as_tensor(test.labels[chosen], dtype=torch.long), list(test.class_names)


def load_image_files(paths: Sequence[str | Path], size: tuple[int, int]) -> Tensor:
    """Image files as uint8 RGB (B, 3, H, W), each resized to `size` = (H, W) bilinearly."""
    arrays = [np.asarray(Image.open(p).convert("RGB").resize((size[1], size[0]), Image.BILINEAR)) for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
