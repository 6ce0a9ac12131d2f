"""nasc: a search-space language, its compiler and a runtime that searches the spaces.

    import nasc
    space = nasc.load_space("nb201", C=4, N=1)
    found = nasc.search(space, data="digits", epochs=3, shrink_steps=2, shrink_interval=1)
    print(found.nb201, found.run_dir)

See docs/python.md. The names below load on first use, so `import nasc` stays cheap and loading
or checking a space does not import PyTorch. This file is the repository's root: pyproject.toml
maps the root to `nasc`, so `nasc.dsl`, `nasc.compiler`, `nasc.runtime` and `nasc.spaces` are the
folders beside it (docs/architecture.md is the map).
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
    "SearchResult": "nasc.runtime.search.result",
    "TrainResult": "nasc.runtime.train.result",
    "SearchRequest": "nasc.runtime.requests",
    "TrainRequest": "nasc.runtime.requests",
    "EvalRequest": "nasc.runtime.requests",
    "SearchConfig": "nasc.runtime.search.config",
    "TrainConfig": "nasc.runtime.train.config",
    "sweep": "nasc.runtime.integrations.sweep",
    "SweepRequest": "nasc.runtime.integrations.sweep",
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
