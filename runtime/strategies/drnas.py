"""DrNAS (Chen et al., "DrNAS: Dirichlet Neural Architecture Search", ICLR 2021): the mixing
weights of every edge are a sample of a Dirichlet distribution whose concentration the
architecture parameters give.

What is implemented, following the paper and its reference code (xiangning-chen/DrNAS):
- Concentration beta = ELU(alpha) + 1 over an edge's live candidates; each step's weights are
  theta ~ Dir(beta), drawn with `torch.distributions.Dirichlet.rsample` (pathwise gradients,
  implicit reparameterisation), once for the architecture step and once for the weight step.
- The anchor regulariser, `drnas_reg`: `l2` (the reference code's default) is weight decay
  `drnas_reg_scale` (1e-3) on the alphas in their Adam optimizer; `kl` adds
  `drnas_reg_scale` * sum over edges of KL(Dir(beta) || Dir(1)) to the architecture loss (the
  paper's anchor at the uniform Dirichlet) and sets Adam's weight decay to 0. `arch_weight_decay`
  is not used.
- Evaluation and derivation use the Dirichlet mean beta / sum(beta); derivation is DARTS'.
- The progressive scheme, where it fits: after epoch `drnas_prune_epoch` (0: never) every edge
  keeps its `drnas_keep` candidates of largest mean weight (the same order as the alphas', which
  the reference ranks by; on NB201 it runs 2 stages of 50 epochs, 5 then 3 ops per edge), through
  the masks, so the pruned ops stop costing anything.
  An edge in a one-edge subset keeping k ops keeps at least k.

Not implemented: the reference's partial channels in the progressive stages (K = 4, then 2),
its restart of the weights' optimizer and learning-rate schedule at each stage, and its
10 warm-up epochs per stage without architecture steps; the unrolled (second order) variant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import torch
from torch.distributions import Dirichlet, kl_divergence
from torch.nn import functional

from nasc.runtime.strategies.darts import DartsOptions
from nasc.runtime.strategies.registry import (
    at_least,
    not_negative,
    one_of,
    option,
    options_of,
    refuse,
    register_strategy,
)
from nasc.runtime.strategies.sampling import SamplingStrategy

if TYPE_CHECKING:
    from nasc.compiler import Supernet
    from nasc.runtime.search.config import SearchConfig


@attrs.frozen(kw_only=True)
class DrNasOptions(DartsOptions):
    """DrNAS options (--strategy drnas)."""

    drnas_reg: str = option(
        "l2",
        "DrNAS anchor: l2 (weight decay on the alphas, the reference default) or kl (KL to the "
        "uniform Dirichlet, the paper's)",
        one_of("l2", "kl", what="must be l2 or kl"),
    )
    drnas_reg_scale: float = option(
        1e-3, "DrNAS: scale of the anchor regulariser", not_negative()
    )
    drnas_prune_epoch: int = option(
        0, "DrNAS progressive: prune every edge after this epoch (0: never)"
    )  # checked against the epochs by `DrNas.check`
    drnas_keep: int = option(3, "DrNAS progressive: candidates every edge keeps", at_least(1))


def concentration(alphas: torch.Tensor) -> torch.Tensor:
    """beta = ELU(alpha) + 1, positive everywhere (the paper's choice)."""
    return functional.elu(alphas) + 1.0


def live_groups(live: torch.Tensor):
    """The rows of an (edge x op) mask grouped by their number of live candidates, as
    (rows, row index, column index) with the live entries of the group in row-major order."""
    counts = live.sum(dim=-1)
    for count in sorted(set(counts.tolist())):
        if count == 0:
            continue
        rows = torch.nonzero(counts == count).flatten()
        sub_rows, columns = torch.nonzero(live[rows], as_tuple=True)
        yield rows, rows[sub_rows], columns, count


@register_strategy("drnas")
class DrNas(SamplingStrategy):
    """DrNAS: Dirichlet-distributed mixing weights with pathwise gradients."""

    Options = DrNasOptions

    @classmethod
    def check(cls, config: SearchConfig) -> None:
        """The options, and a pruning epoch inside the run."""
        options = options_of(cls.Options, config)
        if not 0 <= options.drnas_prune_epoch < config.epochs:
            raise refuse(
                "drnas_prune_epoch",
                f"must lie in 0..{config.epochs - 1} (0: no pruning)",
                f"the reference prunes halfway: --drnas-prune-epoch {config.epochs // 2}",
            )

    def setup(self, net: Supernet) -> None:
        super().setup(net)
        for group in self.optimizer.param_groups:
            group["weight_decay"] = self.arch_weight_decay()

    def arch_weight_decay(self) -> float:
        return self.options.drnas_reg_scale if self.options.drnas_reg == "l2" else 0.0

    def _draw_cpu(self, beta: torch.Tensor) -> torch.Tensor:
        # Dirichlet.rsample draws from torch's global generator: borrow it with this
        # strategy's state, so ranks and resumed runs draw the same weights.
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.generator.get_state())
            theta = Dirichlet(beta.cpu()).rsample()
            self.generator.set_state(torch.get_rng_state())
        return theta.to(beta.device)

    def sample(self, net: Supernet) -> None:
        arch = net.arch
        weights = {}
        for cell in arch.choices:
            alphas = arch.alphas[arch.alpha_key(cell)]
            beta = concentration(alphas)
            live = arch.mask(cell).to(alphas.device)
            drawn = torch.zeros_like(alphas)
            for rows, row_index, columns, count in live_groups(live):
                theta = self._draw_cpu(beta[row_index, columns].view(len(rows), count))
                drawn = drawn.index_put((row_index, columns), theta.flatten())
            weights[cell] = drawn
        arch.draw(weights)

    def expected(self, net: Supernet) -> dict[str, torch.Tensor]:
        arch = net.arch
        means = {}
        for cell in arch.choices:
            alphas = arch.alphas[arch.alpha_key(cell)]
            live = arch.mask(cell).to(alphas.device)
            beta = concentration(alphas) * live
            means[cell] = beta / beta.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        return means

    def regulariser(self, net: Supernet) -> torch.Tensor | float:
        if self.options.drnas_reg != "kl":
            return 0.0
        arch = net.arch
        total = 0.0
        for cell in arch.choices:
            alphas = arch.alphas[arch.alpha_key(cell)]
            beta = concentration(alphas)
            live = arch.mask(cell).to(alphas.device)
            for rows, row_index, columns, count in live_groups(live):
                q = Dirichlet(beta[row_index, columns].view(len(rows), count))
                anchor = Dirichlet(torch.ones_like(q.concentration))
                total = total + kl_divergence(q, anchor).sum()
        return self.options.drnas_reg_scale * total

    def end_of_epoch(self, searcher, epoch: int) -> list[dict]:
        records = super().end_of_epoch(searcher, epoch)
        if self.options.drnas_prune_epoch and epoch == self.options.drnas_prune_epoch:
            records.append(self.prune(searcher.net, epoch))
        return records

    def prune(self, net: Supernet, epoch: int) -> dict:
        """Keep the `drnas_keep` strongest live candidates of every edge (the progressive
        scheme's second stage); returns the metrics record saying what went."""
        arch = net.arch
        with torch.no_grad():
            means = self.expected(net)
        pruned = {}
        for cell, table in arch.choices.items():
            floor = [1] * len(table.edges)
            for k, members in table.subsets:
                rows = {row for row, _ in members}
                if len(rows) == 1:
                    (row,) = rows
                    floor[row] = max(floor[row], k)
            gone = []
            for row, edge in enumerate(table.edges):
                live = arch.live(cell, edge)
                keep = max(self.options.drnas_keep, floor[row])
                columns = table.candidates[row]
                ranked = sorted(live, key=lambda op: -float(means[cell][row, columns.index(op)]))
                gone.extend((edge, op) for op in ranked[keep:])
            if gone:
                arch.discard(cell, gone)
            pruned[cell] = [f"{edge}:{op}" for edge, op in gone]
        return {"event": "prune", "epoch": epoch, "pruned": pruned, "live": arch.live_count()}
