"""What the sampling strategies of the DARTS family share (GDAS, DrNAS, MS-DARTS).

Each step draws the mixing weights anew from the alphas (`ArchState.draw`), with gradients to
the alphas, once for the architecture step on the held-out batch and once for the weight step.
The draws come from the strategy's own generator, seeded from the run's seed: every rank of a
data-parallel run draws the same architecture, and a resumed run continues the same stream (the
generator's state is in the checkpoint). Derivation is DARTS' (see `darts.derive_darts`) on the
strategy's expected weights, so any comparison subset (one op per edge, two inputs per node)
gets a valid genotype.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from nasc.runtime.hardware.distributed import average_gradients
from nasc.runtime.strategies.darts import _Darts, derive_darts

if TYPE_CHECKING:
    from nasc.compiler import Supernet
    from nasc.dsl import Genotype

# Offsets the strategy's stream from the seed torch's own generator gets.
_STREAM = 0x6E617363


class SamplingStrategy(_Darts):
    """Bi-level, first order: alphas step on a held-out batch with freshly drawn weights, then
    the weights step with another draw. Subclasses fill `sample` and `expected`."""

    bilevel = True

    def setup(self, net: Supernet) -> None:
        super().setup(net)
        self.generator = torch.Generator().manual_seed(self.config.seed + _STREAM)
        self.epoch = 0  # the epoch being trained (0-based), for schedules

    # --- what a subclass defines ---------------------------------------------------------------

    def sample(self, net: Supernet) -> None:
        """Draw this step's architecture: `net.arch.draw(...)` (and `select` for subnets)."""
        raise NotImplementedError

    def expected(self, net: Supernet) -> dict[str, torch.Tensor]:
        """Per cell type, the (edge x op) weights the draws centre on (dead entries 0)."""
        raise NotImplementedError

    def regulariser(self, net: Supernet) -> torch.Tensor | float:
        """A term added to the architecture loss."""
        return 0.0

    # --- the hooks -----------------------------------------------------------------------------

    def arch_step(self, searcher, batch, arch_batch) -> None:
        net = searcher.net
        self.epoch = searcher.epoch
        alphas = list(net.arch.parameters())
        images, labels = arch_batch
        self.optimizer.zero_grad(set_to_none=True)
        self.sample(net)
        loss = searcher.criterion(searcher.logits(images), labels) + self.regulariser(net)
        if self.latency is not None:  # the drawn architecture's latency: one graph, one backward
            loss = loss + self.options.latency_weight * self.latency(net)
        loss.backward(inputs=alphas)
        average_gradients(alphas, searcher.dist)
        self.optimizer.step()
        self.sample(net)  # the weight step's draw, after the alphas moved

    def before_evaluate(self, searcher) -> None:
        """Evaluate the supernet at the expected weights, not at the last draw."""
        with torch.no_grad():
            searcher.net.arch.draw(self.expected(searcher.net))

    def end_of_epoch(self, searcher, epoch: int) -> list[dict]:
        searcher.net.arch.draw(None)
        return super().end_of_epoch(searcher, epoch)  # the expected latency, under a latency term

    def derive(self, net: Supernet) -> Genotype:
        with torch.no_grad():
            return derive_darts(net, self.expected(net))

    def scalars(self, net: Supernet, epoch: int) -> dict[str, float]:
        """The expected weight of every candidate, as `weight/<cell>.<edge>:<op>`."""
        values = {}
        with torch.no_grad():
            expected = self.expected(net)
        for cell, table in net.arch.choices.items():
            weights = expected[cell].cpu()
            for row, edge in enumerate(table.edges):
                for column, op in enumerate(table.candidates[row]):
                    if weights[row, column] > 0:
                        values[f"weight/{cell}.{edge}:{op}"] = float(weights[row, column])
        return values

    def state_dict(self) -> dict:
        return {**super().state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "generator" in state:
            self.generator.set_state(state["generator"].cpu())


def masked_softmax(alphas: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """Softmax over each row's live entries; dead entries weigh 0."""
    return torch.softmax(alphas.masked_fill(~live, float("-inf")), dim=-1).nan_to_num(0.0)
