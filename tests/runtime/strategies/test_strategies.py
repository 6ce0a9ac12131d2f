"""Tests of the strategy registry: options declared by each strategy, flags derived from them,
and the registry as a leaf module."""

from __future__ import annotations

import ast
from pathlib import Path

import attrs
import pytest

from nasc.dsl import NascUsageError
from nasc.runtime.cli.parser import build_parser, config_overrides
from nasc.runtime.search.config import SearchConfig, SharedConfig, make_config, validate
from nasc.runtime.strategies import STRATEGIES, Strategy, make_strategy, register_strategy
from nasc.runtime.strategies.darts import DartsOptions
from nasc.runtime.strategies.registry import NoOptions, option, option_fields

ROOT = Path(__file__).resolve().parents[3]


def _search_args(*flags: str):
    return build_parser().parse_args(["search", "nb201", *flags])


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_option_of_a_strategy_is_a_search_flag_and_a_config_field(name):
    """Each option a strategy declares is a `nasc search` flag of the same name, reaches the
    config's field, and the strategy reads it back as its option."""
    cls = STRATEGIES[name]
    fields = attrs.fields(cls.Options)
    config_fields = {field.name for field in attrs.fields(SearchConfig)}
    for field in fields:
        assert field.name in config_fields, field.name
        assert field.metadata.get("help"), f"{name}: option {field.name} has no help text"
    for field in fields:
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            args = _search_args(flag)
            value = True
        else:
            value = {"int": 7, "float": 0.375, "str": "x"}[field.type]
            args = _search_args(flag, str(value))
        assert config_overrides(args)[field.name] == value
        config = make_config("nb201", name, {field.name: value})
        assert getattr(config, field.name) == value


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_each_strategy_reads_its_options_from_the_config(name):
    """`make_strategy` gives a strategy its own options, as the config holds them."""
    config = make_config("nb201", name, {"epochs": 40})
    strategy = make_strategy(name, config)
    assert isinstance(strategy.options, STRATEGIES[name].Options)
    for field in attrs.fields(STRATEGIES[name].Options):
        assert getattr(strategy.options, field.name) == getattr(config, field.name)


def test_shared_settings_hold_no_strategy_option():
    """The shared configuration keeps what every strategy uses; the options are the
    strategies', and the flat config is exactly the two together."""
    shared = {field.name for field in attrs.fields(SharedConfig)}
    options = {field.name for field in option_fields()}
    assert not shared & options
    assert {field.name for field in attrs.fields(SearchConfig)} == shared | options
    assert {"epochs", "batch_size", "lr", "weight_decay", "seed", "device"} <= shared


def test_search_help_groups_the_options_by_strategy():
    """`nasc search --help` lists every strategy and a titled group of each family's options."""
    search = next(a for a in build_parser()._actions if a.dest == "command").choices["search"]
    text = search.format_help()
    for name in STRATEGIES:
        assert name in text
    for title in ("IS-DARTS options", "DARTS family options", "GDAS options", "DrNAS options"):
        assert title in text
    assert "--gdas-tau-max" in text and "--shrink-steps" in text


def test_the_parser_of_other_commands_leaves_the_search_flags_out():
    """Without config flags (what `main` builds for `nasc check`), search has no `--epochs`."""
    parser = build_parser(config_flags=False)
    search = next(a for a in parser._actions if a.dest == "command").choices["search"]
    assert "epochs" not in {action.dest for action in search._actions}
    assert _search_args("--epochs", "3").epochs == 3


def test_options_are_checked_when_validated_not_when_made():
    """A bad option is held by the config and refused by `validate`, naming its flag; the
    options of another strategy are not checked."""
    config = make_config("nb201", "gdas", {"gdas_tau_min": 20.0})
    assert config.gdas_tau_min == 20.0
    with pytest.raises(NascUsageError, match="--gdas-tau-min/--gdas-tau-max must satisfy"):
        validate(config)
    validate(make_config("nb201", "darts-1st", {"gdas_tau_min": 20.0}))


def test_a_strategy_registers_from_test_code_and_runs_its_checks():
    """A strategy defined outside the package, with options it shares, registers by name,
    and `validate` runs its own check."""

    @register_strategy("toy-test-strategy")
    class Toy(Strategy):
        Options = DartsOptions

        @classmethod
        def check(cls, config):
            super().check(config)
            if config.epochs > 5:
                raise NascUsageError("--epochs toy needs at most 5")

    try:
        assert Toy.name == "toy-test-strategy"
        config = make_config("nb201", "toy-test-strategy", {"epochs": 3, "arch_lr": 0.5})
        validate(config)
        assert make_strategy("toy-test-strategy", config).options.arch_lr == 0.5
        with pytest.raises(NascUsageError, match="toy needs at most 5"):
            validate(attrs.evolve(config, epochs=6))
    finally:
        del STRATEGIES["toy-test-strategy"]


def test_options_the_config_cannot_hold_are_refused_at_registration():
    """A strategy with an option unknown to `SearchConfig`, or one that redeclares another
    strategy's option differently, is refused when it registers."""

    @attrs.frozen(kw_only=True)
    class Late:
        toy_width: int = option(3, "toy: width")

    @attrs.frozen(kw_only=True)
    class Clash:
        arch_lr: float = option(1.0, "another meaning")

    for options, message in ((Late, "comes after SearchConfig"), (Clash, "declared differently")):
        cls = type("Toy", (Strategy,), {"Options": options})
        with pytest.raises(TypeError, match=message):
            register_strategy("toy-refused")(cls)
        assert "toy-refused" not in STRATEGIES
    register_strategy("toy-empty")(type("Empty", (Strategy,), {"Options": NoOptions}))
    del STRATEGIES["toy-empty"]


def test_an_unknown_strategy_is_refused_listing_the_known_ones():
    """`make_config` with an unknown strategy names the registered ones."""
    with pytest.raises(NascUsageError, match="unknown strategy `evolution`") as info:
        make_config("nb201", "evolution", {})
    assert "isdarts" in info.value.hint


def test_the_registry_imports_no_strategy_and_no_search_module():
    """`strategies/registry.py` is a leaf: outside TYPE_CHECKING it imports no strategy module
    and nothing of the search loop or configuration."""
    tree = ast.parse((ROOT / "runtime" / "strategies" / "registry.py").read_text())
    guarded = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
        for node in ast.walk(branch)
    }
    imported = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and id(node) not in guarded
    ]
    assert imported, "the walk found no import at all"
    for module in imported:
        assert not module.startswith(("nasc.runtime.strategies", "nasc.runtime.search")), module
