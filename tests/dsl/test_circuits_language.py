"""Circuit spaces in the language: gate pools, placeholders, patterns, repeats, located errors,
printing and fixed circuits."""

from __future__ import annotations

import re

import pytest

from nasc.dsl import (
    CircuitSpace,
    NasSemanticError,
    find_space,
    format_space,
    load_space,
    parse_space,
    read_source,
)
from nasc.dsl.circuits import regular_graph

SPACE = """
gates pool = {h on each, cnot on chain, rx on all, rzz on all ring shared, id}
circuit small(qubits = 4, layers = 2) {
    apply ry on 0
    repeat layers {
        place mix = pool
        place {cnot on pairs}
    }
}
"""


def test_patterns_give_one_candidate_per_target_and_layers_one_candidate():
    """`each` and `chain` give a candidate per qubit or pair; `on all` one layer candidate whose
    angles are per gate, or one angle with `shared`."""
    plan = parse_space(SPACE, "small.nas").plan()
    labels = [slot.label for slot in plan.slots]
    assert labels == ["a1", "mix_1", "p1", "mix_2", "p2"]
    mix = plan.slots[1]
    names = [candidate.name for candidate in mix.candidates]
    assert names == [
        "h@0", "h@1", "h@2", "h@3", "cnot@0-1", "cnot@1-2", "cnot@2-3", "rx@all",
        "rzz@ring:shared", "id",
    ]  # fmt: skip
    rx = mix.candidates[names.index("rx@all")]
    assert [gate.qubits for gate in rx.gates] == [(0,), (1,), (2,), (3,)] and rx.params == 4
    ring = mix.candidates[names.index("rzz@ring:shared")]
    assert [gate.qubits for gate in ring.gates] == [(0, 1), (1, 2), (2, 3), (3, 0)]
    assert {gate.param for gate in ring.gates} == {0} and ring.params == 1
    pairs = plan.slots[2]
    assert [c.name for c in pairs.candidates] == [
        "cnot@0-1", "cnot@0-2", "cnot@0-3", "cnot@1-2", "cnot@1-3", "cnot@2-3",
    ]  # fmt: skip
    assert plan.architectures() == (10 * 6) ** 2


def test_overrides_change_the_qubits_and_the_repeats():
    """-D values resize the patterns and the repeats."""
    space = parse_space(SPACE, "small.nas")
    plan = space.for_values({"qubits": 3, "layers": 3}).plan()
    assert len(plan.choices) == 6
    assert len(plan.choices[0].candidates) == 3 + 2 + 1 + 1 + 1


def test_shipped_circuit_spaces_round_trip_and_count():
    """ghz, tfim and qaoa print to text that parses back to an equal space."""
    counts = {"ghz": 12 * 3**3, "tfim": 4**6, "qaoa": 9**2}
    for name, count in counts.items():
        space = load_space(name)
        assert isinstance(space, CircuitSpace) and space.architectures() == count
        assert parse_space(format_space(space), f"{name}.nas") == space


def test_qaoa_graph_is_three_regular_and_seeded():
    """The qaoa space's graph is a simple 3-regular graph, the same for the same seed."""
    plan = load_space("qaoa").plan()
    degrees = [sum(v in edge for edge in plan.edges) for v in range(plan.qubits)]
    assert degrees == [3] * 8 and len(set(plan.edges)) == 12
    assert regular_graph(8, 3, 1) == plan.edges != regular_graph(8, 3, 2)


def test_decisions_give_a_fixed_circuit_that_prints_and_parses():
    """Deciding every placeholder gives a fixed circuit (no choices) that round-trips."""
    space = load_space("ghz")
    decisions = {"start": "h@0", "link_1": "cnot@0-1", "link_2": "cnot@1-2", "link_3": "cnot@2-3"}
    fixed = space.decide(decisions)
    assert fixed.is_fixed and fixed.architectures() == 1
    text = format_space(fixed)
    assert "apply cnot on (1, 2)" in text and "task ghz" in text
    again = parse_space(text, "found.nas").plan()
    assert [slot.candidates[0].name for slot in again.slots] == [
        "h@0",
        "cnot@0-1",
        "cnot@1-2",
        "cnot@2-3",
    ]
    with pytest.raises(NasSemanticError, match="placeholder `link_1` has no decision"):
        space.decide({"start": "h@0", "link_1": "cnot@5-6"})


@pytest.mark.parametrize(
    ("body", "message", "path", "column"),
    [
        ("apply h on 9", "`h` on qubit 9 of a 8-qubit circuit", "c.a1.h", 36),
        ("place {cnot on 1}", "`cnot` acts on two qubits but it is given one", "c.p1.cnot", 32),
        ("place {rx on (0, 1)}", "`rx` acts on one qubit but a pair", "c.p1.rx", 32),
        ("place {rx on chain}", "`rx` acts on one qubit but `chain` names pairs", "c.p1.rx", 32),
        ("place {cnot on all}", "`on all` names every qubit singly", "c.p1.cnot", 32),
        ("place {cnot on (2, 2)}", "`cnot` on qubit 2 twice", "c.p1.cnot", 32),
        ("place {foo on 1}", "unknown gate `foo`", "c.p1.foo", 32),
        ("place nopool", "unknown gate pool `nopool`", "c.p1", 25),
        ("place {rzz on all edges}", "`edges` needs the circuit's problem graph", "c.p1.rzz", 32),
        ("place {rx on each, rx on 3}", "`rx@3` appears twice", "c.p1.rx@3", 44),
        ("place {h on all shared}", "`shared` ties the angles of a layer", "c.p1.h", 32),
        ("place {rx on foo}", "unknown target `foo`", "c.p1.rx", 38),
        ("place {cnot}", "the gate `cnot` needs its qubits", "c.p1.cnot", 32),
        ("graph regular(9)", "no 9-regular graph on 8 vertices", "c.graph", 25),
        ("graph regular(3, seed = 1) graph cycle()", "two `graph` statements", "c.graph", 52),
        ("repeat 0 { place {h on 0} }", "the repeat count is 0", "c.repeat", 25),
        ("task ghz task tfim", "names two tasks", "c.task", 34),
        ("task tfim(1.0)", "must be named", "c.task", 25),
        ("noise thermal(0.1)", "unknown noise `thermal`", "c.noise", 25),
        ("noise depolarizing(0.9)", "lies in [0, 0.75]", "c.noise", 25),
        ("noise depolarizing()", "takes one number", "c.noise", 25),
        (
            "noise depolarizing(0.1) noise depolarizing(0.2)",
            "two `noise` statements",
            "c.noise",
            49,
        ),
    ],
)
def test_errors_are_located(body, message, path, column):
    """Every mistake in a circuit names its place: file:line:col, a dotted path and a hint."""
    text = f"circuit c(qubits = 8) {{ {body} }}"
    with pytest.raises(NasSemanticError, match=re.escape(message)) as info:
        parse_space(text, "bad.nas")
    error = info.value
    assert error.span.file == "bad.nas" and error.span.line == 1
    assert error.span.column == column
    if path is not None:
        assert error.path == path
    assert error.hint and error.source == text


def test_a_circuit_without_qubits_and_a_network_beside_it_are_refused():
    """The header needs `qubits`; a circuit file holds no network."""
    with pytest.raises(NasSemanticError, match="no `qubits` parameter"):
        parse_space("circuit c(n = 3) { apply h on 0 }")
    with pytest.raises(NasSemanticError, match="not ops, cells or networks"):
        parse_space("ops o = {none}\ncircuit c(qubits = 2) { apply h on 0 }")
    with pytest.raises(NasSemanticError, match="at most 16"):
        parse_space("circuit c(qubits = 17) { apply h on 0 }")


def test_the_noise_line_is_planned_and_kept_by_the_found_circuit():
    """`noise depolarizing(p)` sets the plan's probability and survives decide and print."""
    text = read_source(find_space("ghz")).replace(
        "task ghz", "task ghz\n    noise depolarizing(0.02)"
    )
    space = parse_space(text, "noisy.nas")
    assert space.plan().noise == 0.02 and load_space("ghz").plan().noise == 0.0
    decisions = {"start": "h@0", "link_1": "cnot@0-1", "link_2": "cnot@1-2", "link_3": "cnot@2-3"}
    printed = format_space(space.decide(decisions))
    assert "noise depolarizing(0.02)" in printed
    assert parse_space(printed, "found.nas").plan().noise == 0.02
