"""The op registry: every op by name, with its builder and what the language and the compiler
need to know of it. A leaf module: the ops of the library and of plugins register here, and
`oplang` makes entries for ops defined in the language."""

from __future__ import annotations

from collections.abc import Callable

import attrs
from torch import nn

from nasc.dsl import NascUsageError, OpInfo


@attrs.frozen(kw_only=True)
class OpEntry:
    """A registered op: its builder, what the language checks uses against (`info`), and the
    traits the compiler reads.

    Attributes:
        info: role, fixed stride and documentation, as the language's catalog gives them.
        pooling: a parameter-free pooling op; a `pool_bn` cell follows it with a non-affine BN
            in the supernet (DARTS' MixedOp).
        zero: the op's output is zero (`none`); it is never run.
        identity: the op returns its input unchanged at stride 1 with equal channels.
        sizes: the input resolutions the op works at, when it cannot take others (the DARTS
            auxiliary heads end in a fixed-size linear layer); None for any.
    """

    name: str
    build: Callable[..., nn.Module]
    info: OpInfo
    pooling: bool = False
    zero: bool = False
    identity: bool = False
    sizes: tuple[int, ...] | None = None

    @property
    def role(self) -> str:
        return self.info.role

    @property
    def stride(self) -> int | None:
        return self.info.stride

    @property
    def doc(self) -> str:
        return self.info.doc


OPS: dict[str, OpEntry] = {}
_builtin: frozenset[str] = frozenset()  # the ops nasc ships, set once by `freeze_builtins`


def freeze_builtins() -> frozenset[str]:
    """Mark every op registered so far as built-in (the library's own, which no plugin may
    replace) and return their names."""
    global _builtin
    _builtin = frozenset(OPS)
    return _builtin


def builtin_ops() -> frozenset[str]:
    """The names of the ops nasc ships (every other registered op is a plugin's)."""
    return _builtin


def _refuse_builtin(name: str) -> None:
    """A plugin may not take the name of a built-in op or primitive: a found cell, an exported
    `.nas` file or an NB201 string would then name another op (`.nas` files are refused the
    same, `opdefs.check_definitions`)."""
    from nasc.dsl.opdefs import PRIMITIVES, prelude_catalog

    if name in PRIMITIVES or name in _builtin or name in prelude_catalog():
        what = "primitive of op bodies" if name in PRIMITIVES else "op"
        raise NascUsageError(
            f"`{name}` is already a built-in {what}; a plugin cannot replace it",
            hint=f"register your op under another name, e.g. `my_{name}`, and use that name in "
            "the .nas file; the built-in ops are defined in `nasc/dsl/prelude.nas`",
        )


def _origin(build: Callable) -> str:
    return f"{getattr(build, '__module__', '?')}.{getattr(build, '__qualname__', repr(build))}"


def register_op(
    name: str,
    *,
    role: str = "op",
    stride: int | None = None,
    pooling: bool = False,
    zero: bool = False,
    identity: bool = False,
    sizes: tuple[int, ...] | None = None,
):
    """Register an op builder `(C_in, C_out, stride, affine) -> nn.Module` under `name`.

    Args:
        role: `op` for feature map to feature map, `head` for feature map to class scores.
        stride: a fixed stride for ops that choose their own (an ImageNet stem).

    Raises:
        NascUsageError: `name` is a built-in op or primitive, or another builder (a function of
            another module or name) has it; the same function registered again (its module
            imported anew) replaces itself.
    """
    _refuse_builtin(name)

    def decorate(build):
        existing = OPS.get(name)
        if existing is not None and _origin(existing.build) != _origin(build):
            raise NascUsageError(
                f"op `{name}` is already registered by {_origin(existing.build)}; "
                f"{_origin(build)} cannot register it too",
                hint="give one of the two ops another name",
            )
        doc = (build.__doc__ or "").strip().splitlines()[0] if build.__doc__ else ""
        OPS[name] = OpEntry(
            name=name,
            build=build,
            info=OpInfo(role=role, stride=stride, doc=doc),
            pooling=pooling,
            zero=zero,
            identity=identity,
            sizes=sizes,
        )
        return build

    return decorate


def unknown_op(name: str) -> NascUsageError:
    """The error for an op name nothing defines, listing the registered ones."""
    from nasc.dsl.opdefs import PLUGIN_HINT

    return NascUsageError(
        f"unknown op `{name}`", hint=f"known ops: {', '.join(sorted(OPS))}; {PLUGIN_HINT}"
    )
