"""nasc: a search-space language, its compiler and a runtime that searches the spaces.

    import nasc
    space = nasc.load_space("nb201", C=4, N=1)
    found = nasc.search(space, data="digits", epochs=3, shrink_steps=2, shrink_interval=1)
    print(found.nb201, found.run_dir)

See docs/python.md. The names below load on first use, so `import nasc` stays cheap and loading
or checking a space does not import PyTorch. pyproject.toml maps this folder to `nasc`; the
subpackages `nasc.dsl`, `nasc.compiler`, `nasc.runtime` and `nasc.spaces` live beside it.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_space": "nasc.runtime.api",
    "search": "nasc.runtime.api",
    "train": "nasc.runtime.api",
    "export": "nasc.runtime.api",
    "evaluate": "nasc.runtime.api",
    "Space": "nasc.runtime.api",
    "SearchResult": "nasc.runtime.api",
    "TrainResult": "nasc.runtime.api",
    "SearchRequest": "nasc.runtime.runconfig",
    "TrainRequest": "nasc.runtime.runconfig",
    "EvalRequest": "nasc.runtime.runconfig",
    "SearchConfig": "nasc.runtime.config",
    "TrainConfig": "nasc.runtime.trainconfig",
    "sweep": "nasc.runtime.sweep",
    "SweepRequest": "nasc.runtime.sweep",
    "Genotype": "nasc.dsl",
    "NascError": "nasc.dsl",
    "NascUsageError": "nasc.dsl",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nasc' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
