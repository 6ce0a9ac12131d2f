"""Search configuration: the settings every strategy shares (`SharedConfig`) and `SearchConfig`,
those settings with every registered strategy's options, flat, as flags, `nasc.search` keywords
and config.json name them. The options are declared, with their checks, in each strategy's
module (`Strategy.Options`)."""

from __future__ import annotations

from typing import Any

import attrs

from nasc.dsl import NascUsageError
from nasc.runtime import strategies  # noqa: F401 - registers the strategies: their options are fields
from nasc.runtime.search.presets import PRESETS
from nasc.runtime.strategies.registry import refuse, strategy_class, take_option_fields

# `--cuda-compile` values: none, or a `torch.compile` mode (`CompileOptions.cuda_compile`).
CUDA_COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune-no-cudagraphs")
# Settings of how a search runs rather than what it computes: checkpoints do not record them, and
# a resume may change them (`--resume RUN --cuda-compile reduce-overhead`).
EXECUTION_SETTINGS = ("device", "amp", "channels_last", "cuda_compile")


@attrs.frozen(kw_only=True)
class SharedConfig:
    """The settings every strategy uses. Field metadata holds the flag's help text."""

    strategy: str = attrs.field(default="isdarts", metadata={"help": "search strategy"})
    epochs: int = attrs.field(default=30, metadata={"help": "training epochs of the supernet"})
    batch_size: int = attrs.field(default=64, metadata={"help": "images per step"})
    lr: float = attrs.field(
        default=0.025, metadata={"help": "initial learning rate of the weights"}
    )
    lr_min: float = attrs.field(default=0.001, metadata={"help": "final learning rate (cosine)"})
    momentum: float = attrs.field(default=0.9, metadata={"help": "SGD momentum"})
    nesterov: bool = attrs.field(default=True, metadata={"help": "Nesterov momentum"})
    weight_decay: float = attrs.field(
        default=3e-4, metadata={"help": "weight decay of the weights"}
    )
    grad_clip: float = attrs.field(default=5.0, metadata={"help": "gradient norm clip (0: none)"})
    track_running_stats: bool = attrs.field(
        default=False, metadata={"help": "cell BNs keep running statistics (else batch statistics)"}
    )
    # The search loop splits the training set for a bi-level strategy (`Strategy.bilevel`).
    train_portion: float = attrs.field(
        default=0.5, metadata={"help": "bi-level DARTS: share of training images for the weights"}
    )
    # The single-stage protocol (docs/protocols.md): the architecture is frozen for the last
    # epochs and the supernet, with its own weights, is the found network.
    protocol: str = attrs.field(
        default="two-stage",
        metadata={
            "help": "two-stage: search, then derive and retrain (nasc train); single-stage: "
            "freeze the architecture for the last --frozen-epochs and keep the supernet"
        },
    )
    frozen_epochs: int = attrs.field(
        default=0,
        metadata={
            "help": "single-stage: final epochs that train the weights alone, on the whole "
            "training set, with the architecture frozen (0: half of --epochs)"
        },
    )
    arch_split: str = attrs.field(
        default="halves",
        metadata={
            "help": "bi-level strategies: halves (one fixed split, DARTS) or swap (the halves "
            "trade roles every epoch, so the weights learn from every image)"
        },
    )
    seed: int = attrs.field(default=0, metadata={"help": "random seed"})
    device: str = attrs.field(default="auto", metadata={"help": "auto, cpu or cuda"})
    # How the same computation runs on a GPU (docs/gpu.md); none changes the CPU's search.
    amp: bool = attrs.field(
        default=False, metadata={"help": "bfloat16 autocast of the weight steps on CUDA"}
    )
    channels_last: bool = attrs.field(
        default=True, metadata={"help": "run the supernet in the channels-last memory layout"}
    )
    cuda_compile: str = attrs.field(
        default="none",
        metadata={
            "help": "on CUDA, torch.compile the supernet per mask version: none, default, "
            "reduce-overhead (CUDA graphs) or max-autotune-no-cudagraphs"
        },
    )

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _search_config() -> type:
    """`SharedConfig` with a field per registered strategy option, of its default and help. The
    options' validators run in `validate`, not here: a config holds what the flags gave."""
    fields = {
        field.name: attrs.field(default=field.default, type=field.type, metadata=field.metadata)
        for field in take_option_fields()
    }
    cls = attrs.make_class(
        "SearchConfig", fields, bases=(SharedConfig,), frozen=True, kw_only=True, slots=True
    )
    cls.__module__ = __name__
    cls.__doc__ = (
        "Every setting of a search: the shared ones (`SharedConfig`) and every registered "
        "strategy's options (each strategy reads its own as `Strategy.options`)."
    )
    return cls


SearchConfig = _search_config()


def make_config(preset: str | None, strategy: str, overrides: dict[str, Any]) -> SearchConfig:
    """The config a preset gives for a strategy, with flag overrides on top.

    Raises:
        NascUsageError: an unknown preset or strategy.
    """
    name = preset or "default"
    if name not in PRESETS:
        raise NascUsageError(
            f"unknown preset `{name}`", hint=f"known presets: {', '.join(sorted(PRESETS))}"
        )
    values = dict(PRESETS[name][strategy_class(strategy).preset_family])
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["strategy"] = strategy
    return SearchConfig(**values)


def validate(config: SearchConfig) -> None:
    """Refuse settings that cannot run, naming the flag and what to pass instead: the shared
    settings here, the strategy's options by the strategy (`Strategy.check`).

    Raises:
        NascUsageError: the first problem found.
    """
    if config.epochs < 1:
        raise refuse("epochs", "must be at least 1")
    if config.batch_size < 1:
        raise refuse("batch_size", "must be at least 1")
    strategy_class(config.strategy).check(config)
    if not 0.0 < config.train_portion < 1.0:
        raise refuse("train_portion", "must lie between 0 and 1")
    if config.lr <= 0 or config.lr_min < 0:
        raise refuse("--lr/--lr-min", "must be positive")
    for name in ("momentum", "weight_decay", "grad_clip"):
        value = getattr(config, name)
        if not value >= 0:  # NaN too
            raise refuse(name, f"{value:g}: must not be negative", "0 turns it off")
    check_protocol(config)
    if config.device not in ("auto", "cpu", "cuda"):
        raise refuse("device", "must be auto, cpu or cuda")
    if config.cuda_compile not in CUDA_COMPILE_MODES:
        raise refuse("cuda_compile", f"must be one of {', '.join(CUDA_COMPILE_MODES)}")


PROTOCOLS = ("two-stage", "single-stage")
ARCH_SPLITS = ("halves", "swap")


def frozen_from(config: SearchConfig) -> int:
    """The first epoch (0-based) of a single-stage search whose architecture is frozen; the
    number of epochs for a two-stage search (none is)."""
    if config.protocol != "single-stage":
        return config.epochs
    frozen = config.frozen_epochs or max(1, config.epochs // 2)
    return config.epochs - frozen


def check_protocol(config: SearchConfig) -> None:
    """Refuse a protocol, frozen-epoch count or split that cannot run with these settings.

    Raises:
        NascUsageError: naming the flag and what to pass instead.
    """
    if config.protocol not in PROTOCOLS:
        raise refuse(
            "protocol", f"`{config.protocol}` is unknown", f"pass {' or '.join(PROTOCOLS)}"
        )
    if config.arch_split not in ARCH_SPLITS:
        raise refuse(
            "arch_split", f"`{config.arch_split}` is unknown", f"pass {' or '.join(ARCH_SPLITS)}"
        )
    if config.protocol == "two-stage":
        if config.frozen_epochs:
            raise refuse(
                "frozen_epochs", "only the single-stage protocol freezes the architecture",
                "add --protocol single-stage, or drop --frozen-epochs",
            )  # fmt: skip
        return
    strategy = strategy_class(config.strategy)
    if not strategy.weights_candidates:
        raise refuse(
            "protocol",
            f"single-stage needs a strategy that weights candidates; {config.strategy} "
            "decides by masking them, so its supernet already is the found network",
            "use darts-1st, darts-2nd, single-darts, gdas, drnas or ms-darts, or search "
            "two-stage",
        )
    if not 0 <= config.frozen_epochs < config.epochs:
        raise refuse(
            "frozen_epochs",
            f"{config.frozen_epochs} of {config.epochs} epochs leaves none to search in",
            f"pass at most {config.epochs - 1}, or 0 for half of --epochs",
        )
