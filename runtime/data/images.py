"""Image data for searching and training: in-memory uint8 tensors with batched augmentation.

Sources: the embedded 8x8 digits (no download), CIFAR-10/100 through torchvision (downloaded into
the cache folder on first use), and any ImageFolder tree with `train/` and `test/` (or `val/`).
Batches are augmented as whole tensors on the device (random crop with padding, flips), which is
much faster for small images than per-image transforms. A search reads its data through `mixed`:
a fixed order made from the images and the seed, so the order in which files were found (an
ImageFolder tree is class by class) never reaches a batch.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import attrs
import torch

from nasc.dsl import NascUsageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def default_cache_dir() -> Path:
    """Where datasets are downloaded and decoded: `$NASC_CACHE` or `~/.cache/nasc`."""
    return Path(os.environ.get("NASC_CACHE", Path.home() / ".cache" / "nasc"))


@attrs.frozen(kw_only=True)
class ImageData:
    """A dataset held in memory as uint8 images (N, C, H, W) and int64 labels.

    Attributes:
        pad: random-crop padding for training augmentation (0 disables).
        flip: random horizontal flips for training augmentation.
        mean, std: per-channel normalisation on the 0..1 scale.
        order: how the splits are ordered: empty as loaded, or what `mixed` made
            (`mixed:<seed>:<digest of the order>`).
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int = 4
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

    def subset(self, count: int, seed: int = 0) -> ImageData:
        """At most `count` training images and `count // 4` (at least 1 per class...) test images,
        drawn with a fixed seed."""
        generator = torch.Generator().manual_seed(seed)
        train = torch.randperm(len(self.train_labels), generator=generator)[:count]
        test_count = max(count // 4, min(len(self.test_labels), self.num_classes))
        test = torch.randperm(len(self.test_labels), generator=generator)[:test_count]
        return attrs.evolve(
            self,
            train_images=self.train_images[train],
            train_labels=self.train_labels[train],
            test_images=self.test_images[test],
            test_labels=self.test_labels[test],
        )

    def mixed(self, seed: int) -> ImageData:
        """Both splits in one fixed order that depends on the images and `seed` alone.

        Each split is first sorted by a BLAKE2b digest of every image's bytes and label (an order
        the images define, whatever order they were loaded in), then permuted by a generator
        seeded from `seed`. So batches are mixed even when the source is sorted by class, and the
        same images in any order give the same batches, to the bit. `order` records the seed and
        a digest of the result, which a resumed search checks.
        """
        return mix_splits(self, seed, "labels", _image_digests)


def mix_splits(data, seed: int, targets: str, digests):
    """`data` with both splits in the order `mixed` describes: each split's images and its
    `targets` field (`labels`, `masks`) sorted by `digests(images, targets)`, one key per
    example, then permuted by a generator seeded from `seed` and the split's name."""
    generator = torch.Generator()
    parts, digest = {}, hashlib.sha256(str(seed).encode())
    for split in ("train", "test"):
        images, wanted = getattr(data, f"{split}_images"), getattr(data, f"{split}_{targets}")
        keys = digests(images, wanted)
        canonical = sorted(range(len(keys)), key=keys.__getitem__)
        stream = hashlib.sha256(f"{seed}:{split}".encode()).digest()[:8]
        generator.manual_seed(int.from_bytes(stream, "little"))
        order = torch.tensor(canonical, dtype=torch.int64)[
            torch.randperm(len(keys), generator=generator)
        ]
        parts[f"{split}_images"], parts[f"{split}_{targets}"] = images[order], wanted[order]
        for index in order.tolist():
            digest.update(keys[index])
    return attrs.evolve(data, **parts, order=f"mixed:{seed}:{digest.hexdigest()[:16]}")


def _image_digests(images: torch.Tensor, labels: torch.Tensor) -> list[bytes]:
    """A BLAKE2b digest of each image's bytes and its label."""
    flat = images.reshape(len(images), -1).contiguous().numpy()
    return [
        hashlib.blake2b(row.tobytes() + int(label).to_bytes(8, "little"), digest_size=16).digest()
        for row, label in zip(flat, labels.tolist())
    ]


def _stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    scaled = images.float() / 255.0
    mean = scaled.mean(dim=(0, 2, 3))
    std = scaled.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


# --- sources -------------------------------------------------------------------------------------


def load_digits() -> ImageData:
    """The UCI handwritten digits (1,797 grey 8x8 images, 10 classes), shipped with nasc.

    A fixed split keeps 360 images (36 per class) for testing. Pixel values 0..16 are scaled to
    0..255. No flips: digits are not mirror-symmetric.
    """
    raw = resources.files("nasc.runtime.data").joinpath("embedded/digits.csv.gz").read_bytes()
    rows = [line.split(",") for line in gzip.decompress(raw).decode().split()]
    values = torch.tensor([[int(v) for v in row] for row in rows], dtype=torch.int64)
    images = (values[:, :64] * 255 // 16).to(torch.uint8).reshape(-1, 1, 8, 8)
    labels = values[:, 64]
    generator = torch.Generator().manual_seed(1797)
    test = torch.zeros(len(labels), dtype=torch.bool)
    for digit in range(10):
        members = torch.nonzero(labels == digit).flatten()
        chosen = members[torch.randperm(len(members), generator=generator)[:36]]
        test[chosen] = True
    mean, std = _stats(images[~test])
    return ImageData(
        name="digits",
        train_images=images[~test],
        train_labels=labels[~test],
        test_images=images[test],
        test_labels=labels[test],
        classes=tuple(str(d) for d in range(10)),
        mean=mean,
        std=std,
        pad=1,
        flip=False,
    )


CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def load_cifar(name: str, cache_dir: Path) -> ImageData:
    """CIFAR-10 or CIFAR-100 via torchvision, downloaded into `cache_dir/name` on first use."""
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    root = cache_dir / name
    try:
        train = cls(root=str(root), train=True, download=True)
        test = cls(root=str(root), train=False, download=True)
    except Exception as error:  # noqa: BLE001 - network, disk and archive errors all end here
        raise NascUsageError(
            f"could not get {name} into {root}: {error}",
            hint=f"check the network, or put the official archive in {root}, or use "
            "--data PATH with an ImageFolder tree",
        ) from None
    mean, std = CIFAR_STATS[name]

    def tensors(split):
        images = torch.from_numpy(split.data).permute(0, 3, 1, 2).contiguous()
        return images, torch.tensor(split.targets, dtype=torch.int64)

    train_images, train_labels = tensors(train)
    test_images, test_labels = tensors(test)
    return ImageData(
        name=name,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        classes=tuple(train.classes),
        mean=mean,
        std=std,
    )


def _image_files(folder: Path) -> dict[str, list[Path]]:
    classes = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            files = sorted(p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if files:
                classes[entry.name] = files
    return classes


def load_image_folder(path: Path, cache_dir: Path, image_size: int | None = None) -> ImageData:
    """An ImageFolder tree: `path/train/<class>/*.jpg` and `path/test/<class>/*` (or `val/`).

    Images are decoded once into memory (and cached as tensors under `cache_dir/decoded`); they
    must share one size unless `image_size` resizes them.

    Raises:
        NascUsageError: a missing folder, no images, a single class, classes that differ between
            the splits, or mixed image sizes.
    """
    if not path.exists():
        raise NascUsageError(
            f"--data {path}: no such folder",
            hint="give digits, cifar10, cifar100, or a folder with train/ and test/ subfolders",
        )
    if not path.is_dir():
        raise NascUsageError(
            f"--data {path} is a file; an ImageFolder tree is a folder",
            hint="give a folder with train/<class>/ and test/<class>/ images",
        )
    test_dir = next((path / n for n in ("test", "val") if (path / n).is_dir()), None)
    if not (path / "train").is_dir() or test_dir is None:
        raise NascUsageError(
            f"--data {path} needs train/ and test/ (or val/) subfolders",
            hint="lay out images as PATH/train/<class>/*.jpg and PATH/test/<class>/*.jpg",
        )
    train_files, test_files = _image_files(path / "train"), _image_files(test_dir)
    for split, files in (("train", train_files), (test_dir.name, test_files)):
        if not files:
            raise NascUsageError(
                f"{path / split} holds no images",
                hint=f"put images ({', '.join(sorted(IMAGE_SUFFIXES))}) in one folder per class",
            )
    if len(train_files) < 2:
        raise NascUsageError(
            f"{path / 'train'} has one class ({next(iter(train_files))}); classification needs two",
            hint="put each class's images in a folder of its own",
        )
    if set(train_files) != set(test_files):
        only_train = sorted(set(train_files) - set(test_files))
        only_test = sorted(set(test_files) - set(train_files))
        raise NascUsageError(
            f"the classes of train/ and {test_dir.name}/ differ: only in train: "
            f"{', '.join(only_train) or '-'}; "
            f"only in {test_dir.name}: {', '.join(only_test) or '-'}",
            hint="both splits need the same class folders",
        )
    classes = tuple(sorted(train_files))
    everything = [f for c in classes for f in train_files[c] + test_files[c]]
    key = hashlib.sha256(
        "\n".join(f"{f}:{f.stat().st_mtime_ns}:{f.stat().st_size}" for f in everything).encode()
        + str(image_size).encode()
    ).hexdigest()[:20]
    cached = cache_dir / "decoded" / f"{path.name}-{key}.pt"
    if cached.is_file():
        try:
            stored = torch.load(cached, weights_only=True)
            if stored.get("decoder") == DECODER:  # an older decoding is made again
                return _folder_data(path, classes, stored, image_size)
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt
            pass
    stored = {"decoder": DECODER}
    for split, files in (("train", train_files), ("test", test_files)):
        images, labels = [], []
        for index, name in enumerate(classes):
            for file in files[name]:
                images.append(_decode(file, image_size))
                labels.append(index)
        sizes = {tuple(image.shape) for image in images}
        if len(sizes) > 1:
            raise NascUsageError(
                f"images in {path} have {len(sizes)} different shapes, e.g. "
                f"{', '.join('x'.join(map(str, s)) for s in sorted(sizes)[:3])}",
                hint="pass --image-size N to resize every image to N x N",
            )
        stored[f"{split}_images"] = torch.stack(images)
        stored[f"{split}_labels"] = torch.tensor(labels, dtype=torch.int64)
    if stored["train_images"].shape[1:] != stored["test_images"].shape[1:]:
        raise NascUsageError(
            f"train and test images in {path} differ in shape",
            hint="pass --image-size N to resize every image to N x N",
        )
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        temporary = cached.with_suffix(".tmp")
        torch.save(stored, temporary)
        os.replace(temporary, cached)
    except OSError:
        pass  # the cache only saves time (a damaged one is decoded again)
    return _folder_data(path, classes, stored, image_size)


# How `_decode` turns each PIL image mode into 8-bit RGB. Greyscale, palette (`P`), bilevel
# (`1`), CMYK, YCbCr, LAB and HSV images convert as PIL converts them; 16-bit greyscale (`I;16`,
# and `I` holding values 0..65535, as 16-bit PGM files load) is scaled by its full range,
# 0..65535 to 0..255; 32-bit float images (`F`) are scaled from 0..1, or taken as they are when
# they lie in 0..255; transparency (`RGBA`, `LA`, `PA`, a palette's or a colour key's) is
# composited on black, the colour the random crop pads with. Other modes, and `I` or `F` values
# outside those ranges, are refused by name.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
PLAIN_MODES = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
# Bumped whenever `_decode` changes what it makes of a file, so no cache of an older decoding (a
# 16-bit image saturated to white) is used again.
DECODER = 2


def max_image_pixels() -> int:
    """The largest image (width x height) nasc decodes: `$NASC_MAX_IMAGE_PIXELS`, or the limit
    past which PIL suspects a decompression bomb (89,478,485 pixels, about 9,459 x 9,459)."""
    return int(os.environ.get("NASC_MAX_IMAGE_PIXELS", "89478485"))


def _decode(file: Path, image_size: int | None) -> torch.Tensor:
    """One image file as a 3 x H x W uint8 tensor (resized to `image_size` x `image_size`).

    Raises:
        NascUsageError: naming the file: unreadable, too large, or of a mode nasc cannot map to
            8-bit colour.
    """
    from PIL import Image, UnidentifiedImageError

    guard = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the size is checked below, naming the file
    try:
        with Image.open(file) as image:
            _check_pixels(file, image.size)
            pixels = _rgb(file, image)
        picture = Image.fromarray(pixels, "RGB")
        if image_size:
            picture = picture.resize((image_size, image_size), Image.BILINEAR)
        data = torch.frombuffer(bytearray(picture.tobytes()), dtype=torch.uint8)
        return data.reshape(picture.height, picture.width, 3).permute(2, 0, 1).contiguous()
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise NascUsageError(
            f"cannot read the image {file}: {error}", hint="remove or replace the damaged file"
        ) from None
    finally:
        Image.MAX_IMAGE_PIXELS = guard


def _check_pixels(file: Path, size: tuple[int, int]) -> None:
    """Refuse an image larger than `max_image_pixels()` before decoding it."""
    width, height = size
    limit = max_image_pixels()
    if width * height > limit:
        raise NascUsageError(
            f"the image {file} is {width:,} x {height:,} pixels ({width * height:,}), more than "
            f"the {limit:,} nasc decodes (larger files may be decompression bombs)",
            hint="resize the images first (--image-size resizes only after decoding), or, for "
            f"files you trust, raise the limit: NASC_MAX_IMAGE_PIXELS={width * height}",
        )


def _rgb(file: Path, image):
    """The pixels of an open PIL image as an H x W x 3 uint8 array, mode by mode as the table
    above `SIXTEEN_BIT_MODES` says."""
    import numpy

    mode = image.mode
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        values = numpy.asarray(image).astype(numpy.int64)
        low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if low < 0 or high > 65535:
            raise NascUsageError(
                f"the image {file} holds 32-bit integers (mode I, values {low:,} to {high:,}); "
                "nasc reads 8- and 16-bit images",
                hint="save it as 8-bit or 16-bit greyscale (values 0 to 65535)",
            )
        return _grey((values * 255 + 32767) // 65535)
    if mode == "F":
        values = numpy.asarray(image, dtype=numpy.float64)
        finite = bool(numpy.isfinite(values).all())
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if finite and low >= 0 and high <= 1:
            return _grey(numpy.rint(values * 255))
        if finite and low >= 0 and high <= 255:
            return _grey(numpy.rint(values))
        raise NascUsageError(
            f"the image {file} holds floating-point values from {low:g} to {high:g} (mode F); "
            "nasc reads float images in 0..1 or 0..255",
            hint="scale it to 0..1 (or save it as an 8- or 16-bit image)",
        )
    if mode in ALPHA_MODES or (mode in PLAIN_MODES and "transparency" in image.info):
        try:
            rgba = numpy.asarray(image.convert("RGBA"), dtype=numpy.uint16)
        except ValueError as error:
            raise NascUsageError(
                f"the image {file} has mode {mode}, which nasc cannot convert: {error}",
                hint="save it as RGB, RGBA or greyscale",
            ) from None
        return ((rgba[..., :3] * rgba[..., 3:] + 127) // 255).astype(numpy.uint8)  # on black
    if mode in PLAIN_MODES:
        return numpy.asarray(image.convert("RGB"), dtype=numpy.uint8)
    known = ", ".join((*PLAIN_MODES, *ALPHA_MODES, *SIXTEEN_BIT_MODES, "I", "F"))
    raise NascUsageError(
        f"the image {file} has mode {mode}, which nasc does not read",
        hint=f"save it as RGB or greyscale; nasc reads the modes {known}",
    )


def _grey(values):
    """Greyscale values in 0..255 as an H x W x 3 uint8 array."""
    import numpy

    grey = numpy.clip(values, 0, 255).astype(numpy.uint8)
    return numpy.repeat(grey[..., None], 3, axis=2)


def _folder_data(path: Path, classes, stored, image_size) -> ImageData:
    mean, std = _stats(stored["train_images"])
    size = stored["train_images"].shape[-1]
    return ImageData(
        name=path.name,
        train_images=stored["train_images"],
        train_labels=stored["train_labels"],
        test_images=stored["test_images"],
        test_labels=stored["test_labels"],
        classes=classes,
        mean=mean,
        std=std,
        pad=max(1, size // 8),
    )


def load_data(spec: str, cache_dir: Path | None = None, image_size: int | None = None) -> ImageData:
    """`digits`, `cifar10`, `cifar100` or the path of an ImageFolder tree."""
    cache_dir = Path(cache_dir or default_cache_dir())
    if spec == "digits":
        return load_digits()
    if spec in CIFAR_STATS:
        return load_cifar(spec, cache_dir)
    return load_image_folder(Path(spec), cache_dir, image_size)


# --- batches -------------------------------------------------------------------------------------


class Batches:
    """Batches of normalised float images, optionally augmented, in an order set by a seed.

    Args:
        images, labels: the whole split (moved to `device` once).
        augment: random crop with `data.pad` padding and flips as the data says.
        drop_last: drop a last incomplete batch (training), keep it (evaluation).
        shard: (rank, world size) under torchrun: this rank takes every world-th image of each
            order, and with `drop_last` every rank gets the same number of batches.
    """

    def __init__(
        self,
        data: ImageData,
        images,
        labels,
        batch_size: int,
        device: torch.device,
        augment: bool,
        drop_last: bool,
        cutout: int = 0,
        shard: tuple[int, int] = (0, 1),
    ):
        self.images = images.to(device)
        self.labels = labels.to(device)
        self.batch_size = batch_size
        self.device = device
        self.pad = data.pad if augment else 0
        self.flip = data.flip and augment
        self.cutout = cutout if augment else 0
        shape = (1, -1, 1, 1)
        self.mean = torch.tensor(data.mean, device=device).view(shape) * 255.0
        self.std = torch.tensor(data.std, device=device).view(shape) * 255.0
        self.rank, self.world = shard
        self.drop_last = drop_last and self._shard_size() >= batch_size

    def _shard_size(self) -> int:
        count = len(self.labels)
        if self.world == 1:
            return count
        if getattr(self, "drop_last", True):
            return count // self.world
        return len(range(self.rank, count, self.world))

    def __len__(self) -> int:
        full, rest = divmod(self._shard_size(), self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def order(
        self, seed: int | None, shuffle: bool = True
    ) -> tuple[torch.Tensor, torch.Generator | None]:
        """The indices this rank reads in one pass, and the generator (seeded from `seed`, None
        without one) that drew them, which the pass's augmentation goes on drawing from."""
        count = len(self.labels)
        if seed is None:
            order = torch.arange(count)
            generator = None
        else:
            generator = torch.Generator().manual_seed(seed)
            order = torch.randperm(count, generator=generator) if shuffle else torch.arange(count)
        if self.world > 1:
            if self.drop_last:
                order = order[: count - count % self.world]
            order = order[self.rank :: self.world]
        return order, generator

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
            crops = flips = centres = None
            if generator is not None:
                # Drawn for every batch, skipped or not, so resuming at `start` sees the same draws.
                crops = torch.randint(0, 2 * self.pad + 1, (len(chunk), 2), generator=generator)
                flips = torch.rand(len(chunk), generator=generator) < 0.5
                if self.cutout:
                    centres = torch.randint(
                        0, self.images.shape[2], (len(chunk), 2), generator=generator
                    )
            if index < start:
                continue
            chunk = chunk.to(self.device)
            images = self.images[chunk]
            if self.pad and crops is not None:
                images = random_crop(images, self.pad, crops.to(self.device))
            if self.flip and flips is not None:
                images = torch.where(
                    flips.to(self.device).view(-1, 1, 1, 1), images.flip(3), images
                )
            images = (images.float() - self.mean) / self.std
            if centres is not None:
                images = cutout(images, self.cutout, centres.to(self.device))
            yield standard_layout(images), self.labels[chunk]


def random_crop(images: torch.Tensor, pad: int, offsets: torch.Tensor) -> torch.Tensor:
    """Crop each image at its (row, column) offset from a zero-padded copy, as a batch."""
    batch, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    rows = offsets[:, 0:1] + torch.arange(height, device=images.device)
    cols = offsets[:, 1:2] + torch.arange(width, device=images.device)
    index = torch.arange(batch, device=images.device).view(-1, 1, 1)
    crops = padded.permute(0, 2, 3, 1)[index, rows.unsqueeze(2), cols.unsqueeze(1)]
    return standard_layout(crops.permute(0, 3, 1, 2))


def standard_layout(images: torch.Tensor) -> torch.Tensor:
    """The images in plain NCHW strides. With one channel, a channels-last tensor also counts as
    contiguous, and `.contiguous()` keeps its strides; convolutions then run channels-last, where
    this PyTorch's oneDNN kernels crash for narrow strided 1x1 convs (FactorizedReduce)."""
    if images.stride() == torch.empty(images.shape, device="meta").stride():
        return images
    return images.clone(memory_format=torch.contiguous_format)


def cutout(images: torch.Tensor, length: int, centres: torch.Tensor) -> torch.Tensor:
    """Zero a `length` x `length` square around each image's centre (clipped at the borders),
    after normalisation, as DARTS' Cutout does."""
    height, width = images.shape[2], images.shape[3]
    rows = torch.arange(height, device=images.device).view(1, -1, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, -1)
    top = (centres[:, 0] - length // 2).clamp(0, height).view(-1, 1, 1)
    bottom = (centres[:, 0] + length // 2).clamp(0, height).view(-1, 1, 1)
    left = (centres[:, 1] - length // 2).clamp(0, width).view(-1, 1, 1)
    right = (centres[:, 1] + length // 2).clamp(0, width).view(-1, 1, 1)
    hole = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    return images * (~hole).unsqueeze(1).to(images.dtype)
