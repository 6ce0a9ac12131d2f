"""Recurrent cells written in `.nas` against their references: `examples/lstm.nas` and
`examples/gru.nas` against torch.nn.LSTM and torch.nn.GRU (parameters, outputs and final states),
and `spaces/darts_rnn.nas` against the structure of DARTS' recurrent evaluation network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nasc.compiler import CompileOptions, compile_space, export_network
from nasc.compiler.ops import catalog
from nasc.dsl import load_space
from nasc.dsl.genotype import Genotype

FEATURES, HIDDEN = 5, 7

# DARTS_V2's recurrent genotype (Liu et al., ICLR 2019; quark0/darts rnn/genotypes.py): node i + 1
# is a highway with this activation from node `pred` (0 is the first node, s0).
DARTS_V2_RECURRENT = (
    ("sigmoid", 0),
    ("relu", 1),
    ("relu", 1),
    ("identity", 1),
    ("tanh", 2),
    ("sigmoid", 5),
    ("tanh", 3),
    ("relu", 5),
)


def network(name: str, **sizes):
    space = load_space(name, catalog=catalog())
    return compile_space(space, sizes, CompileOptions(search=False), seed=0)


def cell_weights(net) -> int:
    return sum(p.numel() for p in net.cells()[0].parameters())


def dense(cell, edge: str) -> nn.Linear:
    return cell.edges[edge]["fc"]


def copy_gates(cell, reference: nn.RNNBase, gates: dict[str, tuple[str, str]]) -> None:
    """Copy torch's stacked gate weights into the cell's dense layers: gate g's rows of
    weight_ih / bias_ih into the edge from x, of weight_hh / bias_hh into the edge from h."""
    rows = reference.hidden_size
    with torch.no_grad():
        for position, (from_x, from_h) in enumerate(gates.values()):
            part = slice(position * rows, (position + 1) * rows)
            for edge, kind in ((from_x, "ih"), (from_h, "hh")):
                layer = dense(cell, edge)
                layer.weight.copy_(getattr(reference, f"weight_{kind}_l0")[part])
                layer.bias.copy_(getattr(reference, f"bias_{kind}_l0")[part])


@pytest.mark.parametrize(
    "example, reference, sizes",
    [
        ("lstm", nn.LSTM, (FEATURES, HIDDEN)),
        ("lstm", nn.LSTM, (3, 12)),
        ("gru", nn.GRU, (FEATURES, HIDDEN)),
        ("gru", nn.GRU, (9, 4)),
    ],
)
def test_recurrent_cells_have_the_parameters_of_torch(example, reference, sizes):
    """The LSTM and GRU cells have torch.nn.LSTM's and torch.nn.GRU's parameter counts, the
    networks those and a decoder's."""
    features, hidden = sizes
    net = network(f"examples/{example}.nas", features=features, hidden=hidden)
    layer = reference(features, hidden, batch_first=True)
    expected = sum(p.numel() for p in layer.parameters())
    assert cell_weights(net) == expected
    decoder = nn.Linear(hidden, features)
    assert net.num_parameters() == expected + sum(p.numel() for p in decoder.parameters())


def test_lstm_computes_torch_lstm_outputs_and_final_states():
    """With torch's weights copied in, the LSTM gives torch's outputs and final (h, c)."""
    torch.manual_seed(0)
    net = network("examples/lstm.nas", features=FEATURES, hidden=HIDDEN)
    lstm = nn.LSTM(FEATURES, HIDDEN, batch_first=True)
    cell = net.cells()[0]
    gates = {"i": ("x->zi", "h->zi"), "f": ("x->zf", "h->zf"), "g": ("x->zg", "h->zg")}
    gates["o"] = ("x->zo", "h->zo")
    copy_gates(cell, lstm, gates)
    x = torch.randn(3, 6, FEATURES)
    with torch.no_grad():
        want, (h_n, c_n) = lstm(x)
        got = cell(x, None)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    h, c = cell.final
    torch.testing.assert_close(h, h_n[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(c, c_n[0], atol=1e-5, rtol=0)


def test_gru_computes_torch_gru_outputs_and_final_state():
    """With torch's weights copied in, the GRU gives torch's outputs and final h, also when it
    starts from a given state."""
    torch.manual_seed(1)
    net = network("examples/gru.nas", features=FEATURES, hidden=HIDDEN)
    gru = nn.GRU(FEATURES, HIDDEN, batch_first=True)
    cell = net.cells()[0]
    gates = {"r": ("x->zr", "h->zr"), "z": ("x->zz", "h->zz"), "n": ("x->zn", "h->hn")}
    copy_gates(cell, gru, gates)
    x = torch.randn(2, 5, FEATURES)
    start = torch.randn(1, 2, HIDDEN)
    with torch.no_grad():
        want, h_n = gru(x, start)
        cell.initial = (start[0],)
        got = cell(x, None)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(cell.final[0], h_n[0], atol=1e-5, rtol=0)


def reference_darts_rnn_weights(vocabulary: int, units: int, steps: int = 8) -> int:
    """The weight count of DARTS' recurrent evaluation network (quark0/darts rnn/model.py),
    counted from its structure: an embedding of the vocabulary, the cell's W0 over [x, h] to
    [c, h] and one W per step over a node to [c, h] (no biases), and a decoder whose weight is
    the embedding's (tied), so only its bias counts. DARTS evaluates at ninp = nhid."""
    embedding = vocabulary * units
    first = (units + units) * 2 * units
    per_step = units * 2 * units
    decoder_bias = vocabulary
    return embedding + first + steps * per_step + decoder_bias


def darts_v2(space) -> Genotype:
    cell = space.cell("darts_rnn")
    order = [f"b{i}" for i in range(9)]
    edges: dict[str, list[str]] = {edge.key: [] for edge in cell.choices}
    for node, (activation, pred) in enumerate(DARTS_V2_RECURRENT, start=1):
        edges[f"{order[pred]}->n{node}"].append(f"highway_{activation}")
    return Genotype({"darts_rnn": edges})


@pytest.mark.parametrize(("vocabulary", "units"), [(10_000, 850), (50, 6)])
def test_darts_v2_recurrent_network_has_the_reference_size(vocabulary, units):
    """DARTS_V2's recurrent cell at 850 units, 10,000 words and tied weights has the weight
    count of the reference's evaluation network (and at a tiny size too)."""
    space = load_space("spaces/darts_rnn.nas", catalog=catalog())
    sizes = {"vocab": vocabulary, "units": units}
    net = export_network(space, darts_v2(space), sizes)
    assert net.num_parameters() == reference_darts_rnn_weights(vocabulary, units)
    assert net.stages[-1].weight is net.stages[0].weight  # tied


def reference_darts_cell(x, h, w0, ws, genotype, concat=range(1, 9)):
    """One step of DARTS' evaluation cell as rnn/model.py computes it: s0 from [x, h] through
    W0, each node a highway from its predecessor, the output the mean of the nodes."""
    units = h.shape[1]
    c0, h0 = torch.split(torch.cat([x, h], dim=-1) @ w0, units, dim=-1)
    states = [h + c0.sigmoid() * (h0.tanh() - h)]
    functions = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}
    for (name, pred), w in zip(genotype, ws):
        previous = states[pred]
        c, value = torch.split(previous @ w, units, dim=-1)
        value = functions.get(name, lambda v: v)(value)
        states.append(previous + c.sigmoid() * (value - previous))
    return torch.stack([states[i] for i in concat], -1).mean(-1)


def test_darts_v2_cell_computes_the_reference_cell():
    """The exported DARTS_V2 cell, with its dense layers gathered into the reference's W0 and
    W_i, runs the reference cell's recurrence step by step."""
    torch.manual_seed(2)
    space = load_space("spaces/darts_rnn.nas", catalog=catalog())
    units = 6
    net = export_network(space, darts_v2(space), {"vocab": 20, "units": units})
    cell = net.cells()[0]
    edges = cell.edges

    def weight(edge, op, path=""):
        module = edges[edge][op]
        return (module.get_submodule(path) if path else module).weight.T

    # W0 maps [x, h] to [c0, h0]: rows of x then of h, columns of c then of h.
    w0 = torch.cat(
        [
            torch.cat([weight("x->zc", "fc_nobias"), weight("x->zh", "fc_nobias")], 1),
            torch.cat([weight("h->zc", "fc_nobias"), weight("h->zh", "fc_nobias")], 1),
        ],
        0,
    )
    order = [f"b{i}" for i in range(9)]
    ws = []
    for node, (activation, pred) in enumerate(DARTS_V2_RECURRENT, start=1):
        highway = edges[f"{order[pred]}->n{node}"][f"highway_{activation}"]
        linears = [m for m in highway.modules() if isinstance(m, nn.Linear)]
        ws.append(torch.cat([linears[0].weight.T, linears[1].weight.T], 1))
    tokens = torch.randint(0, 20, (3, 4))
    with torch.no_grad():
        embedded = net.stages[0](tokens)
        got = cell(embedded, None)
        h = torch.zeros(3, units)
        want = []
        for t in range(tokens.shape[1]):
            h = reference_darts_cell(embedded[:, t], h, w0, ws, DARTS_V2_RECURRENT)
            want.append(h)
    torch.testing.assert_close(got, torch.stack(want, 1), atol=1e-5, rtol=0)
