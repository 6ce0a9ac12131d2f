"""spaces/gated.nas: a product node gated by a sigmoid computes what a GRU-like gate does."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from nasc.compiler import CompileOptions, catalog, compile_space
from nasc.dsl import Genotype, apply_genotype, load_space

pytestmark = pytest.mark.usefixtures("one_thread")

VALUES = {"C": 4, "N": 1, "size": 8}


@pytest.mark.parametrize("transform", ["nor_conv_3x3", "sep_conv_3x3", "skip_connect"])
def test_the_gated_node_is_its_transform_times_a_sigmoid_gate(transform):
    """In the exported network, the cell computes h = T(a) * sigmoid(BN(conv1x1(x))) with
    a = x (skip) and the shortcuts `none`, computed here from the modules' own weights."""
    space = load_space("gated", catalog=catalog(), overrides=VALUES)
    genotype = Genotype(
        {
            "gru": {
                "x->a": ("skip_connect",),
                "a->h": (transform,),
                "a->o": ("none",),
                "x->o": ("none",),
            }
        }  # fmt: skip
    )
    torch.manual_seed(0)
    net = compile_space(apply_genotype(space, genotype), VALUES, CompileOptions(), seed=0)
    net(torch.randn(4, 3, 8, 8))  # move the BN running statistics off their initial values
    net.eval()
    cell = net.stages[1]
    seen = {}
    cell.register_forward_hook(lambda module, args, out: seen.update(x=args[0], out=out))
    with torch.no_grad():
        net(torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1)))
        x = seen["x"]
        conv, bn, sigmoid = cell.edges["x->h"]["gate"]
        assert isinstance(conv, torch.nn.Conv2d) and conv.kernel_size == (1, 1)
        assert isinstance(sigmoid, torch.nn.Sigmoid)
        normed = functional.batch_norm(
            conv(x), bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps
        )
        gate = torch.sigmoid(normed)
        expected = cell.edges["a->h"][transform](x) * gate
    assert 0 < gate.min() and gate.max() < 1
    assert torch.allclose(seen["out"], expected, atol=1e-6, rtol=0)
