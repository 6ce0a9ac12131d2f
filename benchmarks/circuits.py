"""Circuit search benchmark: DQAS and the DARTS super-circuit on GHZ-4/6/8, TFIM-6/8 and QAOA
MaxCut depth 2/3 (8-node 3-regular graph), 3 seeds each, and the time of one DQAS step at 8
qubits with 64 drawn structures in nasc's simulator (and in tensorcircuit-ng's PyTorch backend
where it imports).

    PYTHONPATH=... python benchmarks/circuits.py [--seeds 3] [--threads 1] [--cases QAOA TFIM-8]

Prints a Markdown table: per row the mean over seeds (and the spread) of the found circuit's
metric after fine-tuning, its gate count and the search time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nasc.compiler.circuits import SuperCircuit
from nasc.dsl import load_space
from nasc.runtime.runs.events import RunEvents
from nasc.runtime.search.circuits import CircuitSettings, search_circuit, tune
from nasc.runtime.strategies.dqas import draw
from nasc.runtime.tasks import get_task

CASES = [
    ("GHZ-4", "ghz", {"qubits": 4}, "fidelity"),
    ("GHZ-6", "ghz", {"qubits": 6}, "fidelity"),
    ("GHZ-8", "ghz", {"qubits": 8}, "fidelity"),
    ("TFIM-6", "tfim", {"qubits": 6, "layers": 3}, "energy_error"),
    ("TFIM-8", "tfim", {"qubits": 8, "layers": 3}, "energy_error"),
    ("QAOA-8 p=2", "qaoa", {"qubits": 8, "layers": 2}, "ratio"),
    ("QAOA-8 p=3", "qaoa", {"qubits": 8, "layers": 3}, "ratio"),
]


class Quiet(RunEvents):
    def message(self, text):
        pass

    def record(self, record):
        pass


def standard_qaoa(defines: dict, seed: int, steps: int) -> float:
    """The approximation ratio of the standard QAOA ansatz of the same depth, tuned alone."""
    space = load_space("qaoa").for_values(defines)
    plan = space.plan()
    task = get_task("maxcut")
    task.prepare(plan)
    net = SuperCircuit(plan, generator=torch.Generator().manual_seed(seed))
    decisions = {}
    for slot in plan.choices:
        kind = "rzz@edges:shared" if slot.label.startswith("cost") else "rx@all:shared"
        decisions[slot.label] = kind
    circuit = net.circuit(decisions)
    tune(circuit, task, steps, 0.05)
    return float(-task.objective(circuit().detach())[0])


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    deviation = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {deviation:.4f}"


def step_time(repeats: int = 5) -> dict[str, float]:
    """Seconds of one DQAS step (64 structures of the 8-qubit TFIM space, forward and backward)
    in nasc's simulator, and in tensorcircuit-ng (PyTorch backend) where it imports."""
    space = load_space("tfim").for_values({"qubits": 8, "layers": 3})
    plan = space.plan()
    task = get_task("tfim")
    task.prepare(plan, plan.task_args)
    net = SuperCircuit(plan)
    logits = torch.zeros(net.mask.shape)
    generator = torch.Generator().manual_seed(0)
    times = {}
    start = time.perf_counter()
    for _ in range(repeats):
        choices = draw(logits, net.mask, 64, generator)
        task.objective(net(choices)).mean().backward()
    times["nasc"] = (time.perf_counter() - start) / repeats
    try:
        import tensorcircuit as tc
    except ImportError:
        return times
    tc.set_backend("pytorch")
    tc.set_dtype("complex64")

    def tc_state(row):
        circuit = tc.Circuit(plan.qubits)
        column = 0
        for slot in plan.slots:
            index = 0
            if slot.choice:
                index, column = int(row[column]), column + 1
            angles = net.angles[slot.label][index] if slot.label in net.angles else None
            for gate in slot.candidates[index].gates:
                name = {"cnot": "cnot"}.get(gate.gate, gate.gate)
                if gate.param is None:
                    getattr(circuit, name)(*gate.qubits)
                else:
                    getattr(circuit, name)(*gate.qubits, theta=angles[gate.param])
        return circuit.state()

    choices = draw(logits, net.mask, 64, generator)
    ours = net(choices).detach()
    theirs = torch.stack([tc_state(row) for row in choices]).detach()
    times["max |difference| of states"] = float((ours - theirs).abs().max())
    start = time.perf_counter()
    for _ in range(repeats):
        choices = draw(logits, net.mask, 64, generator)
        states = torch.stack([tc_state(row) for row in choices])
        task.objective(states).mean().backward()
    times["tensorcircuit-ng"] = (time.perf_counter() - start) / repeats
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument(
        "--cases",
        nargs="*",
        default=None,
        help="the cases whose title starts with these",
    )
    parser.add_argument(
        "--strategies", nargs="*", default=["dqas", "darts-1st"], help="dqas, darts-1st"
    )
    parser.add_argument("--no-step-time", action="store_true", help="skip the simulator timing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| case | strategy | metric | found | gates | search s | standard ansatz |")
    print("|---|---|---|---|---|---|---|")
    for title, name, defines, metric in CASES:
        if args.cases and not title.startswith(tuple(args.cases)):
            continue
        for strategy in args.strategies:
            values, gates, seconds, standard = [], [], [], []
            for seed in range(args.seeds):
                settings = CircuitSettings(seed=seed, steps=args.steps, finetune=args.steps)
                found = search_circuit(
                    load_space(name),
                    strategy=strategy,
                    defines=defines,
                    settings=settings,
                    events=Quiet(),
                )
                values.append(found.final[metric])
                gates.append(found.circuit.gate_count())
                seconds.append(found.seconds)
                if name == "qaoa":
                    standard.append(standard_qaoa(defines, seed, args.steps))
            row = [
                title,
                strategy,
                metric,
                spread(values),
                f"{statistics.fmean(gates):.1f}",
                f"{statistics.fmean(seconds):.1f}",
                spread(standard) if standard else "",
            ]
            print("| " + " | ".join(row) + " |", flush=True)
    if args.no_step_time:
        return
    print()
    for key, value in step_time().items():
        print(f"- one DQAS step, 8 qubits, 64 structures, {key}: {value:.4g}")


if __name__ == "__main__":
    main()
