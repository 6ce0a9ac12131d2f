"""Ops defined in the language, built into modules: the builder that evaluates an op body for
concrete `C_in`, `C_out`, `stride` and `affine`, and the registry entries of defined ops.

A sequence becomes an `nn.Sequential` (its labels name the children; a one-item sequence without
a label is the item itself), so the compiler passes read a defined op as the chain of ReLUs,
convolutions, BNs and poolings it is. A residual becomes `Residual` and a product `Product`, which
they run as one call.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from fractions import Fraction

import attrs
from torch import nn

from nasc.dsl import NascUsageError, NasSemanticError, ast
from nasc.dsl.ast import split_op_name
from nasc.dsl.opdefs import PRIMITIVES, argument, info_of, library, prelude
from nasc.dsl.shapes import DECONV_HINT, deconv_problem

from .modules import (
    FactorizedReduce,
    FeatureNorm,
    GlobalPool,
    Identity,
    Neg,
    Pooled,
    Product,
    Residual,
    SqueezeExcite,
    TimeConv,
    TimePool,
    Zero,
)
from .registry import OPS, OpEntry, unknown_op
from .tokens import MLP, ClassToken, PatchEmbed, PositionEmbedding, SelfAttention, TokenPool

__all__ = ["Builder", "Product", "Residual", "defined_entry", "register_prelude"]

# The primitives of sequences, which also follow a flat vector (docs/language.md, section 25).
SEQUENCE_STEPS = (
    *("dense", "embedding", "dropout", "neg", "conv1d", "maxpool1d", "avgpool1d", "bn1d"),
)


@attrs.frozen
class Shape:
    """Where a body stands while it is built: channels, the stride so far (a fraction after an
    upsampling), flattened or not, and `pooled` for a gate that `global_pool` made 1x1;
    `sequence` for tokens, False after a step that gives a map, None where not known (the op's
    input: the language's shape checks have checked what it reads)."""

    channels: int
    stride: Fraction | int = 1
    flat: bool = False
    pooled: bool = False
    sequence: bool | None = False
    steps: bool = False  # features on the last axis (after `dense`): a head's scores per step


class Builder:
    """Builds one defined op for concrete sizes.

    Args:
        resolve: gives the builder `(C_in, C_out, stride, affine, track_running_stats)` and the
            fixed stride of another op a body calls, by canonical name.
    """

    def __init__(
        self,
        defn: ast.OpDef,
        values: tuple[int, ...],
        env: Mapping[str, int],
        track: bool,
        resolve: Callable[[str], tuple[Callable[..., nn.Module], int | None]],
    ):
        self.defn = defn
        self.env = {**dict(zip(defn.params, values)), **env}
        self.track = track
        self.resolve = resolve
        self.path = f"op.{defn.name}"

    def fail(self, message: str, span, hint: str) -> NasSemanticError:
        return NasSemanticError(message, span=span or self.defn.span, path=self.path, hint=hint)

    def value(self, expr, what: str) -> int:
        return ast.evaluate(expr, self.env, what=what, path=self.path)

    def holds(self, cond) -> bool:
        if isinstance(cond, ast.BoolOp):
            left = self.holds(cond.left)
            return (
                (left and self.holds(cond.right))
                if cond.op == "and"
                else (left or self.holds(cond.right))
            )
        left = self.value(cond.left, "a condition")
        right = self.value(cond.right, "a condition")
        return {
            "==": left == right,
            "!=": left != right,
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[cond.op]

    def build(self) -> nn.Module:
        start = Shape(channels=self.env["C_in"], sequence=None)
        module, shape = self.body(self.defn.body, start)
        c_out, stride = self.env["C_out"], self.env["stride"]
        if self.defn.per_pixel:
            if shape.flat or shape.channels != c_out:
                raise self.fail(
                    f"the per-pixel head `{self.defn.name}` must end in a map of {c_out} "
                    "class scores",
                    self.defn.span,
                    "end it with a convolution to the class count, e.g. `conv(1, bias = 1)`",
                )
            return module
        if shape.channels != c_out:
            raise self.fail(
                f"op `{self.defn.name}` ends with {shape.channels} channels where it is placed "
                f"with {c_out} (C_in {self.env['C_in']}, stride {stride})",
                self.defn.span,
                "end the body with a step that makes C_out channels, e.g. `conv(1)`",
            )
        if shape.stride != Fraction(stride, self.env["up"]):
            raise self.fail(
                f"op `{self.defn.name}` reduces the resolution by {shape.stride} where it is "
                f"placed with stride {Fraction(stride, self.env['up'])}",
                self.defn.span,
                "pass the op's stride to one step, e.g. `conv(3, stride = stride)`",
            )
        if self.defn.role == "head" and not (shape.flat or shape.steps):
            raise self.fail(
                f"the head `{self.defn.name}` does not end in class scores",
                self.defn.span,
                "end a head with `gap -> linear`",
            )
        return module

    # --- bodies

    def body(self, node, shape: Shape) -> tuple[nn.Module, Shape]:
        if isinstance(node, ast.OpIf):
            return self.body(node.then if self.holds(node.cond) else node.otherwise, shape)
        if isinstance(node, ast.OpCall):
            return self.call(node, shape)
        if isinstance(node, ast.OpResidual):
            return self.residual(node, shape)
        if isinstance(node, ast.OpProduct):
            return self.product(node, shape)
        steps, shape = self.steps(node, shape)
        if len(steps) == 1 and not node.items[0].label:
            return next(iter(steps.values())), shape
        kind = nn.Sequential
        if any(isinstance(module, (nn.AdaptiveAvgPool2d, Pooled)) for module in steps.values()):
            kind = Pooled
        if all(name.isdigit() for name in steps):
            return kind(*steps.values()), shape
        return kind(steps), shape

    def steps(self, seq: ast.OpSeq, shape: Shape) -> tuple[OrderedDict, Shape]:
        steps: OrderedDict = OrderedDict()
        for index, item in enumerate(seq.items):
            name = item.label or str(index)
            if name in steps:
                raise self.fail(
                    f"the label `{name}` names two steps of op `{self.defn.name}`",
                    item.span,
                    "give each labelled step its own name",
                )
            steps[name], shape = self.body(item.body, shape)
        return steps, shape

    def residual(self, node: ast.OpResidual, shape: Shape) -> tuple[nn.Module, Shape]:
        steps, out = self.steps(node.body, shape)
        label = "shortcut"
        if node.shortcut is None:
            if out.channels != shape.channels or out.stride != shape.stride:
                # No shortcut fits: the block is its body alone (MobileNetV2's rule).
                module = nn.Sequential(steps) if len(steps) > 1 else next(iter(steps.values()))
                return module, out
            shortcut = None
        else:
            items = node.shortcut.items
            if len(items) == 1 and items[0].label:
                label = items[0].label
                shortcut, cut = self.body(items[0].body, shape)
            else:
                shortcut, cut = self.body(node.shortcut, shape)
            if (cut.channels, cut.stride, cut.flat) != (out.channels, out.stride, out.flat):
                raise self.fail(
                    f"the shortcut of a residual in op `{self.defn.name}` gives {cut.channels} "
                    f"channels at stride {cut.stride}, its body {out.channels} at {out.stride}",
                    node.span,
                    "make both branches end with the same channels and stride",
                )
            if isinstance(shortcut, Identity):
                shortcut = None
        if label in steps:
            raise self.fail(
                f"the label `{label}` names a step and the shortcut of op `{self.defn.name}`",
                node.span,
                "give the shortcut its own label",
            )
        return Residual(steps, label, shortcut), out

    def product(self, node: ast.OpProduct, shape: Shape) -> tuple[nn.Module, Shape]:
        """`product(body)`: the input times the body; `product(body, other)`: the two multiplied.
        A factor pooled to 1x1 (a gate) multiplies every pixel of the other."""
        steps, out = self.steps(node.body, shape)
        label, other, cut = "other", None, shape
        if node.other is not None:
            items = node.other.items
            if len(items) == 1 and items[0].label:
                label = items[0].label
                other, cut = self.body(items[0].body, shape)
            else:
                other, cut = self.body(node.other, shape)
            if isinstance(other, Identity):
                other = None
        if out.flat or cut.flat or out.channels != cut.channels:
            raise self.fail(
                f"a product in op `{self.defn.name}` multiplies {out.channels} channels by "
                f"{cut.channels}",
                node.span,
                "end both factors with the same channels, e.g. the gate with `conv(1, out = "
                "C_in)`",
            )
        if out.pooled != cut.pooled:  # a map times a gate: the map's shape
            out = cut if out.pooled else out
        elif out.stride != cut.stride:
            raise self.fail(
                f"a product in op `{self.defn.name}` multiplies a map at stride {out.stride} by "
                f"one at stride {cut.stride}",
                node.span,
                "make both factors take the same stride, or pool one with `global_pool`",
            )
        if label in steps:
            raise self.fail(
                f"the label `{label}` names a step and the second factor of op "
                f"`{self.defn.name}`",
                node.span,
                "give the second factor its own label",
            )
        return Product(steps, label, other), out

    def args(self, call: ast.OpCall, params: tuple[str, ...], primitive=None) -> dict[str, int]:
        given = dict(zip(params, call.args))
        given.update(call.kwargs)
        return {
            name: argument(
                primitive,
                name,
                expr,
                self.env,
                what=f"the argument `{name}` of `{call.name}`",
                path=self.path,
            )
            for name, expr in given.items()
        }

    def call(self, call: ast.OpCall, shape: Shape) -> tuple[nn.Module, Shape]:
        if shape.flat and call.name not in ("linear", "identity", *SEQUENCE_STEPS):
            raise self.fail(
                f"`{call.name}` follows `gap` in op `{self.defn.name}`",
                call.span,
                "after global pooling only `linear` steps can follow",
            )
        primitive = PRIMITIVES.get(call.name)
        if primitive is None:
            return self.nested(call, shape)
        a = self.args(call, primitive.params, primitive)
        c, env = shape.channels, self.env
        name = call.name

        def positive(key: str, default: int, minimum: int = 1) -> int:
            value = a.get(key, default)
            if value < minimum:
                raise self.fail(
                    f"`{key}` of `{name}` in op `{self.defn.name}` must be at least {minimum}, "
                    f"not {value}",
                    call.span,
                    "check the arithmetic and the op's arguments",
                )
            return value

        if name in ("conv", "dwconv", "pwconv"):
            k = positive("k", 1)
            stride = positive("stride", 1)
            dilation = positive("dilation", 1)
            if name == "dwconv":
                out, groups, bias = c, c, 0
            else:
                out = positive("out", env["C_out"])
                groups = positive("groups", 1)
                bias = a.get("bias", 0)
            kh, kw = positive("kh", k), positive("kw", k)
            sh, sw = positive("sh", stride), positive("sw", stride)
            if c % groups or out % groups:
                raise self.fail(
                    f"`{name}` in op `{self.defn.name}` has {groups} groups for {c} input and "
                    f"{out} output channels",
                    call.span,
                    "groups must divide both channel counts",
                )
            # The stride is followed along the height: a 1x7 conv striding the width and a 7x1
            # striding the height (DARTS' conv_7x1_1x7) reduce once together.
            stride_total = shape.stride * sh
            module = nn.Conv2d(
                c,
                out,
                (kh, kw),
                stride=(sh, sw),
                padding=(dilation * (kh - 1) // 2, dilation * (kw - 1) // 2),
                dilation=dilation,
                groups=groups,
                bias=bool(bias),
            )
            return module, Shape(out, stride_total, pooled=shape.pooled)
        if name == "bn":
            affine = bool(a.get("affine", env["affine"]))
            eps = a.get("eps", 1e-5)
            if eps <= 0:
                raise self.fail(
                    f"`eps` of `bn` in op `{self.defn.name}` must be positive, not {eps}",
                    call.span,
                    "BatchNorm divides by sqrt(variance + eps): write e.g. `bn(eps = 0.001)`",
                )
            return nn.BatchNorm2d(c, eps, affine=affine, track_running_stats=self.track), shape
        activations = {
            "relu": nn.ReLU,
            "relu6": nn.ReLU6,
            "hardswish": nn.Hardswish,
            "hardsigmoid": nn.Hardsigmoid,
            "sigmoid": nn.Sigmoid,
            "tanh": nn.Tanh,
            "gelu": nn.GELU,
        }
        if name in activations:
            return activations[name](), shape
        if name in ("maxpool", "avgpool"):
            k = positive("k", 1)
            stride = positive("stride", 1)
            pad = positive("pad", k // 2, minimum=0)
            ceil = bool(a.get("ceil", 0))
            if name == "maxpool":
                module = nn.MaxPool2d(k, stride=stride, padding=pad, ceil_mode=ceil)
            else:
                module = nn.AvgPool2d(
                    k,
                    stride=stride,
                    padding=pad,
                    ceil_mode=ceil,
                    count_include_pad=bool(a.get("count_pad", 0)),
                )
            return module, Shape(c, shape.stride * stride)
        if name == "se":
            return SqueezeExcite(c, positive("mid", 1)), shape
        if name in ("bilinear", "nearest"):
            factor = positive("factor", 1)
            module = nn.Upsample(
                scale_factor=factor,
                mode=name,
                align_corners=False if name == "bilinear" else None,
            )
            return module, Shape(c, shape.stride * Fraction(1, factor))
        if name == "deconv":
            k, stride = positive("k", 1), positive("stride", 1)
            out = positive("out", env["C_out"])
            if (problem := deconv_problem(k, stride, self.defn.name)) is not None:
                raise self.fail(problem, call.span, DECONV_HINT)
            # Padded so that an n x n map becomes exactly (n stride) x (n stride).
            pad = -(-(k - stride) // 2)
            module = nn.ConvTranspose2d(
                c,
                out,
                k,
                stride=stride,
                padding=pad,
                output_padding=2 * pad - (k - stride),
                bias=bool(a.get("bias", 0)),
            )
            return module, Shape(out, shape.stride * Fraction(1, stride))
        if name == "identity":
            return Identity(), shape
        if name == "zero":
            stride = max(1, env["stride"] // shape.stride)
            return Zero(env["C_out"], stride), Shape(env["C_out"], shape.stride * stride)
        if name == "factorized_reduce":
            out = positive("out", env["C_out"])
            stride = positive("stride", 1)
            if stride not in (1, 2):
                raise self.fail(
                    f"`factorized_reduce` strides by 1 or 2, not {stride}",
                    call.span,
                    "stack two to reduce by 4",
                )
            return (
                FactorizedReduce(c, out, stride, bool(env["affine"]), self.track),
                Shape(out, shape.stride * stride),
            )
        if name == "gap":
            return nn.AdaptiveAvgPool2d(1), Shape(c, shape.stride, flat=True)
        if name == "global_pool":
            return GlobalPool(), Shape(c, shape.stride, pooled=True)
        if name == "linear" and shape.sequence is not False:  # tokens, or the op's own input
            out = positive("out", env["C_out"])
            return nn.Linear(c, out, bias=bool(a.get("bias", 1))), attrs.evolve(shape, channels=out)
        if name == "linear":
            if not shape.flat:
                raise self.fail(
                    f"`linear` in op `{self.defn.name}` reads a feature map",
                    call.span,
                    "pool it first: `gap -> linear`",
                )
            out = positive("out", env["C_out"])
            return nn.Linear(c, out, bias=bool(a.get("bias", 1))), Shape(out, shape.stride, True)
        # --- transformers (issue 26): token sequences (B, length, features)
        tokens = Shape(c, shape.stride, sequence=True)
        if name == "patch_embed":
            patch, out = positive("patch", 1), positive("out", env["C_out"])
            return PatchEmbed(c, out, patch), Shape(out, shape.stride * patch, sequence=True)
        if name == "class_token":
            return ClassToken(c), tokens
        if name == "pos_embed":
            return PositionEmbedding(positive("length", 1), c), tokens
        if name == "layer_norm":
            return nn.LayerNorm(c, eps=a.get("eps", 1e-5)), tokens
        if name == "self_attention":
            heads = positive("heads", 1)
            head_dim = positive("head_dim", c // heads)
            return SelfAttention(c, heads, head_dim, a.get("dropout", 0.0)), tokens
        if name == "mlp":
            hidden = positive("hidden", positive("ratio", 4) * c)
            out = positive("out", c)  # back to the tokens' width, as attention
            return MLP(c, hidden, out), Shape(out, shape.stride, sequence=True)
        if name == "token_pool":
            return TokenPool(bool(a.get("first", 0))), Shape(c, shape.stride, flat=True)
        if name in SEQUENCE_STEPS:
            return self.sequence_step(call, a, shape, positive)
        raise AssertionError(f"primitive `{name}` has no builder")

    def sequence_step(self, call, a, shape: Shape, positive) -> tuple[nn.Module, Shape]:
        """The primitives of sequences (docs/language.md, section 25)."""
        name, c = call.name, shape.channels
        if name == "dense":
            out = positive("out", self.env["C_out"])
            module = nn.Linear(c, out, bias=bool(a.get("bias", 1)))
            return module, Shape(out, shape.stride, shape.flat, steps=True)
        if name == "embedding":
            out = positive("out", self.env["C_out"])
            return nn.Embedding(c, out), Shape(out, shape.stride, steps=True)
        if name == "dropout":
            p = a.get("p", 0.5)
            if not 0 <= p < 1:
                raise self.fail(
                    f"`p` of `dropout` in op `{self.defn.name}` must lie in [0, 1), not {p}",
                    call.span,
                    "write a probability, e.g. `dropout(0.25)`",
                )
            return nn.Dropout(p), shape
        if name == "neg":
            return Neg(), shape
        if name == "bn1d":
            affine = bool(a.get("affine", self.env["affine"]))
            return FeatureNorm(c, affine=affine, track_running_stats=self.track), shape
        if name == "conv1d":
            k, stride = positive("k", 1), positive("stride", 1)
            out = positive("out", self.env["C_out"])
            dilation = positive("dilation", 1)
            module = TimeConv(c, out, k, stride, dilation, bool(a.get("bias", 0)))
            return module, Shape(out, shape.stride * stride, steps=True)
        k, stride = positive("k", 1), positive("stride", 1)
        module = TimePool("max" if name == "maxpool1d" else "avg", k, stride)
        return module, Shape(c, shape.stride * stride, steps=True)

    def nested(self, call: ast.OpCall, shape: Shape) -> tuple[nn.Module, Shape]:
        """Another op inside this one: its parameters, then `out` and `stride`."""
        _, fixed, params = self.resolve(call.name)
        a = self.args(call, (*params, "out", "stride"))
        out = a.get("out", self.env["C_out"])
        stride = fixed or a.get("stride", 1)
        build = self.resolve(ast.op_name(call.name, [a[p] for p in params]))[0]
        module = build(shape.channels, out, stride, bool(self.env["affine"]), self.track)
        return module, Shape(out, shape.stride * stride, sequence=None)  # tokens or a map


# --- defined ops as registry entries ------------------------------------------------------------

_ENTRIES: dict[tuple, OpEntry] = {}


def _probe(build, fixed: int | None) -> tuple[bool, bool, bool]:
    """(zero, identity, pooling) of an op, read from the module it builds at stride 1 (or its
    fixed stride) with 4 channels in and out."""
    try:
        module = build(4, 4, fixed or 1, True)
    except Exception:  # noqa: BLE001 - an op that needs other sizes has none of these traits
        return False, False, False
    leaves = [m for m in module.modules() if not list(m.children())]
    pooling = bool(leaves) and all(isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)) for m in leaves)
    return isinstance(module, Zero), isinstance(module, Identity), pooling


def defined_entry(name: str, defs: tuple[ast.OpDef, ...] = ()) -> OpEntry | None:
    """The registry entry of an op defined in the language, by canonical name (`mbconv(6,5)`):
    from `defs` (a space's own definitions) or the prelude. None when no definition has the name.

    Raises:
        NascUsageError: for a known op given the wrong number of arguments.
    """
    key = (name, defs)
    if key in _ENTRIES:
        return _ENTRIES[key]
    try:
        base, values = split_op_name(name)
    except ValueError:
        return None
    by_name = {defn.name: defn for defn in library()}
    by_name.update((defn.name, defn) for defn in defs)
    defn = by_name.get(base)
    if defn is None:
        return None
    if len(values) != len(defn.params):
        raise NascUsageError(
            f"`{base}` takes {len(defn.params)} arguments, got {len(values)} in `{name}`",
            hint=f"write `{base}({', '.join(defn.params)})` with integers",
        )

    def resolve(other: str):
        inner = by_name.get(split_op_name(other)[0])
        if inner is not None and inner.params and "(" not in other:
            return None, inner.stride, inner.params  # its arguments come next
        entry = OPS.get(other) if other in OPS else defined_entry(other, defs)
        if entry is None:
            raise unknown_op(other)
        return (
            lambda c_in, c_out, stride, affine, track: entry.build(
                c_in, c_out, stride, affine, track_running_stats=track
            ),
            entry.stride,
            (),
        )

    def build(C_in, C_out, stride, affine, track_running_stats=True, up=1):  # noqa: N803
        env = {"C_in": C_in, "C_out": C_out, "stride": stride, "affine": int(bool(affine))}
        env["up"] = up
        return Builder(defn, values, env, track_running_stats, resolve).build()

    zero = identity = pooling = False
    if defn.role == "op":
        zero, identity, pooling = _probe(build, defn.stride)
    entry = OpEntry(
        name=name, build=build, info=info_of(defn), pooling=pooling, zero=zero, identity=identity
    )
    if len(_ENTRIES) > 4096:
        _ENTRIES.clear()
    _ENTRIES[key] = entry
    return entry


def register_prelude() -> None:
    """Enter the prelude's ops (those without parameters) into the op registry."""
    for defn in prelude():
        if not defn.params and defn.name not in OPS:
            OPS[defn.name] = defined_entry(defn.name)
