"""Circuit tasks: what a circuit's final state is scored by (GHZ-state fidelity, the
transverse-field Ising energy, the expected MaxCut of a graph), each with its exact reference.

A circuit task has no data: `prepare(plan)` builds what it measures for the circuit's qubits
(and graph), `objective(states)` gives one value to minimise per structure of a batch, and
`measure(states)` the metrics of one circuit, the mean over the rows of `states` (the
trajectories of a noisy circuit; one row without noise). States need not be normalised (the
super-circuit's mixture is not); they are normalised here. Qubit 0 is the most significant bit
of a basis state's index, as in `compiler/circuits.py`.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from nasc.dsl import NascUsageError
from nasc.dsl.circuits import CircuitPlan
from nasc.runtime.tasks.base import Task
from nasc.runtime.tasks.registry import register_task

MAX_EXACT_QUBITS = 12  # exact diagonalisation of a dense 2**n x 2**n Hamiltonian


def bits(qubits: int) -> torch.Tensor:
    """(2**qubits, qubits) 0/1 table of every basis state, qubit 0 the most significant bit."""
    index = torch.arange(2**qubits)
    shifts = torch.arange(qubits - 1, -1, -1)
    return (index[:, None] >> shifts) & 1


def normalised(states: torch.Tensor) -> torch.Tensor:
    """Each row of (batch, 2**qubits) divided by its norm."""
    return states / torch.linalg.vector_norm(states, dim=1, keepdim=True).clamp_min(1e-30)


class CircuitTask(Task):
    """A task for circuit spaces; the data hooks of `Task` refuse to run.

    Attributes:
        options: the arguments `task NAME(key = value)` may give, with their defaults.
    """

    options: ClassVar[dict[str, float]] = {}
    sums = ()

    def prepare(self, plan: CircuitPlan, args: dict[str, float] | None = None) -> None:
        """Build what the task measures for this circuit; `args` override `options`.

        Raises:
            NascUsageError: an unknown argument, naming the known ones.
        """
        args = dict(args or {})
        for key in args:
            if key not in self.options:
                known = ", ".join(self.options) or "none"
                raise NascUsageError(
                    f"task `{self.name}` has no argument `{key}`",
                    hint=f"its arguments: {known}",
                )
        self.args = {**self.options, **args}
        self.qubits = plan.qubits

    def objective(self, states: torch.Tensor) -> torch.Tensor:
        """The value to minimise of each state of a batch (batch,)."""
        raise NotImplementedError

    def measure(self, states: torch.Tensor) -> dict[str, float]:
        """The metrics of one circuit (its `metric` among them): the mean over the rows of
        `states`, its noise trajectories."""
        raise NotImplementedError

    def reference(self) -> dict[str, float]:
        """The exact optimum the metrics are compared with."""
        raise NotImplementedError

    def loss(self, output, targets=None, smoothing: float = 0.0) -> torch.Tensor:
        return self.objective(output).mean()

    def load(self, spec, cache_dir=None, image_size=None):
        raise NascUsageError(
            f"the task `{self.name}` scores circuits; it has no data to load",
            hint="search a circuit space with it, e.g. nasc search spaces/ghz.nas --strategy dqas",
        )


@register_task("ghz")
class Ghz(CircuitTask):
    """GHZ-state preparation: the fidelity |<GHZ|psi>|^2 with (|0...0> + |1...1>) / sqrt 2;
    the objective is 1 - fidelity."""

    metric = "fidelity"

    def objective(self, states):
        states = normalised(states)
        overlap = (states[:, 0] + states[:, -1]) / 2**0.5
        return 1 - overlap.abs() ** 2

    def measure(self, states):
        return {"fidelity": float(1 - self.objective(states.detach()).mean())}

    def reference(self):
        return {"fidelity": 1.0}


@register_task("tfim")
class Tfim(CircuitTask):
    """The ground state of the open transverse-field Ising chain
    H = -coupling sum_i Z_i Z_i+1 - field sum_i X_i; the objective is the energy <H>."""

    metric = "energy"
    options = {"field": 1.0, "coupling": 1.0}

    def prepare(self, plan, args=None):
        super().prepare(plan, args)
        spins = 1 - 2 * bits(self.qubits).double()  # Z eigenvalues, +1 for |0>
        self.zz = -self.args["coupling"] * (spins[:, :-1] * spins[:, 1:]).sum(dim=1)

    def objective(self, states):
        states = normalised(states)
        n = self.qubits
        diagonal = (states.abs() ** 2 * self.zz.to(states.device, states.real.dtype)).sum(dim=1)
        tensor = states.reshape(-1, *(2,) * n)
        flips = sum(
            (states.conj() * torch.flip(tensor, dims=[q + 1]).reshape(states.shape)).sum(dim=1)
            for q in range(n)
        )
        return diagonal - self.args["field"] * flips.real

    def hamiltonian(self) -> torch.Tensor:
        """The dense Hamiltonian (float64, 2**n x 2**n; X_i flips bit i of the index)."""
        n, size = self.qubits, 2**self.qubits
        matrix = torch.diag(self.zz.clone())
        index = torch.arange(size)
        for q in range(n):
            matrix[index ^ (1 << (n - 1 - q)), index] -= self.args["field"]
        return matrix

    def measure(self, states):
        energy = float(self.objective(states.detach()).mean())
        facts = {"energy": energy}
        if self.qubits <= MAX_EXACT_QUBITS:
            facts["energy_error"] = energy - self.reference()["energy"]
        return facts

    def reference(self):
        if not hasattr(self, "_ground"):
            if self.qubits > MAX_EXACT_QUBITS:
                raise NascUsageError(
                    f"exact diagonalisation is limited to {MAX_EXACT_QUBITS} qubits"
                )
            self._ground = float(torch.linalg.eigvalsh(self.hamiltonian())[0])
        return {"energy": self._ground}


@register_task("maxcut")
class MaxCut(CircuitTask):
    """QAOA MaxCut on the circuit's graph: the expected cut of a measurement over the maximum
    cut (the approximation ratio); the objective is minus that ratio."""

    metric = "ratio"

    def prepare(self, plan, args=None):
        super().prepare(plan, args)
        if not plan.edges:
            raise NascUsageError(
                "the task `maxcut` needs the circuit's graph",
                hint="add e.g. `graph regular(3, seed = 0)` to the circuit",
            )
        table = bits(self.qubits)
        self.cuts = sum((table[:, a] != table[:, b]).double() for a, b in plan.edges)
        self.best = float(self.cuts.max())

    def objective(self, states):
        probabilities = normalised(states).abs() ** 2
        expected = (probabilities * self.cuts.to(states.device, probabilities.dtype)).sum(dim=1)
        return -expected / self.best

    def measure(self, states):
        ratio = float(-self.objective(states.detach()).mean())
        return {"ratio": ratio, "expected_cut": ratio * self.best}

    def reference(self):
        return {"ratio": 1.0, "max_cut": self.best}
