"""The strategy registry: the `Strategy` base class, its options, and lookup by name.

A leaf module: strategies import it to register, and it imports no strategy. A strategy is a
`Strategy` subclass registered with `@register_strategy("name")`; its options are an attrs class
set as its `Options` attribute, declared beside it with `option(...)`. Every option becomes a
flag of `nasc search` (`gdas_tau_max` -> `--gdas-tau-max`), a keyword of `nasc.search` and a
field of `SearchConfig`; its validators check it when the strategy is chosen and name the flag.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import attrs

from nasc.dsl import Genotype, NascUsageError, SpaceIR

if TYPE_CHECKING:
    from nasc.compiler import Supernet
    from nasc.runtime.search.config import SearchConfig
    from nasc.runtime.search.loop import Searcher

STRATEGIES: dict[str, type[Strategy]] = {}
# Set once `SearchConfig` took the registered options as its fields: a strategy with options of
# its own registers before that (its module is imported by the package's `__init__`).
_options_taken = False


# --- options ----------------------------------------------------------------------------------


def flag_of(name: str) -> str:
    """The command-line flag of a setting: `gdas_tau_max` -> `--gdas-tau-max`."""
    return "--" + name.replace("_", "-")


def refuse(setting: str, what: str, hint: str | None = None) -> NascUsageError:
    """The error of a setting that cannot run, naming its flag (or `setting` as written, when
    it names several flags, `--a/--b`)."""
    flag = setting if setting.startswith("--") else flag_of(setting)
    return NascUsageError(f"{flag} {what}", hint=hint or "see nasc search --help")


def check(
    test: Callable[[Any, Any], bool], what: str, flag: str | None = None, hint: str | None = None
):
    """An attrs validator that refuses a value unless `test(options, value)` holds (the other
    options are set by then, so `test` may compare with them).

    Args:
        what: the message after the flag (`must be at least 1`).
        flag: the flag(s) to name (default: the field's own).
        hint: what to do instead (default: see the help).
    """

    def validate(instance, attribute, value) -> None:
        if not test(instance, value):
            raise refuse(flag or attribute.name, what, hint)

    return validate


def at_least(low: int, flag: str | None = None):
    """A validator: the value is at least `low`."""
    return check(lambda _, value: value >= low, f"must be at least {low}", flag)


def not_negative():
    """A validator: the value is zero or more (NaN is refused)."""
    return check(lambda _, value: value >= 0, "must not be negative")


def one_of(*choices: str, what: str | None = None):
    """A validator: the value is one of `choices`."""
    return check(
        lambda _, value: value in choices, what or f"must be one of {', '.join(choices)}"
    )


def option(default, help: str, *validators) -> Any:
    """An option of a strategy: its default, the flag's help text, and its checks."""
    return attrs.field(
        default=default, metadata={"help": help}, validator=list(validators) or None
    )


@attrs.frozen(kw_only=True)
class NoOptions:
    """A strategy without options of its own."""


def options_of(cls: type, config: SearchConfig):
    """The options `cls` (an attrs class) takes from `config`, checked by their validators.

    Raises:
        NascUsageError: an option that cannot run, naming its flag.
    """
    return cls(**{field.name: getattr(config, field.name) for field in attrs.fields(cls)})


# --- strategies -------------------------------------------------------------------------------


class Strategy:
    """The trainer calls these hooks; the defaults do nothing.

    Attributes:
        Options: the strategy's options (an attrs class; see `option`); `self.options` holds
            them, as the config gives them.
        preset_family: whose values of a preset (`nb201`, `darts`) fill the shared settings the
            user leaves out: `isdarts` or `darts` (the DARTS family's).
        bilevel: the training set is split: weights learn on one part, architecture
            parameters on the other (`arch_step` gets a batch of each).
        weights_candidates: the supernet mixes candidates by learned weights (the DARTS
            family), which the single-stage protocol can freeze; a strategy that masks
            candidates out (IS-DARTS) cannot.
    """

    name = "base"
    Options: type = NoOptions
    preset_family = "darts"
    bilevel = False
    weights_candidates = False

    def __init__(self, config: SearchConfig):
        self.config = config
        self.options = options_of(self.Options, config)

    @classmethod
    def check(cls, config: SearchConfig) -> None:
        """Refuse options that cannot run with `config`, naming the flag. The default checks the
        options' own validators; a strategy adds what depends on the shared settings.

        Raises:
            NascUsageError: the first problem found.
        """
        options_of(cls.Options, config)

    @classmethod
    def fit_space(
        cls, config: SearchConfig, space: SpaceIR, given: Collection[str]
    ) -> tuple[SearchConfig, list[str]]:
        """The config fitted to what `space` allows, before a new search starts: a setting
        given explicitly (named in `given`) that the space cannot use is refused; a preset's
        value is lowered, with a note saying so. The default changes nothing.

        Returns:
            the config, and the notes to show.

        Raises:
            NascUsageError: naming the setting, and the most the space allows.
        """
        return config, []

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


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Register a `Strategy` subclass under `name`.

    Raises:
        TypeError: an option named like another strategy's option but declared differently
            (options share one namespace of flags).
    """

    def decorate(cls):
        known = {field.name: field for field in option_fields()}
        for field in attrs.fields(cls.Options):
            other = known.get(field.name)
            if other is None and _options_taken:
                raise TypeError(
                    f"strategy `{name}`: option `{field.name}` comes after SearchConfig took "
                    "the registered options as its fields; import the strategy's module from "
                    "nasc.runtime.strategies (its __init__) so it registers first"
                )
            if other is not None and _declaration(other) != _declaration(field):
                raise TypeError(
                    f"strategy `{name}`: option `{field.name}` is another strategy's option, "
                    "declared differently; rename it (prefix it with the strategy's name)"
                )
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return decorate


def _declaration(field: attrs.Attribute) -> tuple:
    return (field.type, field.default, field.metadata.get("help"))


def strategy_class(name: str) -> type[Strategy]:
    """The strategy class registered under `name`.

    Raises:
        NascUsageError: an unknown name, listing the known ones.
    """
    if name not in STRATEGIES:
        raise NascUsageError(
            f"unknown strategy `{name}`", hint=f"known strategies: {', '.join(sorted(STRATEGIES))}"
        )
    return STRATEGIES[name]


def make_strategy(name: str, config: SearchConfig) -> Strategy:
    """The strategy registered under `name`, with its options from `config`.

    Raises:
        NascUsageError: an unknown name, listing the known ones.
    """
    return strategy_class(name)(config)


def option_fields() -> list[attrs.Attribute]:
    """Every registered strategy's options, each name once, in the order they were registered."""
    seen: dict[str, attrs.Attribute] = {}
    for cls in STRATEGIES.values():
        for field in attrs.fields(cls.Options):
            seen.setdefault(field.name, field)
    return list(seen.values())


def take_option_fields() -> list[attrs.Attribute]:
    """`option_fields()`, for `SearchConfig` to make fields of; from then on a strategy with new
    options can no longer register (they would have no field)."""
    global _options_taken
    _options_taken = True
    return option_fields()


def option_groups() -> list[tuple[str, list[attrs.Attribute]]]:
    """The registered options grouped by the class that declares them first (its docstring's
    first line is the group's title), for `nasc search --help`."""
    groups: dict[type, list[attrs.Attribute]] = {}
    seen: set[str] = set()
    for cls in STRATEGIES.values():
        for owner in reversed(cls.Options.__mro__):
            if not attrs.has(owner):
                continue
            for field in attrs.fields(owner):
                if field.name not in seen:
                    seen.add(field.name)
                    groups.setdefault(owner, []).append(field)
    return [
        ((owner.__doc__ or owner.__name__).strip().splitlines()[0].rstrip("."), fields)
        for owner, fields in groups.items()
    ]
