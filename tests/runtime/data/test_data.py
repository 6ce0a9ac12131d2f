"""Tests of the data sources and the batched augmentation."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from nasc.dsl import NascUsageError
from nasc.runtime.data.images import Batches, load_data, load_digits, random_crop


def _folder(root, layout, size=(6, 6)):
    """Write an ImageFolder tree: layout maps split -> class -> image count."""
    for split, classes in layout.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for name, count in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                shade = (index * 40 + len(name) * 20) % 256
                Image.new("RGB", size, (shade, 255 - shade, 128)).save(folder / f"{index}.png")
    return root


def test_digits_are_embedded_and_split():
    """The digits load offline: 1,437 training and 360 test images of 1 x 8 x 8, 10 classes."""
    data = load_digits()
    assert data.train_images.shape == (1437, 1, 8, 8)
    assert data.test_images.shape == (360, 1, 8, 8)
    assert data.num_classes == 10 and data.channels == 1 and data.size == 8
    assert torch.bincount(data.test_labels).tolist() == [36] * 10
    assert data.train_images.dtype == torch.uint8 and int(data.train_images.max()) == 255


def test_subset_is_fixed_by_its_seed():
    """`subset` draws the same images for the same seed and caps both splits."""
    data = load_digits()
    a, b = data.subset(100, seed=3), data.subset(100, seed=3)
    assert torch.equal(a.train_images, b.train_images)
    assert len(a.train_labels) == 100 and len(a.test_labels) == 25


def test_image_folder_loads_and_caches(tmp_path):
    """An ImageFolder tree becomes tensors with sorted classes; a second load uses the cache."""
    root = _folder(tmp_path / "data", {"train": {"cat": 3, "dog": 2}, "test": {"cat": 1, "dog": 1}})
    data = load_data(str(root), cache_dir=tmp_path / "cache")
    assert data.classes == ("cat", "dog")
    assert data.train_images.shape == (5, 3, 6, 6)
    assert data.train_labels.tolist() == [0, 0, 0, 1, 1]
    assert list((tmp_path / "cache" / "decoded").glob("*.pt"))
    again = load_data(str(root), cache_dir=tmp_path / "cache")
    assert torch.equal(again.train_images, data.train_images)


def test_image_folder_resizes_mixed_sizes_on_request(tmp_path):
    """Mixed image sizes are refused unless --image-size resizes them."""
    root = _folder(tmp_path / "d", {"train": {"a": 1, "b": 1}, "test": {"a": 1, "b": 1}})
    Image.new("RGB", (9, 9)).save(root / "train" / "a" / "big.png")
    with pytest.raises(NascUsageError, match="different shapes"):
        load_data(str(root), cache_dir=tmp_path / "cache")
    data = load_data(str(root), cache_dir=tmp_path / "cache", image_size=4)
    assert data.train_images.shape[1:] == (3, 4, 4)


@pytest.mark.parametrize(
    "layout, message",
    [
        ({"train": {"a": 1, "b": 1}}, "needs train/ and test/"),
        ({"train": {"a": 1, "b": 1}, "test": {}}, "test holds no images"),
        ({"train": {"a": 2}, "test": {"a": 1}}, "has one class"),
        (
            {"train": {"a": 1, "b": 1}, "test": {"a": 1, "c": 1}},
            "classes of train/ and test/ differ",
        ),
    ],
)
def test_bad_image_folders_are_refused(tmp_path, layout, message):
    """Missing splits, one class, or classes that differ give a clear error."""
    root = _folder(tmp_path / "d", layout)
    with pytest.raises(NascUsageError, match=message):
        load_data(str(root), cache_dir=tmp_path / "cache")


def test_missing_and_empty_folders_are_refused(tmp_path):
    """A path that does not exist, or splits without images, give a clear error."""
    with pytest.raises(NascUsageError, match="no such folder"):
        load_data(str(tmp_path / "nowhere"))
    (tmp_path / "e" / "train" / "a").mkdir(parents=True)
    (tmp_path / "e" / "test" / "a").mkdir(parents=True)
    with pytest.raises(NascUsageError, match="holds no images"):
        load_data(str(tmp_path / "e"))


def test_random_crop_matches_a_per_image_crop():
    """The batched crop equals cropping every padded image at its own offset."""
    torch.manual_seed(0)
    images = torch.randint(0, 255, (5, 3, 6, 6), dtype=torch.uint8)
    offsets = torch.randint(0, 5, (5, 2))
    crops = random_crop(images, 2, offsets)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for index, (row, col) in enumerate(offsets.tolist()):
        assert torch.equal(crops[index], padded[index, :, row : row + 6, col : col + 6])


def test_batches_are_repeatable_and_resume_inside_an_epoch():
    """The same seed gives the same batches; starting at batch 2 gives the tail of that epoch."""
    data = load_digits().subset(80)
    batches = Batches(
        data, data.train_images, data.train_labels, 16, torch.device("cpu"), True, True
    )
    first = list(batches.epoch(seed=5))
    second = list(batches.epoch(seed=5))
    tail = list(batches.epoch(seed=5, start=2))
    assert len(first) == 5
    for (a, la), (b, lb) in zip(first, second):
        assert torch.equal(a, b) and torch.equal(la, lb)
    for (a, la), (b, lb) in zip(first[2:], tail):
        assert torch.equal(a, b) and torch.equal(la, lb)
    other = list(batches.epoch(seed=6))
    assert not torch.equal(first[0][1], other[0][1])


def test_evaluation_batches_are_normalised_and_complete():
    """Without augmentation every test image appears once, normalised by the data's statistics."""
    data = load_digits()
    batches = Batches(
        data, data.test_images, data.test_labels, 64, torch.device("cpu"), False, False
    )
    images = torch.cat([x for x, _ in batches.epoch(None)])
    assert images.shape == (360, 1, 8, 8)
    expected = (data.test_images.float() / 255 - data.mean[0]) / data.std[0]
    assert torch.allclose(images, expected, atol=1e-5)


def test_cifar_download_failure_is_a_clear_error(tmp_path, monkeypatch):
    """When CIFAR cannot be fetched, the error names the cache folder and what to do."""
    from torchvision import datasets

    def refuse(*args, **kwargs):
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(datasets, "CIFAR10", refuse)
    with pytest.raises(NascUsageError, match="could not get cifar10"):
        load_data("cifar10", cache_dir=tmp_path)
