"""Image classification, the first task: labelled images (`data/images.py`), a head with one
output per class, cross-entropy (label smoothing for training), top-1 accuracy."""

from __future__ import annotations

import math

import torch
from torch.nn import functional

from nasc.dsl import NascUsageError
from nasc.runtime.data.images import Batches, ImageData, load_data
from nasc.runtime.tasks.base import Task
from nasc.runtime.tasks.registry import register_task


@register_task("classification")
class Classification(Task):
    """Labelled images in, one logit per class out; reports call top-1 accuracy (percent)
    accuracy."""

    metric = "acc"
    sums = ("correct",)
    words = {"channels": "image channels", "size": "image size", "classes": "classes"}

    def load(self, spec, cache_dir=None, image_size=None) -> ImageData:
        """`digits`, `cifar10`, `cifar100` or an ImageFolder path (see `data.images.load_data`)."""
        return load_data(spec, cache_dir, image_size)

    def examples(self, data: ImageData, split: str) -> int:
        return len(data.train_labels if split == "train" else data.test_labels)

    def batches(
        self,
        data: ImageData,
        split,
        batch_size,
        device,
        *,
        indices=None,
        augment=False,
        drop_last=False,
        cutout=0,
        shard=(0, 1),
    ) -> Batches:
        images, labels = (
            (data.train_images, data.train_labels)
            if split == "train"
            else (data.test_images, data.test_labels)
        )
        if indices is not None:
            images, labels = images[indices], labels[indices]
        return Batches(
            data, images, labels, batch_size, device, augment, drop_last, cutout, shard=shard
        )

    def mix(self, data: ImageData, seed: int) -> ImageData:
        """Both splits permuted from `seed` after a canonical sort (`ImageData.mixed`): a
        class-sorted folder and the same images shuffled give the same batches."""
        return data.mixed(seed)

    def facts(self, data: ImageData) -> dict[str, int]:
        return {"channels": data.channels, "size": data.size, "classes": data.num_classes}

    def check_output(self, output: torch.Tensor, targets: torch.Tensor) -> None:
        if output.dim() != 2 or output.shape[0] != targets.shape[0]:
            raise NascUsageError(
                f"the network's head produces {tuple(output.shape)} for {targets.shape[0]} "
                "images; classification needs (images, classes) logits",
                hint="end the network with a head such as bn_relu_pool_linear(classes)",
            )

    def loss(self, output, targets, smoothing: float = 0.0) -> torch.Tensor:
        return functional.cross_entropy(output, targets, label_smoothing=smoothing)

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        return output.argmax(1)

    def batch_sums(self, output, targets) -> dict[str, torch.Tensor]:
        return {"correct": (self.predict(output) == targets).sum()}

    def metrics(self, sums: dict[str, float], seen: int) -> dict[str, float]:
        return {"acc": 100.0 * sums["correct"] / max(seen, 1)}

    def chance_loss(self, data: ImageData) -> float:
        return math.log(max(data.num_classes, 2))
