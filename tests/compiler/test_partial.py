"""Tests of PC-DARTS' partial channel connections and edge normalisation in the supernet: the
generated code computes what the paper's mixed op and cell compute, with and without the passes
and masks."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from nasc.compiler import CompileOptions, catalog, compile_space, get_op
from nasc.compiler.ops import OPS
from nasc.dsl import NascUsageError, load_space

SMALL = {
    "nb201": {"C": 8, "N": 1, "size": 8},
    "darts": {"C": 8, "layers": 3, "size": 8},
}

pytestmark = pytest.mark.usefixtures("one_thread")


def supernet(name: str, **options):
    torch.manual_seed(0)
    space = load_space(name, catalog=catalog(), overrides=SMALL[name])
    net = compile_space(space, SMALL[name], CompileOptions(**options), seed=0)
    net.arch.set_mixing("softmax")
    return net


def image(name: str, batch: int = 2) -> torch.Tensor:
    size = SMALL[name]["size"]
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


def shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """The reference code's channel shuffle, written out."""
    batch, channels, height, width = x.shape
    x = x.view(batch, groups, channels // groups, height, width).transpose(1, 2).contiguous()
    return x.view(batch, channels, height, width)


def reference_cell(net, cell_module, inputs, k: int) -> torch.Tensor:
    """A cell as PC-DARTS computes it: every edge's MixedOp on 1/k of the channels, the rest
    concatenated (max-pooled when strided) and shuffled; a node sums beta_j * edge_j."""
    arch = net.arch
    cell = net.space.cell(cell_module.cell_type)
    table = arch.choices[cell.name]
    ops_weights = arch.op_weights(cell.name)
    betas = arch.edge_weights(cell.name)
    values = {}
    for item, x in zip(cell.inputs, inputs):
        values[item.name] = cell_module.adapters[item.name](x) if item.adapter else x
    for node in cell.nodes:
        total = 0
        for edge in cell.edges_into(node.name):
            x = values[edge.source]
            modules = cell_module.edges[edge.key]
            for op in edge.ops:
                total = total + modules[op](x)
            if not edge.is_choice:
                continue
            row = table.edges.index(edge.key)
            if not arch.mask(cell.name)[row].any():
                continue  # an edge with no live candidate is no edge
            part = x.shape[1] // k
            mixed = 0
            for column, op in enumerate(table.candidates[row]):
                if arch.mask(cell.name)[row, column] and not OPS[op].zero:
                    mixed = mixed + ops_weights[row, column] * modules[op](x[:, :part])
            rest = x[:, part:]
            stride = 2 if cell.reduction and edge.source in cell.input_names else 1
            if stride == 2:
                rest = functional.max_pool2d(rest, 2, 2)
            if not torch.is_tensor(mixed):
                mixed = rest.new_zeros((rest.shape[0], part, *rest.shape[2:]))
            total = total + betas[row] * shuffle(torch.cat([mixed, rest], dim=1), k)
        values[node.name] = total
    if cell.concat:
        return torch.cat([values[n] for n in cell.output], dim=1)
    return values[cell.output[0]]


def cell_inputs(net, name: str) -> dict:
    """The inputs of every cell, by module, from running the network once."""
    captured = {}
    handles = [
        cell.register_forward_pre_hook(
            lambda module, args: captured.__setitem__(module, tuple(a.detach() for a in args[:-1]))
        )
        for cell in net.cells()
    ]
    with torch.no_grad():
        net(image(name))
    for handle in handles:
        handle.remove()
    return captured


def test_one_group_is_the_plain_supernet():
    """--partial-channels 1 generates the plain supernet's code and its outputs."""
    plain, one = supernet("nb201"), supernet("nb201", partial_channels=1)
    one.load_state_dict(plain.state_dict())
    assert one.code == plain.code
    torch.testing.assert_close(one(image("nb201")), plain(image("nb201")))


@pytest.mark.parametrize("name", ["nb201", "darts"])
def test_mixed_ops_see_one_kth_of_the_channels(name):
    """With K=4 every candidate is built for C/4 channels: its parameters are those of the op at
    C/4, and the candidates' parameter count falls by K to K^2."""
    full, part = supernet(name), supernet(name, partial_channels=4)

    def candidate_parameters(net):
        return sum(
            p.numel()
            for cell in net.cells()
            for edge in net.space.cell(cell.cell_type).choices
            for op in edge.candidates
            for p in cell.edges[edge.key][op].parameters()
        )

    for cell in part.cells():
        ir = part.space.cell(cell.cell_type)
        for edge in ir.choices:
            stride = 2 if ir.reduction and edge.source in ir.input_names else 1
            for op in edge.candidates:
                module = cell.edges[edge.key][op]
                built = get_op(op).build(cell.width // 4, cell.width // 4, stride, False)
                assert sum(p.numel() for p in module.parameters()) == sum(
                    p.numel() for p in built.parameters()
                ), f"{edge.key}:{op}"
    # Dense convolutions shrink by K^2, depthwise ones and BNs by K.
    assert 4 * candidate_parameters(part) < candidate_parameters(full)
    assert candidate_parameters(full) <= 16 * candidate_parameters(part)


@pytest.mark.parametrize("name", ["nb201", "darts"])
@pytest.mark.parametrize("passes", [(), ("cse", "fuse", "fold")])
@pytest.mark.parametrize("edge_normalisation", [False, True])
def test_cells_match_the_pc_darts_reference(name, passes, edge_normalisation):
    """Every partial-channel cell (DARTS: normal and reduction, whose strided edges pool the
    bypassed channels) computes the PC-DARTS cell, with and without the passes, before and after
    candidates are masked out (one per edge, all but `none` on an edge, all on another)."""
    k = 2 if name == "darts" else 4
    net = supernet(name, partial_channels=k, edge_normalisation=edge_normalisation, passes=passes)
    net.eval()  # running statistics: both sides see the same BNs
    with torch.no_grad():
        for parameter in net.arch.parameters():
            parameter.normal_(generator=torch.Generator().manual_seed(3))
    for kill in (False, True):
        if kill:
            for cell, table in net.arch.choices.items():
                last = [(e, ops[-1]) for e, ops in zip(table.edges, table.candidates)]
                net.arch.discard(cell, last)
                net.arch.discard(cell, [(table.edges[0], op) for op in table.candidates[0][1:]])
                net.arch.discard(cell, [(table.edges[-1], op) for op in table.candidates[-1]])
        checked = set()
        for cell, inputs in cell_inputs(net, name).items():
            with torch.no_grad():
                got = cell(*inputs, net.arch.mixing_weights(cell.cell_type))
                want = reference_cell(net, cell, inputs, k)
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
            checked.add(cell.cell_type)
        assert checked == set(net.arch.choices)


def test_gradients_reach_alphas_and_betas():
    """The architecture parameters of a partial, edge-normalised supernet all get gradients."""
    net = supernet("darts", partial_channels=4, edge_normalisation=True)
    output = net(image("darts"))
    (output[0] if isinstance(output, tuple) else output).sum().backward()
    assert len(net.arch.betas) == len(net.arch.choices)
    for name, parameter in net.arch.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_edge_weights_are_a_softmax_per_node():
    """Edge weights sum to one over the choice edges into each node; without edge normalisation
    they are ones and there are no betas."""
    net = supernet("darts", edge_normalisation=True)
    for cell in net.arch.choices:
        weights = net.arch.edge_weights(cell)
        for rows in net.arch.edge_groups[cell]:
            assert float(weights[list(rows)].sum().detach()) == pytest.approx(1.0)
    plain = supernet("darts")
    assert len(plain.arch.betas) == 0
    assert torch.equal(plain.arch.edge_weights("normal"), torch.ones(14))
    # The betas are drawn after every alpha: switching edge normalisation on keeps the alphas.
    for key, alpha in plain.arch.alphas.items():
        assert torch.equal(alpha, net.arch.alphas[key])


def test_partial_channels_need_a_divisible_width():
    """A K that does not divide an edge's channels is refused, naming the edge and stage."""
    with pytest.raises(NascUsageError, match=r"nb201_cell\.x->n1 \(stage \d+\) has 8 channels"):
        supernet("nb201", partial_channels=3)
    with pytest.raises(NascUsageError, match="at least 1"):
        CompileOptions(partial_channels=0)
