"""What every placed op makes of its feature map, worked out without PyTorch: channels, height and
width, stride and flatness, step by step through the op bodies, as the compiler will build them.

The rule every op obeys where it is placed at stride s: an n x n map becomes ceil(n / s) x
ceil(n / s) (the sizes `nasc show` reports) with the op's output channels (an adapter placed
to upsample by `up` gives n up x n up), a head ends in a flat vector of class scores, and a
per-pixel head in a map of class scores of any size (the network resizes it to the input's).
A convolution is padded by dilation * (k - 1) // 2 on each side, so only an odd kernel keeps
the size; a pooling by `pad` (k // 2 unless given). Ops registered in Python have no body here
and are taken to obey the rule.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from fractions import Fraction

import attrs

from . import ast
from .errors import NasSemanticError, Span
from .ir import SpaceIR
from .macro import IMAGE, MAX_SIZE, Plan, Stage, halve
from .opdefs import PRIMITIVES, SEQUENCE_PRIMITIVES, Primitive, argument, library
from .tokens import check_reads, describe, token_step

# The primitives of sequences over time (docs/language.md, section 25), which
# `_Body.sequence_step` shapes; the token primitives of transformers are `SEQUENCE_PRIMITIVES`.
TIME_PRIMITIVES = (
    *("dense", "embedding", "dropout", "neg", "conv1d", "maxpool1d", "avgpool1d", "bn1d"),
)

# Said of a product whose factors differ in size.
PRODUCT_HINT = (
    "a product multiplies maps of one size, or a map by a gate pooled to 1x1: keep both factors' "
    "size, or pool one with `global_pool` (e.g. `product(global_pool -> conv(1, out = C_in) -> "
    "sigmoid)`)"
)


@attrs.frozen
class Shape:
    """A feature map (or, `flat`, a vector) partway through an op: channels, height, width, and
    the stride taken so far (followed along the height, as the compiler does; a fraction after
    an upsampling); `pooled` for a gate, a map that `global_pool` made 1x1 (kept through
    convolutions, BNs and activations), which a `product` multiplies with a map of any size;
    `sequence` for a sequence of tokens (B, length, features), held as channels = features,
    height = length and width 1."""

    channels: int
    height: int
    width: int
    stride: Fraction | int = 1
    flat: bool = False
    pooled: bool = False
    sequence: bool = False


@attrs.frozen
class Site:
    """Where an op is used, for errors: the use's span and dotted path."""

    span: Span | None
    path: str


@attrs.frozen
class _Deviation:
    """The first step of a body whose output is not ceil(size / stride) of its input."""

    call: ast.OpCall
    before: Shape
    after: Shape
    args: Mapping[str, int]


@attrs.frozen
class Placement:
    """One op where the network places it: a stem, block or head, a cell's input adapter, or an
    op on a cell edge, with the channels, stride and input size it is built for.

    Attributes:
        op: the op's canonical name (`mbconv(6,5)`).
        size: the height and width of the map it reads.
        head: it ends in class scores (`c_out` of them) rather than a map.
        affines: the `affine` values it is built with (a search supernet's cells are not affine).
        site: where the `.nas` file places it, for errors.
        up: the factor by which it upsamples (an adapter that reads a coarser output).
        stage: the index of the stem, block or head it is (None for an op in or before a cell).
        reads: the index of the stage whose output a stem, block or head reads.
    """

    op: str
    c_in: int
    c_out: int
    stride: int
    size: int
    head: bool
    affines: tuple[int, ...]
    site: Site
    up: int = 1
    stage: int | None = None
    reads: int | None = None
    sequence: bool = False  # it reads (batch, length, features), or one step's (batch, features)


def placements(space: SpaceIR, plan: Plan) -> Iterator[Placement]:
    """Every op of the plan where it is placed, in network order (an op placed alike in several
    cell instances once per instance)."""
    for stage in plan.stages:
        if stage.kind == "cell":
            yield from _cell_placements(space, plan, stage)
            continue
        site = Site(stage.span, f"{space.name}.network.{stage.name.split('(')[0]}")
        head = stage.kind in ("head", "aux")
        yield Placement(
            op=stage.name,
            c_in=stage.in_channels[0],
            c_out=stage.width,
            stride=1 if head else stage.stride,
            size=stage.in_size,
            head=head,
            affines=(0, 1),
            site=site,
            stage=stage.index,
            reads=stage.inputs[0] if stage.inputs else None,
            sequence=plan.sequence,
        )


def check_shapes(space: SpaceIR, plan: Plan, catalog: Mapping | None) -> None:
    """Refuse a plan in which some op does not give the shape its place needs.

    Raises:
        NasSemanticError: located at the step of the file's own op that goes wrong, or else at
            the use of the op (the cell edge, adapter, stem, block or head).
    """
    if catalog is None:
        return
    inference = _Inference(space, plan.sequence)
    seen: dict[tuple, Shape] = {}
    outputs: dict[int, Shape] = {}  # what each stem and block gives: a sequence goes on
    for place in placements(space, plan):
        given = outputs.get(place.reads) if place.stage is not None else None
        given = given if given is not None and given.sequence and not plan.sequence else None
        key = (place.op, place.c_in, place.c_out, place.stride, place.size, place.affines)
        key += (place.up, given, place.sequence)
        if key not in seen:  # else checked at an earlier place: the same shapes, the same result
            for affine in place.affines:
                seen[key] = inference.place(
                    place.op,
                    place.c_in,
                    place.c_out,
                    place.stride,
                    place.size,
                    affine,
                    place.site,
                    place.up,
                    given,
                    place.sequence,
                )
        if place.stage is not None:
            outputs[place.stage] = seen[key]
    for stage in plan.stages:
        tokens = [i for i in stage.inputs if i in outputs and outputs[i].sequence]
        cell_type = space.cell(stage.name) if stage.kind == "cell" else None
        if cell_type is not None and tokens and cell_type.block is None and not plan.sequence:
            raise NasSemanticError(
                f"the cell `{stage.name}` reads {describe(outputs[tokens[0]])} from "
                f"`{plan.stages[tokens[0]].name}`, where a cell reads feature maps",
                span=stage.span,
                path=f"{space.name}.network.{stage.name}",
                hint="after a patch embedding, place ops that read tokens (an encoder block of "
                "`layer_norm`, `self_attention` and `mlp`), then a head that pools them",
            )


def op_shape(
    space: SpaceIR,
    name: str,
    c_in: int,
    c_out: int,
    stride: int,
    size: int,
    affine: int = 0,
    up: int = 1,
) -> Shape:
    """The shape the op `name` (canonical, from the prelude or the space) gives of a `size` x
    `size` map placed with these channels and stride (or upsampling by `up`), checked as
    `check_shapes` does.

    Raises:
        NasSemanticError: the op does not give the shape of that place.
    """
    site = Site(None, f"{space.name}.{name}")
    return _Inference(space).op(
        name, c_in, c_out, stride, (size, size), affine, site, site.path, up=up
    )


def _cell_placements(space: SpaceIR, plan: Plan, stage: Stage) -> Iterator[Placement]:
    cell = space.cell(stage.name)
    base = f"{space.name}.{cell.name}"
    choice = None
    if cell.block is not None:
        choice = next(choice for choice in space.block_choices if choice.label == cell.block)
    affines = (1,) if cell.block is not None else (0, 1)
    for slot, source, c_in, stride, up in stage.reads():
        item = cell.inputs[slot]
        if item.adapter is None:
            continue
        size = plan.size if source == IMAGE else plan.stages[source].out_size
        site = Site(item.adapter_span or item.span or stage.span, f"{base}.{item.name}")
        yield Placement(
            item.adapter, c_in, stage.width, stride, size, False, affines, site, up,
            sequence=plan.sequence,
        )
    inputs = set(cell.input_names)
    for edge in cell.edges:
        from_input = edge.source in inputs
        stride = 2 if cell.reduction and from_input else 1
        size = stage.in_size if from_input else stage.out_size
        c_in = stage.node_channels[edge.source]
        # A block choice reads what the stage before it gives, a sequence of tokens too.
        block = {"stage": stage.index, "reads": stage.inputs[0]} if choice is not None else {}
        for op, site in _op_sites(space, cell, edge, choice, stage.span):
            yield Placement(
                op, c_in, stage.width, stride, size, False, affines, site, sequence=plan.sequence,
                **block,
            )


def _op_sites(space: SpaceIR, cell, edge, choice, fallback):
    """Each op of an edge with where it is written: the edge's term, the candidate in its set, or
    the candidate of a block choice."""
    if choice is not None:
        item = choice.item
        spans = item.op_spans if item.opset is None else ()
        path = f"{space.name}.network.{choice.label}"
        for position, op in enumerate(edge.candidates):
            span = spans[position] if position < len(spans) else None
            yield op, Site(span or item.cell_span or item.span or fallback, path)
        return
    path = f"{space.name}.{cell.name}.{edge.target}.edge[{edge.source}]"
    for position, op in enumerate(edge.ops):
        span = edge.op_spans[position] if position < len(edge.op_spans) else None
        yield op, Site(span or edge.span or fallback, path)
    for op in edge.candidates:
        yield op, Site(edge.choice_span or edge.span or fallback, path)


class _Inference:
    """Works out op bodies for concrete sizes, remembering what it has checked."""

    def __init__(self, space: SpaceIR, time: bool = False):
        self.time = time  # a network over time (`input tokens/sequence`): its sequences are steps
        self.defs = {defn.name: defn for defn in library()}
        self.defs.update((defn.name, defn) for defn in space.opdefs)
        self.own = {defn.name for defn in space.opdefs}
        self.done: dict[tuple, Shape] = {}

    def place(
        self,
        name: str,
        c_in: int,
        c_out: int,
        stride: int,
        size: int,
        affine: int,
        site: Site,
        up: int = 1,
        given: Shape | None = None,
        sequence: bool = False,
    ) -> Shape:
        """Check the op `name` (canonical) placed at `stride` (or upsampling by `up`) on a
        `size` x `size` map (a time sequence's `size` x 1), or on the sequence of tokens
        `given`, and return what it gives."""
        size2 = (size, 1) if sequence else (size, size)
        return self.op(
            name, c_in, c_out, stride, size2, affine, site, site.path, up, given, sequence
        )

    def op(
        self,
        name: str,
        c_in: int,
        c_out: int,
        stride: int,
        size: tuple[int, int],
        affine: int,
        site: Site,
        where: str,
        up: int = 1,
        given: Shape | None = None,
        sequence: bool = False,
    ) -> Shape:
        """The shape an op gives, checked against its place; ops without a body obey the rule.
        `given` is the sequence of tokens it reads, if it reads one rather than a map."""
        base, values = ast.split_op_name(name)
        defn = self.defs.get(base)
        expected = Shape(
            c_out,
            halve(size[0], stride) * up,
            halve(size[1], stride) * up,
            Fraction(stride, up),
            sequence=sequence,
        )
        if defn is None or len(values) != len(defn.params):
            return expected
        key = (name, c_in, c_out, stride, size, affine, up, given, sequence)
        if key not in self.done:
            env = {**dict(zip(defn.params, values)), "C_in": c_in, "C_out": c_out}
            env.update(stride=stride, affine=affine, up=up)
            body = _Body(self, defn, env, site, where)
            # A sequence of tokens read from the stage before: its stride counts from here.
            start = (
                Shape(c_in, *size, sequence=sequence)
                if given is None
                else attrs.evolve(given, stride=1)
            )
            self.done[key] = body.finish(body.walk(defn.body, start), size)
        return self.done[key]


class _Body:
    """One op body evaluated for concrete sizes; errors name the step when the op is the file's
    own, else the op's use."""

    def __init__(
        self, inference: _Inference, defn: ast.OpDef, env: dict[str, int], site: Site, where: str
    ):
        self.inference = inference
        self.defn = defn
        self.env = env
        self.site = site
        self.where = where
        self.own = defn.name in inference.own
        self.path = f"op.{defn.name}" if self.own else site.path
        self.deviation: _Deviation | None = None

    def fail(self, message: str, span, hint: str) -> NasSemanticError:
        placed = f" (placed at {self.where}, C_in {self.env['C_in']}, C_out {self.env['C_out']}, "
        placed += f"stride {self.env['stride']})"
        return NasSemanticError(
            message + placed,
            span=(span or self.defn.span) if self.own else self.site.span,
            path=self.path,
            hint=hint,
        )

    def value(self, expr) -> int:
        return ast.evaluate(expr, self.env, what="an argument", path=self.path)

    def holds(self, cond) -> bool:
        if isinstance(cond, ast.BoolOp):
            left = self.holds(cond.left)
            if cond.op == "and":
                return left and self.holds(cond.right)
            return left or self.holds(cond.right)
        left, right = self.value(cond.left), self.value(cond.right)
        return {
            "==": left == right,
            "!=": left != right,
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[cond.op]

    # --- the end of the body

    def finish(self, shape: Shape, size: tuple[int, int]) -> Shape:
        """Check what the body ends with against the op's place."""
        name, env = self.defn.name, self.env
        if self.defn.per_pixel:
            return self._finish_per_pixel(shape)
        if shape.channels != env["C_out"]:
            raise self.fail(
                f"op `{name}` ends with {shape.channels} channels where it must give "
                f"{env['C_out']}",
                self.defn.span,
                "end the body with a step that makes C_out channels, e.g. `conv(1)`",
            )
        if self.defn.role == "head":
            if shape.sequence and not self.inference.time:
                raise self.fail(
                    f"the head `{name}` does not end in class scores: it gives "
                    f"{describe(shape)}",
                    self.defn.span,
                    "pool the tokens before the classifier: `token_pool(first = 1) -> linear` "
                    "(the class token) or `token_pool -> linear` (their mean)",
                )
            if not (shape.flat or shape.sequence):
                raise self.fail(
                    f"the head `{name}` does not end in class scores: it gives a "
                    f"{shape.height}x{shape.width} map",
                    self.defn.span,
                    "end a head with `gap -> linear`",
                )
            return shape
        if shape.flat:
            raise self.fail(
                f"op `{name}` ends in a flat vector (after `gap`) where a feature map is needed",
                self.defn.span,
                "only a head (`op NAME with head = ...`) ends in `gap -> linear`",
            )
        scale = Fraction(env["stride"], env["up"])
        if shape.stride != scale:
            raise self.fail(
                f"op `{name}` {_scaling(shape.stride)} where it is placed "
                f"{_scaling(scale, placed=True)}",
                self.defn.span,
                "pass the op's stride to one step, e.g. `conv(3, stride = stride)`"
                if env["up"] == 1
                else "upsample by the op's `up` in one step, e.g. `bilinear(up)`",
            )
        stride, up = env["stride"], env["up"]
        if shape.sequence:  # a sequence has as many tokens as its ops make (they say how many)
            return shape
        wanted = (halve(size[0], stride) * up, halve(size[1], stride) * up)
        if (shape.height, shape.width) != wanted:
            raise self._size_error(shape, size, wanted)
        return shape

    def _finish_per_pixel(self, shape: Shape) -> Shape:
        """A per-pixel head ends in a map with one channel per class, of any size."""
        name, classes = self.defn.name, self.env["C_out"]
        if shape.sequence:
            raise self.fail(
                f"the per-pixel head `{name}` ends in {describe(shape)} where a map of class "
                "scores is needed",
                self.defn.span,
                "a head that reads tokens pools them (`token_pool -> linear`) and is marked "
                "`with head`",
            )
        if shape.flat:
            raise self.fail(
                f"the per-pixel head `{name}` ends in a flat vector (after `gap`) where a map of "
                "class scores is needed",
                self.defn.span,
                "a per-pixel head ends in a feature map, e.g. `conv(3) -> bn -> relu -> "
                "conv(1, bias = 1)`; a head that ends in `gap -> linear` is marked `with head`",
            )
        if shape.channels != classes:
            raise self.fail(
                f"the per-pixel head `{name}` ends with {shape.channels} channels where it must "
                f"give one per class, {classes}",
                self.defn.span,
                "end it with a convolution to the class count, e.g. `conv(1, bias = 1)` (whose "
                "`out` defaults to C_out, the class count)",
            )
        return shape

    def _size_error(self, shape: Shape, size, wanted) -> NasSemanticError:
        name = self.defn.name
        got = f"{shape.height}x{shape.width}"
        need = f"{wanted[0]}x{wanted[1]}, the size `nasc show` reports"
        step = self.deviation
        if step is None:
            return self.fail(
                f"op `{name}` turns a {size[0]}x{size[1]} map into {got}; its place needs {need}",
                self.defn.span,
                "each step of stride s must give ceil(size / s)",
            )
        call = step.call
        k = step.args.get("k", 1)
        even = call.name in ("conv", "dwconv") and any(
            step.args.get(key, k) % 2 == 0 for key in ("k", "kh", "kw")
        )
        if even:
            hint = (
                "a convolution is padded by dilation * (k - 1) // 2 on each side, so an even "
                "kernel loses a pixel: use an odd kernel (1, 3, 5, 7)"
            )
        elif call.name in ("maxpool", "avgpool"):
            hint = "keep the size with an odd k and the default `pad` (k // 2)"
        else:
            hint = "each step of stride s must give ceil(size / s)"
        before, after = step.before, step.after
        return self.fail(
            f"`{call.name}` in op `{name}` turns {before.height}x{before.width} into "
            f"{after.height}x{after.width}, so the op gives {got}; its place needs {need}",
            call.span,
            hint,
        )

    # --- bodies

    def walk(self, node, shape: Shape) -> Shape:
        if isinstance(node, ast.OpIf):
            return self.walk(node.then if self.holds(node.cond) else node.otherwise, shape)
        if isinstance(node, ast.OpCall):
            return self.call(node, shape)
        if isinstance(node, ast.OpResidual):
            return self.residual(node, shape)
        if isinstance(node, ast.OpProduct):
            return self.product(node, shape)
        for item in node.items:
            shape = self.walk(item.body, shape)
        return shape

    def residual(self, node: ast.OpResidual, shape: Shape) -> Shape:
        out = self.walk(node.body, shape)
        if node.shortcut is None:
            if out.channels != shape.channels or out.stride != shape.stride:
                return out  # no shortcut fits: the block is its body alone (as the compiler)
            cut = shape
        else:
            cut = self.walk(node.shortcut, shape)
            if (cut.channels, cut.stride, cut.flat) != (out.channels, out.stride, out.flat):
                raise self.fail(
                    f"the shortcut of a residual in op `{self.defn.name}` gives {cut.channels} "
                    f"channels at stride {cut.stride}, its body {out.channels} at {out.stride}",
                    node.span,
                    "make both branches end with the same channels and stride",
                )
        if cut.sequence or out.sequence:
            if (cut.height, cut.sequence) != (out.height, out.sequence):
                what = "its input" if node.shortcut is None else "the shortcut"
                raise self.fail(
                    f"a residual in op `{self.defn.name}` adds {what} ({describe(cut)}) to its "
                    f"body's output ({describe(out)})",
                    node.span,
                    "a residual over tokens adds sequences of one length: keep `class_token` "
                    "and `patch_embed` out of its branches",
                )
            return out
        if (cut.height, cut.width) != (out.height, out.width):
            what = "its input" if node.shortcut is None else "the shortcut"
            raise self.fail(
                f"a residual in op `{self.defn.name}` adds {what} of "
                f"{cut.height}x{cut.width} to its body's {out.height}x{out.width}",
                node.span,
                "use odd kernels and the default pooling `pad`, so both branches keep the size",
            )
        return out

    def product(self, node: ast.OpProduct, shape: Shape) -> Shape:
        """Two factors of one shape, or a map and a gate (pooled to 1x1) that scales each of its
        channels; the product has the map's shape."""
        before, deviations, factors = self.deviation, [], []
        for branch in (node.body, node.other):
            self.deviation = None
            factors.append(shape if branch is None else self.walk(branch, shape))
            deviations.append(self.deviation)
        out, other = factors
        name = self.defn.name
        if out.flat or other.flat:
            raise self.fail(
                f"a product in op `{name}` multiplies a flat vector (after `gap`)",
                node.span,
                "pool a gate with `global_pool`, which keeps a 1x1 map; `gap` flattens it",
            )
        if out.channels != other.channels:
            raise self.fail(
                f"a product in op `{name}` multiplies {out.channels} channels by "
                f"{other.channels}",
                node.span,
                "end both factors with the same channels, e.g. the gate with `conv(1, out = "
                "C_in)`",
            )
        gates = [factor.pooled and (factor.height, factor.width) == (1, 1) for factor in factors]
        if gates[0] != gates[1]:  # a map times a gate: the map's shape
            kept = 1 if gates[0] else 0
            self.deviation = before or deviations[kept]
            return factors[kept]
        self.deviation = before or deviations[0] or deviations[1]
        if (out.height, out.width) != (other.height, other.width):
            raise self.fail(
                f"a product in op `{name}` multiplies a {out.height}x{out.width} map by one of "
                f"{other.height}x{other.width}",
                node.span,
                PRODUCT_HINT,
            )
        if out.stride != other.stride:
            raise self.fail(
                f"a product in op `{name}` multiplies a map at stride {out.stride} by one at "
                f"stride {other.stride}",
                node.span,
                "make both factors take the same stride",
            )
        return out

    def args(
        self, call: ast.OpCall, params: tuple[str, ...], primitive: Primitive | None = None
    ) -> dict[str, int]:
        given = dict(zip(params, call.args))
        given.update(call.kwargs)
        return {
            key: argument(primitive, key, expr, self.env, what="an argument", path=self.path)
            for key, expr in given.items()
        }

    def call(self, call: ast.OpCall, shape: Shape) -> Shape:
        if shape.flat and call.name not in ("linear", "identity", "dense", "dropout"):
            raise self.fail(
                f"`{call.name}` follows `gap` in op `{self.defn.name}`",
                call.span,
                "after global pooling only `linear` steps can follow",
            )
        primitive = PRIMITIVES.get(call.name)
        if primitive is None:
            return self.nested(call, shape)
        # The token checks; a network over time, and sequence_step, check what theirs read.
        if not self.inference.time and call.name not in TIME_PRIMITIVES:
            check_reads(self, call, shape)
        args = self.args(call, primitive.params, primitive)
        after, (down, across) = self.primitive(call, args, shape)
        wanted = (_resized(shape.height, down), _resized(shape.width, across))
        grid = not (after.flat or after.sequence)
        if self.deviation is None and grid and (after.height, after.width) != wanted:
            self.deviation = _Deviation(call=call, before=shape, after=after, args=args)
        if min(after.height, after.width) < 1:
            raise self.fail(
                f"`{call.name}` in op `{self.defn.name}` leaves no pixels of a "
                f"{shape.height}x{shape.width} map",
                call.span,
                "the map is too small for this kernel: pad it or place the op earlier",
            )
        return after

    def positive(self, call: ast.OpCall, args: Mapping[str, int], key, default, minimum=1):
        value = args.get(key, default)
        if value < minimum:
            raise self.fail(
                f"`{key}` of `{call.name}` in op `{self.defn.name}` must be at least {minimum}, "
                f"not {value}",
                call.span,
                "check the arithmetic and the op's arguments",
            )
        if value > MAX_SIZE:
            raise self.fail(
                f"`{key}` of `{call.name}` in op `{self.defn.name}` must be at most "
                f"{MAX_SIZE:,}, not {value:,}",
                call.span,
                "no step this large can be built: check the arithmetic and the op's arguments",
            )
        return value

    def primitive(
        self, call: ast.OpCall, a: Mapping[str, int], shape: Shape
    ) -> tuple[Shape, tuple[int, int]]:
        """The shape a primitive gives, as PyTorch computes it, and its strides down and across."""
        c, name, env = shape.channels, call.name, self.env
        if name in ("conv", "dwconv", "pwconv"):
            k = self.positive(call, a, "k", 1)
            stride = self.positive(call, a, "stride", 1)
            dilation = self.positive(call, a, "dilation", 1)
            if name == "dwconv":
                out, groups = c, c
            else:
                out = self.positive(call, a, "out", env["C_out"])
                groups = self.positive(call, a, "groups", 1)
            kh, kw = self.positive(call, a, "kh", k), self.positive(call, a, "kw", k)
            sh, sw = self.positive(call, a, "sh", stride), self.positive(call, a, "sw", stride)
            if c % groups or out % groups:
                raise self.fail(
                    f"`{name}` in op `{self.defn.name}` has {groups} groups for {c} input and "
                    f"{out} output channels",
                    call.span,
                    "groups must divide both channel counts",
                )
            height = _conv_size(shape.height, kh, sh, dilation)
            width = _conv_size(shape.width, kw, sw, dilation)
            after = Shape(out, height, width, shape.stride * sh, pooled=shape.pooled)
            return after, (sh, sw)
        if name in ("maxpool", "avgpool"):
            k = self.positive(call, a, "k", 1)
            stride = self.positive(call, a, "stride", 1)
            pad = self.positive(call, a, "pad", k // 2, minimum=0)
            if pad > k // 2:
                raise self.fail(
                    f"`{name}` in op `{self.defn.name}` pads a {k}x{k} window by {pad}",
                    call.span,
                    f"pad by at most half the window, here {k // 2}",
                )
            ceil = bool(a.get("ceil", 0))
            height = _pool_size(shape.height, k, stride, pad, ceil)
            width = _pool_size(shape.width, k, stride, pad, ceil)
            return Shape(c, height, width, shape.stride * stride), (stride, stride)
        if name == "se":
            self.positive(call, a, "mid", 1)
            return shape, (1, 1)
        if name in ("bilinear", "nearest"):
            factor = self.positive(call, a, "factor", 1)
            scale = Fraction(1, factor)
            after = Shape(c, shape.height * factor, shape.width * factor, shape.stride * scale)
            return after, (scale, scale)
        if name == "deconv":
            k = self.positive(call, a, "k", 1)
            stride = self.positive(call, a, "stride", 1)
            out = self.positive(call, a, "out", env["C_out"])
            if (problem := deconv_problem(k, stride, self.defn.name)) is not None:
                raise self.fail(problem, call.span, DECONV_HINT)
            scale = Fraction(1, stride)
            after = Shape(out, shape.height * stride, shape.width * stride, shape.stride * scale)
            return after, (scale, scale)
        if name == "zero":
            stride = max(1, env["stride"] // shape.stride)
            height, width = halve(shape.height, stride), halve(shape.width, stride)
            return Shape(env["C_out"], height, width, shape.stride * stride), (stride, stride)
        if name == "factorized_reduce":
            out = self.positive(call, a, "out", env["C_out"])
            stride = self.positive(call, a, "stride", 1)
            if stride not in (1, 2):
                raise self.fail(
                    f"`factorized_reduce` strides by 1 or 2, not {stride}",
                    call.span,
                    "stack two to reduce by 4",
                )
            height, width = halve(shape.height, stride), halve(shape.width, stride)
            return Shape(out, height, width, shape.stride * stride), (stride, stride)
        if name == "gap":
            return Shape(c, 1, 1, shape.stride, flat=True), (1, 1)
        if name == "global_pool":
            return Shape(c, 1, 1, shape.stride, pooled=True), (1, 1)
        if name == "bn" and a.get("eps", 1) <= 0:
            raise self.fail(
                f"`eps` of `bn` in op `{self.defn.name}` must be positive, not {a['eps']}",
                call.span,
                "BatchNorm divides by sqrt(variance + eps): write e.g. `bn(eps = 0.001)`",
            )
        if name == "linear" and not shape.sequence:
            if not shape.flat:
                raise self.fail(
                    f"`linear` in op `{self.defn.name}` reads a feature map",
                    call.span,
                    "pool it first: `gap -> linear`",
                )
            out = self.positive(call, a, "out", env["C_out"])
            return Shape(out, 1, 1, shape.stride, flat=True), (1, 1)
        if name in TIME_PRIMITIVES:
            return self.sequence_step(call, a, shape)
        if name in SEQUENCE_PRIMITIVES or name in ("patch_embed", "linear"):
            return token_step(self, call, a, shape)
        return shape, (1, 1)  # bn, the activations, identity: the shape is unchanged

    def sequence_step(
        self, call: ast.OpCall, a: Mapping[str, int], shape: Shape
    ) -> tuple[Shape, tuple[int, int]]:
        """The primitives of sequences (docs/language.md, section 25): they read a sequence, one
        of its steps, or a flat vector; never an image's feature map."""
        name, env = call.name, self.env
        if not (shape.sequence or shape.flat) and name not in ("dropout", "neg"):
            raise self.fail(
                f"`{name}` in op `{self.defn.name}` reads an image's feature map, not a sequence",
                call.span,
                "sequence primitives work in networks that read sequences (`input "
                "tokens(vocabulary)` or `input sequence(features)`); on feature maps use "
                "`conv(1)` for a dense layer, `conv(k)` and `maxpool(k)` over space",
            )
        if name == "dense":
            out = self.positive(call, a, "out", env["C_out"])
            return attrs.evolve(shape, channels=out), (1, 1)
        if name == "embedding":
            out = self.positive(call, a, "out", env["C_out"])
            return attrs.evolve(shape, channels=out), (1, 1)
        if name == "dropout":
            if not 0 <= a.get("p", 0.5) < 1:
                raise self.fail(
                    f"`p` of `dropout` in op `{self.defn.name}` must lie in [0, 1), not {a['p']}",
                    call.span,
                    "write a probability, e.g. `dropout(0.25)`",
                )
            return shape, (1, 1)
        if name in ("neg", "bn1d"):
            return shape, (1, 1)
        k = self.positive(call, a, "k", 1)
        stride = self.positive(call, a, "stride", 1)
        if name == "conv1d":
            out = self.positive(call, a, "out", env["C_out"])
            dilation = self.positive(call, a, "dilation", 1)
            length = _conv_size(shape.height, k, stride, dilation)
            return Shape(out, length, 1, shape.stride * stride, sequence=True), (stride, 1)
        length = _pool_size(shape.height, k, stride, k // 2, False)
        return Shape(shape.channels, length, 1, shape.stride * stride, sequence=True), (stride, 1)

    def nested(self, call: ast.OpCall, shape: Shape) -> Shape:
        """Another op inside this one: its parameters, then `out` and `stride`."""
        callee = self.inference.defs.get(call.name)
        params = callee.params if callee is not None else ()
        fixed = callee.stride if callee is not None else None
        a = self.args(call, (*params, "out", "stride"))
        out = a.get("out", self.env["C_out"])
        stride = fixed or a.get("stride", 1)
        name = ast.op_name(call.name, [a[p] for p in params])
        site = Site(call.span, f"op.{self.defn.name}.{call.name}") if self.own else self.site
        size = (shape.height, shape.width)
        affine, time = self.env["affine"], self.inference.time
        given = shape if shape.sequence and not time else None
        inner = self.inference.op(
            name, shape.channels, out, stride, size, affine, site, self.where, 1, given,
            shape.sequence and time,
        )
        return attrs.evolve(inner, stride=shape.stride * stride)


DECONV_HINT = (
    "a transposed convolution needs a kernel at least its stride (an odd one at stride 1): "
    "`deconv(2, stride = 2)` or `deconv(4, stride = 2)`"
)


def deconv_problem(k: int, stride: int, op: str) -> str | None:
    """Why `deconv(k, stride = stride)` in op `op` cannot multiply a size by `stride` exactly
    (None: it can); the shape checks and the builder both refuse with it."""
    if k < stride or (stride == 1 and k % 2 == 0):
        return (
            f"`deconv({k}, stride = {stride})` in op `{op}` cannot multiply the size by "
            f"{stride} exactly"
        )
    return None


def _resized(size: int, scale) -> int:
    """The size after a step of stride `scale`: ceil halvings, or a multiple for an upsampling
    (a fraction 1/f)."""
    if scale < 1:
        return size * int(1 / scale)
    return halve(size, int(scale))


def _scaling(scale, placed: bool = False) -> str:
    """How an op changes the resolution, in words: `reduces the resolution by 2`, `with stride
    2` where it is placed; `upsamples by 2`, `to upsample by 2`."""
    if scale >= 1:
        return f"with stride {scale}" if placed else f"reduces the resolution by {scale}"
    return f"to upsample by {1 / scale}" if placed else f"upsamples by {1 / scale}"


def _conv_size(size: int, k: int, stride: int, dilation: int) -> int:
    """PyTorch's output size of a convolution padded by dilation * (k - 1) // 2."""
    pad = dilation * (k - 1) // 2
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def _pool_size(size: int, k: int, stride: int, pad: int, ceil: bool) -> int:
    """PyTorch's output size of a pooling (a last window must start inside the padded input)."""
    span = size + 2 * pad - k
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out
