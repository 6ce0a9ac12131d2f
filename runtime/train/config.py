"""The settings of `nasc train`, apart from the trainer so the command line reads them without
importing PyTorch."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class TrainConfig:
    """Every setting of a training run."""

    epochs: int = attrs.field(default=600, metadata={"help": "training epochs"})
    batch_size: int = attrs.field(default=96, metadata={"help": "images per step"})
    lr: float = attrs.field(default=0.025, metadata={"help": "initial learning rate"})
    lr_min: float = attrs.field(default=0.0, metadata={"help": "final learning rate (cosine)"})
    warmup_epochs: int = attrs.field(default=0, metadata={"help": "linear warm-up epochs"})
    momentum: float = attrs.field(default=0.9, metadata={"help": "SGD momentum"})
    nesterov: bool = attrs.field(default=False, metadata={"help": "Nesterov momentum"})
    weight_decay: float = attrs.field(default=3e-4, metadata={"help": "weight decay"})
    grad_clip: float = attrs.field(default=5.0, metadata={"help": "gradient norm clip (0: none)"})
    cutout: int = attrs.field(default=0, metadata={"help": "cutout square side (0: none)"})
    drop_path: float = attrs.field(
        default=0.0, metadata={"help": "path dropout, increased linearly to this value"}
    )
    auxiliary_weight: float = attrs.field(
        default=0.0, metadata={"help": "weight of the auxiliary head's loss (0: no aux head)"}
    )
    label_smoothing: float = attrs.field(default=0.0, metadata={"help": "label smoothing"})
    seed: int = attrs.field(default=0, metadata={"help": "random seed"})
    device: str = attrs.field(default="auto", metadata={"help": "auto, cpu or cuda"})
    amp: bool = attrs.field(default=True, metadata={"help": "bfloat16 autocast on CUDA"})
    channels_last: bool = attrs.field(default=True, metadata={"help": "channels-last on CUDA"})
    compile: bool = attrs.field(default=False, metadata={"help": "torch.compile the network"})

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)
