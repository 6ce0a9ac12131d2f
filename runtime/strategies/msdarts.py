"""MS-DARTS (Hsieh et al., "MS-DARTS: Mean-Shift Based Differentiable Architecture Search",
arXiv 2108.09996, IEEE TAI 2024): the architecture parameters are sampled within a bandwidth
around their current value, which smooths the architecture loss landscape DARTS descends.

The paper's update equations were not available to this project when it was written, so this
module implements the Gaussian-kernel form of that idea, stated exactly here. With alphas
alpha, bandwidth h (`ms_bandwidth`, a preset field; its default 0.2 is this project's choice,
not a value from the paper, which studies how the bandwidth trades stability for accuracy) and
M samples (`ms_samples`, default 1), every architecture step draws
alpha_i = alpha + h * eps_i, eps_i ~ N(0, I) on the live entries, and moves alpha along

    g = (1/M) sum_i grad_alpha L_val(w, softmax(alpha_i)),

an unbiased estimate of the gradient of the kernel-smoothed loss
L_h(alpha) = E_eps[L_val(w, softmax(alpha + h eps))] (the convolution of L_val with the Gaussian
kernel K_h). For that kernel grad L_h(alpha) = E[eps L_val(alpha + h eps)] / h, the
kernel-weighted mean shift of the samples, which is where mean shift enters; the pathwise form
above usually has a smaller variance. Adam applies g as in DARTS (lr 3e-4, betas (0.5, 0.999),
weight decay 1e-3). The weight step mixes with softmax(alpha + h eps) of a fresh sample, so the
weights learn to work across the bandwidth. h = 0 is first-order DARTS. Evaluation and
derivation use softmax(alpha), with DARTS' derivation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import torch

from nasc.runtime.hardware.distributed import average_gradients
from nasc.runtime.strategies.darts import DartsOptions
from nasc.runtime.strategies.registry import at_least, not_negative, option, register_strategy
from nasc.runtime.strategies.sampling import SamplingStrategy, masked_softmax

if TYPE_CHECKING:
    from nasc.compiler import Supernet


@attrs.frozen(kw_only=True)
class MsDartsOptions(DartsOptions):
    """MS-DARTS options (--strategy ms-darts)."""

    ms_bandwidth: float = option(
        0.2, "MS-DARTS: bandwidth (std) of the alphas' Gaussian sampling", not_negative()
    )
    ms_samples: int = option(1, "MS-DARTS: samples per architecture step", at_least(1))


@register_strategy("ms-darts")
class MsDarts(SamplingStrategy):
    """MS-DARTS: alphas sampled in a Gaussian bandwidth around their value at every step."""

    Options = MsDartsOptions

    def sample(self, net: Supernet) -> None:
        arch, h = net.arch, self.options.ms_bandwidth
        weights = {}
        for cell in arch.choices:
            alphas = arch.alphas[arch.alpha_key(cell)]
            noise = torch.randn(alphas.shape, generator=self.generator).to(alphas.device)
            live = arch.mask(cell).to(alphas.device)
            weights[cell] = masked_softmax(alphas + h * noise, live)
        arch.draw(weights)

    def expected(self, net: Supernet) -> dict[str, torch.Tensor]:
        arch = net.arch
        return {
            cell: masked_softmax(arch.alphas[arch.alpha_key(cell)], arch.mask(cell))
            for cell in arch.choices
        }

    def arch_step(self, searcher, batch, arch_batch) -> None:
        net = searcher.net
        self.epoch = searcher.epoch
        alphas = list(net.arch.parameters())
        images, labels = arch_batch
        samples = self.options.ms_samples
        self.optimizer.zero_grad(set_to_none=True)
        for _ in range(samples):
            self.sample(net)
            loss = searcher.criterion(searcher.logits(images), labels)
            if self.latency is not None:  # the drawn architecture's latency, as the others
                loss = loss + self.options.latency_weight * self.latency(net)
            (loss / samples).backward(inputs=alphas)
        average_gradients(alphas, searcher.dist)
        self.optimizer.step()
        self.sample(net)
