"""Circuit spaces compiled to PyTorch: a statevector simulator, the super-circuit (batched over
drawn structures, or the softmax mixture of every placeholder's candidates), the standalone
circuit of one structure, and its OpenQASM 2 text.

States are complex tensors of shape (batch, 2, ..., 2), one axis per qubit, qubit 0 first (the
most significant bit of a basis state's index, as in tensorcircuit and PennyLane). Angles are
`nn.Parameter`s, one row of angles per candidate of every slot, shared by every structure that
draws the candidate. A candidate that no structure of a batch draws, or that the mask discards,
is never applied.

A circuit whose space declares `noise depolarizing(p)` is simulated by trajectories: after every
gate, each qubit the gate acts on gets X, Y or Z with probability p/3 each, drawn per row of the
batch. The mean of a task's objective over rows is then an unbiased estimate of its value on the
noisy density matrix (the objectives are linear in it), at the cost of a statevector per row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from nasc.dsl import NascUsageError
from nasc.dsl.circuits import Candidate, CircuitPlan, Gate

_FIXED = {
    "id": [[1, 0], [0, 1]],
    "h": [[1 / math.sqrt(2), 1 / math.sqrt(2)], [1 / math.sqrt(2), -1 / math.sqrt(2)]],
    "x": [[0, 1], [1, 0]],
    "y": [[0, -1j], [1j, 0]],
    "z": [[1, 0], [0, -1]],
    "s": [[1, 0], [0, 1j]],
    "t": [[1, 0], [0, complex(math.cos(math.pi / 4), math.sin(math.pi / 4))]],
    "cnot": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]],
    "cz": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, -1]],
    "swap": [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]],
}
# The Pauli generator G of each rotation: R(theta) = exp(-i theta G / 2) = cos I - i sin G.
_PAULI = {"x": [[0, 1], [1, 0]], "y": [[0, -1j], [1j, 0]], "z": [[1, 0], [0, -1]]}


def gate_matrix(gate: str, angle: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """The unitary of a gate (2x2 or 4x4; the first qubit is the more significant), its
    gradient flowing to `angle` for the rotations rx, ry, rz, rxx, ryy, rzz."""
    if gate in _FIXED:
        return torch.tensor(_FIXED[gate], dtype=dtype, device=getattr(angle, "device", None))
    axis = gate[-1]
    pauli = torch.tensor(_PAULI[axis], dtype=dtype, device=angle.device)
    if len(gate) == 3:  # rxx, ryy, rzz: the generator is P (x) P
        pauli = torch.kron(pauli, pauli)
    eye = torch.eye(pauli.shape[0], dtype=dtype, device=angle.device)
    half = angle / 2
    return torch.cos(half).to(dtype) * eye - 1j * torch.sin(half).to(dtype) * pauli


def apply_matrix(state: torch.Tensor, matrix: torch.Tensor, qubits: tuple[int, ...]):
    """The state (batch, 2, ..., 2) after `matrix` on `qubits` (one or two of them)."""
    axes = tuple(q + 1 for q in qubits)
    ends = tuple(range(-len(qubits), 0))
    moved = torch.movedim(state, axes, ends)
    shape = moved.shape
    flat = moved.reshape(*shape[: -len(qubits)], 2 ** len(qubits))
    out = (flat @ matrix.transpose(0, 1)).reshape(shape)
    return torch.movedim(out, ends, axes)


def zero_state(qubits: int, batch: int, dtype: torch.dtype, device=None) -> torch.Tensor:
    """|0...0> for each of `batch` structures."""
    state = torch.zeros((batch,) + (2,) * qubits, dtype=dtype, device=device)
    state.view(batch, -1)[:, 0] = 1
    return state


def depolarize(state: torch.Tensor, qubits, probability: float, generator) -> torch.Tensor:
    """One trajectory of the depolarising channel per row of `state`: on each of `qubits`, X, Y
    or Z, each with probability `probability` / 3 (drawn with `generator`, on the CPU)."""
    if probability <= 0:
        return state
    for qubit in qubits:
        draws = torch.rand(state.shape[0], generator=generator)
        kinds = torch.where(draws < probability, (draws * 3 / probability).long(), -1)
        for kind, pauli in enumerate("xyz"):
            rows = (kinds == kind).nonzero().squeeze(1).to(state.device)
            if rows.numel():
                flipped = apply_matrix(state[rows], gate_matrix(pauli, None, state.dtype), (qubit,))
                state = state.index_copy(0, rows, flipped)
    return state


def _apply_candidate(state, candidate: Candidate, angles, dtype, noise=0.0, generator=None):
    for gate in candidate.gates:
        angle = angles[gate.param] if gate.param is not None else None
        state = apply_matrix(state, gate_matrix(gate.gate, angle, dtype), gate.qubits)
        state = depolarize(state, gate.qubits, noise, generator)
    return state


class SuperCircuit(nn.Module):
    """Every structure of a circuit space at once.

    Args:
        plan: the space for its parameter values (`CircuitSpace.plan`).
        dtype: torch.complex64 or torch.complex128.
        init_scale: the standard deviation of the normal the angles start from.
        generator: the random generator of the initial angles (and, for a noisy circuit, of
            the seed of its trajectories).

    Attributes:
        angles: per slot label, a (candidates x angles) parameter (slots without angles have
            none).
        mask: (placeholders x widest pool) booleans; a False candidate is never drawn, mixed or
            applied. Padding beyond a pool's size is False.
    """

    def __init__(
        self,
        plan: CircuitPlan,
        dtype: torch.dtype = torch.complex64,
        init_scale: float = 0.1,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if dtype not in (torch.complex64, torch.complex128):
            raise NascUsageError(f"a circuit simulates in complex64 or complex128, not {dtype}")
        self.plan, self.dtype = plan, dtype
        self.qubits = plan.qubits
        self.angles = nn.ParameterDict()
        real = torch.float32 if dtype == torch.complex64 else torch.float64
        for slot in plan.slots:
            count = max(candidate.params for candidate in slot.candidates)
            if count:
                values = torch.randn(len(slot.candidates), count, generator=generator) * init_scale
                self.angles[slot.label] = nn.Parameter(values.to(real))
        self.choices = plan.choices
        self.widths = [len(slot.candidates) for slot in self.choices]
        width = max(self.widths, default=1)
        valid = torch.zeros(len(self.choices), width, dtype=torch.bool)
        for row, size in enumerate(self.widths):
            valid[row, :size] = True
        self.register_buffer("valid", valid, persistent=False)
        self.register_buffer("mask", valid.clone())
        self.noise = plan.noise
        self.trajectories = _trajectory_generator(plan.noise, generator)

    def _angles(self, label: str, index: int):
        return self.angles[label][index] if label in self.angles else None

    def _apply(self, state, slot, index):
        angles = self._angles(slot.label, index)
        return _apply_candidate(
            state, slot.candidates[index], angles, self.dtype, self.noise, self.trajectories
        )

    def forward(self, choices: torch.Tensor | None = None) -> torch.Tensor:
        """The final states (batch, 2**qubits) of a batch of structures.

        Args:
            choices: (batch, placeholders) candidate indices; None for a circuit without
                placeholders (one state).

        Raises:
            NascUsageError: a choice the mask discards, or out of its pool.
        """
        if choices is None:
            if self.choices:
                raise NascUsageError("a circuit with placeholders needs the choices to run")
            choices = torch.zeros(1, 0, dtype=torch.long)
        choices = choices.to(self.mask.device)
        picked = self.mask.gather(1, choices.clamp_min(0).T.clamp_max(self.mask.shape[1] - 1))
        if choices.numel() and (choices.min() < 0 or not bool(picked.all())):
            raise NascUsageError("a drawn structure applies a discarded or unknown candidate")
        batch = choices.shape[0]
        state = zero_state(self.qubits, batch, self.dtype, self.mask.device)
        column = 0
        for slot in self.plan.slots:
            if not slot.choice:
                state = self._apply(state, slot, 0)
                continue
            drawn = choices[:, column]
            column += 1
            used = torch.unique(drawn).tolist()
            if len(used) == 1:  # every structure applies the same candidate
                state = self._apply(state, slot, used[0])
                continue
            for index in used:
                rows = (drawn == index).nonzero().squeeze(1)
                state = state.index_copy(0, rows, self._apply(state[rows], slot, index))
        return state.reshape(batch, -1)

    def mixture(self, weights: torch.Tensor, rows: int = 1) -> torch.Tensor:
        """The DARTS super-circuit: at each placeholder, the sum of its live candidates'
        outputs weighted by `weights` (placeholders x widest pool, e.g. a softmax of the
        architecture parameters). The result (rows, 2**qubits) is not normalised: the tasks
        normalise states before they measure them. Its rows differ only by their noise
        trajectories."""
        state = zero_state(self.qubits, rows, self.dtype, self.mask.device)
        row = 0
        for slot in self.plan.slots:
            if not slot.choice:
                state = self._apply(state, slot, 0)
                continue
            mixed = 0
            for index in range(len(slot.candidates)):
                if bool(self.mask[row, index]):
                    weight = weights[row, index].to(self.dtype)
                    mixed = mixed + weight * self._apply(state, slot, index)
            state = mixed
            row += 1
        return state.reshape(1, -1)

    def indices(self, decisions: Mapping[str, str]) -> torch.Tensor:
        """The (1, placeholders) choices of named decisions ({label: candidate name})."""
        try:
            row = [slot.index(decisions[slot.label]) for slot in self.choices]
        except (KeyError, ValueError):
            known = {slot.label: [c.name for c in slot.candidates] for slot in self.choices}
            raise NascUsageError(
                f"decisions {dict(decisions)} do not name a candidate of every placeholder",
                hint=f"the placeholders and their candidates: {known}",
            ) from None
        return torch.tensor([row], dtype=torch.long)

    def decisions(self, choices: torch.Tensor) -> dict[str, str]:
        """Named decisions of one structure's choices (placeholders,)."""
        return {
            slot.label: slot.candidates[int(index)].name
            for slot, index in zip(self.choices, choices.tolist())
        }

    def circuit(self, decisions: Mapping[str, str]) -> FixedCircuit:
        """The standalone circuit of one structure, with a copy of its candidates' angles."""
        row = self.indices(decisions)[0].tolist()
        gates: list[tuple[Gate, float | None, object]] = []
        column = 0
        for slot in self.plan.slots:
            index = 0
            if slot.choice:
                index = row[column]
                column += 1
            angles = self._angles(slot.label, index)
            for gate in slot.candidates[index].gates:
                angle = None if gate.param is None else float(angles[gate.param].detach())
                gates.append((gate, angle, (slot.label, gate.param)))
        return FixedCircuit(self.qubits, gates, self.dtype, self.noise, self.trajectories)


def _trajectory_generator(noise: float, generator: torch.Generator | None):
    """The generator of a noisy circuit's trajectories, seeded from `generator` (None without
    noise, so that a noiseless circuit draws nothing from it)."""
    if noise <= 0:
        return None
    seed = torch.randint(2**62, (1,), generator=generator)
    return torch.Generator().manual_seed(int(seed))


class FixedCircuit(nn.Module):
    """One circuit: its gates in order and one trainable angle per parametric gate (a
    `shared` layer's gates keep one angle between them). `forward(rows)` is its state from
    |0...0> as (rows, 2**qubits): one noise trajectory per row (identical rows without noise)."""

    def __init__(
        self,
        qubits: int,
        gates: list[tuple[Gate, float | None, object]],
        dtype: torch.dtype = torch.complex64,
        noise: float = 0.0,
        generator: torch.Generator | None = None,
    ):
        """`gates`: (gate, its angle or None, a key: gates with one key share one angle);
        `noise`: the depolarising probability per qubit after every gate, its trajectories
        drawn with `generator`."""
        super().__init__()
        self.qubits, self.dtype, self.noise = qubits, dtype, noise
        if noise > 0 and generator is None:
            generator = torch.Generator().manual_seed(0)
        self.trajectories = generator
        real = torch.float32 if dtype == torch.complex64 else torch.float64
        self.gates: list[tuple[str, tuple[int, ...], int | None]] = []
        values: list[float] = []
        slots: dict[object, int] = {}
        for gate, angle, key in gates:
            slot = None
            if angle is not None:
                if key not in slots:
                    slots[key] = len(values)
                    values.append(angle)
                slot = slots[key]
            self.gates.append((gate.gate, tuple(gate.qubits), slot))
        self.angles = nn.Parameter(torch.tensor(values, dtype=real))

    def forward(self, rows: int = 1) -> torch.Tensor:
        state = zero_state(self.qubits, rows, self.dtype, self.angles.device)
        for gate, qubits, slot in self.gates:
            angle = self.angles[slot] if slot is not None else None
            state = apply_matrix(state, gate_matrix(gate, angle, self.dtype), qubits)
            state = depolarize(state, qubits, self.noise, self.trajectories)
        return state.reshape(rows, -1)

    def gate_count(self) -> int:
        return len(self.gates)

    def qasm(self) -> str:
        """OpenQASM 2 text (see `qasm_lines`)."""
        lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{self.qubits}];"]
        for gate, qubits, slot in self.gates:
            angle = float(self.angles[slot].detach()) if slot is not None else None
            lines.extend(qasm_lines(gate, qubits, angle))
        return "\n".join(lines) + "\n"


QUARTER = math.pi / 2


def qasm_lines(gate: str, qubits: tuple[int, ...], angle: float | None) -> list[str]:
    """One gate as OpenQASM 2 statements of the original qelib1.inc (which every reader has):
    rzz as CX, RZ, CX (exact), rxx and ryy as rzz between basis changes (H, or Rx(pi/2))."""
    where = ",".join(f"q[{q}]" for q in qubits)
    if gate in ("rxx", "ryy", "rzz"):  # P (x) P = V+ (Z (x) Z) V, with V = H or Rx(pi/2)
        a, b = (f"q[{q}]" for q in qubits)
        core = [f"cx {a},{b};", f"rz({angle!r}) {b};", f"cx {a},{b};"]
        if gate == "rzz":
            return core
        into, back = ("h", "h") if gate == "rxx" else (f"rx({QUARTER!r})", f"rx({-QUARTER!r})")
        return [f"{into} {a};", f"{into} {b};", *core, f"{back} {a};", f"{back} {b};"]
    if gate == "id":
        return []
    name = {"cnot": "cx"}.get(gate, gate)
    if angle is not None:
        return [f"{name}({angle!r}) {where};"]
    return [f"{name} {where};"]


_QASM_GATES = {"cx": "cnot", **{name: name for name in ("id", "h", "x", "y", "z", "s", "t")}}
_QASM_GATES.update({name: name for name in ("rx", "ry", "rz", "cz", "swap", "rzz")})


def read_qasm(text: str, dtype: torch.dtype = torch.complex64) -> FixedCircuit:
    """The circuit of OpenQASM 2 text as `FixedCircuit.qasm` writes it: one `qreg`, the
    qelib1.inc gates that nasc writes, angles as numbers or `pi` expressions.

    Raises:
        NascUsageError: a statement outside that subset, naming its line.
    """
    import re

    qubits, gates = None, []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("//")[0].strip()
        if not line or line.startswith(("OPENQASM", "include")):
            continue
        match = re.fullmatch(r"qreg\s+(\w+)\[(\d+)\];", line)
        if match:
            qubits = int(match.group(2))
            continue
        match = re.fullmatch(r"(\w+)(?:\(([^)]*)\))?\s+([\w\[\],\s]+);", line)
        if not match or match.group(1) not in _QASM_GATES or qubits is None:
            raise NascUsageError(f"line {number} of the QASM text: cannot read `{line}`")
        name, angle_text, targets = match.groups()
        where = tuple(int(q) for q in re.findall(r"\[(\d+)\]", targets))
        angle = None
        if angle_text is not None:
            angle = _qasm_angle(angle_text, number)
        gate = Gate(gate=_QASM_GATES[name], qubits=where, param=0 if angle is not None else None)
        gates.append((gate, angle, len(gates)))
    if qubits is None:
        raise NascUsageError("the QASM text declares no `qreg`")
    return FixedCircuit(qubits, gates, dtype)


def _qasm_angle(text: str, line: int) -> float:
    """A number, or `pi` times and divided by numbers (`-pi/2`, `3*pi/4`), without eval."""
    import re

    text = text.replace(" ", "")
    match = re.fullmatch(r"(-?)(?:([\d.eE+-]+)\*)?(pi|[\d.eE+-]+)(?:/([\d.eE+-]+))?", text)
    try:
        if match is None:
            raise ValueError
        sign, times, base, over = match.groups()
        value = math.pi if base == "pi" else float(base)
        value *= float(times) if times else 1.0
        value /= float(over) if over else 1.0
        return -value if sign else value
    except (ValueError, ZeroDivisionError):
        raise NascUsageError(
            f"line {line} of the QASM text: cannot read the angle `{text}`"
        ) from None
