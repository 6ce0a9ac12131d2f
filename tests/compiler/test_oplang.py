"""Tests of ops defined in the language, built into modules: closed-form sizes (a hypothesis
test over random compositions of primitives), residuals, parametric candidates in a search
supernet and their export, and the located errors of building."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nasc.compiler import CompileOptions, catalog, compile_space, export_network, get_op
from nasc.compiler.export import fixed_source
from nasc.compiler.oplang import Residual
from nasc.dsl import Genotype, NasSemanticError, parse_space
from nasc.dsl.syntax import parse_module

SPACE = """
op mbconv(e, k) = residual(
    conv(1, out = e * C_in) -> bn -> relu6 -> dwconv(k, stride = stride) -> bn -> relu6
    -> conv(1) -> bn
)
ops mb = {mbconv(3, 3), mbconv(6, 5), skip_connect}
cell layer(x) {
    n1 = x:mb
    keep 1 per edge
    out n1
}
network net(C = 4, classes = 3) {
    input(3, 8)
    stem conv3x3_bn(C)
    repeat 2 layer @ C
    mbconv(2C, 6, 3, stride = 2)
    head pool_linear(classes)
}
"""


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def mbconv_count(e: int, k: int, c_in: int, c_out: int) -> int:
    """Expansion conv and BN, depthwise conv and BN, projection conv and BN (affine)."""
    hidden = e * c_in
    return c_in * hidden + 2 * hidden + k * k * hidden + 2 * hidden + hidden * c_out + 2 * c_out


def defined(text: str):
    """The op definitions of `text` (a file of `op` declarations only)."""
    return tuple(parse_module(text).items)


def test_a_parametric_op_has_its_closed_form_size_and_adds_its_input_when_shapes_allow():
    """`mbconv(e, k)` is the inverted residual block: its size, and a residual only at stride 1
    with equal channels."""
    defs = defined(SPACE.split("ops mb")[0])
    for e, k in ((3, 3), (6, 5)):
        same = get_op(f"mbconv({e},{k})", defs).build(4, 4, 1, True)
        assert isinstance(same, Residual) and same.shortcut is None
        assert count(same) == mbconv_count(e, k, 4, 4)
        x = torch.randn(2, 4, 6, 6)
        same.eval()
        body = x
        for step in list(same.children()):
            body = step(body)
        assert torch.allclose(same(x), x + body)
        strided = get_op(f"mbconv({e},{k})", defs).build(4, 8, 2, True)
        assert not isinstance(strided, Residual)
        assert tuple(strided(x).shape) == (2, 8, 3, 3)


def test_parametric_candidates_search_and_export_by_their_names():
    """A supernet holds each parametric candidate under its name; a genotype that keeps one
    exports to a fixed `.nas` naming it, which parses back and builds the same network."""
    space = parse_space(SPACE, catalog=catalog())
    net = compile_space(space, options=CompileOptions())
    ops = net.stages[1].edges["x->n1"]
    assert set(ops) == {"mbconv(3,3)", "mbconv(6,5)", "skip_connect"}
    assert tuple(net(torch.randn(2, 3, 8, 8)).shape) == (2, 3)
    genotype = Genotype({"layer": {"x->n1": ("mbconv(6,5)",)}})
    text = fixed_source(space, genotype)
    assert "n1 = x:mbconv(6,5)" in text and "op mbconv(e, k) = residual(" in text
    fixed = parse_space(text, catalog=catalog())
    assert fixed.is_fixed
    exported = export_network(space, genotype)
    again = compile_space(fixed, options=CompileOptions(search=False))
    assert exported.num_parameters() == again.num_parameters()
    stem, head = 3 * 9 * 4 + 2 * 4, 8 * 3 + 3
    expected = stem + 2 * mbconv_count(6, 5, 4, 4) + mbconv_count(6, 3, 4, 8) + head
    assert exported.num_parameters() == expected


# --- random compositions of primitives ----------------------------------------------------------

ACTIVATIONS = ("relu", "relu6", "hardswish", "sigmoid", "tanh", "gelu")


@st.composite
def steps(draw, channels: int):
    """(text, parameters, channels after) of one random primitive step reading `channels`."""
    kind = draw(st.sampled_from(["conv", "grouped", "dw", "pw", "bn", "act", "pool", "se", "id"]))
    if kind == "conv":
        k, out, bias = (
            draw(st.sampled_from([1, 3, 5])),
            draw(st.integers(1, 6)),
            draw(st.booleans()),
        )
        return (
            f"conv({k}, out = {out}, bias = {int(bias)})",
            k * k * channels * out + bias * out,
            out,
        )
    if kind == "grouped":
        groups = draw(st.sampled_from([g for g in (1, 2, 3) if channels % g == 0]))
        out = groups * draw(st.integers(1, 3))
        weights = 3 * 3 * (channels // groups) * out
        return f"conv(3, out = {out}, groups = {groups})", weights, out
    if kind == "dw":
        k, d = draw(st.sampled_from([3, 5])), draw(st.integers(1, 2))
        return f"dwconv({k}, dilation = {d})", k * k * channels, channels
    if kind == "pw":
        out = draw(st.integers(1, 6))
        return f"pwconv({out})", channels * out, out
    if kind == "bn":
        affine = draw(st.booleans())
        return f"bn(affine = {int(affine)})", 2 * channels * affine, channels
    if kind == "act":
        return draw(st.sampled_from(ACTIVATIONS)), 0, channels
    if kind == "pool":
        return (
            draw(st.sampled_from(["maxpool(3)", "avgpool(3)", "avgpool(5, count_pad = 1)"])),
            0,
            channels,
        )
    if kind == "se":
        mid = draw(st.integers(1, 4))
        return f"se({mid})", channels * mid + mid + mid * channels + channels, channels
    return "identity", 0, channels


@st.composite
def compositions(draw):
    """A random op body (sequences and residuals of primitives) and its closed-form size."""
    c_in = draw(st.integers(1, 6))
    channels, total, parts = c_in, 0, []
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.integers(0, 3)) == 0:  # a residual around a few steps that keep the width
            inner, start = [], channels
            for _ in range(draw(st.integers(1, 3))):
                text, size, channels = draw(steps(channels))
                inner.append(text)
                total += size
            if channels != start:
                inner.append(f"pwconv({start})")
                total += channels * start
                channels = start
            parts.append(f"residual({' -> '.join(inner)})")
        else:
            text, size, channels = draw(steps(channels))
            parts.append(text)
            total += size
    c_out = draw(st.integers(1, 6))
    parts.append(f"pwconv({c_out})")
    total += channels * c_out
    return " -> ".join(parts), c_in, c_out, total


@settings(max_examples=40, deadline=None)
@given(compositions())
def test_random_compositions_have_the_sum_of_their_parts_sizes(composition):
    """An op composed of random primitives compiles, runs, and has exactly the parameters of
    its parts' closed forms summed."""
    body, c_in, c_out, total = composition
    defs = defined(f"op random_op = {body}")
    module = get_op("random_op", defs).build(c_in, c_out, 1, True)
    assert count(module) == total, body
    assert tuple(module(torch.randn(2, c_in, 5, 5)).shape) == (2, c_out, 5, 5)


# --- errors found when an op is built -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("relu -> conv(1, out = C_in + 1) -> bn", "ends with 5 channels where it is placed with 4"),
        ("relu -> conv(3) -> bn", "reduces the resolution by 1 where it is placed with stride 2"),
        ("conv(3, out = 6, groups = 4, stride = stride)", "has 4 groups for 4 input and 6 output"),
    ],
)
def test_an_op_that_does_not_fit_where_it_is_placed_is_located(body, message):
    """A body whose channels or stride do not match its placement names the op's definition."""
    text = f"\n\nop odd = {body}"
    with pytest.raises(NasSemanticError, match=message) as info:
        get_op("odd", defined(text)).build(4, 4 if "groups" not in body else 6, 2, True)
    assert (info.value.span.line, info.value.path) == (3, "op.odd")
    assert info.value.hint


def test_an_op_may_call_another_with_its_arguments_width_and_stride():
    """A body calls a parametric op with its parameters, then `out` and `stride`."""
    defs = defined(
        SPACE.split("ops mb")[0]
        + "\nop two = mbconv(6, 3, out = C_in, stride = stride) -> mbconv(3, 3)"
    )
    module = get_op("two", defs).build(4, 8, 2, True)
    assert count(module) == mbconv_count(6, 3, 4, 4) + mbconv_count(3, 3, 4, 8)
    assert tuple(module(torch.randn(1, 4, 8, 8)).shape) == (1, 8, 4, 4)
