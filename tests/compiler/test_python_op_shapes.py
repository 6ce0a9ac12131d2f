"""Ops registered in Python (plugins) are run once where the network places them, and refused,
named and located, when their output is not the shape their place needs."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from nasc.compiler import OPS, CompileOptions, catalog, compile_space, probe, register_op
from nasc.dsl import NasSemanticError, parse_space

SPACE = """ops small = {plugin_op, skip_connect}

cell c(x) {
    n1 = x:small
    keep 1 per edge
    out n1
}

network net(C = 4, classes = 3) {
    input(1, 8)
    stem conv3x3_bn(C)
    c @ C
    plugin_op(2C)
    head pool_linear(classes)
}
"""
BUILDS = []


def conv(stride_of, channels_of):
    """A plugin op's builder: a 3x3 conv whose stride and output channels are functions of the
    place's (stride, C_in, C_out)."""

    def build(C_in, C_out, stride, affine, track_running_stats=True):
        """A 3x3 conv, registered by a test."""
        BUILDS.append((C_in, C_out, stride))
        out = channels_of(C_in, C_out)
        return nn.Conv2d(C_in, out, 3, stride=stride_of(stride), padding=1)

    return build


@pytest.fixture
def plugin():
    """Registers `plugin_op` from a builder; forgets it (and what the probe ran) afterwards."""

    def register(build):
        register_op("plugin_op")(build)
        return parse_space(SPACE, "space.nas", catalog=catalog())

    BUILDS.clear()
    yield register
    OPS.pop("plugin_op", None)
    probe._checked.clear()


def test_a_well_shaped_python_op_is_run_once_per_place_and_compiles(plugin):
    """A plugin op that obeys its place compiles; it was run once per distinct place (the cell
    edge and the block), before the network's own copies were built, and leaves torch's random
    state as it found it."""
    space = plugin(conv(lambda stride: stride, lambda c_in, c_out: c_out))
    torch.manual_seed(0)
    net = compile_space(space, options=CompileOptions(search=False))
    assert BUILDS[:2] == [(4, 4, 1), (4, 8, 1)]  # the probes, then the network's modules
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    state = torch.random.get_rng_state()
    probe._checked.clear()
    probe.check_python_ops(space, net.plan)
    assert torch.equal(torch.random.get_rng_state(), state)
    BUILDS.clear()
    compile_space(space, options=CompileOptions(search=False))
    assert len(BUILDS) == 2  # the network's own modules: the places were checked already


def test_a_python_op_that_halves_the_map_at_stride_1_is_refused_at_its_use(plugin):
    """An op that strides by 2 where it is placed with stride 1 is refused before the network is
    built: the error names the op, the edge that uses it (file, line, column) and both shapes."""
    space = plugin(conv(lambda stride: 2 * stride, lambda c_in, c_out: c_out))
    message = (
        "the Python op `plugin_op` gives (2, 4, 4, 4) where its place needs (2, 4, 8, 8) "
        "(from a (2, 4, 8, 8) input; placed at net.c.n1.edge[x] with C_in 4, C_out 4, stride 1)"
    )
    with pytest.raises(NasSemanticError, match=re.escape(message)) as info:
        compile_space(space)
    error = info.value
    assert (error.span.file, error.span.line, error.span.column) == ("space.nas", 4, 12)
    assert error.path == "net.c.n1.edge[x]"
    assert "ceil(H / stride)" in error.hint and "test_python_op_shapes" in error.hint
    assert "space.nas:4:12: error:" in error.render()


def test_a_python_op_with_the_wrong_channels_is_refused_at_the_block(plugin):
    """An op that keeps its input's channels where its place asks for twice as many is refused
    at the block statement that places it."""
    space = plugin(conv(lambda stride: stride, lambda c_in, c_out: c_in))
    with pytest.raises(
        NasSemanticError, match=re.escape("gives (2, 4, 8, 8) where its place needs (2, 8, 8, 8)")
    ) as info:
        compile_space(space, options=CompileOptions(search=False))
    assert (info.value.span.line, info.value.span.column) == (13, 5)
    assert info.value.path == "net.network.plugin_op"


def test_a_python_op_that_fails_when_run_is_named_at_its_use(plugin):
    """An op whose module raises on the dummy input is refused with the exception, at its use."""

    def build(C_in, C_out, stride, affine, track_running_stats=True):
        """A conv that expects one input channel."""
        return nn.Conv2d(1, C_out, 3, stride=stride, padding=1)

    space = plugin(build)
    with pytest.raises(NasSemanticError, match="the Python op `plugin_op` fails on a") as info:
        compile_space(space)
    assert "RuntimeError" in info.value.message
    assert (info.value.span.line, info.value.span.column) == (4, 12)
