"""Search strategies: a registry, and the hooks a strategy may fill.

A strategy changes the architecture only through the supernet's `ArchState` (masks, mixing
mode, alphas) and the trainer's hooks below. Adding one is one new module here that defines a
`Strategy` subclass with `@register_strategy("name")` and is imported at the end of this file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from nasc.dsl import Genotype, NascUsageError

if TYPE_CHECKING:
    from nasc.compiler import Supernet
    from nasc.runtime.search.config import SearchConfig
    from nasc.runtime.search.loop import Searcher

STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Register a `Strategy` subclass under `name`."""

    def decorate(cls):
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return decorate


def make_strategy(name: str, config: SearchConfig) -> Strategy:
    """The strategy registered under `name`.

    Raises:
        NascUsageError: an unknown name, listing the known ones.
    """
    if name not in STRATEGIES:
        raise NascUsageError(
            f"unknown strategy `{name}`", hint=f"known strategies: {', '.join(sorted(STRATEGIES))}"
        )
    return STRATEGIES[name](config)


class Strategy:
    """The trainer calls these hooks; the defaults do nothing.

    Attributes:
        bilevel: the training set is split: weights learn on one part, architecture
            parameters on the other (`arch_step` gets a batch of each).
    """

    name = "base"
    bilevel = False

    def __init__(self, config: SearchConfig):
        self.config = config

    def setup(self, net: Supernet) -> None:
        """Prepare the architecture state (mixing mode, optimizers) before training."""

    def arch_step(self, searcher: Searcher, batch, arch_batch) -> None:
        """Update architecture parameters before a weight step (bi-level strategies)."""

    def after_backward(self, searcher: Searcher) -> None:
        """Called after the weight loss's backward, before the weight update (single-level)."""

    def before_evaluate(self, searcher: Searcher) -> None:
        """Called after an epoch's training, before its evaluation (sampling strategies set the
        architecture the supernet is evaluated with)."""

    def end_of_epoch(self, searcher: Searcher, epoch: int) -> list[dict]:
        """Called after each epoch (1-based count of finished epochs); returns metric records."""
        return []

    def derive(self, net: Supernet) -> Genotype:
        """The architecture the search found."""
        raise NotImplementedError

    def scalars(self, net: Supernet, epoch: int) -> dict[str, float]:
        """Named numbers worth plotting after `epoch` (TensorBoard only; default none)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` returned."""


def arch_optimizer(net: Supernet, config: SearchConfig) -> torch.optim.Optimizer:
    """Adam over the architecture parameters, as DARTS sets it up."""
    return torch.optim.Adam(
        net.arch.parameters(),
        lr=config.arch_lr,
        betas=(config.arch_beta1, config.arch_beta2),
        weight_decay=config.arch_weight_decay,
    )


from nasc.runtime.strategies import darts, dqas, drnas, gdas, isdarts, msdarts  # noqa: E402,F401 - registers the strategies
