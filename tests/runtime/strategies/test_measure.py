"""Tests of IS-DARTS' measurement protocols: which images the information is measured on."""

from __future__ import annotations

import pytest
import torch

from nasc.compiler import catalog
from nasc.dsl import NascUsageError, load_space
from nasc.runtime.data.images import Batches, load_digits
from nasc.runtime.search.config import make_config, validate
from nasc.runtime.search.loop import Searcher
from nasc.runtime.tasks import bind_data


@pytest.fixture(scope="module")
def digits():
    return load_digits().subset(80, seed=0)


def searcher(data, **overrides):
    space = load_space("nb201", catalog=catalog())
    defines = bind_data(space, {"C": 2, "N": 1}, data)
    values = dict(epochs=3, batch_size=16, shrink_steps=1, shrink_interval=1, device="cpu")
    config = make_config(space.preset, "isdarts", {**values, **overrides})
    return Searcher(space, defines, config, data, torch.device("cpu"))


def plain(data, images) -> torch.Tensor:
    """Images normalised as the batches normalise them, without augmentation."""
    batches = Batches(data, images, torch.zeros(len(images)), len(images), "cpu", False, False)
    return next(batches.epoch(None))[0]


def collect(batches):
    images, labels = zip(*batches)
    return torch.cat(images), torch.cat(labels)


def test_the_papers_presets_measure_as_the_reference_code():
    """The NB201 and DARTS presets of IS-DARTS use the reference code's protocol."""
    for preset in ("nb201", "darts"):
        assert make_config(preset, "isdarts", {}).measure_on == "reference"


def test_reference_reads_every_training_image_augmented_in_order(digits):
    """`reference`: every training image once, in dataset order, augmented as for training,
    the same augmentation when a step is measured again and another at the next step."""
    net = searcher(digits, measure_on="reference")
    count, batches = net.measurement_batches(0)
    images, labels = collect(batches)
    assert count == len(digits.train_labels) == len(labels)
    assert torch.equal(labels, digits.train_labels)
    assert not torch.equal(images, plain(digits, digits.train_images))  # random crops
    again, _ = collect(net.measurement_batches(0)[1])
    following, _ = collect(net.measurement_batches(1)[1])
    assert torch.equal(images, again) and not torch.equal(images, following)


@pytest.mark.parametrize(("protocol", "split"), [("paper", "test"), ("train-sample", "train")])
def test_sampled_protocols_draw_measure_samples_plain_images(digits, protocol, split):
    """`paper` draws `measure_samples` held-out images, `train-sample` training images; neither
    is augmented."""
    net = searcher(digits, measure_on=protocol, measure_samples=12)
    count, batches = net.measurement_batches(0)
    images, labels = collect(batches)
    assert count == 12 == len(labels)
    pool = getattr(digits, f"{split}_images")
    normalised = plain(digits, pool)
    for image in images:  # each one is an un-augmented image of that split
        assert (normalised - image).abs().flatten(1).amax(1).min() == 0


def test_an_unknown_protocol_is_refused():
    """`--measure-on` takes one of the three protocols, and the error names the flag."""
    config = make_config("nb201", "isdarts", {"measure_on": "validation"})
    with pytest.raises(NascUsageError, match="--measure-on must be one of reference, paper"):
        validate(config)
