"""Label maps in memory (`SegmentationData`) and their batches, with the joint augmentation of
image and mask (random scale, crop back to the size, horizontal flip)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import attrs
import torch
from torch.nn import functional

from nasc.runtime.data.images import Batches, mix_splits, standard_layout

IGNORE = 255  # the label of pixels no loss or metric counts (borders, unlabelled, padding)


@attrs.frozen(kw_only=True)
class SegmentationData:
    """Images (N, C, H, W) uint8 and their label maps (N, H, W) uint8, held in memory.

    A label is a class index (0 .. classes - 1) or `IGNORE` (255).

    Attributes:
        classes: the class names, index by index.
        mean, std: per-channel normalisation on the 0..1 scale.
        scale: the range of the random scale of training augmentation ((1, 1): none).
        flip: random horizontal flips for training augmentation.
        order: how the splits are ordered: empty as loaded, or what `mixed` made
            (`mixed:<seed>:<digest of the order>`).
    """

    name: str
    train_images: torch.Tensor
    train_masks: torch.Tensor
    test_images: torch.Tensor
    test_masks: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    order: str = ""

    @property
    def channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def size(self) -> int:
        return int(self.train_images.shape[2])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, count: int, seed: int = 0) -> SegmentationData:
        """At most `count` training images and `count // 4` (at least as many as there are
        classes, where the test split has them) test images, drawn with a fixed seed."""
        generator = torch.Generator().manual_seed(seed)
        train = torch.randperm(len(self.train_masks), generator=generator)[:count]
        test_count = max(count // 4, min(len(self.test_masks), self.num_classes))
        test = torch.randperm(len(self.test_masks), generator=generator)[:test_count]
        return attrs.evolve(
            self,
            train_images=self.train_images[train],
            train_masks=self.train_masks[train],
            test_images=self.test_images[test],
            test_masks=self.test_masks[test],
        )

    def mixed(self, seed: int) -> SegmentationData:
        """Both splits in one fixed order that depends on the images, masks and `seed` alone,
        as `ImageData.mixed` makes it: sorted by a digest of every image and its mask, then
        permuted by a generator seeded from `seed`; `order` records the seed and a digest of
        the result, which a resumed search checks."""
        return mix_splits(self, seed, "masks", _digests)


def _digests(images: torch.Tensor, masks: torch.Tensor) -> list[bytes]:
    """A BLAKE2b digest of each image's bytes and its mask's."""
    pixels = images.reshape(len(images), -1).contiguous().numpy()
    labels = masks.reshape(len(masks), -1).contiguous().numpy()
    return [
        hashlib.blake2b(image.tobytes() + mask.tobytes(), digest_size=16).digest()
        for image, mask in zip(pixels, labels)
    ]


class SegmentationBatches(Batches):
    """Batches of normalised float images and int64 label maps (N, H, W), in an order set by a
    seed; order, sharding over ranks, device placement and resuming at `start` are
    `data.images.Batches`'.

    With `augment`, each training image and its mask go through one random transform: a scale
    drawn uniformly from `data.scale`, a crop back to the size at a random place (where the
    scaled image is smaller, the rest is padding: zeros after normalisation in the image,
    `IGNORE` in the mask), and a horizontal flip with probability 1/2 when `data.flip`. The
    image is resampled bilinearly, the mask by nearest neighbour, both on the same sampling
    grid, so they stay aligned. The draws come from the epoch's seed, for every batch, skipped
    or not, so a run resumed inside an epoch sees the batches it would have seen.
    """

    def __init__(
        self,
        data: SegmentationData,
        images,
        masks,
        batch_size: int,
        device: torch.device,
        augment: bool,
        drop_last: bool,
        shard: tuple[int, int] = (0, 1),
    ):
        super().__init__(data, images, masks, batch_size, device, False, drop_last, shard=shard)
        self.augment = augment
        self.scale = data.scale
        self.flip = data.flip and augment

    def epoch(
        self, seed: int | None, start: int = 0, shuffle: bool = True
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the batches of one pass; `seed` fixes order and augmentation (None: in order).

        Args:
            start: skip this many batches (to resume inside an epoch).
            shuffle: False keeps the images in order and uses `seed` for augmentation only.
        """
        order, generator = self.order(seed, shuffle)
        for index in range(len(self)):
            chunk = order[index * self.batch_size : (index + 1) * self.batch_size]
            draws = None
            if generator is not None and self.augment:
                draws = draw_transforms(len(chunk), self.scale, self.flip, generator)
            if index < start:
                continue
            chunk = chunk.to(self.device)
            images = (self.images[chunk].float() - self.mean) / self.std
            masks = self.labels[chunk].long()
            if draws is not None:
                images, masks = transform(images, masks, *(d.to(self.device) for d in draws))
            yield standard_layout(images), masks


def draw_transforms(
    count: int, scale: tuple[float, float], flip: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random transforms of `count` images: scales (count,), crop places (count, 2) as
    fractions 0..1 of the room there is (rows, columns), and flips (count,) bools (all False
    without `flip`; drawn either way, so the stream does not depend on it)."""
    low, high = scale
    scales = low + (high - low) * torch.rand(count, generator=generator)
    places = torch.rand(count, 2, generator=generator)
    flips = (torch.rand(count, generator=generator) < 0.5) & flip
    return scales, places, flips


def transform(
    images: torch.Tensor,
    masks: torch.Tensor,
    scales: torch.Tensor,
    places: torch.Tensor,
    flips: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each image and mask by its factor, crop back to the size at its place, flip.

    One affine sampling grid per image serves both: output pixel x (normalised, -1..1) reads
    the input at x / s + (s - 1)(2u - 1) / s, for scale s and place u (negated x when flipped),
    which is the crop at offset u * (sH - H) of the image scaled to sH. Outside the input the
    image reads zeros and the mask `IGNORE`.
    """
    count = len(images)
    scales = scales.to(images.dtype).view(-1, 1)
    inverse = 1.0 / scales[:, 0]
    shift = (scales - 1) * (2 * places.to(images.dtype) - 1) / scales
    sign = 1.0 - 2.0 * flips.to(images.dtype)
    theta = torch.zeros(count, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = sign * inverse
    theta[:, 0, 2] = shift[:, 1]
    theta[:, 1, 1] = inverse
    theta[:, 1, 2] = shift[:, 0]
    grid = functional.affine_grid(theta, list(images.shape), align_corners=False)
    images = functional.grid_sample(images, grid, "bilinear", "zeros", align_corners=False)
    # Labels shifted up by one, so the zeros read outside the mask become -1, then IGNORE.
    shifted = (masks + 1).unsqueeze(1).to(images.dtype)
    sampled = functional.grid_sample(shifted, grid, "nearest", "zeros", align_corners=False)
    sampled = sampled.squeeze(1).round().long() - 1
    return images, torch.where(sampled < 0, IGNORE, sampled)
