"""Counts of architectures print at any size, and a cell of thousands of nodes is checked in
time linear in its size."""

from __future__ import annotations

import json
import sys

import pytest

from nasc.dsl import format_count, parse_space
from nasc.dsl.ir import SpaceIR, count_value


def chain(nodes: int) -> str:
    """A space whose one cell is a chain of `nodes` nodes, each edge a choice of three ops:
    3**nodes architectures."""
    lines = ["ops s = {none, skip_connect, nor_conv_3x3}", "", "cell c(x) {", "    n1 = x:s"]
    lines += [f"    n{i} = n{i - 1}:s" for i in range(2, nodes + 1)]
    lines += ["    keep 1 per node", f"    out n{nodes}", "}", ""]
    lines += ["network net(C = 4, classes = 10) {", "    input(3, 8)", "    stem conv3x3_bn(C)"]
    lines += ["    c @ C", "    head pool_linear(classes)", "}", ""]
    return "\n".join(lines)


COUNTS = [
    (27, "27"),
    (164_184_900_682_383_360_000, "164,184,900,682,383,360,000"),
    (10**30 - 1, f"{10**30 - 1:,}"),
    (10**30, "about 1.00e30"),
    (3**2000, "about 1.75e954"),
    (3**10000, "about 1.63e4771"),
    (10**5000 - 1, "about 1.00e5000"),
]


@pytest.mark.parametrize(("count", "text"), COUNTS, ids=[text for _, text in COUNTS])
def test_format_count_is_exact_up_to_thirty_digits_then_a_power_of_ten(count, text):
    """Counts print exactly with thousands separators up to 30 digits, beyond as `about
    M.MMeK` (Python cannot print an integer of more than 4,300 digits)."""
    assert format_count(count) == text


def test_count_value_keeps_integers_json_can_hold():
    """Facts keep a count as an integer while JSON can write it, else as text."""
    assert count_value(3**2000) == 3**2000
    assert count_value(3**10000) == "about 1.63e4771"
    assert json.loads(json.dumps({"n": count_value(3**10000)})) == {"n": "about 1.63e4771"}


def test_check_of_a_two_thousand_node_cell_prints_the_count_as_a_power_of_ten(tmp_path, capsys):
    """`nasc check` of a 2,000-node cell completes and prints 3**2000 in scientific form."""
    from nasc.runtime.cli import main

    path = tmp_path / "chain.nas"
    path.write_text(chain(2000))
    assert main(["check", str(path)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console may wrap the line
    assert out == f"{path}: ok (about 1.75e954 architectures)"


def test_show_of_a_space_beyond_python_int_printing(monkeypatch, capsys):
    """`nasc show` (text and JSON) of a space of 3**10000 architectures prints the count as a
    power of ten instead of failing on Python's limit of 4,300 digits."""
    from nasc.runtime.cli import main

    monkeypatch.setattr(SpaceIR, "architectures", lambda self: 3**10000)
    assert main(["show", "nb201", "--no-measure"]) == 0
    assert "about 1.63e4771" in capsys.readouterr().out
    assert main(["show", "nb201", "--no-measure", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["architectures"] == "about 1.63e4771"


def _calls(text: str) -> int:
    """The Python and C function calls (and generator steps) `parse_space(text)` makes: a measure
    of its work that, unlike a clock, does not depend on the machine's load."""
    from nasc.compiler import catalog

    ops = catalog()
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        calls += event in ("call", "c_call")

    previous = sys.getprofile()
    sys.setprofile(count)
    try:
        parse_space(text, "chain.nas", catalog=ops)
    finally:
        sys.setprofile(previous)
    return calls


def test_checking_a_long_cell_takes_work_linear_in_its_nodes():
    """Parsing and checking a cell of 1,600 nodes costs about twice the work of one of 800 (with
    a look-up by scanning all edges or nodes it cost 2.8 times, and more the larger the cell)."""
    parse_space(chain(2))  # builds the parser and the prelude once
    small, large = _calls(chain(800)), _calls(chain(1600))
    assert large < 2.3 * small


def test_many_instances_of_a_cell_are_shape_checked_once(catalog, monkeypatch):
    """A cell repeated 3,000 times is shape-checked as often as one repeated 3 times: instances
    with the same channels and sizes give the same shapes."""
    from nasc.dsl import shapes

    places = []
    original = shapes._Inference.place
    monkeypatch.setattr(
        shapes._Inference, "place", lambda self, *args: places.append(args) or original(self, *args)
    )
    text = chain(3).replace("    c @ C", "    repeat N c @ C").replace("(C = 4,", "(C = 4, N = 3,")
    parse_space(text, catalog=catalog)
    few = len(places)
    places.clear()
    parse_space(text, catalog=catalog, overrides={"N": 3000})
    assert len(places) == few
