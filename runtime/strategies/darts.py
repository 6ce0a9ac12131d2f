"""The DARTS family: architecture parameters mixed by softmax, updated by gradient descent.

- `darts-1st`: bi-level, first order: alphas step on a held-out batch, then weights on theirs.
- `darts-2nd`: bi-level, second order: the alpha gradient is taken at the weights after one
  virtual SGD step, with the implicit term by finite differences (the DARTS paper, eq. 7-8).
- `single-darts`: single level: weights and alphas update on the same batch and loss.

Options for all three: PC-DARTS' partial channels and edge normalisation (`partial_channels`,
`edge_normalisation`: the supernet's; the derivation then ranks by the product of op and edge
weights, as PC-DARTS derives), and a latency term: with `latency_weight` lambda > 0 the
architecture loss gains lambda * E[latency], the sum over edges of each live candidate's softmax
weight (of its alphas) times its latency in `latency_table` (ms, from `nasc profile`).

Derivation follows DARTS: in a subset of one edge the k strongest ops (softmax weight) survive;
in a subset of several edges, the k edges whose best non-`none` op is strongest survive, each
with that op.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import torch
from torch.func import functional_call

from nasc.dsl import Genotype
from nasc.runtime.hardware.distributed import average_gradients
from nasc.runtime.hardware.latency import LatencyTerm, load_table
from nasc.runtime.strategies.registry import (
    Strategy,
    at_least,
    check,
    option,
    register_strategy,
)

if TYPE_CHECKING:
    from nasc.compiler import Supernet


@attrs.frozen(kw_only=True)
class DartsOptions:
    """DARTS family options (darts-1st, darts-2nd, single-darts, gdas, drnas, ms-darts)."""

    arch_lr: float = option(3e-4, "DARTS: Adam learning rate of the alphas")
    arch_beta1: float = option(0.5, "DARTS: Adam beta1 of the alphas")
    arch_beta2: float = option(0.999, "DARTS: Adam beta2 of the alphas")
    arch_weight_decay: float = option(1e-3, "DARTS: weight decay of the alphas")
    partial_channels: int = option(
        1,
        "DARTS family: PC-DARTS partial channel connections: candidates see 1/K of each edge's "
        "channels, the rest bypass (1: off; the paper uses 4 on CIFAR-10)",
        at_least(1),
    )
    edge_normalisation: bool = option(
        False, "DARTS family: PC-DARTS edge normalisation (a weight per choice edge)"
    )
    latency_weight: float = option(
        0.0,
        "DARTS family: lambda of the latency term, lambda * expected latency (ms) added to the "
        "architecture loss (needs --latency-table)",
        check(lambda _, value: value >= 0, "must be zero or positive"),  # NaN too
    )
    latency_table: str = option(
        "",
        "DARTS family: the latency table from `nasc profile`",
        check(
            lambda options, value: options.latency_weight == 0 or bool(value),
            "needs --latency-table FILE",
            flag="--latency-weight",
            hint="make one with `nasc profile SPACE`",
        ),
    )


def arch_optimizer(net: Supernet, options: DartsOptions) -> torch.optim.Optimizer:
    """Adam over the architecture parameters, as DARTS sets it up."""
    return torch.optim.Adam(
        net.arch.parameters(),
        lr=options.arch_lr,
        betas=(options.arch_beta1, options.arch_beta2),
        weight_decay=options.arch_weight_decay,
    )


def derive_darts(net: Supernet, strengths: dict[str, torch.Tensor] | None = None) -> Genotype:
    """The DARTS derivation from the softmax weights of the alphas (see the module doc), or from
    other (edge x op) strengths per cell type (a sampling strategy's expected weights)."""
    decided: dict[str, dict[str, list[str]]] = {}
    for cell, table in net.arch.choices.items():
        with torch.no_grad():
            if strengths is not None:
                weights = strengths[cell].detach().cpu()
            else:
                weights = net.arch.mixing_weights(cell).cpu()
        edges: dict[str, list[str]] = {edge: [] for edge in table.edges}
        for k, members in table.subsets:
            rows = sorted({row for row, _ in members})
            if len(rows) == 1:
                columns = [column for _, column in members]
                best = sorted(columns, key=lambda c: -float(weights[rows[0], c]))[:k]
                edges[table.edges[rows[0]]].extend(
                    table.candidates[rows[0]][c] for c in sorted(best)
                )
                continue
            strongest = []
            for row in rows:
                columns = [c for r, c in members if r == row and table.candidates[r][c] != "none"]
                if columns:
                    column = max(columns, key=lambda c: float(weights[row, c]))
                    strongest.append((float(weights[row, column]), row, column))
            for _, row, column in sorted(strongest, key=lambda item: -item[0])[:k]:
                edges[table.edges[row]].append(table.candidates[row][column])
        decided[cell] = edges
    return Genotype(decided)


class _Darts(Strategy):
    Options = DartsOptions
    weights_candidates = True
    latency: LatencyTerm | None = None  # set by `setup` under a latency weight

    def setup(self, net: Supernet) -> None:
        net.arch.set_mixing("softmax")
        self.optimizer = arch_optimizer(net, self.options)
        self.latency = None
        if self.options.latency_weight > 0:  # checked against the space before any training
            path = self.options.latency_table
            self.latency = LatencyTerm(load_table(path), net, path)

    def add_latency_gradient(self, net: Supernet) -> None:
        """Add lambda * d E[latency] / d alpha to the alphas' gradients (the same on every
        rank, so after their average)."""
        if self.latency is None:
            return
        (self.options.latency_weight * self.latency(net)).backward(
            inputs=list(net.arch.parameters())
        )

    def end_of_epoch(self, searcher, epoch: int) -> list[dict]:
        """Under a latency term, the architecture's expected latency (ms) after each epoch."""
        if self.latency is None:
            return []
        with torch.no_grad():
            expected = float(self.latency(searcher.net))
        return [{"event": "latency", "epoch": epoch, "expected_ms": expected}]

    def scalars(self, net: Supernet, epoch: int) -> dict[str, float]:
        """The softmax weight of every live candidate, as `weight/<cell>.<edge>:<op>`, and the
        expected latency (ms) under a latency term."""
        values = {}
        if self.latency is not None:
            with torch.no_grad():
                values["latency/expected_ms"] = float(self.latency(net))
        for cell, table in net.arch.choices.items():
            weights = net.arch.mixing_weights(cell).detach().cpu()
            for row, edge in enumerate(table.edges):
                for op in net.arch.live(cell, edge):
                    column = table.candidates[row].index(op)
                    values[f"weight/{cell}.{edge}:{op}"] = float(weights[row, column])
        return values

    def derive(self, net: Supernet) -> Genotype:
        return derive_darts(net)

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
            # Adam's saved state carries the settings it was built with: a resume override
            # (--arch-lr, --arch-beta1/2, --arch-weight-decay) must win over them.
            for group in self.optimizer.param_groups:
                group["lr"] = self.options.arch_lr
                group["betas"] = (self.options.arch_beta1, self.options.arch_beta2)
                group["weight_decay"] = self.arch_weight_decay()

    def arch_weight_decay(self) -> float:
        """The weight decay of the alphas' Adam (a strategy may set its own)."""
        return self.options.arch_weight_decay


@register_strategy("darts-1st")
class DartsFirstOrder(_Darts):
    """DARTS, first-order approximation."""

    bilevel = True

    def arch_step(self, searcher, batch, arch_batch) -> None:
        images, labels = arch_batch
        self.optimizer.zero_grad(set_to_none=True)
        loss = searcher.criterion(searcher.logits(images), labels)
        loss.backward(inputs=list(searcher.net.arch.parameters()))
        average_gradients(searcher.net.arch.parameters(), searcher.dist)
        self.add_latency_gradient(searcher.net)
        self.optimizer.step()


@register_strategy("darts-2nd")
class DartsSecondOrder(_Darts):
    """DARTS, second order (unrolled)."""

    bilevel = True

    def arch_step(self, searcher, batch, arch_batch) -> None:
        net = searcher.net
        alphas = list(net.arch.parameters())
        arch_ids = {id(p) for p in alphas}
        names = [n for n, p in net.named_parameters() if id(p) not in arch_ids]
        weights = [p for n, p in net.named_parameters() if id(p) not in arch_ids]
        buffers = {n: b.clone() for n, b in net.named_buffers()}
        lr = searcher.current_lr
        config = self.config

        def loss_at(params, images, labels):
            state = {**dict(zip(names, params)), **{n: b.clone() for n, b in buffers.items()}}
            logits = functional_call(net, state, (images,))
            logits = logits[0] if isinstance(logits, tuple) else logits
            return searcher.criterion(logits, labels)

        images, labels = batch
        # w' = w - lr * (momentum buffer * momentum + dL_train/dw + weight decay * w)
        grads = torch.autograd.grad(loss_at(weights, images, labels), weights, allow_unused=True)
        state = searcher.optimizer.state
        unrolled = []
        for w, g in zip(weights, grads):
            step = (g if g is not None else torch.zeros_like(w)) + config.weight_decay * w.detach()
            buffer = state.get(w, {}).get("momentum_buffer")
            if buffer is not None:
                step = step + config.momentum * buffer
            unrolled.append((w.detach() - lr * step).requires_grad_(True))

        arch_images, arch_labels = arch_batch
        self.optimizer.zero_grad(set_to_none=True)
        loss = loss_at(unrolled, arch_images, arch_labels)
        grads = torch.autograd.grad(loss, alphas + unrolled, allow_unused=True)
        alpha_grads = [g if g is not None else torch.zeros_like(a) for a, g in zip(alphas, grads)]
        vector = [
            g if g is not None else torch.zeros_like(w)
            for w, g in zip(unrolled, grads[len(alphas) :])
        ]

        # Implicit term: (d/dalpha L_train(w+) - d/dalpha L_train(w-)) / 2 eps,
        # with w+- = w +- eps * dL_val/dw'.
        norm = torch.sqrt(sum((v * v).sum() for v in vector)).clamp_min(1e-12)
        eps = 0.01 / norm
        implicit = []
        for sign in (1.0, -1.0):
            shifted = [w.detach() + sign * eps * v for w, v in zip(weights, vector)]
            grad = torch.autograd.grad(loss_at(shifted, images, labels), alphas, allow_unused=True)
            implicit.append(
                [g if g is not None else torch.zeros_like(a) for a, g in zip(alphas, grad)]
            )
        for alpha, g, plus, minus in zip(alphas, alpha_grads, *implicit):
            alpha.grad = g - lr * (plus - minus) / (2 * eps)
        average_gradients(alphas, searcher.dist)
        self.add_latency_gradient(net)
        self.optimizer.step()


@register_strategy("single-darts")
class SingleDarts(_Darts):
    """Single-level DARTS: weights and alphas learn from the same batch."""

    def after_backward(self, searcher) -> None:
        self.add_latency_gradient(searcher.net)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
