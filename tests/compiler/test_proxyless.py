"""spaces/proxyless.nas: per-layer choices among parametric inverted-residual blocks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nasc.compiler import CompileOptions, catalog, compile_space
from nasc.dsl import Genotype, apply_genotype, load_space
from nasc.dsl.ir import BLOCK_EDGE

pytestmark = pytest.mark.usefixtures("one_thread")

VALUES = {"C": 4, "D": 1, "size": 16}
MB = [f"mbconv({e},{k})" for e in (3, 6) for k in (3, 5, 7)]


def space():
    return load_space("proxyless", catalog=catalog(), overrides=VALUES).for_values(VALUES)


def test_only_layers_that_keep_their_shape_may_skip():
    """A stage's first layer strides or widens and chooses among the six blocks; the others
    may also be skipped, as in ProxylessNAS."""
    proxy = space()
    decisions = {cell.name: cell.edges[0].candidates for cell in proxy.used_cells()}
    assert list(decisions) == [
        "stage1_in", "stage1_1", "stage2_in", "stage2_1", "stage3_in", "stage3_1",
        "stage4_in", "stage4_1", "stage5_in", "stage5_1", "stage6_in",
    ]  # fmt: skip
    for name, candidates in decisions.items():
        expected = MB if name.endswith("_in") else [*MB, "skip_connect"]
        assert list(candidates) == expected, name
    assert proxy.architectures() == 6**6 * 7**5


@settings(max_examples=6, deadline=None)
@given(picks=st.lists(st.sampled_from([*MB, "skip_connect"]), min_size=11, max_size=11))
def test_a_proxyless_choice_masked_to_one_block_per_layer_is_the_fixed_network(picks):
    """With one block live per layer, the supernet's outputs equal (1e-5) those of the network
    exported with those blocks, after copying the live blocks' weights stage by stage."""
    proxy = space()
    names = [cell.name for cell in proxy.used_cells()]
    # A first layer cannot skip: it takes the first block instead.
    picks = [
        MB[0] if name.endswith("_in") and pick == "skip_connect" else pick
        for name, pick in zip(names, picks)
    ]
    genotype = Genotype({name: {BLOCK_EDGE: (op,)} for name, op in zip(names, picks)})
    options = CompileOptions(search=True)
    torch.manual_seed(0)
    net = compile_space(proxy, VALUES, options, seed=0)
    net(torch.randn(4, 3, 16, 16))  # move the BN running statistics off their initial values
    net.eval()
    net.arch.restrict(genotype)
    fixed = compile_space(apply_genotype(proxy, genotype), {}, options).eval()
    chosen = dict(zip(names, picks))
    live = [
        module
        if getattr(module, "cell_type", None) is None
        else module.edges[BLOCK_EDGE][chosen[module.cell_type]]
        for module in net.stages
    ]
    assert len(fixed.stages) == len(live)
    for source, target in zip(live, fixed.stages, strict=True):
        target.load_state_dict(source.state_dict())
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(net(x), fixed(x), atol=1e-5, rtol=0)
    assert fixed.num_parameters() == sum(p.numel() for m in live for p in m.parameters())
