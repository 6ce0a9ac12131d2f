"""The circuit simulator and super-circuit against exact matrices built here with numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nasc.compiler import circuits
from nasc.compiler.circuits import SuperCircuit, gate_matrix, read_qasm
from nasc.dsl import NascUsageError, parse_space

POOL = """
gates pool = {h on each, x on 1, y on 0, s on 2, t on 1, rx on each, ry on 1, rz on 2,
              cnot on pairs, cz on (2, 0), swap on (0, 2), rxx on (0, 2), ryy on (1, 2),
              rzz on all ring shared, rx on all, id}
circuit three(qubits = 3) {
    apply ry on all
    repeat 4 { place pool }
}
"""
PAULI = {
    "x": np.array([[0, 1], [1, 0]], dtype=complex),
    "y": np.array([[0, -1j], [1j, 0]]),
    "z": np.diag([1.0, -1.0]).astype(complex),
}
FIXED = {
    "h": np.array([[1, 1], [1, -1]]) / np.sqrt(2),
    "x": PAULI["x"],
    "y": PAULI["y"],
    "z": PAULI["z"],
    "s": np.diag([1, 1j]),
    "t": np.diag([1, np.exp(1j * np.pi / 4)]),
    "id": np.eye(2),
    "cnot": np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]),
    "cz": np.diag([1, 1, 1, -1]),
    "swap": np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]),
}


def reference_gate(gate: str, angle: float | None) -> np.ndarray:
    """A gate's matrix: the table above, or the matrix exponential of its rotation."""
    if gate in FIXED:
        return FIXED[gate].astype(complex)
    pauli = PAULI[gate[-1]]
    generator = np.kron(pauli, pauli) if len(gate) == 3 else pauli
    values, vectors = np.linalg.eigh(generator)
    return vectors @ np.diag(np.exp(-0.5j * angle * values)) @ vectors.conj().T


def full_unitary(matrix: np.ndarray, qubits: tuple[int, ...], n: int) -> np.ndarray:
    """The n-qubit unitary of a gate: Kronecker products for one qubit, and for two the sum over
    the gate's matrix elements of |out><in| on its qubits times the identity elsewhere."""
    if len(qubits) == 1:
        factors = [matrix if q == qubits[0] else np.eye(2) for q in range(n)]
        out = factors[0]
        for factor in factors[1:]:
            out = np.kron(out, factor)
        return out
    result = np.zeros((2**n, 2**n), dtype=complex)
    a, b = qubits
    for row in range(4):
        for column in range(4):
            factors = []
            for q in range(n):
                if q in (a, b):
                    bit_out = (row >> (1 - (0 if q == a else 1))) & 1
                    bit_in = (column >> (1 - (0 if q == a else 1))) & 1
                    op = np.zeros((2, 2))
                    op[bit_out, bit_in] = 1
                    factors.append(op)
                else:
                    factors.append(np.eye(2))
            term = factors[0]
            for factor in factors[1:]:
                term = np.kron(term, factor)
            result += matrix[row, column] * term
    return result


def planned_gates(net: SuperCircuit, row: list[int]):
    """(gate, its angle or None) of one structure, in order, from the plan and the net's angles."""
    column = 0
    for slot in net.plan.slots:
        index = 0
        if slot.choice:
            index, column = row[column], column + 1
        for gate in slot.candidates[index].gates:
            angle = None
            if gate.param is not None:
                angle = float(net.angles[slot.label][index, gate.param].detach())
            yield gate, angle


def reference_state(net: SuperCircuit, row: list[int]) -> np.ndarray:
    """The final state of one structure, from the plan's gates and the net's angles."""
    n = net.qubits
    state = np.zeros(2**n, dtype=complex)
    state[0] = 1
    for gate, angle in planned_gates(net, row):
        state = full_unitary(reference_gate(gate.gate, angle), gate.qubits, n) @ state
    return state


@pytest.fixture(scope="module")
def net():
    plan = parse_space(POOL, "three.nas").plan()
    return SuperCircuit(
        plan, torch.complex128, init_scale=1.0, generator=torch.Generator().manual_seed(0)
    )


@pytest.mark.parametrize("gate", ["rx", "ry", "rz", "rxx", "ryy", "rzz", "h", "cnot", "swap", "t"])
def test_gate_matrices_match_the_exact_ones(gate):
    """Every gate's matrix equals the table or the exponential of its Pauli generator."""
    angle = torch.tensor(0.7, dtype=torch.float64)
    got = gate_matrix(gate, angle, torch.complex128).numpy()
    np.testing.assert_allclose(got, reference_gate(gate, 0.7), atol=1e-12)


def test_a_batch_of_structures_matches_kronecker_unitaries(net):
    """64 random structures of a 3-qubit space give the states of their exact unitaries."""
    generator = torch.Generator().manual_seed(1)
    choices = torch.randint(0, net.widths[0], (64, 4), generator=generator)
    states = net(choices).detach().numpy()
    for row, state in zip(choices.tolist(), states):
        np.testing.assert_allclose(state, reference_state(net, row), atol=1e-10)


def test_the_mixture_is_the_weighted_sum_of_candidate_outputs():
    """With one placeholder, the super-circuit's output is sum_c w_c U_c |psi>."""
    plan = parse_space(
        "circuit m(qubits = 3) { apply h on 0 place {rx on 1, cnot on (0, 2), ryy on (0, 1)} }"
    ).plan()
    net = SuperCircuit(plan, torch.complex128, init_scale=1.0)
    weights = torch.softmax(torch.tensor([[0.3, -1.0, 2.0]], dtype=torch.float64), dim=-1)
    mixed = net.mixture(weights)[0].detach().numpy()
    expected = sum(float(weights[0, c]) * reference_state(net, [c]) for c in range(3))
    np.testing.assert_allclose(mixed, expected, atol=1e-12)


def test_a_discarded_candidate_is_never_applied(monkeypatch):
    """Masked candidates are neither mixed nor applied, and a draw of one is refused."""
    plan = parse_space("circuit m(qubits = 2) { place {y on 0, h on 1, cnot on (0, 1)} }").plan()
    net = SuperCircuit(plan)
    built = []
    original = circuits.gate_matrix
    monkeypatch.setattr(
        circuits, "gate_matrix", lambda g, a, d: built.append(g) or original(g, a, d)
    )
    net.mask[0, 0] = False
    net.mixture(torch.full((1, 3), 1 / 3))
    net(torch.tensor([[1], [2], [2]]))
    assert "y" not in built and {"h", "cnot"} <= set(built)
    with pytest.raises(NascUsageError, match="discarded"):
        net(torch.tensor([[0]]))


def test_gradients_reach_the_shared_angles():
    """The angles get the gradient that finite differences give."""
    plan = parse_space(
        "circuit g(qubits = 3) { place {rx on all, rzz on all chain shared} }"
    ).plan()
    net = SuperCircuit(plan, torch.complex128, init_scale=1.0)

    def energy():
        state = net(torch.tensor([[0], [1], [1]]))
        return (state.abs() ** 2 * torch.arange(8.0, dtype=torch.float64)).sum()

    energy().backward()
    for angles in net.angles.values():
        analytic = angles.grad.clone()
        for index in np.ndindex(*angles.shape):
            with torch.no_grad():
                angles[index] += 1e-6
                up = energy()
                angles[index] -= 2e-6
                down = energy()
                angles[index] += 1e-6
            assert float(analytic[index]) == pytest.approx(float(up - down) / 2e-6, abs=1e-6)


def test_standalone_circuit_and_qasm_round_trip(net):
    """A structure's standalone circuit gives the super-circuit's state; its OpenQASM text read
    back gives the same state up to a global phase."""
    decisions = {"p1": "ryy@1-2", "p2": "rxx@0-2", "p3": "rzz@ring:shared", "p4": "cz@2-0"}
    fixed = net.circuit(decisions)
    state = net(net.indices(decisions))[0]
    torch.testing.assert_close(fixed()[0], state)
    again = read_qasm(fixed.qasm(), torch.complex128)()[0]
    assert float(torch.abs(torch.vdot(again, state))) == pytest.approx(1.0, abs=1e-10)
    assert fixed.gate_count() == 3 + 1 + 1 + 3 + 1
    assert "rzz" not in fixed.qasm() and fixed.qasm().count("cx ") == 2 * (1 + 1 + 3)


def test_qasm_reads_back_in_qiskit(net):
    """Qiskit's OpenQASM 2 reader gives the same probabilities (qiskit is in the test extra)."""
    import qiskit
    from qiskit.quantum_info import Statevector

    fixed = net.circuit({"p1": "h@0", "p2": "cnot@0-1", "p3": "ryy@1-2", "p4": "rx@all"})
    circuit = qiskit.qasm2.loads(fixed.qasm())
    theirs = Statevector(circuit).probabilities()  # qubit 0 is their least significant bit
    ours = (fixed()[0].abs() ** 2).detach().numpy().reshape(2, 2, 2).transpose(2, 1, 0).ravel()
    np.testing.assert_allclose(theirs, ours, atol=1e-6)


NOISY = """
circuit noisy(qubits = 3) {
    task ghz
    noise depolarizing(0.1)
    apply h on 0
    place {cnot on (0, 1), ry on 1}
    apply ry on 2
    apply cnot on (1, 2)
}
"""


def reference_noisy_density(net: SuperCircuit, row: list[int], probability: float) -> np.ndarray:
    """The exact density matrix of one structure under the depolarising channel
    rho -> (1 - p) rho + p/3 sum_P P rho P after every gate, on each qubit it acts on."""
    n = net.qubits
    rho = np.zeros((2**n, 2**n), dtype=complex)
    rho[0, 0] = 1
    for gate, angle in planned_gates(net, row):
        unitary = full_unitary(reference_gate(gate.gate, angle), gate.qubits, n)
        rho = unitary @ rho @ unitary.conj().T
        for qubit in gate.qubits:
            paulis = [full_unitary(PAULI[p], (qubit,), n) for p in "xyz"]
            rho = (1 - probability) * rho + probability / 3 * sum(p @ rho @ p for p in paulis)
    return rho


def test_noisy_trajectories_average_to_the_exact_density_matrix():
    """The mean GHZ fidelity over 20,000 depolarised trajectories of each structure equals
    <GHZ| rho |GHZ> of the exact density matrix to within four standard errors, and is below
    the noiseless fidelity."""
    plan = parse_space(NOISY, "noisy.nas").plan()
    assert plan.noise == pytest.approx(0.1)
    net = SuperCircuit(plan, torch.complex128, 1.0, torch.Generator().manual_seed(3))
    ghz = np.zeros(8, dtype=complex)
    ghz[[0, 7]] = 2**-0.5
    for choice in (0, 1):
        rows = 20_000
        states = net(torch.full((rows, 1), choice)).detach().numpy()
        fidelities = np.abs(states @ ghz.conj()) ** 2
        exact = float(np.real(ghz.conj() @ reference_noisy_density(net, [choice], 0.1) @ ghz))
        noiseless = abs(reference_state(net, [choice]) @ ghz.conj()) ** 2
        error = fidelities.std() / np.sqrt(rows)
        assert abs(fidelities.mean() - exact) < 4 * error
        assert exact < noiseless - 0.05
        fixed = net.circuit(net.decisions(torch.tensor([choice])))
        fixed_states = fixed(rows).detach().numpy()
        assert abs((np.abs(fixed_states @ ghz.conj()) ** 2).mean() - exact) < 4 * error


def test_noise_is_seeded_and_absent_noise_draws_nothing():
    """Two super-circuits built from generators of one seed draw the same trajectories; a
    noiseless space draws only its initial angles from the generator (so noiseless searches
    are unchanged), and the same angles as its noisy twin."""
    plan = parse_space(NOISY, "noisy.nas").plan()
    first, second = (
        SuperCircuit(plan, torch.complex128, 1.0, torch.Generator().manual_seed(5))
        for _ in range(2)
    )
    choices = torch.zeros(64, 1, dtype=torch.long)
    assert torch.equal(first(choices), second(choices))
    assert not torch.equal(first(choices)[0], first(choices)[1:].mean(dim=0))
    quiet = parse_space(NOISY.replace("noise depolarizing(0.1)", ""), "quiet.nas").plan()
    generator = torch.Generator().manual_seed(5)
    net = SuperCircuit(quiet, torch.complex128, 1.0, generator)
    assert net.trajectories is None
    angles_only = torch.Generator().manual_seed(5)
    for label, angles in net.angles.items():
        assert torch.equal(angles, torch.randn(angles.shape, generator=angles_only).double())
        assert torch.equal(angles, first.angles[label])
    assert torch.equal(generator.get_state(), angles_only.get_state())
