"""Circuit tasks against exact references computed here, and circuit searches end to end."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from nasc.compiler.circuits import SuperCircuit, read_qasm
from nasc.dsl import NascUsageError, load_space, parse_space
from nasc.runtime.cli.commands import main
from nasc.runtime.search.circuits import CircuitSettings, search_circuit, tune
from nasc.runtime.tasks import get_task

X = np.array([[0, 1], [1, 0]])
Z = np.diag([1, -1])


@pytest.fixture(autouse=True)
def one_thread():
    """Small statevectors run fastest, and steadiest on a shared machine, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def kron_chain(factors):
    out = np.eye(1)
    for factor in factors:
        out = np.kron(out, factor)
    return out


def tfim_hamiltonian(n: int, field: float, coupling: float) -> np.ndarray:
    """-J sum Z_i Z_i+1 - h sum X_i on an open chain, from Kronecker products."""
    eye = np.eye(2)
    h = np.zeros((2**n, 2**n))
    for i in range(n - 1):
        h -= coupling * kron_chain([Z if q in (i, i + 1) else eye for q in range(n)])
    for i in range(n):
        h -= field * kron_chain([X if q == i else eye for q in range(n)])
    return h


def random_states(count: int, n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    real = torch.randn(count, 2**n, generator=generator, dtype=torch.float64)
    imag = torch.randn(count, 2**n, generator=generator, dtype=torch.float64)
    return torch.complex(real, imag)


def test_tfim_energy_and_ground_state_match_exact_diagonalisation():
    """<psi|H|psi> and the ground energy equal those of the Kronecker-built Hamiltonian."""
    plan = parse_space("circuit c(qubits = 5) { apply h on all }").plan()
    task = get_task("tfim")
    task.prepare(plan, {"field": 0.7, "coupling": 1.3})
    h = tfim_hamiltonian(5, 0.7, 1.3)
    states = random_states(3, 5)
    normed = states / states.norm(dim=1, keepdim=True)
    expected = [float(np.real(s.conj() @ h @ s)) for s in normed.numpy()]
    np.testing.assert_allclose(task.objective(states).numpy(), expected, atol=1e-10)
    assert task.reference()["energy"] == pytest.approx(np.linalg.eigvalsh(h)[0], abs=1e-9)
    with pytest.raises(NascUsageError, match="no argument `strength`"):
        task.prepare(plan, {"strength": 1.0})


def test_maxcut_ratio_matches_brute_force():
    """The expected cut of a state over the brute-force maximum cut of the qaoa graph."""
    plan = load_space("qaoa").plan()
    task = get_task("maxcut")
    task.prepare(plan)
    cuts = []
    for assignment in itertools.product((0, 1), repeat=plan.qubits):
        cuts.append(sum(assignment[a] != assignment[b] for a, b in plan.edges))
    assert task.reference()["max_cut"] == max(cuts)
    uniform = torch.ones(1, 2**plan.qubits, dtype=torch.complex128)
    ratio = -float(task.objective(uniform)[0])
    assert ratio == pytest.approx(len(plan.edges) / 2 / max(cuts))


def test_ghz_fidelity():
    """The GHZ state scores fidelity 1, |0...0> one half."""
    plan = load_space("ghz").plan()
    task = get_task("ghz")
    task.prepare(plan)
    ghz = torch.zeros(2, 16, dtype=torch.complex64)
    ghz[0, 0] = ghz[0, 15] = 1
    ghz[1, 0] = 1
    torch.testing.assert_close(task.objective(ghz), torch.tensor([0.0, 0.5]))


def test_standard_qaoa_depth_one_beats_the_known_bound():
    """The standard depth-1 QAOA ansatz, tuned, reaches at least Farhi et al.'s 0.6924 on a
    3-regular graph; it is one structure of spaces/qaoa.nas."""
    space = load_space("qaoa").for_values({"layers": 1, "qubits": 6})
    decisions = {"cost_1": "rzz@edges:shared", "mixer_1": "rx@all:shared"}
    task = get_task("maxcut")
    task.prepare(space.plan())
    net = SuperCircuit(space.plan(), torch.complex128, init_scale=0.5)
    circuit = net.circuit(decisions)
    tune(circuit, task, 100, 0.05)
    assert -float(task.objective(circuit().detach())[0]) > 0.6924
    assert circuit.angles.numel() == 2  # one shared angle per layer


def test_dqas_finds_ghz_and_exports_nas_and_qasm(tmp_path):
    """`nasc search spaces/ghz.nas --strategy dqas` finds H then the CNOT chain (fidelity 1),
    and writes a fixed .nas that checks and an OpenQASM file that reads back to the GHZ state."""
    args = ["search", "ghz", "-D", "qubits=3", "--strategy", "dqas", "--epochs", "40"]
    assert main([*args, "--runs-dir", str(tmp_path), "--quiet"]) == 0
    [run] = list(tmp_path.iterdir())
    result = json.loads((run / "result.json").read_text())
    assert result["final"]["fidelity"] == pytest.approx(1.0, abs=1e-4)
    assert result["decisions"]["link_1"] == "cnot@0-1" and result["gates"] == 3
    assert main(["check", str(run / "arch.nas")]) == 0
    assert load_space(str(run / "arch.nas")).is_fixed
    state = read_qasm((run / "arch.qasm").read_text())()[0]
    assert (
        abs(float(state[0].abs() ** 2) - 0.5) < 1e-4
        and abs(float(state[7].abs() ** 2) - 0.5) < 1e-4
    )


def test_super_circuit_finds_ghz_and_tfim_respects_the_variational_bound():
    """The softmax super-circuit finds GHZ-3; a short TFIM search stays above the exact ground
    energy and below the energy of |+...+>."""
    settings = CircuitSettings(steps=40, finetune=40)
    found = search_circuit(
        load_space("ghz"), strategy="darts-1st", defines={"qubits": 3}, settings=settings
    )
    assert found.final["fidelity"] == pytest.approx(1.0, abs=1e-4)
    tfim = search_circuit(
        load_space("tfim"),
        strategy="dqas",
        defines={"qubits": 4, "layers": 1},
        settings=CircuitSettings(steps=20, finetune=60, batch=16),
    )
    exact = tfim.reference["energy"]
    assert exact - 1e-6 <= tfim.final["energy"] < -4.0 + 1e-6


def test_isdarts_and_strategies_without_a_circuit_form_are_refused():
    """IS-DARTS is refused with its reason; so is a strategy with no circuit form."""
    with pytest.raises(NascUsageError, match="feature maps"):
        search_circuit(load_space("ghz"), strategy="isdarts")
    with pytest.raises(NascUsageError, match="no circuit form"):
        search_circuit(load_space("ghz"), strategy="gdas")
    with pytest.raises(NascUsageError, match="does not score circuits"):
        search_circuit(load_space("ghz"), task="classification")
    assert math.isfinite(load_space("tfim").architectures())


IDLE = """
circuit idle(qubits = 2) {
    task ghz
    noise depolarizing(0.2)
    place wait = {z on 1, id}
    apply h on 0
    apply cnot on (0, 1)
}
"""


def test_a_noise_aware_search_leaves_out_a_gate_that_only_adds_errors():
    """Z on qubit 1 of |00> changes nothing: without noise both candidates score fidelity 1 (the
    tie stays with the first), with depolarising noise DQAS picks `id`, and the found circuit's
    fidelity is the noisy one (the exact value for H, CNOT at p = 0.2 is 0.5816)."""
    settings = CircuitSettings(steps=30, finetune=0, seed=1)
    noisy = search_circuit(parse_space(IDLE, "idle.nas"), strategy="dqas", settings=settings)
    quiet_space = parse_space(IDLE.replace("noise depolarizing(0.2)", ""), "idle.nas")
    quiet = search_circuit(quiet_space, strategy="dqas", settings=settings)
    assert noisy.decisions == {"wait": "id"} and quiet.decisions == {"wait": "z@1"}
    assert quiet.final["fidelity"] == pytest.approx(1.0, abs=1e-6)
    assert noisy.final["fidelity"] == pytest.approx(exact_noisy_ghz2(0.2), abs=0.02)


def exact_noisy_ghz2(p: float) -> float:
    """<GHZ|rho|GHZ> after H on 0 and CNOT on (0, 1), each followed by the depolarising channel
    on the qubits it acts on, from 4x4 density matrices."""
    eye, y = np.eye(2), np.array([[0, -1j], [1j, 0]])
    paulis = [X, y, Z]
    hadamard = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
    cnot = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])

    def channel(rho, qubit):
        flips = [np.kron(P, eye) if qubit == 0 else np.kron(eye, P) for P in paulis]
        return (1 - p) * rho + p / 3 * sum(F @ rho @ F.conj().T for F in flips)

    rho = np.zeros((4, 4), dtype=complex)
    rho[0, 0] = 1
    step = np.kron(hadamard, eye)
    rho = channel(step @ rho @ step.conj().T, 0)
    rho = channel(channel(cnot @ rho @ cnot.T, 0), 1)
    ghz = np.array([1, 0, 0, 1]) / np.sqrt(2)
    return float(np.real(ghz @ rho @ ghz))


def test_a_circuit_search_writes_a_report_with_the_circuit_and_its_distribution(tmp_path):
    """The run's report.html shows the found circuit (one column per gate of the GHZ chain),
    the structure distribution over the logged steps (probabilities that sum to 1 per
    placeholder) and the QASM text; `nasc report RUN` draws it again."""
    args = ["search", "ghz", "-D", "qubits=3", "--strategy", "dqas", "--epochs", "30"]
    assert main([*args, "--runs-dir", str(tmp_path), "--quiet"]) == 0
    [run] = list(tmp_path.iterdir())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30]
    for record in records:
        assert set(record["probabilities"]) == {"start", "link_1", "link_2"}
        for row in record["probabilities"].values():
            assert sum(row.values()) == pytest.approx(1.0, abs=1e-4)
    assert records[-1]["probabilities"]["link_1"]["cnot@0-1"] > 0.5
    page = (run / "report.html").read_text()
    assert 'src="figures/circuit.png"' in page and 'src="figures/distribution.png"' in page
    assert "cx q[0],q[1];" in page and "fidelity (exact reference)" in page
    for figure in ("circuit.png", "distribution.png"):
        assert (run / "figures" / figure).stat().st_size > 1000
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0
    assert (run / "report.html").is_file()


def test_nasc_export_of_a_circuit_run(tmp_path, capsys):
    """`nasc export RUN --format qasm|nas|genotype` gives the run's QASM, the fixed circuit and
    the decisions; `nasc.export(RUN, 'module')` the tuned circuit; formats of networks of cells
    are refused with the circuit's formats named, and QASM of a network is refused."""
    import nasc

    args = ["search", "ghz", "-D", "qubits=3", "--strategy", "dqas", "--epochs", "20"]
    assert main([*args, "--runs-dir", str(tmp_path), "--quiet"]) == 0
    [run] = list(tmp_path.iterdir())
    capsys.readouterr()
    assert main(["export", str(run), "--format", "qasm", "-o", str(tmp_path / "c.qasm")]) == 0
    assert (tmp_path / "c.qasm").read_text() == (run / "arch.qasm").read_text()
    capsys.readouterr()
    assert main(["export", str(run), "--format", "nas"]) == 0
    fixed = parse_space(capsys.readouterr().out, "found.nas")
    assert fixed.is_fixed and fixed.plan().slots[1].candidates[0].name == "cnot@0-1"
    assert json.loads(nasc.export(run, "genotype"))["cells"]["circuit"]["link_1"] == ["cnot@0-1"]
    module = nasc.export(run, "module")
    state = module()[0].detach()
    assert (
        abs(float(state[0].abs() ** 2) - 0.5) < 1e-4
        and abs(float(state[7].abs() ** 2) - 0.5) < 1e-4
    )
    assert main(["export", str(run), "--format", "torchscript"]) == 2
    assert "a circuit exports as nas, genotype, qasm" in capsys.readouterr().err
    assert (
        main(
            [
                "export",
                "nb201",
                "--arch",
                "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                "--format",
                "qasm",
            ]
        )
        == 2
    )
    assert "OpenQASM describes circuits" in capsys.readouterr().err


def test_the_circuit_drawing_places_each_gate_in_the_first_free_column(tmp_path):
    """H on 0 and the CNOT chain take three columns; a gate on a free qubit shares a column."""
    from nasc.runtime.reports.circuits import draw_circuit

    space = parse_space(
        "circuit c(qubits = 3) { apply h on 0  apply rx on 2  apply cnot on chain }", "c.nas"
    )
    circuit = SuperCircuit(space.plan()).circuit({})
    drawn = draw_circuit(circuit, tmp_path / "c.png", "c")
    assert drawn["gates"] == 4 and drawn["columns"] == 3
