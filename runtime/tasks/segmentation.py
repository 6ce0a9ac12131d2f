"""Semantic segmentation: images with a class label per pixel (`data/segmentation/`), a network
that ends in per-pixel logits at the input's size, per-pixel cross-entropy that ignores the label
255, and the mean IoU and pixel accuracy of a confusion matrix.

The network's output contract: `net(images)` returns logits of shape (N, classes, H, W), where
(H, W) is the input's size (or a tuple whose first item is that, as with an auxiliary head); the
targets are int64 label maps (N, H, W) of class indices, 255 where no loss or metric counts.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional

from nasc.dsl import NascUsageError
from nasc.runtime.data.segmentation import (
    IGNORE,
    SegmentationBatches,
    SegmentationData,
    load_segmentation,
)
from nasc.runtime.tasks.base import Task
from nasc.runtime.tasks.registry import register_task

PER_PIXEL_HINT = (
    "end the network with a per-pixel head such as `head seg_head(classes)`, which the compiler "
    "resizes to the input size"
)


def confusion_matrix(predicted: torch.Tensor, targets: torch.Tensor, classes: int) -> torch.Tensor:
    """The (classes, classes) int64 counts of pixels whose true class is the row and predicted
    class the column (torchvision's `ConfusionMatrix` layout); pixels labelled `IGNORE` (or
    any label outside 0 .. classes - 1) are left out."""
    keep = (targets >= 0) & (targets < classes)
    index = targets[keep] * classes + predicted[keep]
    return torch.bincount(index, minlength=classes * classes).reshape(classes, classes)


def segmentation_scores(confusion: torch.Tensor) -> dict[str, float]:
    """The mean IoU and pixel accuracy (percent) of a confusion matrix (rows: truth).

    A class's IoU is diag / (row sum + column sum - diag), as torchvision's segmentation
    reference computes it; the mean is over the classes whose union (row sum + column sum -
    diag) is not empty, that is the classes present in the ground truth or the prediction of
    the pass (torchvision's mean would be NaN when a class is absent from both). Pixel accuracy
    is the diagonal over all counted pixels. An empty matrix scores 0.
    """
    confusion = confusion.double()
    diagonal = confusion.diag()
    union = confusion.sum(1) + confusion.sum(0) - diagonal
    present = union > 0
    total = float(confusion.sum())
    if not bool(present.any()) or total == 0:
        return {"miou": 0.0, "pixel_acc": 0.0}
    iou = diagonal[present] / union[present]
    return {
        "miou": 100.0 * float(iou.mean()),
        "pixel_acc": 100.0 * float(diagonal.sum()) / total,
    }


@register_task("segmentation")
class Segmentation(Task):
    """Images in, per-pixel class logits out; reports call mean IoU (percent) accuracy."""

    metric = "miou"
    metric_label = "mIoU"
    sums = ("confusion",)
    words = {"channels": "image channels", "size": "image size", "classes": "classes"}

    def load(self, spec, cache_dir=None, image_size=None) -> SegmentationData:
        """`shapes`, a VOC tree or a Cityscapes root (see `data.segmentation.load_segmentation`)."""
        return load_segmentation(spec, cache_dir, image_size)

    def examples(self, data: SegmentationData, split: str) -> int:
        return len(data.train_masks if split == "train" else data.test_masks)

    def batches(
        self,
        data: SegmentationData,
        split,
        batch_size,
        device,
        *,
        indices=None,
        augment=False,
        drop_last=False,
        cutout=0,
        shard=(0, 1),
    ) -> SegmentationBatches:
        """Batches of images and label maps; `augment` scales, crops and flips image and mask
        together (`SegmentationBatches`); `cutout` does not apply to label maps and is
        ignored."""
        images, masks = (
            (data.train_images, data.train_masks)
            if split == "train"
            else (data.test_images, data.test_masks)
        )
        if indices is not None:
            images, masks = images[indices], masks[indices]
        return SegmentationBatches(
            data, images, masks, batch_size, device, augment, drop_last, shard=shard
        )

    def mix(self, data: SegmentationData, seed: int) -> SegmentationData:
        """Both splits permuted from `seed` after a canonical sort (`SegmentationData.mixed`)."""
        return data.mixed(seed)

    def facts(self, data: SegmentationData) -> dict[str, int]:
        return {"channels": data.channels, "size": data.size, "classes": data.num_classes}

    def check_output(self, output: torch.Tensor, targets: torch.Tensor) -> None:
        """Refuse an output that is not (N, classes, H, W) at the targets' (H, W), or has fewer
        channels than a label of the batch needs."""
        count, height, width = targets.shape
        want = f"(images, classes, {height}, {width}) logits"
        if output.dim() != 4 or output.shape[0] != count or tuple(output.shape[2:]) != (
            height,
            width,
        ):
            raise NascUsageError(
                f"the network's head produces {tuple(output.shape)} for {count} images of "
                f"{height} x {width}; segmentation needs {want}, one per pixel at the input "
                "size",
                hint=PER_PIXEL_HINT,
            )
        labels = targets[targets != IGNORE]
        if labels.numel() and int(labels.max()) >= output.shape[1]:
            raise NascUsageError(
                f"the network's head gives {output.shape[1]} classes but the data has the label "
                f"{int(labels.max())}",
                hint="give the head one output per class: declare a `classes` parameter and "
                "end with `head seg_head(classes)`",
            )

    def loss(self, output, targets, smoothing: float = 0.0) -> torch.Tensor:
        """The mean cross-entropy over the pixels not labelled 255 (0 when a batch has
        none, rather than NaN)."""
        total = functional.cross_entropy(
            output, targets, ignore_index=IGNORE, label_smoothing=smoothing, reduction="sum"
        )
        return total / (targets != IGNORE).sum().clamp_min(1)

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        """The class of each pixel (N, H, W)."""
        return output.argmax(1)

    def batch_sums(self, output, targets) -> dict[str, torch.Tensor]:
        """The batch's confusion matrix (classes x classes, int64)."""
        return {"confusion": confusion_matrix(self.predict(output), targets, output.shape[1])}

    def metrics(self, sums, seen: int) -> dict[str, float]:
        """`miou` and `pixel_acc` of the pass's confusion matrix (`segmentation_scores`)."""
        confusion = sums["confusion"]
        if not torch.is_tensor(confusion):  # no batch was summed
            return {"miou": 0.0, "pixel_acc": 0.0}
        return segmentation_scores(confusion)

    def chance_loss(self, data: SegmentationData) -> float:
        return math.log(max(data.num_classes, 2))
