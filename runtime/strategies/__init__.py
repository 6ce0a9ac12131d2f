"""Search strategies: the registry (`registry.py`) and the strategies, registered on import.

A strategy changes the architecture only through the supernet's `ArchState` (masks, mixing
mode, alphas) and the trainer's hooks of `Strategy`. Adding one is one new module here that
defines a `Strategy` subclass with `@register_strategy("name")` and its options (an attrs class,
`Options`), imported below.
"""

from nasc.runtime.strategies import darts, dqas, drnas, gdas, isdarts, msdarts  # noqa: F401
from nasc.runtime.strategies.registry import (
    STRATEGIES,
    Strategy,
    make_strategy,
    register_strategy,
    strategy_class,
)

__all__ = ["STRATEGIES", "Strategy", "make_strategy", "register_strategy", "strategy_class"]
