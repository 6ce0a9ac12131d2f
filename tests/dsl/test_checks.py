"""Tests of the semantic checks: one small valid space, one mistake per test, exact errors."""

from __future__ import annotations

import re

import pytest

from nasc.dsl import NascError, NasSemanticError, macro, parse_space
from nasc.dsl.macro import MAX_STAGES

OPS = "ops small = {none, skip_connect, nor_conv_3x3}"
CELL = """cell c(x) {
    n1 = x:small
    n2 = x:small + n1:small
    keep 1 per edge
    out n2
}"""
NETWORK = """network net(C = 16, N = 2, classes = 10) {
    input(3, 32)
    stem conv3x3_bn(C)
    repeat N c @ C
    resblock(2C, stride = 2)
    c @ 2C
    head pool_linear(classes)
}"""


def space(ops: str = OPS, cell: str = CELL, network: str = NETWORK) -> str:
    """The small valid space, with any of its three parts replaced (an empty part is left out)."""
    return "\n\n".join(part for part in (ops, cell, network) if part) + "\n"


def edit(text: str, old: str, new: str) -> str:
    """`text` with the one occurrence of `old` replaced by `new`."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


def position(text: str, needle: str, occurrence: int = 1, offset: int = 0) -> tuple[int, int]:
    """Line and column (from 1) of the `occurrence`-th `needle` in `text`, plus `offset` columns."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    index += offset
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def fails(
    text: str,
    message: str,
    *,
    at: tuple[int, int] | None,
    path: str | None,
    catalog=None,
    overrides=None,
) -> NasSemanticError:
    """Assert that `text` raises exactly `message` at `at` (line, column) with the dotted `path`."""
    with pytest.raises(NasSemanticError, match=re.escape(message)) as info:
        parse_space(text, "space.nas", catalog=catalog, overrides=overrides)
    error = info.value
    assert error.message == message
    if at is None:
        assert error.span is None
    else:
        assert (error.span.file, error.span.line, error.span.column) == ("space.nas", *at)
    assert error.path == path
    assert error.source == text
    return error


def test_base_space_is_valid(catalog):
    """The space every test here mutates parses and lints, with and without the catalog."""
    text = space()
    assert parse_space(text, catalog=catalog).architectures() == 3**3
    assert parse_space(text) == parse_space(text, catalog=catalog)


# --- ops ------------------------------------------------------------------------------------------


def test_unknown_op_in_set(catalog):
    """A misspelt op in a candidate set is named, with a suggestion and the known ops."""
    text = space(ops="ops small = {none, skip_conect, nor_conv_3x3}")
    error = fails(
        text,
        "unknown op `skip_conect`",
        at=position(text, "skip_conect"),
        path="net.ops.small",
        catalog=catalog,
    )
    assert error.hint.startswith("did you mean `skip_connect`? known ops: ")
    assert "resblock" in error.hint and "pool_linear" not in error.hint


def test_unknown_fixed_op_on_edge(catalog):
    """An edge naming neither a set nor an op is an unknown op at the op's position."""
    text = edit(space(), "n1 = x:small", "n1 = x:conv9")
    fails(
        text,
        "unknown op `conv9`",
        at=position(text, "conv9"),
        path="net.c.n1.edge[x]",
        catalog=catalog,
    )


def test_misspelt_set_name_suggests_the_set(catalog):
    """A misspelt candidate-set name suggests the set, since sets and ops share the edge syntax."""
    text = edit(space(), "n1 = x:small", "n1 = x:smal")
    error = fails(
        text,
        "unknown op `smal`",
        at=position(text, "smal\n"),
        path="net.c.n1.edge[x]",
        catalog=catalog,
    )
    assert error.hint.startswith("did you mean `small`?")
    assert error.hint.endswith("candidate sets in this file: small")


def test_unknown_op_without_catalog_is_a_fixed_op():
    """Without a catalog op names are not checked: an unknown name is kept as a fixed op."""
    ir = parse_space(edit(space(), "n1 = x:small", "n1 = x:conv9"))
    edge = ir.cell("c").edge("x->n1")
    assert edge.ops == ("conv9",)
    assert not edge.is_choice


def test_unknown_op_in_macro(catalog):
    """Stems, blocks and heads are checked against the catalog too."""
    text = edit(space(), "stem conv3x3_bn(C)", "stem conv3x3(C)")
    fails(
        text,
        "unknown op `conv3x3`",
        at=position(text, "conv3x3("),
        path="net.network.conv3x3",
        catalog=catalog,
    )
    text = edit(space(), "head pool_linear(classes)", "head linear(classes)")
    error = fails(
        text,
        "unknown op `linear`",
        at=position(text, "linear("),
        path="net.network.linear",
        catalog=catalog,
    )
    assert "pool_linear" in error.hint and "resblock" not in error.hint


def test_unknown_adapter(catalog):
    """An input adapter must be a registered op."""
    text = edit(space(), "cell c(x)", "cell c(x:prep)")
    fails(text, "unknown op `prep`", at=position(text, "prep"), path="net.c.x", catalog=catalog)


def test_empty_op_set():
    """An empty candidate set is an error at the set's declaration."""
    text = space(ops="ops small = {}")
    fails(text, "the op set `small` is empty", at=(1, 1), path="net.ops.small")


def test_duplicate_op_in_set():
    """An op listed twice in one set is reported at its second mention."""
    text = space(ops="ops small = {none, skip_connect, none}")
    fails(
        text,
        "`none` appears twice in the op set `small`",
        at=position(text, "none", 2),
        path="net.ops.small",
    )


def test_op_set_named_like_an_op(catalog):
    """A set named like a registered op would make `x:NAME` ambiguous."""
    text = space(
        ops="ops skip_connect = {none, nor_conv_3x3}", cell=CELL.replace("small", "skip_connect")
    )
    error = fails(
        text,
        "the op set `skip_connect` has the name of an op",
        at=(1, 1),
        path="net.ops.skip_connect",
        catalog=catalog,
    )
    assert "skip_connect_ops" in error.hint


def test_duplicate_op_set():
    """Two sets with one name are an error at the second."""
    text = space(ops=OPS + "\n" + OPS)
    fails(text, "duplicate op set `small`", at=(2, 1), path="net.ops.small")


def test_two_choices_on_one_edge():
    """One edge carries at most one candidate set."""
    text = space(ops=OPS + "\nops more = {nor_conv_1x1}")
    text = edit(text, "n1 = x:small", "n1 = x:small + x:more")
    fails(
        text, "two choices on the edge x->n1", at=position(text, "x:more"), path="net.c.n1.edge[x]"
    )


def test_op_twice_on_an_edge():
    """An op that is both fixed and a candidate on one edge is reported."""
    text = edit(space(), "n2 = x:small", "n2 = x:none + x:small")
    fails(
        text,
        "the edge x->n2 carries `none` twice",
        at=position(text, "x:none"),
        path="net.c.n2.edge[x]",
    )


def test_head_op_used_in_a_cell(catalog):
    """A head op on a cell edge is refused by role."""
    text = edit(space(), "n1 = x:small", "n1 = x:pool_linear")
    fails(
        text,
        "`pool_linear` is a head (it ends in class scores) and cannot be used in cells, "
        "stems and blocks",
        at=position(text, "pool_linear"),
        path="net.c.n1.edge[x]",
        catalog=catalog,
    )


# --- cells ----------------------------------------------------------------------------------------


def test_undefined_node():
    """A node reading a name that is neither an input nor an earlier node is reported."""
    text = edit(space(), "n1:small", "n7:small")
    error = fails(
        text,
        "undefined node `n7` read by `n2`",
        at=position(text, "n7:small"),
        path="net.c.n2.edge[n7]",
    )
    assert "(x)" in error.hint


def test_duplicate_node():
    """A node defined twice is reported at its second definition."""
    text = edit(space(), "    keep", "    n1 = n2:none\n    keep")
    fails(
        text,
        "duplicate node `n1` in cell `c`: it is already a node",
        at=position(text, "n1 =", 2),
        path="net.c.n1",
    )


def test_node_defined_twice_with_the_same_edge():
    """A repeated node is named as such, not blamed on the edge its two definitions share."""
    text = edit(space(), "    keep", "    n1 = x:small\n    keep")
    fails(
        text,
        "duplicate node `n1` in cell `c`: it is already a node",
        at=position(text, "n1 =", 2),
        path="net.c.n1",
    )


def test_duplicate_input():
    """Two inputs with one name are reported at the second."""
    text = edit(space(), "cell c(x)", "cell c(x, x)")
    fails(
        text, "duplicate input `x` of cell `c`", at=position(text, "x, x", offset=3), path="net.c.x"
    )


def test_node_named_like_an_input():
    """A node may not reuse an input's name."""
    text = edit(space(), "    n1 = x:small", "    n1 = x:small\n    x = n1:none")
    fails(
        text,
        "duplicate node `x` in cell `c`: it is already an input",
        at=position(text, "x = "),
        path="net.c.x",
    )


def test_cycle():
    """A cycle is reported with its nodes, at the edge that closes it."""
    text = edit(space(), "n1 = x:small", "n1 = x:small + n2:small")
    error = fails(
        text,
        "cycle in cell `c`: n1 -> n2 -> n1",
        at=position(text, "n2:small"),
        path="net.c.n1.edge[n2]",
    )
    assert "DAG" in error.hint


def test_self_loop_is_a_cycle():
    """A node reading itself is a cycle of one node."""
    text = edit(space(), "n2 = x:small + n1:small", "n2 = x:small + n1:small + n2:none")
    fails(
        text, "cycle in cell `c`: n2 -> n2", at=position(text, "n2:none"), path="net.c.n2.edge[n2]"
    )


def test_edge_from_a_later_node():
    """Reading a node defined further down is refused even without a cycle."""
    cell = """cell c(x) {
    n1 = x:small
    n2 = x:small + n3:small
    n3 = n1:small
    keep 1 per edge
    out concat(n2, n3)
}"""
    text = space(cell=cell)
    error = fails(
        text,
        "edge from a later node: `n2` reads `n3`, which is defined after it",
        at=position(text, "n3:small"),
        path="net.c.n2.edge[n3]",
    )
    assert error.hint == "move the definition of `n3` above `n2`"


def test_product_node_reading_a_source_twice():
    """A product node reads each source once."""
    text = edit(space(), "n2 = x:small + n1:small", "n2 = x:small * n1:small * x:none")
    fails(
        text,
        "`n2` is a product node and reads `x` twice",
        at=position(text, "x:small *"),
        path="net.c.n2.edge[x]",
    )


def test_concat_node_reading_a_source_twice():
    """A concat node reads each source once."""
    text = edit(space(), "n2 = x:small + n1:small", "n2 = concat(x:none, n1:small, x:skip_connect)")
    fails(
        text,
        "`n2` is a concat node and reads `x` twice",
        at=position(text, "x:none"),
        path="net.c.n2.edge[x]",
    )


def test_cell_without_nodes():
    """A cell needs at least one node."""
    text = space(cell="cell c(x) {\n}")
    fails(text, "cell `c` has no nodes", at=position(text, "c(x)"), path="net.c")


def test_unknown_cell_flag():
    """An unknown flag after `with` is named, with a suggestion."""
    text = edit(space(), "cell c(x)", "cell c(x) with reduce")
    error = fails(text, "unknown cell flag `reduce`", at=position(text, "reduce"), path="net.c")
    assert error.hint == "did you mean `reduction`? known flags: pool_bn, reduction"


def test_duplicate_cell():
    """Two cell types with one name are reported at the second."""
    text = space(cell=CELL + "\n" + CELL)
    fails(text, "duplicate cell `c`", at=position(text, "c(x)", 2), path="net.c")


# --- outputs --------------------------------------------------------------------------------------


def test_missing_output():
    """A cell without `out` is reported at the cell, with the last node suggested."""
    text = edit(space(), "    out n2\n", "")
    error = fails(text, "cell `c` has no output", at=position(text, "c(x)"), path="net.c.out")
    assert error.hint.startswith("add `out n2`")


def test_output_naming_an_input():
    """The output is made of intermediate nodes, not inputs."""
    text = edit(space(), "out n2", "out concat(n2, x)")
    fails(
        text, "the output names `x`, which is an input", at=position(text, "out "), path="net.c.out"
    )


def test_output_naming_an_undefined_node():
    """An output naming no node is reported as undefined."""
    text = edit(space(), "out n2", "out n9")
    fails(
        text,
        "the output names `n9`, which is undefined",
        at=position(text, "out "),
        path="net.c.out",
    )


def test_output_listing_a_node_twice():
    """A concat output lists each node once."""
    text = edit(space(), "out n2", "out concat(n2, n2)")
    fails(text, "the output lists a node twice", at=position(text, "out "), path="net.c.out")


def test_two_outputs():
    """A cell has one `out` statement."""
    text = edit(space(), "out n2", "out n2\n    out n1")
    fails(text, "cell `c` has 2 `out` statements", at=position(text, "out n1"), path="net.c.out")


def test_unused_node():
    """A node that nothing reads and the output leaves out is reported."""
    text = edit(space(), "n2 = x:small + n1:small", "n2 = x:small")
    error = fails(
        text,
        "node `n1` is never used: no node reads it and `out` leaves it out",
        at=position(text, "n1 ="),
        path="net.c.n1",
    )
    assert "`out n1`" in error.hint


# --- keep rules -----------------------------------------------------------------------------------


def test_choices_without_keep():
    """A cell with choices needs a `keep` rule."""
    text = edit(space(), "    keep 1 per edge\n", "")
    error = fails(
        text,
        "cell `c` has choices but no `keep` rule",
        at=position(text, "c(x)"),
        path="net.c.keep",
    )
    assert "keep 1 per edge" in error.hint


def test_choice_in_no_subset():
    """With explicit subsets only, every choice must be listed in one."""
    text = edit(space(), "keep 1 per edge", "keep 1 of {x->n1, n1->n2}")
    fails(
        text,
        "the choice x->n2 is in no comparison subset",
        at=position(text, "c(x)"),
        path="net.c.keep",
    )


def test_keep_more_than_an_explicit_subset_has():
    """`keep 3` of a subset with two candidates is reported at the rule."""
    text = space(ops=OPS + "\nops pair = {none, skip_connect}")
    text = edit(text, "n1 = x:small", "n1 = x:pair")
    text = edit(text, "keep 1 per edge", "keep 3 of {x->n1}\n    keep 1 per edge")
    error = fails(
        text,
        "`keep 3` in the subset {x->n1}, which has only 2 candidates",
        at=position(text, "keep 3"),
        path="net.c.keep",
    )
    assert error.hint == "keep at most 2, or add candidates to the subset"


def test_keep_more_than_an_edge_has():
    """`keep 4 per edge` with three candidates per edge names the first edge."""
    text = edit(space(), "keep 1 per edge", "keep 4 per edge")
    fails(
        text,
        "`keep 4` in the subset x->n1, which has only 3 candidates",
        at=position(text, "keep 4"),
        path="net.c.keep",
    )


def test_keep_zero():
    """`keep 0` keeps nothing."""
    text = edit(space(), "keep 1 per edge", "keep 0 per edge")
    fails(text, "`keep 0` keeps nothing", at=position(text, "keep 0"), path="net.c.keep")


def test_unknown_per_rule():
    """Only `per edge` and `per node` exist."""
    text = edit(space(), "keep 1 per edge", "keep 1 per cell")
    error = fails(
        text, "unknown rule `per cell`", at=position(text, "per cell", offset=4), path="net.c.keep"
    )
    assert "keep K per node" in error.hint


def test_two_per_rules():
    """One `per` rule covers every choice left; a second is refused."""
    text = edit(space(), "keep 1 per edge", "keep 1 per edge\n    keep 1 per node")
    fails(
        text,
        "two `keep ... per ...` rules in one cell",
        at=position(text, "keep 1 per node"),
        path="net.c.keep",
    )


def test_subset_naming_a_fixed_edge():
    """An explicit subset may only list choice edges."""
    text = edit(space(), "n1 = x:small", "n1 = x:skip_connect")
    text = edit(text, "keep 1 per edge", "keep 1 of {x->n1}\n    keep 1 per edge")
    error = fails(
        text,
        "the subset lists x->n1, which carries a fixed op, not a choice",
        at=position(text, "x->n1"),
        path="net.c.n1.edge[x]",
    )
    assert error.hint == "a subset lists choice edges: x->n2, n1->n2"


def test_subset_naming_a_non_edge():
    """An explicit subset naming an edge that does not exist is reported at that edge."""
    text = edit(space(), "keep 1 per edge", "keep 1 of {x->n2, n1->x}\n    keep 1 per edge")
    fails(
        text,
        "the subset lists n1->x, which is not an edge",
        at=position(text, "n1->x"),
        path="net.c.x.edge[n1]",
    )


def test_edge_in_two_subsets():
    """Subsets partition the choices: an edge is listed once."""
    text = edit(
        space(),
        "keep 1 per edge",
        "keep 1 of {x->n1}\n    keep 1 of {n1->n2, x->n1}\n    keep 1 per edge",
    )
    fails(
        text, "the edge x->n1 is in two subsets", at=position(text, "x->n1", 2), path="net.c.keep"
    )


# --- network --------------------------------------------------------------------------------------


def test_unknown_parameter_in_expression():
    """An expression naming an undeclared parameter lists the known ones."""
    text = edit(space(), "c @ 2C", "c @ 2D")
    error = fails(
        text,
        "unknown parameter `D` in the width of `c`",
        at=position(text, "2D"),
        path="net.network",
    )
    assert error.hint.endswith("known parameters: C, N, classes")


def test_unknown_parameter_in_default():
    """A default may only read declared parameters."""
    text = edit(space(), "classes = 10", "classes = K")
    fails(
        text,
        "unknown parameter `K` in parameter `classes`",
        at=position(text, "K)"),
        path="net.params.classes",
    )


def test_default_reading_a_later_parameter():
    """A default may only read parameters declared before it."""
    text = edit(space(), "C = 16, N = 2", "C = 8N, N = 2")
    fails(
        text,
        "the default of `C` reads `N`, declared after it",
        at=position(text, "8N"),
        path="net.params.C",
    )


def test_non_integer_parameter():
    """`C = 16.5` is refused: widths and depths are whole numbers."""
    text = edit(space(), "C = 16", "C = 16.5")
    error = fails(
        text,
        "parameter `C` must be an integer, not 16.5",
        at=position(text, "16.5"),
        path="net.params.C",
    )
    assert "integer" in error.hint


def test_non_integer_width():
    """A decimal in a width is refused too."""
    text = edit(space(), "c @ 2C", "c @ 1.5")
    fails(
        text,
        "the width of `c` must be an integer, not 1.5",
        at=position(text, "1.5"),
        path="net.network",
    )


def test_non_positive_parameter():
    """Parameters are positive."""
    text = edit(space(), "N = 2", "N = 2 - 2")
    fails(
        text,
        "parameter `N` must be a positive integer, not 0",
        at=position(text, "N = "),
        path="net.params.N",
    )


def test_non_positive_width():
    """A width that evaluates to zero is reported at its expression."""
    text = edit(space(), "c @ 2C", "c @ C - 16")
    fails(
        text,
        "the width of `c` must be at least 1, but it is 0",
        at=position(text, "C - 16"),
        path="net.network",
    )


def test_negative_repeat():
    """A repeat count may be zero but not negative."""
    text = edit(space(), "repeat N c", "repeat N - 3 c")
    fails(
        text,
        "the repeat count of `c` must be at least 0, but it is -1",
        at=position(text, "N - 3"),
        path="net.network",
    )
    assert parse_space(edit(space(), "repeat N c", "repeat N - 2 c")).name == "net"


def test_division_by_zero():
    """Integer division by zero is an error, not a crash."""
    text = edit(space(), "c @ 2C", "c @ C // (N - 2)")
    fails(
        text, "division by zero in the width of `c`", at=position(text, "C // "), path="net.network"
    )


def test_non_positive_input():
    """The input's channels and size are positive."""
    text = edit(space(), "input(3, 32)", "input(0, 32)")
    fails(
        text,
        "the input's channels must be at least 1, but it is 0",
        at=position(text, "0, 32"),
        path="net.network",
    )


def test_duplicate_parameter():
    """A parameter is declared once."""
    text = edit(space(), "N = 2,", "N = 2, N = 3,")
    fails(text, "duplicate parameter `N`", at=position(text, "N = 3"), path="net.params.N")


def test_override_of_unknown_parameter():
    """A `-D` override must name a declared parameter."""
    text = space()
    error = fails(
        text,
        "unknown parameter `D` in -D D=3",
        at=position(text, "net("),
        path="net.params",
        overrides={"D": 3},
    )
    assert error.hint == "the network `net` has the parameters C, N, classes"


def test_override_that_is_not_a_positive_integer():
    """`-D` values are positive integers."""
    text = space()
    fails(
        text,
        "parameter `C` must be an integer, not 1.5",
        at=position(text, "C = "),
        path="net.params.C",
        overrides={"C": 1.5},
    )
    fails(
        text,
        "parameter `C` must be an integer, not True",
        at=position(text, "C = "),
        path="net.params.C",
        overrides={"C": True},
    )
    fails(
        text,
        "parameter `C` must be a positive integer, not 0",
        at=position(text, "C = "),
        path="net.params.C",
        overrides={"C": 0},
    )


def test_override_that_breaks_an_expression():
    """An override is checked through the expressions that use it."""
    text = edit(space(), "c @ 2C", "c @ C - 16")
    assert parse_space(text, overrides={"C": 17}).name == "net"
    fails(
        text,
        "the width of `c` must be at least 1, but it is -8",
        at=position(text, "C - 16"),
        path="net.network",
        overrides={"C": 8},
    )


def test_two_networks():
    """A file holds one network."""
    text = space() + "\n" + NETWORK.replace("network net", "network other")
    fails(
        text,
        "the file declares 2 networks; a space has exactly one",
        at=position(text, "other"),
        path=None,
    )


def test_no_network():
    """A file without a network is not a space."""
    error = fails(space(network=""), "the file has no `network`", at=None, path=None)
    assert "network net(" in error.hint


def test_two_presets():
    """A file names at most one preset."""
    text = "preset nb201\npreset darts\n" + space()
    fails(text, "the file names two presets", at=(2, 1), path=None)


def test_missing_input():
    """The network needs an `input` statement."""
    text = edit(space(), "    input(3, 32)\n", "")
    fails(
        text,
        "the network needs exactly one `input(channels, size)` statement",
        at=position(text, "net("),
        path="net.network",
    )


def test_two_inputs():
    """The network has one `input` statement."""
    text = edit(space(), "    input(3, 32)\n", "    input(3, 32)\n    input(3, 64)\n")
    fails(
        text,
        "the network has two `input` statements",
        at=position(text, "input(3, 64)"),
        path="net.network",
    )


def test_missing_head():
    """The network needs a head."""
    text = edit(space(), "    head pool_linear(classes)\n", "")
    fails(
        text, "the network needs exactly one `head`", at=position(text, "net("), path="net.network"
    )


def test_two_heads():
    """The network has one head."""
    text = edit(
        space(),
        "    head pool_linear(classes)\n",
        "    head pool_linear(classes)\n    head bn_relu_pool_linear(classes)\n",
    )
    fails(text, "the network has two heads", at=position(text, "head bn_relu"), path="net.network")


def test_statements_after_the_head():
    """The head ends the network."""
    text = edit(
        space(), "    head pool_linear(classes)\n", "    head pool_linear(classes)\n    c @ 4C\n"
    )
    fails(text, "statements after the head", at=position(text, "c @ 4C"), path="net.network")


def test_two_auxiliary_heads():
    """The network has at most one auxiliary head."""
    aux = "    aux darts_aux_cifar(classes)\n"
    text = edit(space(), "    head", aux + aux + "    head")
    fails(
        text,
        "the network has two auxiliary heads",
        at=position(text, "    aux", 2, offset=4),
        path="net.network",
    )


def test_head_op_used_as_a_block(catalog):
    """A head op placed as a block is refused by role."""
    text = edit(space(), "resblock(2C, stride = 2)", "pool_linear(2C)")
    fails(
        text,
        "`pool_linear` is a head (it ends in class scores) and cannot be used in cells, "
        "stems and blocks",
        at=position(text, "pool_linear(2C)"),
        path="net.network.pool_linear",
        catalog=catalog,
    )


def test_block_op_used_as_a_head(catalog):
    """A feature-map op placed as the head is refused by role."""
    text = edit(space(), "head pool_linear(classes)", "head resblock(classes)")
    fails(
        text,
        "`resblock` is a feature-map op and cannot be used in `head`/`aux` statements",
        at=position(text, "resblock(classes)"),
        path="net.network.resblock",
        catalog=catalog,
    )


def test_macro_call_with_two_positional_arguments():
    """Ops in the macro take one positional argument, their width."""
    text = edit(space(), "resblock(2C, stride = 2)", "resblock(2C, 2)")
    error = fails(
        text,
        "`resblock` takes one positional argument, its output width; got 2",
        at=position(text, "resblock"),
        path="net.network.resblock",
    )
    assert error.hint == "e.g. `resblock(2C, stride = 2)`"


def test_macro_call_without_arguments():
    """A head without its class count is an arity error."""
    text = edit(space(), "head pool_linear(classes)", "head pool_linear()")
    fails(
        text,
        "`pool_linear` takes one positional argument, its class count; got 0",
        at=position(text, "pool_linear"),
        path="net.network.pool_linear",
    )


def test_unknown_keyword_argument(catalog):
    """Ops take only `stride`; heads and fixed-stride ops take none."""
    text = edit(space(), "stride = 2", "padding = 2")
    fails(
        text,
        "`resblock` takes no argument `padding`",
        at=position(text, "resblock"),
        path="net.network.resblock",
    )
    text = edit(space(), "head pool_linear(classes)", "head pool_linear(classes, stride = 2)")
    fails(
        text,
        "`pool_linear` takes no argument `stride`",
        at=position(text, "pool_linear"),
        path="net.network.pool_linear",
    )
    text = edit(space(), "stem conv3x3_bn(C)", "stem darts_imagenet_stem0(C, stride = 2)")
    fails(
        text,
        "`darts_imagenet_stem0` takes no argument `stride`",
        at=position(text, "darts_imagenet_stem0"),
        path="net.network.darts_imagenet_stem0",
        catalog=catalog,
    )


def test_stride_three():
    """Strides are 1 or 2; the error points at the stride's value."""
    text = edit(space(), "stride = 2", "stride = 3")
    error = fails(
        text,
        "the stride of `resblock` must be 1 or 2, not 3",
        at=position(text, "stride = 3", offset=9),
        path="net.network.resblock",
    )
    assert "stride-2" in error.hint


def test_unknown_cell_in_network():
    """Placing an undeclared cell names the cells of the file."""
    text = edit(space(), "c @ 2C", "d @ 2C")
    error = fails(text, "unknown cell `d`", at=position(text, "d @"), path="net.network")
    assert error.hint == "cells in this file: c"


def test_two_input_cell_after_a_reduction_without_adapters():
    """A 2-input cell without adapters after a reduction cannot match the shapes of its inputs."""
    cell = """cell pair(a, b) {
    n1 = a:small + b:small
    keep 1 per edge
    out n1
}

cell down(a:preprocess, b:preprocess) with reduction {
    n1 = a:small + b:small
    keep 1 per edge
    out n1
}"""
    network = """network net(C = 16) {
    input(3, 32)
    stem conv3x3_bn(C)
    pair @ C
    down @ 2C
    pair @ 2C
    head pool_linear(10)
}"""
    text = space(cell=cell, network=network)
    error = fails(
        text,
        "shapes cannot match: input `a` of cell `pair` (stage 3) arrives at 32x32 but the cell "
        "runs at 16x16",
        at=position(text, "a, b"),
        path="net.pair.a",
    )
    assert "`a:preprocess`" in error.hint
    assert parse_space(edit(text, "cell pair(a, b)", "cell pair(a:preprocess, b)")).name == "net"


def test_cell_reading_an_output_four_times_larger(catalog):
    """An adapter reduces by two at most: an input four times larger is refused at the statement."""
    cell = """cell pair(a:preprocess, b) {
    n1 = a:small + b:small
    keep 1 per edge
    out n1
}"""
    network = """network net(C = 16) {
    input(3, 32)
    stem conv3x3_bn(C)
    darts_imagenet_stem0(C)
    pair @ C
    head pool_linear(10)
}"""
    text = space(cell=cell, network=network)
    error = fails(
        text,
        "shapes cannot match: input `a` of cell `pair` (stage 2) arrives at 32x32 but the cell "
        "runs at 8x8",
        at=position(text, "pair @"),
        path="net.pair.a",
        catalog=catalog,
    )
    assert "at most twice its resolution" in error.hint


def test_semantic_errors_are_nasc_errors():
    """Semantic errors derive from the one root, `NascError`, and render with their path."""
    assert issubclass(NasSemanticError, NascError)
    text = edit(space(), "n1:small", "n7:small")
    with pytest.raises(NascError) as info:
        parse_space(text, "space.nas")
    rendered = info.value.render().splitlines()
    assert rendered[0] == (
        "space.nas:5:20: error: undefined node `n7` read by `n2` (at net.c.n2.edge[n7])"
    )
    assert rendered[1] == "        n2 = x:small + n7:small"
    assert rendered[2].index("^") == rendered[1].index("n7")


def test_huge_repeat_count_is_refused_quickly(monkeypatch):
    """A repeat count that would place more than `MAX_STAGES` stages is refused before any of
    its cells is placed, not run."""
    text = space()
    placed = []
    cell_stage = macro._cell_stage
    monkeypatch.setattr(
        macro, "_cell_stage", lambda *args: placed.append(args) or cell_stage(*args)
    )
    fails(
        text,
        f"the network places more than {MAX_STAGES} stems, blocks, cells and heads",
        at=position(text, "N c @"),
        path="net.network",
        overrides={"N": 10**30},
    )
    assert placed == []
    assert parse_space(text, overrides={"N": 1000}).name == "net"
    assert len(placed) == 1000 + 1  # the counter sees cells: `repeat N c` and one `c @ 2C`


def test_arithmetic_beyond_64_bits():
    """Arithmetic that leaves 64-bit range is refused, so values stay printable."""
    text = edit(space(), "classes = 10", "classes = 999999999999999999 * 999999999999999999")
    fails(
        text,
        "parameter `classes` is out of range: its arithmetic goes beyond 2**63",
        at=position(text, "999999999999999999 *"),
        path="net.params.classes",
    )


def test_an_op_that_strides_on_its_own_cannot_sit_in_a_cell(catalog):
    """An ImageNet stem on a cell edge or as an adapter is refused: it ignores the cell's stride."""
    text = space(ops="ops small = {none, skip_connect, darts_imagenet_stem1}")
    fails(
        text,
        "`darts_imagenet_stem1` reduces the resolution by 2 on its own "
        "and cannot be used in a cell",
        at=position(text, "darts_imagenet_stem1"),
        path="net.ops.small",
        catalog=catalog,
    )
    text = space(cell=edit(CELL, "cell c(x)", "cell c(x:darts_imagenet_stem0)"))
    fails(
        text,
        "`darts_imagenet_stem0` reduces the resolution by 4 on its own "
        "and cannot be used in a cell",
        at=position(text, "darts_imagenet_stem0"),
        path="net.c.x",
        catalog=catalog,
    )


def test_an_input_that_nothing_reads_needs_no_matching_shape(catalog):
    """A cell input no edge reads is not shape-checked: it computes nothing."""
    cell = """cell d(a, b) {
    n1 = b:small
    keep 1 per edge
    out n1
}"""
    network = edit(NETWORK, "    c @ 2C\n", "    d @ 2C\n")
    parse_space(space(cell=CELL + "\n\n" + cell, network=network), catalog=catalog)


def test_cell_flags_take_a_trailing_comma(catalog):
    """`with reduction,` parses like every other list."""
    text = space(cell=edit(CELL, "cell c(x) {", "cell c(x) with pool_bn, {"))
    assert parse_space(text, catalog=catalog).cell("c").flags == ("pool_bn",)
