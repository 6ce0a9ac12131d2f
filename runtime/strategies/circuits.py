"""Strategies on circuit spaces: DQAS (`dqas`, drawn structures and score-function logits) and the
DARTS super-circuit (`darts-1st`, `single-darts`: the softmax mixture of every placeholder's
candidates, logits and angles by gradient descent on one objective; a circuit has no data, so
DARTS' two levels are one). On a noisy circuit each drawn structure of DQAS runs one noise
trajectory, and the super-circuit's objective is the mean over `batch` trajectories. IS-DARTS is
refused: its information is a statistic of feature maps over channels and pixels, which a
statevector does not have.
"""

from __future__ import annotations

import torch

from nasc.compiler.circuits import SuperCircuit
from nasc.dsl import NascUsageError
from nasc.runtime.strategies.dqas import draw, most_probable, score_surrogate
from nasc.runtime.strategies.sampling import masked_softmax
from nasc.runtime.tasks.circuits import CircuitTask

REFUSED = {
    "isdarts": "IS-DARTS ranks candidates by the Fisher information of their feature maps "
    "(statistics over channels and pixels); a circuit's candidates output statevectors, "
    "which have neither, so the information is not defined for them",
}


class CircuitStrategy:
    """Logits per placeholder (placeholders x widest pool) and the angles of a super-circuit,
    each with its Adam optimizer; `step` is one update, `derive` the most probable structure."""

    def __init__(self, net: SuperCircuit, task: CircuitTask, settings, generator):
        self.net, self.task, self.settings, self.generator = net, task, settings, generator
        real = next(iter(net.angles.values())).dtype if len(net.angles) else torch.float32
        self.logits = torch.nn.Parameter(torch.zeros(net.mask.shape, dtype=real))
        self.angle_optimizer = (
            torch.optim.Adam(net.parameters(), lr=settings.lr) if len(net.angles) else None
        )
        self.logit_optimizer = torch.optim.Adam([self.logits], lr=settings.arch_lr)

    def probabilities(self) -> torch.Tensor:
        return masked_softmax(self.logits.detach(), self.net.mask)

    def derive(self) -> dict[str, str]:
        return self.net.decisions(most_probable(self.logits, self.net.mask))

    def _update(self, loss: torch.Tensor) -> None:
        if self.angle_optimizer is not None:
            self.angle_optimizer.zero_grad(set_to_none=True)
        self.logit_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.angle_optimizer is not None:
            self.angle_optimizer.step()
        self.logit_optimizer.step()

    def step(self) -> dict[str, float]:
        raise NotImplementedError


class CircuitDqas(CircuitStrategy):
    """DQAS: `batch` structures per step, simulated together; angles by the mean objective,
    logits by the score-function estimate with the batch mean as baseline."""

    def step(self):
        live = self.net.mask
        choices = draw(self.logits, live, self.settings.batch, self.generator)
        values = self.task.objective(self.net(choices))
        surrogate = score_surrogate(self.logits, live, choices, values)
        self._update(values.mean() + surrogate)
        values = values.detach()
        return {"objective": float(values.mean()), "best": float(values.min())}


class CircuitMixture(CircuitStrategy):
    """The DARTS super-circuit: every placeholder outputs the softmax-weighted sum of its live
    candidates' outputs; logits and angles descend the objective of the mixed state."""

    def step(self):
        weights = masked_softmax(self.logits, self.net.mask)
        rows = self.settings.batch if self.net.noise > 0 else 1  # noise: mean of trajectories
        value = self.task.objective(self.net.mixture(weights, rows)).mean()
        self._update(value)
        return {"objective": float(value.detach()), "best": float(value.detach())}


CIRCUIT_STRATEGIES = {
    "dqas": CircuitDqas,
    "darts-1st": CircuitMixture,
    "single-darts": CircuitMixture,
}


def circuit_strategy(name: str, net: SuperCircuit, task: CircuitTask, settings, generator):
    """The circuit strategy registered under `name`.

    Raises:
        NascUsageError: IS-DARTS with its reason, or a strategy with no circuit form.
    """
    if name in REFUSED:
        raise NascUsageError(
            f"`{name}` does not search circuits: {REFUSED[name]}",
            hint=f"circuit strategies: {', '.join(CIRCUIT_STRATEGIES)}",
        )
    if name not in CIRCUIT_STRATEGIES:
        raise NascUsageError(
            f"the strategy `{name}` has no circuit form",
            hint=f"circuit strategies: {', '.join(CIRCUIT_STRATEGIES)}",
        )
    return CIRCUIT_STRATEGIES[name](net, task, settings, generator)
