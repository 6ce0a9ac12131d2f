"""Tests of nasc.testing's property checks and of `nasc test`: the reference spaces pass, and
broken spaces and exporters fail with a located, shrunk counterexample."""

from __future__ import annotations

import attrs
import pytest
import torch
from hypothesis import given

from nasc.compiler import catalog, export_network
from nasc.dsl import Genotype, apply_genotype, find_space, load_space, read_source
from nasc.dsl.genotype import check_genotype
from nasc.runtime.cli import main
from nasc.testing import check_space, genotypes, render_report

NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"

# Keeping two of an edge's candidates is fine where the node sums them, but `b` concatenates its
# inputs and may read `x` once only: such a genotype cannot be written as a fixed `.nas` file.
CONCAT_TWO_PER_EDGE = """\
ops set = {nor_conv_1x1, nor_conv_3x3, avg_pool_3x3}

cell c(x) {
    a = x:set
    b = concat(x:set, a:skip_connect)
    keep 2 per edge
    out b
}

network n(C = 4) {
    input(3, 8)
    stem conv3x3_bn(C)
    c @ C
    head pool_linear(3)
}
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, defines",
    [
        ("nb201", ["C=4", "N=1"]),
        ("darts", ["C=4", "layers=3", "size=8"]),
        ("tricell", []),
        ("macro_choice", ["C=4", "N=1", "size=8"]),
        ("proxyless", ["C=4", "D=1", "size=8"]),
        ("gated", ["C=4", "size=8"]),
    ],
)
def test_reference_spaces_pass_nasc_test(name, defines, capsys):
    """`nasc test` on each reference space holds all four properties and exits 0."""
    argv = ["test", f"spaces/{name}.nas", "--examples", "6"]
    for define in defines:
        argv += ["-D", define]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("\nok   ") + out.startswith("ok   ") == 4 and "FAIL" not in out
    assert f"{name}: all 4 properties hold (6 examples each" in out


def test_a_genotype_a_concat_node_cannot_hold_fails_at_its_edge(tmp_path, capsys):
    """A space whose `keep 2 per edge` lets an edge into a concat node keep two ops fails the
    round trip, located at that edge of the file, with such a genotype as counterexample."""
    path = tmp_path / "broken.nas"
    path.write_text(CONCAT_TWO_PER_EDGE)
    assert main(["test", str(path), "--examples", "10"]) == 1
    out = capsys.readouterr().out
    assert "ok   shrink-keeps-k" in out and "ok   masks-only-lose" in out
    assert "FAIL genotypes-round-trip" in out
    assert f"{path}:5:16: error: the exported .nas text does not parse" in out
    assert "    b = concat(x:set, a:skip_connect)\n" in out and "^^^^^" in out
    shown = out.split("counterexample (shrunk by hypothesis):\n")[1].splitlines()[0]
    edges = dict(item.split("=") for item in shown.strip().removeprefix("c: ").split(", "))
    assert len(edges["x->b"].split("+")) == 2  # the cause: two ops on the concat node's edge
    assert "n: 1 of 4 properties fail" in out


def test_a_subset_keeping_more_than_it_has_fails_shrinking_at_its_keep_rule():
    """A subset whose k exceeds its candidates (built past the linter) fails `shrink-keeps-k` at
    its `keep` line; hypothesis shrinks the counterexample to one shrink step."""
    space = load_space("tricell", catalog=catalog())
    cell = space.cells[0]
    rule = cell.keeps[0]
    assert rule.edges == ("x->a", "a->b")
    broken_cell = attrs.evolve(cell, keeps=[attrs.evolve(rule, k=9), *cell.keeps[1:]])
    broken = attrs.evolve(space, cells=[broken_cell])
    report = check_space(
        broken,
        examples=5,
        source=read_source(find_space("tricell")),
        properties=("shrink-keeps-k", "masks-only-lose"),
    )
    keeps, loses = report.results
    assert loses.ok and not keeps.ok and not report.ok
    failure = keeps.failure
    assert (failure.span.line, failure.span.column) == (15, 5)
    assert failure.path == "tricell.tri.keep"
    assert "subset {x->a, a->b}: 8 live candidates after shrink step 1 of 1" in failure.message
    assert keeps.counterexample.splitlines()[0] == "1 shrink step"
    text = render_report(report)
    assert "tricell:15:5: error:" in text and "keep 2 of {x->a, a->b}" in text


def dropping_export(space, genotype, overrides=None, options=None, supernet=None):
    """A broken exporter: the standalone network loses the cell's edge x->n3."""
    fixed = apply_genotype(space, genotype)
    cell = fixed.cells[0]
    kept = [edge for edge in cell.edges if edge.key != "x->n3"]
    broken = attrs.evolve(fixed, cells=[attrs.evolve(cell, edges=kept), *fixed.cells[1:]])
    return export_network(broken, Genotype({}), overrides, options, supernet)


def test_an_export_that_drops_an_edge_fails_at_that_edge():
    """An exporter that drops x->n3 fails the round trip and the equivalence with the supernet,
    both located at the edge's term in nb201.nas, with the simplest genotype as counterexample."""
    space = load_space("nb201", catalog=catalog(), overrides={"C": 4, "N": 1})
    report = check_space(
        space,
        {"C": 4, "N": 1},
        examples=4,
        source=read_source(find_space("nb201")),
        export=dropping_export,
        properties=("genotypes-round-trip", "supernet-equals-export"),
    )
    for result in report.results:
        assert not result.ok, result.name
        assert (result.failure.span.line, result.failure.span.column) == (12, 10)
        assert result.failure.path == "nb201.nb201_cell.n3.edge[x]"
        assert "x->n3" in result.failure.message
        # hypothesis shrinks towards the first candidate of every subset: `none` everywhere
        assert "nb201: |none~0|+|none~0|none~1|+|none~0|none~1|none~2|" in result.counterexample
    assert "n3 = x:nb201 + n1:nb201 + n2:nb201" in render_report(report)


def test_the_honest_exporter_passes_where_the_broken_one_fails():
    """The same checks with nasc's exporter hold on the same small space."""
    space = load_space("nb201", catalog=catalog(), overrides={"C": 4, "N": 1})
    report = check_space(space, {"C": 4, "N": 1}, examples=3)
    assert report.ok, render_report(report)


@given(genotypes(load_space("darts", catalog=catalog())))
def test_drawn_genotypes_keep_exactly_k_per_subset(genotype):
    """Every genotype `genotypes(space)` draws is one the space's subsets admit."""
    check_genotype(load_space("darts", catalog=catalog()), genotype)


def test_nasc_test_refuses_zero_examples(capsys):
    """`--examples 0` is a usage error (exit 2), not a vacuous pass."""
    assert main(["test", "spaces/tricell.nas", "--examples", "0"]) == 2
    assert "--examples 0" in capsys.readouterr().err


def test_a_shrink_step_that_revives_a_candidate_fails_masks_only_lose(monkeypatch):
    """A broken shrink step that brings back a discarded candidate fails `masks-only-lose` at
    that candidate's edge; the shrunk counterexample has the two steps it takes."""
    from nasc.runtime.strategies import isdarts

    honest = isdarts.shrink

    def reviving(net, scores, step, steps):
        records = honest(net, scores, step, steps)
        if step == 1:  # bring back the first candidate of x->n1, which step 0 may have dropped
            with torch.no_grad():
                net.arch.mask("nb201_cell")[0, 0] = True
        return records

    monkeypatch.setattr(isdarts, "shrink", reviving)
    space = load_space("nb201", catalog=catalog())
    report = check_space(space, examples=10, properties=("masks-only-lose",))
    (loses,) = report.results
    assert not loses.ok
    assert loses.failure.path == "nb201.nb201_cell.n1.edge[x]"
    assert (loses.failure.span.line, loses.failure.span.column) == (10, 10)
    assert "brought back none on nb201_cell.x->n1" in loses.failure.message
    assert loses.counterexample.splitlines()[0] == "2 shrink steps"


def test_a_fixed_space_passes_with_nothing_to_decide(tmp_path, capsys):
    """An exported architecture (no choices left) passes `nasc test` too."""
    path = tmp_path / "arch.nas"
    assert main(["export", "nb201", "--format", "nas", "-o", str(path), "--arch", NB201]) == 0
    assert main(["test", str(path), "-D", "C=4", "-D", "N=1", "--examples", "3"]) == 0
    assert "all 4 properties hold" in capsys.readouterr().out


def first_block_export(space, genotype, overrides=None, options=None, supernet=None):
    """A broken exporter: every block choice exports its first candidate, whatever was chosen."""
    first = {
        cell.name: {edge.key: (edge.candidates[0],) for edge in cell.choices}
        for choice in space.block_choices
        for cell in choice.cells
    }
    swapped = Genotype({**genotype.cells, **first})
    return export_network(space, swapped, overrides, options, supernet)


def test_an_export_that_ignores_block_choices_fails_the_equivalence():
    """In a macro space, an exporter that writes the first candidate of every block choice gives
    the supernet restricted to another block's weights and outputs: the equivalence fails."""
    defines = {"C": 4, "N": 1, "size": 8}
    space = load_space("macro_choice", catalog=catalog(), overrides=defines)
    honest = check_space(space, defines, examples=3, properties=("supernet-equals-export",))
    assert honest.ok, render_report(honest)
    report = check_space(
        space, defines, examples=6, export=first_block_export,
        properties=("supernet-equals-export",),
    )  # fmt: skip
    (result,) = report.results
    assert not result.ok
    assert "weights" in result.failure.message or "differ" in result.failure.message
