"""The op library: a registry of ops, each built from `(C_in, C_out, stride, affine)`.

The built-in ops are defined in the language, in the prelude `nasc/dsl/prelude.nas` (built by
`oplang`); their semantics follow the reference implementations so that exported networks
reproduce published sizes: the NAS-Bench-201 cell ops (D-X-Y/AutoDL-Projects,
`cell_operations.py`: ReLU-Conv-BN with a conv bias exactly when the BN is not affine, average
pooling that does not count padding) and the DARTS ops (quark0/darts, `operations.py`: separable
convs as two stacked ReLU-depthwise-pointwise-BN, dilated convs, FactorizedReduce). This module
looks ops up, registered or defined, and registers the ops that stay Python; the registry itself
is `registry`, the module classes `modules`. A plugin registers more with `register_op`
(`nasc ... --ops MODULE`).
"""

from __future__ import annotations

from nasc.dsl import OpInfo
from nasc.dsl.opdefs import prelude_catalog

from .modules import AuxiliaryHead
from .oplang import defined_entry, register_prelude
from .registry import OPS, OpEntry, freeze_builtins, register_op, unknown_op

__all__ = ["BUILTIN", "OPS", "OpEntry", "catalog", "get_op", "register_op"]


def get_op(name: str, defs: tuple = ()) -> OpEntry:
    """The registered op `name`, or an op defined in the language by its canonical name
    (`mbconv(6,5)`), from a space's own definitions `defs` or the prelude.

    Raises:
        NascUsageError: for an unknown name, listing the known ones.
    """
    entry = OPS.get(name)
    if entry is not None:
        return entry
    entry = defined_entry(name, tuple(defs))
    if entry is None:
        raise unknown_op(name)
    return entry


def catalog() -> dict[str, OpInfo]:
    """What the language checks names against: every registered op's role and fixed stride,
    and the prelude's parametric ops with their parameters."""
    found = {name: entry.info for name, entry in OPS.items()}
    for name, info in prelude_catalog().items():
        if info.params:
            found.setdefault(name, info)
    return found


# --- ops that stay in Python ---------------------------------------------------------------------
# Every other built-in op is defined in the prelude (`nasc/dsl/prelude.nas`). DARTS' auxiliary
# heads stay here: each works only at the input resolutions it was designed for (its 5x5 pooling
# and 2x2 convolution assume 8x8 or 7x7 features, `sizes`), which an op definition cannot state.


@register_op("darts_aux_cifar", role="head", sizes=(8, 9, 10))
def _darts_aux_cifar(C_in, classes, stride, affine, track_running_stats=True):
    """DARTS' CIFAR auxiliary head (expects 8x8 features)."""
    return AuxiliaryHead(C_in, classes, 3, True)


@register_op("darts_aux_imagenet", role="head", sizes=(7, 8))
def _darts_aux_imagenet(C_in, classes, stride, affine, track_running_stats=True):
    """DARTS' ImageNet auxiliary head (expects 7x7 features; no BN after the 2x2 conv)."""
    return AuxiliaryHead(C_in, classes, 2, False)


# The prelude's ops join the registry after the Python ones.
register_prelude()
BUILTIN = freeze_builtins()  # what ships with nasc; anything else a plugin registered
