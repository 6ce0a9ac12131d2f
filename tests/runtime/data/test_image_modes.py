"""Image files of every mode PIL reads load into the right 8-bit range; huge ones are refused."""

from __future__ import annotations

import struct
import zlib

import numpy
import pytest
import torch
from PIL import Image

from nasc.dsl import NascUsageError
from nasc.runtime.data.images import load_data


def _tree(root, make, suffix=".png"):
    """An ImageFolder tree of two classes, one image each per split, written by `make(path,
    shade)`; returns the root."""
    for split in ("train", "test"):
        for shade, name in enumerate(("a", "b")):
            folder = root / split / name
            folder.mkdir(parents=True)
            make(folder / f"0{suffix}", shade)
    return root


GRADIENT = numpy.array([[0, 257, 32768, 65535]], dtype=numpy.uint16)  # 0, 1, 128, 255 in 8 bits


def test_sixteen_bit_greyscale_is_scaled_by_its_full_range(tmp_path):
    """16-bit PNGs (mode I;16) map 0..65535 onto 0..255 instead of saturating to white."""

    def make(path, shade):
        Image.fromarray(GRADIENT + shade).save(path)

    root = _tree(tmp_path / "d", make)
    with Image.open(root / "train" / "a" / "0.png") as image:
        assert image.mode == "I;16"
    data = load_data(str(root), cache_dir=tmp_path / "cache")
    assert data.train_images.shape == (2, 3, 1, 4)
    assert data.train_images[0, 0, 0].tolist() == [0, 1, 128, 255]
    assert torch.equal(data.train_images[:, 0], data.train_images[:, 2])  # grey in every channel


def test_an_older_cache_of_saturated_images_is_decoded_again(tmp_path):
    """A decoded-image cache written without the decoder's version (by the decoder that
    saturated 16-bit images) is not used."""

    def make(path, shade):
        Image.fromarray(GRADIENT + shade).save(path)

    root = _tree(tmp_path / "d", make)
    load_data(str(root), cache_dir=tmp_path / "cache")
    [cached] = (tmp_path / "cache" / "decoded").glob("*.pt")
    stored = torch.load(cached, weights_only=True)
    stored.pop("decoder")
    stored["train_images"] = torch.full_like(stored["train_images"], 255)
    torch.save(stored, cached)
    data = load_data(str(root), cache_dir=tmp_path / "cache")
    assert data.train_images[0, 0, 0].tolist() == [0, 1, 128, 255]


def _cases():
    """(name, how to write a 3 x 1 image, file suffix, the RGB colours nasc must read)."""
    rgba = numpy.zeros((1, 3, 4), dtype=numpy.uint8)
    rgba[0, :, :3] = (200, 100, 50)
    rgba[0, :, 3] = (255, 128, 0)  # opaque, half, transparent
    palette = Image.new("P", (3, 1))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putdata([0, 1, 0])
    red, blue, black, white = (255, 0, 0), (0, 0, 255), (0, 0, 0), (255, 255, 255)
    return [
        ("L", lambda p: Image.fromarray(numpy.array([[0, 90, 255]], numpy.uint8)).save(p),
         ".png", [black, (90, 90, 90), white]),
        ("1", lambda p: Image.fromarray(numpy.array([[0, 1, 0]], bool)).save(p),
         ".png", [black, white, black]),
        ("P", lambda p: palette.save(p), ".png", [red, blue, red]),
        ("P with a transparent index", lambda p: palette.save(p, transparency=1),
         ".png", [red, black, red]),
        ("RGBA", lambda p: Image.fromarray(rgba, "RGBA").save(p),
         ".png", [(200, 100, 50), (100, 50, 25), black]),
        ("LA", lambda p: Image.fromarray(rgba[..., [0, 3]], "LA").save(p),
         ".png", [(200,) * 3, (100,) * 3, black]),
        ("CMYK", lambda p: Image.new("CMYK", (3, 1), (0, 255, 0, 0)).save(p),
         ".tif", [(255, 0, 255)] * 3),
        ("I (16-bit values)", lambda p: Image.fromarray(
            GRADIENT[:, 1:].astype(numpy.int32)).save(p),
         ".tif", [(1,) * 3, (128,) * 3, white]),
        ("F in 0..1", lambda p: Image.fromarray(
            numpy.array([[0.0, 0.5, 1.0]], numpy.float32)).save(p),
         ".tif", [black, (128,) * 3, white]),
        ("F in 0..255", lambda p: Image.fromarray(
            numpy.array([[0.0, 7.0, 200.0]], numpy.float32)).save(p),
         ".tif", [black, (7,) * 3, (200,) * 3]),
    ]  # fmt: skip


@pytest.mark.parametrize("name, write, suffix, colours", _cases(), ids=[c[0] for c in _cases()])
def test_every_mode_pil_reads_decodes_to_eight_bit_rgb(tmp_path, name, write, suffix, colours):
    """Greyscale, bilevel, palette (with a transparent index), alpha (composited on black),
    CMYK, 32-bit integer (holding 16-bit values) and float images load as the 8-bit colours
    they show."""
    root = _tree(tmp_path / "d", lambda path, shade: write(path), suffix)
    with Image.open(root / "train" / "a" / f"0{suffix}") as image:
        assert image.mode == name.split()[0]
    data = load_data(str(root), cache_dir=tmp_path / "cache")
    pixels = data.train_images[0, :, 0].T.tolist()  # one [r, g, b] per pixel of the row
    assert pixels == [list(colour) for colour in colours]


@pytest.mark.parametrize(
    "values, words",
    [
        (numpy.array([[-5, 70000]], numpy.int32), ["0.tif", "mode I", "-5 to 70,000"]),
        (numpy.array([[0.0, 1000.0]], numpy.float32), ["0.tif", "mode F", "0 to 1000"]),
        (numpy.array([[0.0, numpy.nan]], numpy.float32), ["0.tif", "mode F"]),
    ],
)
def test_values_outside_the_known_ranges_are_refused_by_name(tmp_path, values, words):
    """32-bit integers beyond 16 bits and floats beyond 0..255 are refused, naming the file,
    the mode and the values found, rather than clipped."""
    root = _tree(tmp_path / "d", lambda path, shade: Image.fromarray(values).save(path), ".tif")
    with pytest.raises(NascUsageError) as refused:
        load_data(str(root), cache_dir=tmp_path / "cache")
    assert all(word in refused.value.message for word in words), refused.value.message


def _png_header_only(path, width, height):
    """A PNG that declares `width` x `height` greyscale pixels and holds no image data: what a
    decompression bomb shows PIL before it is decoded."""

    def chunk(kind, data):
        check = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + check

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_refused_naming_the_file_and_its_size(tmp_path):
    """A 14000 x 14000 PNG is refused before decoding, with its name, its size and how to go on
    (not PIL's DecompressionBombError traceback)."""

    def make(path, shade):
        Image.new("L", (4, 4), shade).save(path)

    root = _tree(tmp_path / "d", make)
    bomb = root / "train" / "b" / "huge.png"
    _png_header_only(bomb, 14000, 14000)
    with pytest.raises(NascUsageError) as refused:
        load_data(str(root), cache_dir=tmp_path / "cache")
    message = refused.value.message
    assert str(bomb) in message and "14,000 x 14,000" in message
    assert "NASC_MAX_IMAGE_PIXELS" in refused.value.hint and "resize" in refused.value.hint


def test_the_pixel_limit_is_a_setting(tmp_path, monkeypatch):
    """`NASC_MAX_IMAGE_PIXELS` lowers (or raises) the largest image nasc decodes."""

    def make(path, shade):
        Image.new("L", (5, 4), shade).save(path)

    root = _tree(tmp_path / "d", make)
    monkeypatch.setenv("NASC_MAX_IMAGE_PIXELS", "19")
    with pytest.raises(NascUsageError, match="5 x 4 pixels"):
        load_data(str(root), cache_dir=tmp_path / "cache")
    monkeypatch.setenv("NASC_MAX_IMAGE_PIXELS", "20")
    assert load_data(str(root), cache_dir=tmp_path / "cache").train_images.shape[2:] == (4, 5)
