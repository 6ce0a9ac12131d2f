"""GDAS (Dong and Yang, "Searching for A Robust Neural Architecture in Four GPU Hours",
CVPR 2019): one op per edge, sampled each step by a hard Gumbel-softmax.

Per edge with live candidates O and alphas a (the reference, AutoDL-Projects' GDAS, does the
same): g_o = -log(E_o) with E_o ~ Exp(1), p = softmax((log_softmax(a) + g) / tau), the sampled
op k = argmax p, and the edge's weight vector h = one_hot(k) - stop_gradient(p) + p: its value
is exactly one-hot, its gradient that of p (straight-through). The temperature anneals linearly
per epoch from `gdas_tau_max` (10) to `gdas_tau_min` (0.1) over the run, epoch e of E at
tau_max - (tau_max - tau_min) * e / (E - 1), as the reference does.

The masks hold the sampled subnet during each step (`ArchState.select`), so the generated code
runs only the sampled op of every edge: a step costs about one subnet's step (plus regenerating
the code when the sample changed, a few milliseconds). One difference from the reference: it
also adds the unsampled ops' hard weights (value 0) to the edge's sum so that their entries of
h get a gradient; here only the sampled op's entry does, and the alphas of the others learn
through the softmax's Jacobian of that entry (the plain straight-through estimator). So an edge
whose sample is `none` (a zero output) passes no gradient to its alphas in that step.

Evaluation after each epoch runs the subnet of the strongest op per edge; the genotype is
DARTS' derivation on softmax(a), so a subset such as `keep 2 per node` still gets the two
strongest incoming edges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import torch

from nasc.runtime.strategies.darts import DartsOptions
from nasc.runtime.strategies.registry import check, option, register_strategy
from nasc.runtime.strategies.sampling import SamplingStrategy, masked_softmax

if TYPE_CHECKING:
    from nasc.compiler import Supernet


@attrs.frozen(kw_only=True)
class GdasOptions(DartsOptions):
    """GDAS options (--strategy gdas)."""

    gdas_tau_max: float = option(10.0, "GDAS: Gumbel-softmax temperature of the first epoch")
    gdas_tau_min: float = option(
        0.1,
        "GDAS: temperature of the last epoch (linear anneal)",
        check(
            lambda options, value: 0 < value <= options.gdas_tau_max,
            "must satisfy 0 < tau-min <= tau-max",
            flag="--gdas-tau-min/--gdas-tau-max",
        ),
    )


@register_strategy("gdas")
class Gdas(SamplingStrategy):
    """GDAS: a hard Gumbel-softmax sample of one op per edge each step."""

    Options = GdasOptions

    def setup(self, net: Supernet) -> None:
        super().setup(net)
        # The candidates the samples choose from: the masks as the search starts.
        self.candidates = {cell: net.arch.mask(cell).clone() for cell in net.arch.choices}

    def tau(self) -> float:
        options = self.options
        span = max(self.config.epochs - 1, 1)
        return options.gdas_tau_max - (options.gdas_tau_max - options.gdas_tau_min) * min(
            self.epoch / span, 1.0
        )

    def sample(self, net: Supernet) -> None:
        arch, tau = net.arch, self.tau()
        weights, masks = {}, {}
        for cell in arch.choices:
            alphas = arch.alphas[arch.alpha_key(cell)]
            live = self.candidates[cell].to(alphas.device)
            uniform = torch.empty(alphas.shape).exponential_(generator=self.generator)
            gumbel = -torch.log(uniform.clamp_min(1e-20)).to(alphas.device)
            logits = torch.log_softmax(alphas.masked_fill(~live, float("-inf")), dim=-1)
            probs = torch.softmax((logits + gumbel) / tau, dim=-1).nan_to_num(0.0)
            index = probs.argmax(dim=-1, keepdim=True)
            hard = torch.zeros_like(probs).scatter_(-1, index, 1.0)
            weights[cell] = hard - probs.detach() + probs
            masks[cell] = hard.bool()
        arch.select(masks)
        arch.draw(weights)

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
        """Evaluate the subnet of the strongest op per edge (weight 1 each)."""
        arch = searcher.net.arch
        masks = {}
        for cell, weights in self.expected(searcher.net).items():
            index = weights.argmax(dim=-1, keepdim=True)
            masks[cell] = torch.zeros_like(weights, dtype=torch.bool).scatter_(-1, index, True)
        arch.draw(None)
        arch.select(masks)

    def scalars(self, net: Supernet, epoch: int) -> dict[str, float]:
        return {**super().scalars(net, epoch), "gdas/tau": self.tau()}
