"""Segmentation data on disk: a Pascal VOC tree and a Cityscapes root, read into memory at one
square size (images bilinearly, label maps by nearest neighbour), and `load_segmentation`, which
picks the source `--data` names."""

from __future__ import annotations

from pathlib import Path

import torch

from nasc.dsl import NascUsageError
from nasc.runtime.data.images import _decode, _stats
from nasc.runtime.data.segmentation.data import IGNORE, SegmentationData
from nasc.runtime.data.segmentation.shapes import load_shapes

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
DEFAULT_FOLDER_SIZE = 128  # the square size VOC and Cityscapes images are read at by default
LAYOUTS = (
    "a VOC tree (JPEGImages/*.jpg, SegmentationClass/*.png, ImageSets/Segmentation/train.txt "
    "and val.txt) or a Cityscapes root (leftImg8bit/ and gtFine/)"
)


def load_segmentation(
    spec: str, cache_dir: Path | None = None, image_size: int | None = None
) -> SegmentationData:
    """`shapes` (the embedded synthetic set; `image_size` draws it at another size), or the
    path of a VOC tree or a Cityscapes root, read at `image_size` x `image_size`
    (`DEFAULT_FOLDER_SIZE` when not given).

    Raises:
        NascUsageError: classification data, a path that is missing or of neither layout, or
            a file the layout's rules refuse (each naming the file and the fix).
    """
    if spec == "shapes":
        return load_shapes(image_size) if image_size else load_shapes()
    if spec in ("digits", "cifar10", "cifar100"):
        raise NascUsageError(
            f"--data {spec} is classification data (one label per image); segmentation needs a "
            "label per pixel",
            hint=f"use --data shapes (embedded), or a folder: {LAYOUTS}; or drop --task "
            "segmentation to classify",
        )
    path = Path(spec)
    if not path.is_dir():
        raise NascUsageError(
            f"--data {path}: no such folder",
            hint=f"give shapes (embedded), or {LAYOUTS}",
        )
    size = image_size or DEFAULT_FOLDER_SIZE
    if (path / "leftImg8bit").is_dir() and (path / "gtFine").is_dir():
        return load_cityscapes(path, size)
    if (path / "JPEGImages").is_dir() or (path / "SegmentationClass").is_dir():
        return load_voc(path, size)
    raise NascUsageError(
        f"--data {path} is neither a VOC tree nor a Cityscapes root", hint=f"give {LAYOUTS}"
    )


def read_mask(
    file: Path, size: int, classes: int, image_size: tuple[int, int], lookup=None
) -> torch.Tensor:
    """One label map (a palette or greyscale PNG of class indices) as a (size, size) uint8
    tensor, resized by nearest neighbour; `lookup` (256 entries, -1 for ids it does not know)
    maps stored ids to classes first.

    Raises:
        NascUsageError: naming the file: unreadable, not of the image's size, not a map of
            indices, or holding a label that is neither a class nor 255.
    """
    import numpy
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as picture:
            if picture.size != image_size:
                raise NascUsageError(
                    f"the label map {file} is {picture.size[0]} x {picture.size[1]} pixels but "
                    f"its image is {image_size[0]} x {image_size[1]}",
                    hint="a label map must have its image's size; fix or remove the pair",
                )
            if picture.mode not in ("P", "L"):
                raise NascUsageError(
                    f"the label map {file} has mode {picture.mode}; nasc reads label maps of "
                    "class indices (palette or greyscale PNGs)",
                    hint="save it as a palette (P) or greyscale (L) PNG whose values are the "
                    "class indices, 255 for pixels to ignore",
                )
            values = numpy.asarray(picture, dtype=numpy.uint8)
    except (OSError, UnidentifiedImageError) as error:
        raise NascUsageError(
            f"cannot read the label map {file}: {error}", hint="remove or replace the file"
        ) from None
    labels = torch.from_numpy(values.astype(numpy.int64))
    if lookup is not None:
        unknown = sorted(set(labels[lookup[labels] < 0].unique().tolist()))
        if unknown:
            raise NascUsageError(
                f"the label map {file} holds the ids {unknown[:5]}, which are no Cityscapes "
                "label ids",
                hint="use the gtFine *_labelIds.png maps as the Cityscapes scripts make them",
            )
        labels = lookup[labels]
    bad = sorted(set(labels[(labels >= classes) & (labels != IGNORE)].unique().tolist()))
    if bad:
        raise NascUsageError(
            f"the label map {file} holds the labels {bad[:5]}, but the data has {classes} "
            f"classes (0 to {classes - 1}, and {IGNORE} to ignore)",
            hint=f"set those pixels to a class or to {IGNORE}",
        )
    picture = Image.fromarray(labels.numpy().astype(numpy.uint8), "L")
    picture = picture.resize((size, size), Image.NEAREST)
    return torch.from_numpy(numpy.asarray(picture, dtype=numpy.uint8).copy())


def image_size_of(file: Path) -> tuple[int, int]:
    """The (width, height) of an image file, read from its header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as picture:
            return picture.size
    except (OSError, UnidentifiedImageError) as error:
        raise NascUsageError(
            f"cannot read the image {file}: {error}", hint="remove or replace the damaged file"
        ) from None


def read_pairs(pairs, size: int, classes: int, lookup=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The images (N, 3, size, size) and label maps (N, size, size) of (image, mask) files."""
    images, masks = [], []
    for image, mask in pairs:
        images.append(_decode(image, size))
        masks.append(read_mask(mask, size, classes, image_size_of(image), lookup))
    return torch.stack(images), torch.stack(masks)


def gathered(name: str, classes, train, test) -> SegmentationData:
    """Read splits as `SegmentationData` (normalised by the training images' statistics)."""
    mean, std = _stats(train[0])
    return SegmentationData(
        name=name,
        train_images=train[0],
        train_masks=train[1],
        test_images=test[0],
        test_masks=test[1],
        classes=tuple(classes),
        mean=mean,
        std=std,
    )


def load_voc(path: Path, size: int) -> SegmentationData:
    """A Pascal VOC tree: the images `ImageSets/Segmentation/train.txt` and `val.txt` name
    (one id a line), `JPEGImages/<id>.jpg` with `SegmentationClass/<id>.png` (palette PNGs of
    the 21 class indices, 255 on borders and unlabelled pixels); `val` is the test split.

    Raises:
        NascUsageError: a missing folder, list or file, or a file `read_mask` refuses.
    """
    lists = path / "ImageSets" / "Segmentation"
    needed = [path / "JPEGImages", path / "SegmentationClass"]
    missing = [p for p in needed if not p.is_dir()]
    missing += [lists / f"{s}.txt" for s in ("train", "val") if not (lists / f"{s}.txt").is_file()]
    if missing:
        raise NascUsageError(
            f"the VOC tree {path} lacks {', '.join(str(m.relative_to(path)) for m in missing)}",
            hint="a VOC tree holds JPEGImages/<id>.jpg, SegmentationClass/<id>.png and the id "
            "lists ImageSets/Segmentation/train.txt and val.txt",
        )
    splits = []
    for split in ("train", "val"):
        ids = (lists / f"{split}.txt").read_text().split()
        if not ids:
            raise NascUsageError(
                f"{lists / f'{split}.txt'} names no images", hint="list one image id a line"
            )
        pairs = [
            (path / "JPEGImages" / f"{i}.jpg", path / "SegmentationClass" / f"{i}.png") for i in ids
        ]
        for files in pairs:
            for file in files:
                if not file.is_file():
                    raise NascUsageError(
                        f"{lists / f'{split}.txt'} names {file.stem}, but {file} is missing",
                        hint="add the file, or take the id out of the list",
                    )
        splits.append(read_pairs(pairs, size, len(VOC_CLASSES)))
    return gathered(path.name, VOC_CLASSES, *splits)


def cityscapes_classes() -> tuple[tuple[str, ...], torch.Tensor]:
    """The 19 Cityscapes training classes, and a 256-entry table from label ids to training
    ids (255 for ids not trained on, -1 for values that are no label id)."""
    from torchvision.datasets import Cityscapes

    lookup = torch.full((256,), -1, dtype=torch.int64)
    lookup[IGNORE] = IGNORE
    names = {}
    for kind in Cityscapes.classes:
        if kind.id >= 0:
            trained = kind.train_id not in (IGNORE, -1)
            lookup[kind.id] = kind.train_id if trained else IGNORE
            if trained:
                names[kind.train_id] = kind.name
    return tuple(names[index] for index in sorted(names)), lookup


def load_cityscapes(path: Path, size: int) -> SegmentationData:
    """A Cityscapes root through torchvision's `Cityscapes` (mode `fine`, target `semantic`):
    `leftImg8bit/<split>/<city>/*_leftImg8bit.png` with `gtFine/<split>/<city>/
    *_gtFine_labelIds.png`, label ids mapped to the 19 training ids (255 for the rest); `val`
    is the test split. Images are resized to a square.

    Raises:
        NascUsageError: a split torchvision cannot find, a missing label map, or a file
            `read_mask` refuses.
    """
    from torchvision.datasets import Cityscapes

    classes, lookup = cityscapes_classes()
    splits = []
    for split in ("train", "val"):
        try:
            found = Cityscapes(str(path), split=split, mode="fine", target_type="semantic")
        except (RuntimeError, OSError) as error:
            raise NascUsageError(
                f"the Cityscapes root {path} has no readable {split} split: {error}",
                hint=f"it needs leftImg8bit/{split}/<city>/ and gtFine/{split}/<city>/",
            ) from None
        pairs = sorted((Path(i), Path(t[0])) for i, t in zip(found.images, found.targets))
        if not pairs:
            raise NascUsageError(
                f"the Cityscapes root {path} holds no {split} images",
                hint=f"put *_leftImg8bit.png files in leftImg8bit/{split}/<city>/",
            )
        for image, mask in pairs:
            if not mask.is_file():
                raise NascUsageError(
                    f"{image} has no label map {mask}",
                    hint="add the gtFine *_gtFine_labelIds.png map, or remove the image",
                )
        splits.append(read_pairs(pairs, size, len(classes), lookup))
    return gathered(path.name, classes, *splits)
