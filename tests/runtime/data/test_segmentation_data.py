"""Segmentation data: the embedded shapes are the same bytes everywhere and hold every class;
VOC and Cityscapes trees made on disk load with their classes, and their mistakes are refused by
file; augmentation moves image and mask together and replays from the epoch's seed."""

from __future__ import annotations

import hashlib

import attrs
import numpy
import pytest
import torch
from PIL import Image

from nasc.dsl import NascUsageError
from nasc.runtime.data.segmentation import (
    IGNORE,
    SHAPE_CLASSES,
    VOC_CLASSES,
    SegmentationBatches,
    SegmentationData,
    load_segmentation,
    load_shapes,
    transform,
)

# --- shapes -------------------------------------------------------------------------------------


def test_shapes_are_the_same_bytes_on_every_load_and_machine():
    """Two loads give equal tensors, whose digest is the one recorded when the set was made
    (a change of generator or arithmetic would show here)."""
    first, second = load_shapes(), load_shapes()
    digest = hashlib.sha256()
    for name in ("train_images", "train_masks", "test_images", "test_masks"):
        assert torch.equal(getattr(first, name), getattr(second, name))
        digest.update(getattr(first, name).numpy().tobytes())
    assert digest.hexdigest() == "666e64862deb64f35af19a619de3fcd4c65e3aaac91b11653c23a3cf9a24f86a"


def test_shapes_hold_every_class_in_both_splits():
    """384 training and 96 test images of 3 x 32 x 32, and every class in both splits' masks."""
    data = load_segmentation("shapes")
    assert data.train_images.shape == (384, 3, 32, 32) and data.test_masks.shape == (96, 32, 32)
    assert data.classes == SHAPE_CLASSES and data.num_classes == 5
    for masks in (data.train_masks, data.test_masks):
        assert set(masks.unique().tolist()) == set(range(5))


def test_mixed_depends_on_the_examples_not_their_stored_order():
    """The same examples stored in another order mix into the same batches; a subset keeps
    images and masks paired."""
    data = load_shapes().subset(40, seed=1)
    flipped = attrs.evolve(
        data, train_images=data.train_images.flip(0), train_masks=data.train_masks.flip(0)
    )
    a, b = data.mixed(3), flipped.mixed(3)
    assert torch.equal(a.train_images, b.train_images) and a.order == b.order
    assert len(a.train_masks) == 40 and len(a.test_masks) == 10


# --- augmentation -------------------------------------------------------------------------------

COLOURS = torch.tensor([[0, 0, 0], [200, 40, 40], [40, 200, 40], [40, 40, 200]])


def blocks(count: int, size: int = 16, block: int = 4) -> SegmentationData:
    """Images of 4 x 4 blocks, each of a random class, coloured by its class alone: the mask
    can be read back from the image's own pixels."""
    generator = torch.Generator().manual_seed(5)
    cells = torch.randint(0, 4, (count, size // block, size // block), generator=generator)
    masks = cells.repeat_interleave(block, 1).repeat_interleave(block, 2)
    images = COLOURS[masks].permute(0, 3, 1, 2).to(torch.uint8)
    return SegmentationData(
        name="blocks", train_images=images, train_masks=masks.to(torch.uint8),
        test_images=images[:2], test_masks=masks[:2].to(torch.uint8),
        classes=("a", "b", "c", "d"), mean=(0.0, 0.0, 0.0), std=(1 / 255, 1 / 255, 1 / 255),
    )  # fmt: skip


def test_augmented_masks_stay_aligned_with_their_images():
    """After random scales, crops and flips, every pixel whose colour is exactly one class's
    carries that class in the mask (or 255 in the padding); padding and flips occur."""
    data = blocks(32)
    batches = SegmentationBatches(data, data.train_images, data.train_masks, 8, "cpu", True, True)
    checked = padded = 0
    for images, masks in batches.epoch(seed=11):
        assert masks.dtype == torch.int64 and masks.shape == (8, 16, 16)
        pixels = images.permute(0, 2, 3, 1)  # std 1/255, mean 0: back on the 0..255 scale
        for label, colour in enumerate(COLOURS.float()):
            exact = (pixels - colour).abs().amax(-1) < 1e-3
            inside = exact & (masks != IGNORE)
            assert bool((masks[inside] == label).all())
            checked += int(inside.sum())
        padded += int((masks == IGNORE).sum())
    assert checked > 1000 and padded > 0
    unaugmented = torch.cat([m for _, m in batches.epoch(seed=None)])
    assert not torch.equal(unaugmented, torch.cat([m for _, m in batches.epoch(seed=11)]))


def test_a_scale_of_one_with_a_flip_mirrors_image_and_mask_exactly():
    """Scale 1 and a flip give the mirrored image and mask; scale 2 at place (0, 0) gives the
    top-left quarter enlarged, labels by nearest neighbour."""
    data = blocks(2)
    images, masks = data.train_images.float(), data.train_masks.long()
    out, labels = transform(images, masks, torch.ones(2), torch.zeros(2, 2), torch.tensor([1, 0]))
    assert torch.allclose(out[0], images[0].flip(-1), atol=1e-3) and torch.equal(
        labels[0], masks[0].flip(-1)
    )
    assert torch.allclose(out[1], images[1], atol=1e-3) and torch.equal(labels[1], masks[1])
    _, enlarged = transform(images, masks, torch.full((2,), 2.0), torch.zeros(2, 2), torch.zeros(2))
    quarter = masks[:, :8, :8].repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert torch.equal(enlarged, quarter)


def test_batches_resumed_at_a_step_are_the_ones_an_unbroken_epoch_gives():
    """`epoch(seed, start=2)` yields exactly the third batch on of `epoch(seed)`, augmentation
    included."""
    data = blocks(40)
    batches = SegmentationBatches(data, data.train_images, data.train_masks, 8, "cpu", True, True)
    whole = list(batches.epoch(seed=4))
    resumed = list(batches.epoch(seed=4, start=2))
    assert len(resumed) == len(whole) - 2
    for (a, m), (b, n) in zip(whole[2:], resumed):
        assert torch.equal(a, b) and torch.equal(m, n)


# --- VOC and Cityscapes trees -------------------------------------------------------------------


def palette_png(path, labels: numpy.ndarray) -> None:
    """A palette PNG of class indices, as VOC stores them."""
    picture = Image.fromarray(labels.astype(numpy.uint8), "P")
    picture.putpalette([value for index in range(256) for value in (index, index, index)])
    picture.save(path)


def voc_tree(root, width=20, height=16):
    """A tiny VOC tree: 3 training and 2 validation images, each with its left half labelled
    by its number (1..5), the right half background and a top border of 255 two rows thick."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    names = [f"2007_00000{i}" for i in range(1, 6)]
    for number, name in enumerate(names, start=1):
        Image.new("RGB", (width, height), (number * 40, 90, 20)).save(
            root / "JPEGImages" / f"{name}.jpg"
        )
        labels = numpy.zeros((height, width), numpy.uint8)
        labels[:, : width // 2] = number
        labels[:2, :] = 255
        palette_png(root / "SegmentationClass" / f"{name}.png", labels)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(names[:3]) + "\n")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(names[3:]) + "\n")
    return names


def test_a_voc_tree_loads_at_the_image_size_with_its_21_classes(tmp_path):
    """Images and palette masks resize to --image-size; labels keep their values (nearest)."""
    voc_tree(tmp_path / "voc")
    data = load_segmentation(str(tmp_path / "voc"), image_size=8)
    assert data.classes == VOC_CLASSES and data.num_classes == 21 and data.name == "voc"
    assert data.train_images.shape == (3, 3, 8, 8) and data.test_masks.shape == (2, 8, 8)
    assert data.train_masks[1, 4, 0] == 2 and data.train_masks[1, 4, 7] == 0
    assert data.test_masks[0, 0, 0] == IGNORE and set(data.test_masks[1].unique().tolist()) == {
        0, 5, 255
    }  # fmt: skip


def test_voc_mistakes_are_refused_naming_the_file(tmp_path):
    """A missing folder, a mask of another size, a label out of range and an RGB mask are each
    refused, naming what is wrong and where."""
    root = tmp_path / "voc"
    names = voc_tree(root)
    masks = root / "SegmentationClass"
    (masks / f"{names[0]}.png").rename(tmp_path / "kept.png")
    with pytest.raises(NascUsageError, match=f"{names[0]}.png is missing"):
        load_segmentation(str(root), image_size=8)
    palette_png(masks / f"{names[0]}.png", numpy.zeros((10, 10), numpy.uint8))
    with pytest.raises(NascUsageError, match="is 10 x 10 pixels but its image is 20 x 16"):
        load_segmentation(str(root), image_size=8)
    palette_png(masks / f"{names[0]}.png", numpy.full((16, 20), 30, numpy.uint8))
    with pytest.raises(NascUsageError, match=r"holds the labels \[30\].* 21 classes"):
        load_segmentation(str(root), image_size=8)
    Image.new("RGB", (20, 16)).save(masks / f"{names[0]}.png")
    with pytest.raises(NascUsageError, match="has mode RGB") as error:
        load_segmentation(str(root), image_size=8)
    assert "palette" in error.value.hint
    __import__("shutil").rmtree(masks)
    with pytest.raises(NascUsageError, match="lacks SegmentationClass"):
        load_segmentation(str(root), image_size=8)


def cityscapes_tree(root, ids=(7, 26, 0)):
    """A tiny Cityscapes root: one city per split, two images each, label ids in three bands
    (road 7 -> train id 0, car 26 -> 13, unlabeled 0 -> 255)."""
    for split, city in (("train", "aachen"), ("val", "lindau")):
        images = root / "leftImg8bit" / split / city
        labels = root / "gtFine" / split / city
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        for number in range(2):
            stem = f"{city}_00000{number}_000019"
            Image.new("RGB", (24, 12), (10, 80 * number, 30)).save(
                images / f"{stem}_leftImg8bit.png"
            )
            bands = numpy.zeros((12, 24), numpy.uint8)
            bands[:4], bands[4:8], bands[8:] = ids
            Image.fromarray(bands, "L").save(labels / f"{stem}_gtFine_labelIds.png")


def test_a_cityscapes_root_maps_label_ids_to_the_19_training_ids(tmp_path):
    """torchvision's Cityscapes finds the pairs; ids map to training ids, the rest to 255."""
    cityscapes_tree(tmp_path / "cs")
    data = load_segmentation(str(tmp_path / "cs"), image_size=12)
    assert data.num_classes == 19 and data.classes[0] == "road" and data.classes[13] == "car"
    assert data.train_images.shape == (2, 3, 12, 12) and len(data.test_masks) == 2
    assert data.train_masks[0, :, 0].tolist() == [0] * 4 + [13] * 4 + [255] * 4


def test_a_cityscapes_map_with_an_unknown_id_is_refused(tmp_path):
    """A value that is no Cityscapes label id is refused, naming the file."""
    cityscapes_tree(tmp_path / "cs", ids=(7, 40, 0))
    with pytest.raises(NascUsageError, match=r"labelIds.png holds the ids \[40\]"):
        load_segmentation(str(tmp_path / "cs"), image_size=12)


def test_data_that_is_no_segmentation_data_is_refused(tmp_path):
    """Classification data, a missing path and a folder of neither layout are refused."""
    with pytest.raises(NascUsageError, match="digits is classification data"):
        load_segmentation("digits")
    with pytest.raises(NascUsageError, match="no such folder"):
        load_segmentation(str(tmp_path / "nowhere"))
    (tmp_path / "plain" / "train").mkdir(parents=True)
    with pytest.raises(NascUsageError, match="neither a VOC tree nor a Cityscapes root"):
        load_segmentation(str(tmp_path / "plain"))
