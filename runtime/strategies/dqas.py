"""DQAS (Zhang, Hsieh, Zhang and Yao, "Differentiable Quantum Architecture Search",
arXiv 2010.08561): structures drawn from a product of categorical distributions with learnable
logits, weights shared by every drawn structure, the logits trained by the score-function
(REINFORCE) gradient with a baseline.

Per step, K structures s_1..s_K are drawn independently, one candidate per placeholder (a
circuit) or per choice edge (a cell), with p(s) = prod_i softmax(logits_i)[s_i]. With each
structure's loss L_k, the logits' gradient is the Monte Carlo estimate
(1/K) sum_k (L_k - b) grad log p(s_k), b the mean of the batch's losses (the baseline that
DQAS' reference uses); the weights' gradient is that of (1/K) sum_k L_k. The found structure is
the most probable one: the argmax of each placeholder's logits.

On a circuit space the loop of `runtime/search/circuits.py` runs it (`CircuitDqas`): the K
structures are simulated as one batch. On a network of cells (`dqas`, a `Strategy`) it is close
to a REINFORCE controller without a recurrent network: the architecture step evaluates K
subnets (each runs only its own ops, as GDAS' do) on the held-out batch, and the weights step
on one more draw. Its options are `DqasOptions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import torch

from nasc.runtime.hardware.distributed import average_gradients
from nasc.runtime.strategies.darts import DartsOptions, derive_darts
from nasc.runtime.strategies.registry import check, option, register_strategy
from nasc.runtime.strategies.sampling import SamplingStrategy, masked_softmax

if TYPE_CHECKING:
    from nasc.compiler import Supernet
    from nasc.dsl import Genotype


@attrs.frozen(kw_only=True)
class DqasOptions(DartsOptions):
    """DQAS options (--strategy dqas); on circuits, `--batch-size` is K."""

    dqas_samples: int = option(
        4,
        "DQAS: K, the structures drawn and scored per architecture step",
        check(lambda options, value: value >= 1, "must be at least 1"),
    )


def draw(logits: torch.Tensor, live: torch.Tensor, count: int, generator) -> torch.Tensor:
    """`count` structures (count x rows) from the rows' categoricals over their live entries."""
    probabilities = masked_softmax(logits.detach().cpu(), live.cpu())
    return torch.multinomial(probabilities, count, replacement=True, generator=generator).T


def log_probability(logits: torch.Tensor, live: torch.Tensor, choices: torch.Tensor):
    """log p(s) of each structure (count,), differentiable in the logits."""
    logs = torch.log_softmax(logits.masked_fill(~live, float("-inf")), dim=-1)
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logs[rows, choices.to(logits.device)].sum(dim=-1)


def score_surrogate(logits, live, choices, losses: torch.Tensor) -> torch.Tensor:
    """The scalar whose gradient in the logits is the score-function estimate with the batch's
    mean loss as baseline."""
    losses = losses.detach()
    advantage = losses - losses.mean()
    return (advantage * log_probability(logits, live, choices)).mean()


def most_probable(logits: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """The argmax over each row's live entries."""
    return logits.detach().masked_fill(~live, float("-inf")).argmax(dim=-1)


@register_strategy("dqas")
class Dqas(SamplingStrategy):
    """DQAS on a network of cells: K subnets scored per architecture step, REINFORCE on the
    alphas (the logits), one drawn subnet per weight step."""

    Options = DqasOptions

    def setup(self, net: Supernet) -> None:
        super().setup(net)
        self.candidates = {cell: net.arch.mask(cell).clone() for cell in net.arch.choices}

    def _draw(self, net: Supernet) -> dict[str, torch.Tensor]:
        """One structure: a candidate index per choice edge of every cell type."""
        arch = net.arch
        return {
            cell: draw(arch.alphas[arch.alpha_key(cell)], live, 1, self.generator)[0]
            for cell, live in self.candidates.items()
        }

    def _select(self, net: Supernet, structure: dict[str, torch.Tensor]) -> None:
        masks = {}
        for cell, choices in structure.items():
            mask = torch.zeros_like(self.candidates[cell])
            rows = torch.arange(len(choices), device=mask.device)
            mask[rows, choices.to(mask.device)] = True
            masks[cell] = mask
        net.arch.select(masks)
        net.arch.draw({cell: mask.float() for cell, mask in masks.items()})

    def sample(self, net: Supernet) -> None:
        self._select(net, self._draw(net))

    def arch_step(self, searcher, batch, arch_batch) -> None:
        net, arch = searcher.net, searcher.net.arch
        self.epoch = searcher.epoch
        images, labels = arch_batch
        structures, losses = [], []
        with torch.no_grad():
            for _ in range(self.options.dqas_samples):
                structure = self._draw(net)
                self._select(net, structure)
                structures.append(structure)
                losses.append(searcher.criterion(searcher.logits(images), labels))
        losses = torch.stack(losses)
        self.optimizer.zero_grad(set_to_none=True)
        surrogate = 0.0
        for cell in arch.choices:
            logits = arch.alphas[arch.alpha_key(cell)]
            choices = torch.stack([structure[cell] for structure in structures])
            live = self.candidates[cell].to(logits.device)
            surrogate = surrogate + score_surrogate(logits, live, choices, losses)
        alphas = list(arch.parameters())
        surrogate.backward(inputs=alphas)
        average_gradients(alphas, searcher.dist)
        self.optimizer.step()
        self.sample(net)  # the weight step's structure

    def expected(self, net: Supernet) -> dict[str, torch.Tensor]:
        arch = net.arch
        return {
            cell: masked_softmax(
                arch.alphas[arch.alpha_key(cell)],
                self.candidates[cell].to(arch.alphas[arch.alpha_key(cell)].device),
            )
            for cell in arch.choices
        }

    def before_evaluate(self, searcher) -> None:
        """Evaluate the most probable subnet."""
        arch = searcher.net.arch
        structure = {
            cell: most_probable(arch.alphas[arch.alpha_key(cell)], self.candidates[cell])
            for cell in arch.choices
        }
        self._select(searcher.net, structure)

    def derive(self, net: Supernet) -> Genotype:
        with torch.no_grad():
            return derive_darts(net, self.expected(net))
