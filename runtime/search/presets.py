"""Presets: the papers' hyperparameters by preset name and strategy family. Torch-free, so
`nasc check` can name the known presets without importing the strategies."""

from __future__ import annotations

from typing import Any

# Presets by name (a `.nas` file names one with `preset NAME`), then by strategy family (a
# strategy's `preset_family`). IS-DARTS values are those of its reference configs (weight decay
# 3e-4; the paper's text says 5e-4), and it measures as the reference code does, which produced
# the published numbers (the paper's text says 200 / 600 validation samples: `measure_samples`,
# with `measure_on="paper"`).
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
