"""Real networks written in `.nas` are torchvision's: the same parameters, and with torchvision's
weights copied in by order, the same outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from nasc.compiler import CompileOptions, catalog, compile_space
from nasc.dsl import load_space

NETWORKS = {
    "resnet18": torchvision.models.resnet18,
    "mobilenet_v2": torchvision.models.mobilenet_v2,
}


def build(name: str, **overrides) -> torch.nn.Module:
    space = load_space(f"spaces/{name}.nas", catalog=catalog())
    return compile_space(space, overrides, CompileOptions(search=False))


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_parameter_count_equals_torchvisions(name):
    """At 1000 classes and 224x224, the `.nas` network has torchvision's parameter count."""
    assert count(build(name)) == count(NETWORKS[name]())


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_outputs_equal_torchvisions_with_its_weights(name):
    """With torchvision's weights and BN statistics copied in by order, eval-mode outputs agree
    to 1e-5 (on a 64x64 image, which both networks take)."""
    torch.manual_seed(0)
    reference = NETWORKS[name]().eval()
    with torch.no_grad():  # statistics away from (0, 1), so the BNs' buffers matter
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    net = build(name, size=64).eval()
    ours = [(key, value) for key, value in net.state_dict().items() if torch.is_tensor(value)]
    theirs = list(reference.state_dict().items())
    assert len(ours) == len(theirs)
    with torch.no_grad():
        for (key, value), (their_key, their_value) in zip(ours, theirs, strict=True):
            assert value.shape == their_value.shape, (key, their_key)
            value.copy_(their_value)
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference(image)
        assert expected.abs().max() > 1e-3  # a real comparison, not one of zeros
        torch.testing.assert_close(net(image), expected, atol=1e-5, rtol=1e-5)


def test_show_prints_the_parameter_count(capsys):
    """`nasc show spaces/resnet18.nas --json` reports torchvision's count and the op definitions."""
    import json

    from nasc.runtime.cli import main

    assert main(["show", "spaces/resnet18.nas", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["parameters"] == count(torchvision.models.resnet18())
    assert facts["fixed"] and set(facts["op_definitions"]) == {"resnet_stem", "basic"}


RESNET34 = """
network resnet34(W = 64, classes = 1000, size = 224) {
    input(3, size)
    stem resnet_stem(W)
    repeat 3 basic(W)
    basic(2W, stride = 2)
    repeat 3 basic(2W)
    basic(4W, stride = 2)
    repeat 5 basic(4W)
    basic(8W, stride = 2)
    repeat 2 basic(8W)
    head pool_linear(classes)
}
"""


def test_resnet34_written_with_repeat_has_torchvisions_parameters():
    """ResNet-34 written with `repeat N basic(...)` (the ops of resnet18.nas, a line per stage)
    has torchvision's parameter count, and its tensors have torchvision's shapes in order."""
    from nasc.dsl import parse_space

    ops = Path("spaces/resnet18.nas").read_text().split("\n# W is the width")[0]
    space = parse_space(ops + RESNET34, "resnet34.nas", catalog=catalog())
    net = compile_space(space, {"size": 64}, CompileOptions(search=False))
    reference = torchvision.models.resnet34()
    assert count(net) == count(reference) == 21_797_672
    ours = [value.shape for value in net.state_dict().values() if torch.is_tensor(value)]
    assert ours == [value.shape for value in reference.state_dict().values()]


def fcn_resnet50() -> torch.nn.Module:
    """torchvision's FCN-ResNet50 as `spaces/fcn_resnet50.nas` describes it."""
    return torchvision.models.segmentation.fcn_resnet50(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=False
    )


def lraspp_mobilenet_v3_large() -> torch.nn.Module:
    """torchvision's LR-ASPP MobileNetV3-Large as `spaces/lraspp_mobilenet_v3_large.nas`
    describes it."""
    return torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=21
    )


def with_weights_of(net: torch.nn.Module, reference: torch.nn.Module) -> None:
    """Give `reference` BN statistics away from (0, 1), so the BNs' buffers matter, and copy its
    weights and buffers into `net` by order, each of the same shape."""
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    ours = [(key, value) for key, value in net.state_dict().items() if torch.is_tensor(value)]
    theirs = list(reference.state_dict().items())
    assert len(ours) == len(theirs)
    with torch.no_grad():
        for (key, value), (their_key, their_value) in zip(ours, theirs, strict=True):
            assert value.shape == their_value.shape, (key, their_key)
            value.copy_(their_value)


def test_fcn_resnet50_equals_torchvisions_with_its_weights():
    """`spaces/fcn_resnet50.nas` has torchvision's parameter count; with its weights and BN
    statistics copied in by order, eval-mode outputs (the head's map resized to the input, N x
    21 x H x W) agree to 1e-5 on a 64x64 image."""
    torch.manual_seed(0)
    reference = fcn_resnet50().eval()
    net = build("fcn_resnet50", size=64).eval()
    assert count(net) == count(reference)
    with_weights_of(net, reference)
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = reference(image)["out"]
        assert expected.shape == (1, 21, 64, 64)
        assert expected.abs().max() > 1e-3  # a real comparison, not one of zeros
        torch.testing.assert_close(net(image), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size", [64, 96])
def test_lraspp_mobilenet_v3_large_equals_torchvisions_with_its_weights(size):
    """`spaces/lraspp_mobilenet_v3_large.nas` has torchvision's parameter count; with its weights
    and BN statistics copied in by order, eval-mode outputs (N x 21 x H x W) agree to 1e-5 at
    sizes that are multiples of 16, where doubling the 1/16 map gives the 1/8 map's size (96
    gives a 6x6 map to gate and a 12x12 one, 64 a 4x4 and an 8x8)."""
    torch.manual_seed(0)
    reference = lraspp_mobilenet_v3_large().eval()
    net = build("lraspp_mobilenet_v3_large", size=size).eval()
    assert count(net) == count(reference)
    with_weights_of(net, reference)
    image = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = reference(image)["out"]
        assert expected.shape == (2, 21, size, size)
        assert expected.abs().max() > 1e-3  # a real comparison, not one of zeros
        torch.testing.assert_close(net(image), expected, atol=1e-5, rtol=1e-5)


def test_lraspp_refuses_a_size_whose_maps_no_doubling_matches():
    """At 72x72 the 1/8 map is 9x9 and the 1/16 map 5x5: torchvision resizes 5 to 9, which an
    upsampling by 2 cannot, so the space refuses the size at the head's read of `gated`."""
    from nasc.dsl import NasSemanticError

    with pytest.raises(NasSemanticError, match="arrives at 5x5 but the cell runs at 9x9") as info:
        build("lraspp_mobilenet_v3_large", size=72)
    assert info.value.path == "lraspp_mobilenet_v3_large.lraspp.high"
