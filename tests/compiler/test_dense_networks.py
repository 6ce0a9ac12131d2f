"""Tests of compiled dense networks: the DCNAS-like segmentation spaces check, show, compile to
N x classes x H x W, mask and export; upsampling primitives, fused inputs and per-pixel heads
compute what torch does."""

from __future__ import annotations

import json

import pytest
import torch
from dense_examples import unet
from torch.nn import functional

from nasc.compiler import (
    CompileOptions,
    catalog,
    compile_space,
    count_flops,
    export_network,
    fixed_source,
)
from nasc.dsl import Genotype, load_space, parse_space
from nasc.runtime.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

SPACES = ["dcnas", "dcnas_short"]

UNET = unet(16)


def first_kept(space) -> Genotype:
    """The genotype that keeps the first k candidates of every comparison subset."""
    cells = {}
    for cell in space.used_cells():
        if not cell.choices:
            continue
        kept: dict[str, list[str]] = {edge.key: [] for edge in cell.choices}
        for subset in cell.subsets:
            for edge, op in subset.members[: subset.k]:
                kept[edge].append(op)
        cells[cell.name] = kept
    return Genotype(cells)


def image(size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", SPACES)
def test_segmentation_space_checks_and_shows(name, capsys):
    """`nasc check` and `nasc show --json` accept the space: cells at 1/4 to 1/16 and back, a
    per-pixel head whose map comes back at the input's size."""
    assert main(["check", f"spaces/{name}.nas"]) == 0
    assert "ok (" in capsys.readouterr().out
    assert main(["show", f"spaces/{name}.nas", "--json", "--no-measure"]) == 0
    facts = json.loads(capsys.readouterr().out)
    macro = facts["macro"]
    assert [stage["in_size"] for stage in macro if stage["kind"] == "cell"] == [8, 4, 2, 4, 8]
    assert macro[-1]["kind"] == "head" and macro[-1]["out_size"] == 32
    assert not facts["fixed"] and facts["architectures"] > 1


@pytest.mark.parametrize("search", [True, False], ids=["search", "eval"])
@pytest.mark.parametrize("name", SPACES)
def test_segmentation_space_compiles_to_per_pixel_scores(name, search):
    """The supernet (and the evaluation network) gives N x classes x 32 x 32 logits, and every
    weight gets a gradient."""
    torch.manual_seed(0)
    space = load_space(f"spaces/{name}.nas", catalog=catalog())
    net = compile_space(space, {"classes": 7}, CompileOptions(search=search), seed=0)
    logits = net(image())
    assert tuple(logits.shape) == (2, 7, 32, 32)
    logits.square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None and ".alphas." not in n]
    assert not missing


@pytest.mark.parametrize("name", SPACES)
def test_segmentation_space_masks_and_exports(name):
    """Discarding candidates inside the comparison subsets changes the generated code; the
    supernet restricted to a genotype equals the exported network with its weights, and the
    fixed `.nas` file of that genotype parses, is fixed and compiles to the same shapes."""
    torch.manual_seed(0)
    space = load_space(f"spaces/{name}.nas", catalog=catalog())
    net = compile_space(space, {"C": 4}, seed=0)
    net(image(seed=7))  # BN running statistics off their initial values
    net.eval()
    genotype = first_kept(space)
    before = net.code
    net.arch.set_mixing("sum")
    net.arch.restrict(genotype)
    assert net.code != before and net.arch.genotype() == genotype
    exported = export_network(space, genotype, {"C": 4}, supernet=net).eval()
    with torch.no_grad():
        torch.testing.assert_close(net(image()), exported(image()), atol=1e-5, rtol=0)
    fixed = parse_space(fixed_source(space, genotype, header="found"), catalog=catalog())
    assert fixed.is_fixed
    standalone = compile_space(fixed, {"C": 4}, CompileOptions(search=False)).eval()
    shapes = {k: v.shape for k, v in standalone.state_dict().items() if torch.is_tensor(v)}
    expected = export_network(space, genotype, {"C": 4}).state_dict()
    assert shapes == {k: v.shape for k, v in expected.items() if torch.is_tensor(v)}
    assert tuple(standalone(image()).shape) == (2, 5, 32, 32)
    assert json.loads(json.dumps(genotype.to_json()))["cells"].keys() == genotype.cells.keys()


def test_fused_input_sums_each_output_through_its_own_adapter():
    """A cell input reading `from all` is the sum of each earlier output through its own
    `resample`: bilinear upsampling, ReLU, 1x1 conv and BN for a coarser one."""
    torch.manual_seed(0)
    space = load_space("spaces/dcnas.nas", catalog=catalog())
    net = compile_space(space, {"C": 4}, CompileOptions(search=False)).eval()
    cell = net.stages[4]  # at 1/8, reading the stem, 1/4, 1/8 and 1/16 cells
    fuse = cell.fuse["x"]
    assert len(fuse) == 4
    outputs = [torch.randn(2, c, s, s) for c, s in [(16, 8), (12, 8), (24, 4), (48, 2)]]
    coarse = fuse[3]
    up = functional.interpolate(outputs[3], scale_factor=2, mode="bilinear", align_corners=False)
    with torch.no_grad():
        manual = coarse[3](coarse[2](torch.relu(up)))
        torch.testing.assert_close(coarse(outputs[3]), manual)
        total = sum(adapter(x) for adapter, x in zip(fuse, outputs, strict=True))
        torch.testing.assert_close(fuse(outputs), total)
    assert tuple(total.shape) == (2, 8, 4, 4)


def test_unet_with_transposed_convolutions_compiles():
    """The U-Net written with named skips and `deconv` upsampling adapters gives per-pixel
    scores, its transposed convolutions double the size, and FLOPs count them."""
    torch.manual_seed(0)
    space = parse_space(UNET, "unet.nas", catalog=catalog())
    net = compile_space(space, {}, CompileOptions(search=False)).eval()
    assert tuple(net(image(16)).shape) == (2, 3, 16, 16)
    deconv = net.stages[3].adapters["deep"]
    assert isinstance(deconv, torch.nn.ConvTranspose2d) and deconv.stride == (2, 2)
    assert tuple(deconv(torch.randn(1, 16, 4, 4)).shape) == (1, 8, 8, 8)
    lone = torch.nn.Sequential(torch.nn.ConvTranspose2d(16, 8, 2, stride=2))
    assert count_flops(lone, 16, 4) == 4 * 4 * 16 * 8 * 2 * 2  # input pixels x weights
    assert "decoder" in net.code and "_to_input(self.stages[5](s4), image)" in net.code


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_upsampling_primitives_are_torchs(mode):
    """`bilinear(f)` (align_corners=False) and `nearest(f)` compute torch's interpolation."""
    text = UNET.replace(
        "op up_conv with resampling = deconv(2, stride = up)",
        f"op up_conv with resampling = {mode}(up) -> conv(1) -> bn",
    )
    space = parse_space(text, catalog=catalog())
    net = compile_space(space, {}, CompileOptions(search=False)).eval()
    step = net.stages[3].adapters["deep"][0]
    x = torch.randn(1, 16, 4, 4)
    corners = False if mode == "bilinear" else None
    expected = functional.interpolate(x, scale_factor=2, mode=mode, align_corners=corners)
    torch.testing.assert_close(step(x), expected)
    assert isinstance(step, torch.nn.Upsample)


def test_per_pixel_head_is_resized_bilinearly_to_the_input():
    """The network's logits are the head's map resized to the image with align_corners=False."""
    torch.manual_seed(0)
    space = load_space("spaces/dcnas.nas", catalog=catalog())
    net = compile_space(space, {"C": 4}, CompileOptions(search=False)).eval()
    seen = []
    net.stages[-1].register_forward_hook(lambda module, inputs, output: seen.append(output))
    with torch.no_grad():
        logits = net(image())
    assert tuple(seen[0].shape) == (2, 5, 8, 8)
    expected = functional.interpolate(seen[0], size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(logits, expected)


def test_a_dead_node_of_a_resampling_cell_is_zeros_at_the_cells_resolution():
    """With only `none` kept into a node, the node is zeros of the cell's size, although the raw
    last input arrives at another resolution (its `resample` runs for the shape)."""
    space = load_space("spaces/dcnas_short.nas", catalog=catalog())
    net = compile_space(space, {"C": 4}, seed=0)
    genotype = first_kept(space)
    decided = {key: list(ops) for key, ops in genotype.cells["short"].items()}
    decided["prev2->n1"], decided["prev1->n1"] = ["none"], ["none"]
    net.arch.restrict(Genotype({"short": decided}))
    assert "_zeros(prev1," in net.code
    assert tuple(net(image()).shape) == (2, 5, 32, 32)
