"""Tests of genotypes: NB201 strings, DARTS genotypes, checks, fixed spaces and `--arch` files."""

from __future__ import annotations

import ast as python_ast
import json
import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nasc.dsl import (
    NascError,
    NascUsageError,
    format_space,
    lint_space,
    load_space,
    parse_space,
)
from nasc.dsl.genotype import (
    KNOWN_DARTS_GENOTYPES,
    Genotype,
    apply_genotype,
    check_genotype,
    darts_genotype,
    format_darts,
    genotype_from_darts,
    genotype_from_nb201,
    nb201_string,
    parse_arch,
)

REFERENCE = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES = ("x->n1", "x->n2", "n1->n2", "x->n3", "n1->n3", "n2->n3")


def nb201_genotype(ops) -> Genotype:
    """An NB201 genotype from six ops in the string's edge order."""
    edges = {edge: (op,) for edge, op in zip(NB201_EDGES, ops, strict=True)}
    return Genotype({"nb201_cell": edges})


def nb201_text(ops) -> str:
    """The NB201 string of six ops in edge order."""
    a, b, c, d, e, f = ops
    return f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"


# --- NAS-Bench-201 strings ------------------------------------------------------------------------


def test_nb201_reference_string_round_trip(nb201):
    """The reference NB201 cell reads into a genotype and writes back as the same string."""
    genotype = genotype_from_nb201(nb201, REFERENCE)
    assert genotype == nb201_genotype(
        ["nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect"]
        + ["nor_conv_3x3", "nor_conv_3x3"]
    )
    assert nb201_string(nb201, genotype) == REFERENCE


@given(st.lists(st.sampled_from(NB201_OPS), min_size=6, max_size=6))
def test_nb201_random_string_round_trip(nb201, ops):
    """Every NB201 string reads and writes back unchanged, as the genotype of its six ops."""
    text = nb201_text(ops)
    genotype = genotype_from_nb201(nb201, text)
    assert genotype == nb201_genotype(ops)
    assert nb201_string(nb201, genotype) == text
    assert parse_arch(nb201, "  " + text + "\n") == genotype


def test_nb201_terms_may_come_in_any_order(nb201):
    """Within a node group the `~j` indices decide the edge, not the order."""
    text = "|none~0|+|skip_connect~1|avg_pool_3x3~0|+|nor_conv_1x1~2|none~0|none~1|"
    genotype = genotype_from_nb201(nb201, text)
    assert genotype.cells["nb201_cell"]["x->n2"] == ("avg_pool_3x3",)
    assert genotype.cells["nb201_cell"]["n2->n3"] == ("nor_conv_1x1",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the NB201 string has 1 node groups; cell `nb201_cell` has 3 nodes"),
        ("|none~0|+|none~0|none~1|", "the NB201 string has 2 node groups"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "has 4 node groups"),
        ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "malformed NB201 node group `none~0`"),
        ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", "malformed NB201 node group `|none|`"),
        ("|none~x|+|none~0|none~1|+|none~0|none~1|none~2|", "malformed NB201 node group"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must have one op from each of nodes"),
        ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "node group 2"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~9|", "node group 3"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "`conv` is not a candidate"),
    ],
)
def test_malformed_nb201_strings(nb201, text, message):
    """Malformed NB201 strings raise a usage error that says what is wrong."""
    with pytest.raises(NascUsageError, match=re.escape(message)):
        genotype_from_nb201(nb201, text)


def test_nb201_string_needs_an_nb201_space(darts, tricell):
    """NB201 strings only describe NB201-shaped spaces."""
    with pytest.raises(NascUsageError, match=re.escape("the space `darts` is not NB201-shaped")):
        genotype_from_nb201(darts, REFERENCE)
    with pytest.raises(NascUsageError, match="not NB201-shaped"):
        parse_arch(tricell, REFERENCE)


# --- DARTS genotypes ------------------------------------------------------------------------------


def _pairs_per_node(pairs: list) -> list[Counter]:
    return [Counter(map(tuple, pairs[i : i + 2])) for i in range(0, len(pairs), 2)]


@pytest.mark.parametrize("name", ["DARTS_V1", "DARTS_V2"])
def test_darts_published_genotype_round_trip(darts, name):
    """A published DARTS genotype reads by name, prints, and reads back to the same genotype."""
    genotype = parse_arch(darts, name)
    written = darts_genotype(darts, genotype)
    text = format_darts(written)
    assert parse_arch(darts, text) == genotype
    assert format_darts(darts_genotype(darts, parse_arch(darts, text))) == text
    published = genotype_from_darts(darts, KNOWN_DARTS_GENOTYPES[name])
    assert published == genotype
    # the same pairs per node as the published text (the order within a node is not kept)
    original = eval_darts(KNOWN_DARTS_GENOTYPES[name])
    for role in ("normal", "reduce"):
        assert _pairs_per_node(written[role]) == _pairs_per_node(original[role])
        assert written[f"{role}_concat"] == [2, 3, 4, 5]


def eval_darts(text: str) -> dict:
    """The fields of a `Genotype(...)` text, read without nasc."""
    call = python_ast.parse(text, mode="eval").body
    return {keyword.arg: python_ast.literal_eval(keyword.value) for keyword in call.keywords}


def test_darts_v2_normal_cell(darts):
    """DARTS_V2's normal cell keeps the published ops on the published edges."""
    cells = parse_arch(darts, "DARTS_V2").cells
    normal = {edge: ops for edge, ops in cells["normal"].items() if ops}
    assert normal == {
        "c_k2->n0": ("sep_conv_3x3",),
        "c_k1->n0": ("sep_conv_3x3",),
        "c_k2->n1": ("sep_conv_3x3",),
        "c_k1->n1": ("sep_conv_3x3",),
        "c_k2->n2": ("skip_connect",),
        "c_k1->n2": ("sep_conv_3x3",),
        "c_k2->n3": ("skip_connect",),
        "n0->n3": ("dil_conv_3x3",),
    }


def test_darts_text_with_range_concat(darts):
    """`normal_concat=range(2, 6)`, as the DARTS code writes it, is accepted."""
    text = KNOWN_DARTS_GENOTYPES["DARTS_V2"].replace("[2, 3, 4, 5]", "range(2, 6)")
    assert "range(2, 6)" in text
    assert parse_arch(darts, text) == parse_arch(darts, "DARTS_V2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "Genotype(normal=[1, 2, 3, 4], reduce=[])",
            "the normal entry 1 is not an (op, node) pair",
        ),
        (
            "Genotype(normal=[('a', 0, 1), ('a', 0, 1), ('a', 0, 1), ('a', 0, 1)], reduce=[])",
            "is not an (op, node) pair",
        ),
        ("Genotype(normal=[], reduce=[], normal_concat=[None])", "normal_concat [None] differs"),
        ("Genotype(normal=[], reduce=[], normal_concat=5)", "normal_concat 5 differs"),
        ("Genotype(normal=[], reduce=[], normal_concat=[2, 3, 4, 5, 9])", "differs"),
        ("Genotype(normal=[], reduce=[], normal_concat=[2, 3, 4, -1])", "differs"),
        ("Genotype(normal=[], reduce=[], normal_concat=range(0, 999999999999))", "malformed"),
        ("Genotype(normal={[1]: 2}, reduce=[])", "malformed DARTS genotype"),
        ("Genotype(normal=[1] * 8, reduce=[])", "malformed DARTS genotype"),
        ("Genotype(normal=[('a', 0)]", "not a DARTS genotype"),
        ("Genotype(normal=[], reduce=[])", "the genotype keeps 0, the space keeps exactly 2"),
        ("Genotype(normal=[('sep_conv_3x3', 0)] , reduce=[])", "must split evenly over the 4"),
    ],
)
def test_malformed_darts_genotypes(darts, text, message):
    """Malformed DARTS genotypes raise usage errors, never Python errors."""
    with pytest.raises(NascUsageError, match=re.escape(message)):
        parse_arch(darts, text)


def test_darts_pair_reading_a_later_node(darts):
    """A pair naming a node its node cannot read is refused."""
    pairs = [("sep_conv_3x3", 2), ("sep_conv_3x3", 1)] + [("sep_conv_3x3", 0)] * 6
    data = {"normal": pairs, "reduce": pairs}
    with pytest.raises(NascUsageError, match=re.escape("reads node 2, which `n0` cannot read")):
        genotype_from_darts(darts, data)


def test_darts_pair_with_a_boolean_node_index(darts):
    """JSON `true` is not node 1: a bool index is refused, though Python counts it as an int."""
    pairs = [("sep_conv_3x3", 0), ("sep_conv_3x3", True)] + [("sep_conv_3x3", 0)] * 6
    with pytest.raises(NascUsageError, match=re.escape("reads node True")):
        genotype_from_darts(darts, {"normal": pairs, "reduce": pairs})


def test_darts_pair_on_a_fixed_edge():
    """A DARTS-shaped space with a fixed edge refuses a pair on that edge, without a KeyError."""
    space = parse_space(
        DARTS_LIKE.replace("n0 = c_k2:o + c_k1:o", "n0 = c_k2:skip_connect + c_k1:o")
    )
    pairs = [("skip_connect", 0), ("sep_conv_3x3", 1)] + [("sep_conv_3x3", 0)] * 2
    with pytest.raises(NascUsageError, match=re.escape("names normal.c_k2->n0, which is not")):
        genotype_from_darts(space, {"normal": pairs, "reduce": pairs})


DARTS_LIKE = """
ops o = {sep_conv_3x3, skip_connect}
cell normal(c_k2:preprocess, c_k1:preprocess) {
    n0 = c_k2:o + c_k1:o
    n1 = c_k2:o + c_k1:o + n0:o
    keep 2 per node
    out concat(n0, n1)
}
cell reduce(c_k2:preprocess, c_k1:preprocess) with reduction {
    n0 = c_k2:o + c_k1:o
    n1 = c_k2:o + c_k1:o + n0:o
    keep 2 per node
    out concat(n0, n1)
}
network d(C = 8) { input(3, 32) normal @ C reduce @ 2C normal @ 2C head pool_linear(10) }
"""


def test_darts_genotype_needs_a_darts_space(nb201):
    """DARTS genotypes only describe spaces with a normal and a reduction cell type."""
    with pytest.raises(NascUsageError, match=re.escape("the space `nb201` is not DARTS-shaped")):
        parse_arch(nb201, "DARTS_V2")
    with pytest.raises(NascUsageError, match="not DARTS-shaped"):
        darts_genotype(nb201, genotype_from_nb201(nb201, REFERENCE))


# --- checks ---------------------------------------------------------------------------------------


def _with(genotype: Genotype, cell: str, edge: str, ops) -> Genotype:
    cells = {name: dict(edges) for name, edges in genotype.cells.items()}
    cells[cell][edge] = ops
    return Genotype(cells)


@pytest.mark.parametrize(
    ("edge", "ops", "message"),
    [
        (
            "x->n1",
            ("none", "skip_connect"),
            "cell `nb201_cell`, subset x->n1: the genotype keeps 2, the space keeps exactly 1",
        ),
        ("x->n1", (), "subset x->n1: the genotype keeps 0"),
        ("x->n1", ("conv",), "`conv` is not a candidate of nb201_cell.x->n1"),
        ("x->n1", ("none", "none"), "the genotype lists an op twice on nb201_cell.x->n1"),
        (
            "x->n9",
            ("none",),
            "the genotype names x->n9, which is not a choice of cell `nb201_cell`",
        ),
    ],
)
def test_check_genotype_errors(nb201, edge, ops, message):
    """A genotype that does not keep exactly k valid candidates per subset is refused."""
    genotype = _with(genotype_from_nb201(nb201, REFERENCE), "nb201_cell", edge, ops)
    with pytest.raises(NascUsageError, match=re.escape(message)):
        check_genotype(nb201, genotype)


def test_check_genotype_missing_cell(nb201):
    """A genotype must decide every used cell type with choices."""
    with pytest.raises(NascUsageError, match="does not decide cell `nb201_cell`"):
        check_genotype(nb201, Genotype({}))


def test_check_genotype_refuses_a_cell_the_space_lacks(nb201):
    """A cell the space does not search (a misspelt name, another space's genotype) is refused,
    not ignored, even when every cell of the space is decided."""
    cells = dict(genotype_from_nb201(nb201, REFERENCE).cells)
    cells["nb201_cel"] = cells["nb201_cell"]
    with pytest.raises(NascUsageError, match="decides cell `nb201_cel`") as caught:
        check_genotype(nb201, Genotype(cells))
    assert "nb201_cell" in caught.value.hint


def test_check_genotype_per_node_subset(darts):
    """In DARTS, three survivors into one node break `keep 2 per node`."""
    genotype = parse_arch(darts, "DARTS_V2")
    genotype = _with(genotype, "normal", "n0->n1", ("none",))
    with pytest.raises(NascUsageError, match=re.escape("subset n1: the genotype keeps 3")):
        check_genotype(darts, genotype)


# --- fixed spaces ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "arch"),
    [("nb201", REFERENCE), ("darts", "DARTS_V1"), ("darts", "DARTS_V2")],
)
def test_apply_genotype_gives_a_fixed_space(catalog, name, arch):
    """Applying a genotype leaves no choices; the fixed space lints and round-trips as text."""
    space = load_space(name, catalog=catalog)
    fixed = apply_genotype(space, parse_arch(space, arch))
    assert fixed.is_fixed
    assert fixed.architectures() == 1
    assert fixed.opsets == ()
    assert all(not cell.keeps for cell in fixed.cells)
    assert lint_space(fixed, catalog) is fixed
    text = format_space(fixed)
    assert parse_space(text, catalog=catalog) == fixed
    assert "keep" not in text and "ops " not in text
    assert fixed.network == space.network


def test_apply_nb201_reference_cell(nb201):
    """The reference cell's ops become fixed edges in the printed space."""
    text = format_space(apply_genotype(nb201, genotype_from_nb201(nb201, REFERENCE)))
    assert "    n3 = x:skip_connect + n1:nor_conv_3x3 + n2:nor_conv_3x3\n" in text


def test_apply_darts_drops_edges_without_survivors(darts):
    """DARTS keeps two edges per node: the other edges disappear from the fixed cell."""
    fixed = apply_genotype(darts, parse_arch(darts, "DARTS_V2"))
    normal = fixed.cell("normal")
    assert [edge.key for edge in normal.edges_into("n3")] == ["c_k2->n3", "n0->n3"]
    assert len(normal.edges) == 8


def test_apply_keeps_a_none_edge_for_a_node_that_would_read_nothing(tricell, catalog):
    """When both survivors of a shared subset sit on one edge, the other edge stays as `none`."""
    genotype = Genotype(
        {
            "tri": {
                "x->a": (),
                "a->b": ("nor_conv_1x1", "nor_conv_3x3"),
                "x->b": ("none",),
                "a->c": ("skip_connect",),
                "b->c": ("sep_conv_3x3",),
            }
        }
    )
    fixed = apply_genotype(tricell, genotype)
    cell = fixed.cell("tri")
    assert cell.edge("x->a").ops == ("none",)
    assert cell.edge("a->b").ops == ("nor_conv_1x1", "nor_conv_3x3")
    assert parse_space(format_space(fixed), catalog=catalog) == fixed


def test_apply_keeps_a_none_edge_for_a_node_nothing_would_read(catalog):
    """A node whose only reader loses its edge keeps that edge as `none`, so it stays used."""
    space = parse_space(
        """
        ops s = {none, skip_connect}
        cell c(x) {
            a = x:nor_conv_3x3
            b = x:s + a:s
            keep 1 of {x->b, a->b}
            out b
        }
        network n() { input(3, 8) c @ 4 head pool_linear(2) }
        """,
        catalog=catalog,
    )
    fixed = apply_genotype(space, Genotype({"c": {"x->b": ("skip_connect",), "a->b": ()}}))
    assert [(edge.key, edge.ops) for edge in fixed.cell("c").edges] == [
        ("x->a", ("nor_conv_3x3",)),
        ("x->b", ("skip_connect",)),
        ("a->b", ("none",)),
    ]
    assert lint_space(fixed, catalog) is fixed


def test_apply_turns_a_one_edge_product_into_a_sum(catalog):
    """A product node left with one edge becomes a sum, so the fixed text parses back equal."""
    space = parse_space(
        """
        ops s = {none, skip_connect}
        cell c(x, y) {
            n1 = x:s * y:nor_conv_3x3
            keep 1 per edge
            out n1
        }
        cell spare(x, y) {
            n1 = x:s * y:none
            keep 1 per edge
            out n1
        }
        network n() { input(3, 8) c @ 4 head pool_linear(2) }
        """,
        catalog=catalog,
    )
    fixed = apply_genotype(space, Genotype({"c": {"x->n1": ("skip_connect",)}}))
    assert [node.combine for node in fixed.cell("c").nodes] == ["product"]
    # the unplaced cell is not decided: its choice edge goes, and one edge is left
    assert [node.combine for node in fixed.cell("spare").nodes] == ["sum"]
    assert [edge.key for edge in fixed.cell("spare").edges] == ["y->n1"]
    assert parse_space(format_space(fixed), catalog=catalog) == fixed


# --- --arch files ---------------------------------------------------------------------------------


def test_parse_arch_json_genotype(nb201, tmp_path):
    """A JSON file in nasc's own form (`{"cells": ...}`) reads back as the genotype written."""
    genotype = genotype_from_nb201(nb201, REFERENCE)
    path = tmp_path / "genotype.json"
    path.write_text(json.dumps(genotype.to_json()))
    assert parse_arch(nb201, str(path)) == genotype
    assert Genotype.from_json(genotype.to_json()) == genotype


def test_parse_arch_json_darts_dict(darts, tmp_path):
    """A JSON file holding a DARTS genotype as a dict reads as that genotype."""
    genotype = parse_arch(darts, "DARTS_V1")
    path = tmp_path / "darts.json"
    path.write_text(json.dumps(darts_genotype(darts, genotype)))
    assert parse_arch(darts, str(path)) == genotype


def test_parse_arch_json_nb201_string(nb201, tmp_path):
    """A JSON file holding `{"nb201": "|...|"}` reads as that NB201 string."""
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"nb201": REFERENCE}))
    assert parse_arch(nb201, str(path)) == genotype_from_nb201(nb201, REFERENCE)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read the genotype file"),
        ("[1, 2]", "is not a genotype"),
        ('{"cells": {"nb201_cell": {"x->n1": "none"}}}', "is not a genotype"),
        ('{"nb201": 5}', "is not a genotype"),
        ('{"cells": {"nb201_cell": {"x->n1": ["none"]}}}', "subset x->n2: the genotype keeps 0"),
    ],
)
def test_parse_arch_bad_json(nb201, tmp_path, content, message):
    """Unreadable or wrong JSON files raise usage errors naming the problem."""
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(NascUsageError, match=re.escape(message)):
        parse_arch(nb201, str(path))


def test_parse_arch_unknown_argument(nb201, tmp_path):
    """An `--arch` that is no string form and no file says what it accepts."""
    with pytest.raises(NascUsageError, match="not an NB201 string, a DARTS genotype or a file"):
        parse_arch(nb201, str(tmp_path / "missing.json"))
    with pytest.raises(NascUsageError, match="not an NB201 string"):
        parse_arch(nb201, str(tmp_path))


@given(st.text(max_size=80) | st.from_regex(r"\|[a-z_0-9~|+]{0,40}", fullmatch=True))
def test_random_arch_text_raises_only_nasc_errors(nb201, darts, text):
    """Any `--arch` text either reads or raises a `NascError`, for either space."""
    for space in (nb201, darts):
        for arch in (text, "Genotype(" + text + ")", "Genotype(normal=" + text + ", reduce=[])"):
            try:
                genotype = parse_arch(space, arch)
            except NascError:
                continue
            check_genotype(space, genotype)


def test_a_fixed_architecture_gives_its_own_strings(nb201, darts, catalog):
    """An exported fixed `.nas` file yields the NB201 string and DARTS genotype it was made from."""
    from nasc.dsl import apply_genotype, format_space, parse_arch, parse_space
    from nasc.dsl.genotype import Genotype, darts_genotype, format_darts, nb201_string

    text = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    fixed = parse_space(
        format_space(apply_genotype(nb201, genotype_from_nb201(nb201, text))), catalog=catalog
    )
    assert fixed.is_fixed and nb201_string(fixed, Genotype({})) == text
    v2 = parse_arch(darts, "DARTS_V2")
    fixed = parse_space(format_space(apply_genotype(darts, v2)), catalog=catalog)
    assert format_darts(darts_genotype(fixed, Genotype({}))) == format_darts(
        darts_genotype(darts, v2)
    )


def test_a_malformed_darts_genotype_says_how_to_write_one(darts):
    """An unclosed bracket names the mistake without Python's `<unknown>` and hints the form."""
    with pytest.raises(NascUsageError) as info:
        parse_arch(darts, "Genotype(normal=[('sep_conv_3x3', 0), reduce=[])")
    error = info.value
    assert "malformed DARTS genotype" in error.message and "<unknown>" not in error.message
    assert "normal_concat=[2, 3, 4, 5]" in error.hint
