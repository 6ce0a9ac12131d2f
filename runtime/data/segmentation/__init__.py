"""Segmentation data: images with a class label per pixel (255: ignore), in memory, and their
batches with joint augmentation of image and mask. Sources: the embedded synthetic `shapes`, a
Pascal VOC tree, a Cityscapes root (docs/python.md, "Segmentation")."""

from nasc.runtime.data.segmentation.data import (
    IGNORE,
    SegmentationBatches,
    SegmentationData,
    draw_transforms,
    transform,
)
from nasc.runtime.data.segmentation.folders import (
    DEFAULT_FOLDER_SIZE,
    VOC_CLASSES,
    load_cityscapes,
    load_segmentation,
    load_voc,
)
from nasc.runtime.data.segmentation.shapes import SHAPE_CLASSES, load_shapes

__all__ = [
    "DEFAULT_FOLDER_SIZE",
    "IGNORE",
    "SHAPE_CLASSES",
    "VOC_CLASSES",
    "SegmentationBatches",
    "SegmentationData",
    "draw_transforms",
    "load_cityscapes",
    "load_segmentation",
    "load_shapes",
    "load_voc",
    "transform",
]
