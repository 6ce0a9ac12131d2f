"""User names are mangled in generated code: a node named `import` or `None`, a cell input
named `w`, a node named `e` or `self` compile, print and run like any other name."""

from __future__ import annotations

import builtins
import keyword

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nasc.compiler import catalog, compile_space
from nasc.dsl import NascError, parse_space
from nasc.runtime.cli import main

# The generated code's own names, and names Python itself reserves or predefines.
OWN = ["w", "e", "self", "torch", "_zeros", "_drop_path", "image", "logits", "s0", "s1", "x"]
HOSTILE = sorted(set(keyword.kwlist + keyword.softkwlist + dir(builtins) + OWN))
NAMES = st.sampled_from([n for n in HOSTILE if n.isidentifier()]) | st.from_regex(
    r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True
)


def source(cell: str, first: str, second: str, node: str) -> str:
    return f"""
ops s = {{none, skip_connect, nor_conv_3x3}}
cell {cell}({first}, {second}) {{
    {node} = {first}:s + {second}:s
    keep 1 per edge
    out {node}
}}
network net(C = 4, classes = 3, channels = 3, size = 8) {{
    input(channels, size)
    stem conv3x3_bn(C)
    {cell} @ C
    {cell} @ C
    head bn_relu_pool_linear(classes)
}}
"""


@settings(max_examples=40)
@given(st.lists(NAMES, min_size=4, max_size=4, unique=True))
def test_any_accepted_name_compiles_prints_and_runs(tmp_path_factory, names):
    """Whatever identifier-like names a space uses, `check` either refuses them with a clear
    error or they compile: `show --code` prints valid code and the forward pass runs."""
    text = source(*names)
    try:
        space = parse_space(text, "names.nas", catalog=catalog())
    except NascError:
        return  # refused by the language itself, with a located message
    net = compile_space(space, {})
    compile(net.code, "<code>", "exec")
    with torch.no_grad():
        assert net(torch.randn(2, 3, 8, 8)).shape == (2, 3)
    path = tmp_path_factory.mktemp("names") / "names.nas"
    path.write_text(text)
    assert main(["check", str(path)]) == 0
    assert main(["show", str(path), "--code"]) == 0


def test_the_names_the_issue_found_work(tmp_path):
    """`import`, `None`, an input named `w` and a node named `e` once broke generated code; the
    language accepts them, and the code mangles them."""
    for names in (("c", "w", "y", "import"), ("c", "x", "y", "None"), ("c", "w", "self", "e")):
        space = parse_space(source(*names), "names.nas", catalog=catalog())
        net = compile_space(space, {})
        compile(net.code, "<code>", "exec")
        assert f"v_{names[3]} = " in net.code  # mangled, so it collides with nothing
        with torch.no_grad():
            assert net(torch.randn(1, 3, 8, 8)).shape == (1, 3)
