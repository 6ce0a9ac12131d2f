"""`--data shapes`: a synthetic segmentation set made in code, the same on every machine.

Each 32 x 32 colour image holds one to three shapes (discs, squares, triangles, crosses) of
random size, colour and place on a textured background (noise, stripes at a random angle, or a
checkerboard); later shapes cover earlier ones. The label map gives each pixel its shape's class
(background 0). Everything is drawn from one fixed seed with torch's CPU generator, and computed
with integer arithmetic only (no transcendental functions), so the bytes do not depend on the
machine, its CPU's vector units or the torch build.
"""

from __future__ import annotations

import torch

from nasc.runtime.data.images import _stats
from nasc.runtime.data.segmentation.data import SegmentationData

SHAPE_CLASSES = ("background", "disc", "square", "triangle", "cross")
SHAPES_SIZE = 32
SHAPES_TRAIN = 384
SHAPES_TEST = 96
SHAPES_SEED = 24


def shape_region(kind: int, rows, cols, centre: tuple[int, int], radius: int) -> torch.Tensor:
    """The pixels (bool, H x W) of one shape of class `kind` (1 disc, 2 square, 3 triangle,
    4 cross) centred at `centre` (row, column) with half-width `radius`."""
    dy, dx = rows - centre[0], cols - centre[1]
    if kind == 1:
        return dy * dy + dx * dx <= radius * radius
    if kind == 2:
        half = radius * 3 // 4
        return (dy.abs() <= half) & (dx.abs() <= half)
    if kind == 3:  # apex up at (centre - radius), base at (centre + radius), as wide as high
        return (dy <= radius) & (2 * dx.abs() <= dy + radius)
    arm = max(1, radius // 3)
    return ((dx.abs() <= arm) & (dy.abs() <= radius)) | ((dy.abs() <= arm) & (dx.abs() <= radius))


def background(generator: torch.Generator, rows, cols, size: int) -> torch.Tensor:
    """A textured background (3, size, size) int64: noise, stripes or a checkerboard."""
    base = torch.randint(0, 256, (3, 1, 1), generator=generator)
    other = torch.randint(0, 256, (3, 1, 1), generator=generator)
    kind = int(torch.randint(0, 3, (1,), generator=generator))
    period = int(torch.randint(2, 7, (1,), generator=generator))
    slope = torch.randint(-2, 3, (2,), generator=generator)
    noise = torch.randint(-24, 25, (3, size, size), generator=generator)
    if kind == 0:
        return base + 2 * noise
    if kind == 1:
        across = rows * int(slope[0]) + cols * (int(slope[1]) or 1)
        band = torch.div(across, period, rounding_mode="floor") % 2
    else:
        band = (torch.div(rows, period, rounding_mode="floor") + cols // period) % 2
    return torch.where(band.bool(), other, base) + noise


def shapes_example(generator: torch.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One image (3, size, size) uint8 and its label map (size, size) uint8."""
    rows = torch.arange(size).view(-1, 1)
    cols = torch.arange(size).view(1, -1)
    image = background(generator, rows, cols, size)
    mask = torch.zeros(size, size, dtype=torch.int64)
    count = int(torch.randint(1, 4, (1,), generator=generator))
    for _ in range(count):
        kind = int(torch.randint(1, len(SHAPE_CLASSES), (1,), generator=generator))
        radius = int(torch.randint(size // 8, size // 3 + 1, (1,), generator=generator))
        centre = torch.randint(0, size, (2,), generator=generator).tolist()
        colour = torch.randint(0, 256, (3, 1, 1), generator=generator)
        region = shape_region(kind, rows, cols, (centre[0], centre[1]), radius)
        shade = torch.randint(-12, 13, (3, size, size), generator=generator)
        image = torch.where(region, colour + shade, image)
        mask = torch.where(region, kind, mask)
    return image.clamp(0, 255).to(torch.uint8), mask.to(torch.uint8)


def load_shapes(size: int = SHAPES_SIZE) -> SegmentationData:
    """The embedded synthetic set: `SHAPES_TRAIN` training and `SHAPES_TEST` test images of
    `size` x `size` pixels, five classes (background and four shapes), made from
    `SHAPES_SEED`."""
    generator = torch.Generator().manual_seed(SHAPES_SEED)
    pairs = [shapes_example(generator, size) for _ in range(SHAPES_TRAIN + SHAPES_TEST)]
    images = torch.stack([image for image, _ in pairs])
    masks = torch.stack([mask for _, mask in pairs])
    mean, std = _stats(images[:SHAPES_TRAIN])
    return SegmentationData(
        name="shapes",
        train_images=images[:SHAPES_TRAIN],
        train_masks=masks[:SHAPES_TRAIN],
        test_images=images[SHAPES_TRAIN:],
        test_masks=masks[SHAPES_TRAIN:],
        classes=SHAPE_CLASSES,
        mean=mean,
        std=std,
    )
