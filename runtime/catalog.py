"""The names, roles and fixed strides of the ops, without importing PyTorch, so that `nasc check`
and `nasc show` stay quick: the prelude's ops are read from the prelude itself, and the few ops
that stay Python are listed here (a test keeps this equal to the op registry)."""

from __future__ import annotations

import sys

from nasc.dsl import OpInfo
from nasc.dsl.opdefs import prelude_catalog

# name: (role, fixed stride, one-line doc) of the ops registered in Python (compiler/ops.py);
# tests/runtime/cli/test_cli.py compares the whole catalog with the registry.
OP_TABLE: dict[str, tuple[str, int | None, str]] = {
    "darts_aux_cifar": ("head", None, "DARTS' CIFAR auxiliary head (expects 8x8 features)."),
    "darts_aux_imagenet": (
        "head",
        None,
        "DARTS' ImageNet auxiliary head (expects 7x7 features; no BN after the 2x2 conv).",
    ),
}


def language_catalog() -> dict[str, OpInfo]:
    """What `nasc.compiler.catalog()` gives the language: the Python ops above and the
    prelude's."""
    found = {
        name: OpInfo(role=role, stride=stride, doc=doc)
        for name, (role, stride, doc) in OP_TABLE.items()
    }
    found.update(prelude_catalog())
    ops = sys.modules.get("nasc.compiler.ops")
    if ops is not None:  # `--ops` plugins registered more (and imported torch to do it)
        for name in set(ops.OPS) - getattr(ops, "BUILTIN", frozenset(ops.OPS)):
            entry = ops.OPS[name]
            found.setdefault(name, OpInfo(role=entry.role, stride=entry.stride, doc=entry.doc))
    return found
