"""Search configuration: one attrs class, presets with the papers' hyperparameters, and a flag for
every field."""

from __future__ import annotations

import argparse
from typing import Any

import attrs

from nasc.dsl import NascUsageError


@attrs.frozen(kw_only=True)
class SearchConfig:
    """Every setting of a search. Field metadata holds the flag's help text."""

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
    # IS-DARTS
    shrink_steps: int = attrs.field(default=4, metadata={"help": "IS-DARTS: shrink steps"})
    shrink_interval: int = attrs.field(
        default=2, metadata={"help": "IS-DARTS: epochs between steps"}
    )
    measure_on: str = attrs.field(
        default="reference",
        metadata={
            "help": "IS-DARTS: the data the information is measured on: reference (the whole "
            "training split, augmented, in dataset order, as the reference code does), paper "
            "(--measure-samples held-out images, as the paper says) or train-sample "
            "(--measure-samples training images, not augmented)"
        },
    )
    measure_samples: int = attrs.field(
        default=200,
        metadata={"help": "IS-DARTS: images per measurement for --measure-on paper|train-sample"},
    )
    mixing: str = attrs.field(
        default="mean",
        metadata={"help": "IS-DARTS mixing: mean (1/|candidates|, the reference) or live_mean"},
    )
    # DARTS family
    arch_lr: float = attrs.field(
        default=3e-4, metadata={"help": "DARTS: Adam learning rate of the alphas"}
    )
    arch_beta1: float = attrs.field(
        default=0.5, metadata={"help": "DARTS: Adam beta1 of the alphas"}
    )
    arch_beta2: float = attrs.field(
        default=0.999, metadata={"help": "DARTS: Adam beta2 of the alphas"}
    )
    arch_weight_decay: float = attrs.field(
        default=1e-3, metadata={"help": "DARTS: weight decay of the alphas"}
    )
    train_portion: float = attrs.field(
        default=0.5, metadata={"help": "bi-level DARTS: share of training images for the weights"}
    )
    # PC-DARTS options and the latency term (DARTS family)
    partial_channels: int = attrs.field(
        default=1,
        metadata={
            "help": "DARTS family: PC-DARTS partial channel connections: candidates see 1/K of "
            "each edge's channels, the rest bypass (1: off; the paper uses 4 on CIFAR-10)"
        },
    )
    edge_normalisation: bool = attrs.field(
        default=False,
        metadata={"help": "DARTS family: PC-DARTS edge normalisation (a weight per choice edge)"},
    )
    latency_weight: float = attrs.field(
        default=0.0,
        metadata={
            "help": "DARTS family: lambda of the latency term, lambda * expected latency (ms) "
            "added to the architecture loss (needs --latency-table)"
        },
    )
    latency_table: str = attrs.field(
        default="", metadata={"help": "DARTS family: the latency table from `nasc profile`"}
    )
    # GDAS, DrNAS, MS-DARTS
    gdas_tau_max: float = attrs.field(
        default=10.0, metadata={"help": "GDAS: Gumbel-softmax temperature of the first epoch"}
    )
    gdas_tau_min: float = attrs.field(
        default=0.1, metadata={"help": "GDAS: temperature of the last epoch (linear anneal)"}
    )
    drnas_reg: str = attrs.field(
        default="l2",
        metadata={
            "help": "DrNAS anchor: l2 (weight decay on the alphas, the reference default) or kl "
            "(KL to the uniform Dirichlet, the paper's)"
        },
    )
    drnas_reg_scale: float = attrs.field(
        default=1e-3, metadata={"help": "DrNAS: scale of the anchor regulariser"}
    )
    drnas_prune_epoch: int = attrs.field(
        default=0,
        metadata={"help": "DrNAS progressive: prune every edge after this epoch (0: never)"},
    )
    drnas_keep: int = attrs.field(
        default=3, metadata={"help": "DrNAS progressive: candidates every edge keeps"}
    )
    ms_bandwidth: float = attrs.field(
        default=0.2,
        metadata={"help": "MS-DARTS: bandwidth (std) of the alphas' Gaussian sampling"},
    )
    ms_samples: int = attrs.field(
        default=1, metadata={"help": "MS-DARTS: samples per architecture step"}
    )
    # run
    seed: int = attrs.field(default=0, metadata={"help": "random seed"})
    device: str = attrs.field(default="auto", metadata={"help": "auto, cpu or cuda"})

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


# Presets by name (a `.nas` file names one with `preset NAME`), then by strategy family. IS-DARTS
# values are those of its reference configs (weight decay 3e-4; the paper's text says 5e-4), and
# it measures as the reference code does, which produced the published numbers (the paper's text
# says 200 / 600 validation samples: `measure_samples`, with `measure_on="paper"`).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "nb201": {
        "isdarts": dict(
            epochs=30,
            shrink_steps=4,
            shrink_interval=2,
            measure_on="reference",
            measure_samples=200,
            track_running_stats=False,
        ),
        "darts": dict(epochs=50, nesterov=True, weight_decay=3e-4, track_running_stats=False),
    },
    "darts": {
        "isdarts": dict(
            epochs=50,
            shrink_steps=7,
            shrink_interval=3,
            measure_on="reference",
            measure_samples=600,
            track_running_stats=False,
        ),
        "darts": dict(epochs=50, nesterov=False, weight_decay=3e-4, track_running_stats=True),
    },
}
PRESETS["default"] = PRESETS["nb201"]


MEASURE_PROTOCOLS = ("reference", "paper", "train-sample")


def family(strategy: str) -> str:
    return "isdarts" if strategy == "isdarts" else "darts"


def make_config(preset: str | None, strategy: str, overrides: dict[str, Any]) -> SearchConfig:
    """The config a preset gives for a strategy, with flag overrides on top.

    Raises:
        NascUsageError: an unknown preset.
    """
    name = preset or "default"
    if name not in PRESETS:
        raise NascUsageError(
            f"unknown preset `{name}`", hint=f"known presets: {', '.join(sorted(PRESETS))}"
        )
    values = dict(PRESETS[name][family(strategy)])
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["strategy"] = strategy
    return SearchConfig(**values)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """A `--field` flag per search config field (`--strategy` is the caller's)."""
    add_flags_of(parser, SearchConfig, skip=("strategy",))


def add_flags_of(parser: argparse.ArgumentParser, cls, skip=()) -> None:
    """A `--field` flag per field of an attrs config class, defaulting to None (the preset's)."""
    for field in attrs.fields(cls):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        help_text = field.metadata.get("help", "") + " (default: from the preset)"
        if field.type in (bool, "bool"):
            parser.add_argument(
                flag,
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(field.type), str)
            parser.add_argument(flag, dest=field.name, type=kind, default=None, help=help_text)


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        field.name: getattr(args, field.name, None)
        for field in attrs.fields(SearchConfig)
        if field.name != "strategy"
    }
