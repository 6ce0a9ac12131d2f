"""Optimisation passes over the op graph of a cell (`graph`), run before it is printed.

Every op module is read as a chain of steps (ReLU, convolution, BatchNorm, pooling; anything else
is one opaque call). The candidates that read one source then form a tree of those chains, and
the passes decide how the tree runs:

- `cse`: a step without parameters or state (ReLU, pooling, a BN without affine parameters or
  running statistics) that several candidates apply to the same value is computed once;
- `fuse`: dense convolutions of the same shape that several candidates apply to the same value
  run as one wider convolution with their weights concatenated, and the candidates' further
  identical steps without a convolution run on the wide tensor too (BN over the concatenated
  channels, which is per-channel and so the same computation), until the chains end or differ;
  then it is split. Grouped and depthwise convolutions could fuse too (`fused_conv` runs them),
  but oneDNN runs those slower than separate ones on the CPU (see `_fusable`);
- `fold`: the constant mixing scale (1/|candidates|) of candidates that end in a fused BN is
  multiplied into that BN's weight, where it costs nothing;
- `lean_pool`: pooling runs through `pool`, whose backward keeps less than autograd's: average
  pooling only its input's shape (its gradient does not read the input's values), max pooling
  its argmax as an int16 offset within its window, not its input nor int64 indices (the same
  gradient kernel reads only the indices, rebuilt from those);
- `accumulate`: a node's sum of several terms is one new tensor the others are added into in
  place, so it allocates one buffer rather than one per `+` (`codegen` prints it so);
- `inplace_relu`: a ReLU that follows a convolution, BN or pooling inside one op's chain (DARTS'
  separable convolution: BN, ReLU, convolution) runs in place: none of those keeps its output
  for the backward, so the tensor before the ReLU need not live beside the one after it.

Weights are concatenated at forward time from the original modules, so parameters, gradients,
state_dict keys, optimizers, checkpoints and export are unchanged. The passes run again at every
mask change, so dead candidates leave the fused kernels too.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from torch import nn

from .graph import (
    Call,
    Combine,
    Fused,
    Graph,
    Node,
    Partial,
    Split,
    Term,
    Var,
    insert_after,
    rewrite,
    walk,
)
from .modules import Identity

PASSES = {
    "cse": "compute a step without parameters shared by candidates on one value once",
    "fuse": "run same-shaped convolutions and BNs on one value as one (grouped) kernel",
    "fold": "multiply the constant mixing scale into the fused BN that ends a candidate",
    "lean_pool": "pooling whose backward keeps only the input's shape (max: int16 argmax offsets)",
    "accumulate": "sum a node's terms into one new tensor in place",
    "inplace_relu": "a ReLU after a convolution, BN or pooling of the same op runs in place",
}
DEFAULT_PASSES = tuple(PASSES)


# --- ops as chains of steps -----------------------------------------------------------------------


@attrs.frozen
class Step:
    """One step of an op's chain.

    Attributes:
        kind: `relu`, `conv`, `bn`, `pool`, or `call` (an opaque module, run as it is).
        path: where the step's module sits inside the op module (ints index a Sequential).
        key: what must agree for two steps to share or fuse: the step's settings in every
            instance of the cell type (instances differ in width).
        free: no parameters and no state: equal keys on one value give one result.
        label: what generated names call the step's output (`relu`, `conv3x3`, `dwconv5x5`,
            `bn`, `avgpool3x3`).
    """

    kind: str
    path: tuple
    key: tuple
    free: bool
    label: str = ""


def _size(value) -> str:
    first, second = value if isinstance(value, tuple) else (value, value)
    return f"{first}x{second}"


def _steps(module: nn.Module, path: tuple = ()) -> list[tuple] | None:
    """The chain of one module as (kind, path, key, free, label); None when it is no plain
    chain."""
    kind = type(module)
    if isinstance(module, nn.Sequential) and kind.forward is nn.Sequential.forward:
        found = []
        for name, child in module.named_children():
            # Labelled steps of an op defined in the language have names (`pool`), others numbers.
            inner = _steps(child, (*path, int(name) if name.isdigit() else name))
            if inner is None:
                return None
            found.extend(inner)
        return found
    if kind in (Identity, nn.Identity):
        return []
    if kind is nn.ReLU and not module.inplace:
        return [("relu", path, ("relu",), True, "relu")]
    if kind in (nn.AvgPool2d, nn.MaxPool2d):
        settings = (kind.__name__, repr(module))
        if kind is nn.AvgPool2d:
            settings += (module.count_include_pad, module.divisor_override, module.ceil_mode)
        elif module.return_indices:
            return None
        else:
            settings += (module.dilation, module.ceil_mode)
        label = f"{'avg' if kind is nn.AvgPool2d else 'max'}pool{_size(module.kernel_size)}"
        return [("pool", path, settings, True, label)]
    if kind is nn.Conv2d and module.padding_mode == "zeros" and not isinstance(module.padding, str):
        key = (
            "conv",
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            module.groups,
            module.bias is not None,
        )
        depthwise = module.groups > 1 and module.groups == module.in_channels
        label = f"{'dw' if depthwise else ''}conv{_size(module.kernel_size)}"
        return [("conv", path, key, False, label)]
    if kind is nn.BatchNorm2d:
        key = ("bn", module.num_features, module.eps, module.momentum, module.affine)
        key += (module.track_running_stats,)
        free = not module.affine and not module.track_running_stats
        return [("bn", path, key, free, "bn")]
    return None


def op_steps(modules: Sequence[nn.Module], tag: tuple) -> tuple[Step, ...]:
    """The chain of an op, read from its module in every instance of the cell type.

    Args:
        modules: the op's module in each instance.
        tag: the (edge, op) the chain belongs to, which makes an opaque call unique.
    """
    chains = [_steps(module) for module in modules]
    first = chains[0]
    if first is None or any(
        chain is None
        or len(chain) != len(first)
        or any(a[:2] != b[:2] or a[3] != b[3] for a, b in zip(chain, first, strict=True))
        for chain in chains
    ):
        return (Step(kind="call", path=(), key=("call", *tag), free=False, label=tag[1]),)
    return tuple(
        Step(
            kind=kind,
            path=path,
            key=tuple(chain[index][2] for chain in chains),
            free=free,
            label=label,
        )
        for index, (kind, path, _, free, label) in enumerate(first)
    )


# --- planning one value's readers ----------------------------------------------------------------


@attrs.frozen
class Candidate:
    """A live op reading a value, as the passes see it.

    Attributes:
        factor: the constant mixing scale its edge multiplies it by, if any (`fold` reads it).
    """

    edge: str
    op: str
    steps: tuple[Step, ...]
    factor: float | None = None

    @property
    def label(self) -> str:
        """What generated names call the candidate's own values: its edge and op."""
        return f"{self.edge.replace('->', '_')}_{self.op}"

    def module(self, path: tuple = ()) -> tuple[str, ...]:
        """The path of the module at `path` inside this candidate's op."""
        return (self.edge, self.op, *(str(part) for part in path))


class Planner:
    """The statements that compute every candidate reading one value, under the chosen passes.

    After planning, `nodes` holds the new statements and `cores` what each candidate's call
    becomes: (the expression of its output, whether its mixing scale is in it). A value several
    candidates share is named after what it reads and the step (`n2_relu`, `x_relu_conv3x3`),
    a candidate's own after the candidate and the step (`n2_n3_nor_conv_3x3_conv3x3`).

    Args:
        value: the variable the candidates read.
        candidates: its readers, in the order of the unoptimised code.
        passes: the enabled pass names.
        fresh: makes a new variable name from a hint.
    """

    def __init__(self, value: str, candidates: Sequence[Candidate], passes, fresh):
        self.passes = set(passes)
        self.fresh = fresh
        self.nodes: list[Node] = []
        self.cores: dict[tuple[str, str], tuple[object, bool]] = {}
        self._single(value, [(candidate, 0) for candidate in candidates])

    def _let(self, hint: str, expr) -> str:
        name = self.fresh(hint)
        self.nodes.append(Node((name,), expr))
        return name

    def _single(self, value: str, items: list[tuple[Candidate, int]]) -> None:
        """Candidates at step `index` of their chains, all reading the plain tensor `value`."""
        groups: dict[tuple, list[tuple[Candidate, int]]] = {}
        for candidate, index in items:
            if index == len(candidate.steps):
                self.cores[(candidate.edge, candidate.op)] = (Var(value), False)
                continue
            step = candidate.steps[index]
            # Fusion starts at a dense convolution; a stateful BN on one value runs per
            # candidate, and so do depthwise convolutions (see `_fusable`).
            shares = ("cse" if step.free else "fuse") in self.passes
            shares = shares and (step.free or _fusable(step, lanes=False))
            key = step.key if shares else (step.key, candidate.edge, candidate.op)
            groups.setdefault(key, []).append((candidate, index))
        for group in groups.values():
            candidate, index = group[0]
            step = candidate.steps[index]
            if len(group) == 1:
                self._rest(value, candidate, index)
            elif step.free:
                name = self._let(f"{value}_{step.label}", self._step(step, candidate, value))
                self._single(name, [(c, i + 1) for c, i in group])
            else:
                self._lanes(value, group)

    def _step(self, step: Step, candidate: Candidate, value: str, after: str | None = None):
        """The call of one step on `value`; `after`: the kind of the step of the same op that
        made `value` (None when others may read it too)."""
        module = candidate.module(step.path)
        if step.kind == "relu":
            # Convolution, BN and pooling keep their input, not their output, for the backward.
            if after in ("conv", "bn", "pool") and "inplace_relu" in self.passes:
                return Call("relu_", module, Var(value))
            return Call("relu", module, Var(value))
        if step.kind == "pool" and "lean_pool" in self.passes:
            return Call("pool", module, Var(value))
        return Call("module", module, Var(value))

    def _rest(self, value: str, candidate: Candidate, index: int) -> None:
        """One candidate's remaining steps, module by module (or the whole op from step 0)."""
        lean = "lean_pool" in self.passes and any(s.kind == "pool" for s in candidate.steps)
        key = (candidate.edge, candidate.op)
        if index == 0 and not lean:
            self.cores[key] = (Call("module", candidate.module(), Var(value)), False)
            return
        steps = candidate.steps[index:]
        for position, step in enumerate(steps[:-1]):
            made = position > 0 and steps[position - 1].kind  # what made `value` here
            call = self._step(step, candidate, value, after=made or None)
            value = self._let(f"{candidate.label}_{step.label}", call)
        made = steps[-2].kind if len(steps) > 1 else None
        self.cores[key] = (self._step(steps[-1], candidate, value, after=made), False)

    def _lanes(self, value: str, lanes: list[tuple[Candidate, int]]) -> None:
        """Candidates whose next step is the same parametric one on `value`: run their common
        steps as one kernel on a tensor of one channel slice (lane) per candidate, then split."""
        shared = True
        scaled = False
        while all(i < len(c.steps) for c, i in lanes) and (
            len({c.steps[i].key for c, i in lanes}) == 1
        ):
            candidate, index = lanes[0]
            step = candidate.steps[index]
            if step.kind == "conv" and not _fusable(step, lanes=not shared):
                break
            last = all(i + 1 == len(c.steps) for c, i in lanes)
            modules = tuple(c.module(c.steps[i].path) for c, i in lanes)
            if step.kind == "conv":
                expr = Fused("conv", Var(value), modules, lanes=not shared)
            elif step.kind == "bn":
                factors = [c.factor for c, _ in lanes]
                scale = None
                if last and "fold" in self.passes and any(f is not None for f in factors):
                    scale = tuple(1.0 if f is None else f for f in factors)
                    scaled = True
                expr = Fused("bn", Var(value), modules, scale=scale)
            elif step.kind == "relu":
                made = None if shared else lanes[0][0].steps[lanes[0][1] - 1].kind
                expr = self._step(step, candidate, value, made)
            else:  # pooling is per channel: one pooling of the wide tensor
                expr = self._step(step, candidate, value)
            value = self._let(f"{value}_{step.label}", expr)
            shared = False
            lanes = [(c, i + 1) for c, i in lanes]
        names = tuple(self.fresh(c.label) for c, _ in lanes)
        self.nodes.append(Node(names, Split(Var(value), len(lanes))))
        for (candidate, index), name in zip(lanes, names, strict=True):
            if index == len(candidate.steps):
                self.cores[(candidate.edge, candidate.op)] = (Var(name), scaled)
            else:
                self._rest(name, candidate, index)


def _fusable(step: Step, lanes: bool) -> bool:
    """Whether fusing this convolution pays: on the CPU, oneDNN runs grouped convolutions (the
    depthwise ones of several candidates as one, or pointwise ones on one slice per candidate)
    slower than the separate convolutions, so only dense convolutions of one value fuse (NB201's
    ReLU-Conv-BN of one node; measured in docs/compiler.md). `fused_conv` can run the others."""
    return step.kind == "conv" and not lanes and all(key[7] == 1 for key in step.key)


def _core(term: Term) -> Call | None:
    """The call of the term's whole op on a value, if the term still has one."""
    for item in walk(term.expr):
        if isinstance(item, Call) and item.fn == "module" and item.module == (term.edge, term.op):
            return item
    return None


def optimise(graph: Graph, instances: Sequence[nn.Module], passes: Sequence[str]) -> Graph:
    """The graph with the passes `passes` run over the live ops of every value: the statements
    that share, fuse and fold their steps follow the value, and each op's term reads what they
    made.

    Args:
        instances: the cell type's `CellModule`s, whose op modules the passes read.
    """
    order = {edge: index for index, edge in enumerate(graph.edges)}
    readers: dict[str, list[tuple[int, int, Candidate]]] = {}
    position = 0
    for node in graph.of_kind("combine"):
        for edge in node.expr.edges:
            terms = [(t, None) for t in edge.fixed] + [(t, edge.scale) for t in edge.mixed]
            for term, factor in terms:
                inner = [(term, factor)]
                if isinstance(term.expr, Partial):
                    inner = [(t, term.expr.scale) for t in term.expr.inner]
                for each, scale in inner:
                    core = _core(each)
                    if core is None or not isinstance(core.arg, Var):
                        continue
                    modules = [instance.edges[each.edge][each.op] for instance in instances]
                    steps = op_steps(modules, (each.edge, each.op))
                    candidate = Candidate(each.edge, each.op, steps, scale)
                    readers.setdefault(core.arg.name, []).append(
                        (order[each.edge], position, candidate)
                    )
                    position += 1
    fresh = graph.fresh()
    blocks: dict[str, list[Node]] = {}
    cores: dict[tuple[str, str], tuple[object, bool]] = {}
    for value, found in readers.items():
        candidates = [candidate for _, _, candidate in sorted(found, key=lambda f: f[:2])]
        planner = Planner(value, candidates, passes, fresh)
        blocks[value] = planner.nodes
        cores.update(planner.cores)

    def visit(item):
        if isinstance(item, Term) and (item.edge, item.op) in cores:
            core, scaled = cores[(item.edge, item.op)]
            old = _core(item)
            expr = rewrite(item.expr, lambda inner: core if inner == old else inner)
            return attrs.evolve(item, expr=expr, scaled=scaled)
        return item

    nodes = tuple(
        attrs.evolve(node, expr=rewrite(node.expr, visit)) if node.kind == "combine" else node
        for node in graph.nodes
    )
    return insert_after(attrs.evolve(graph, nodes=nodes), blocks)


def accumulate(graph: Graph) -> Graph:
    """Every node's sum of several terms becomes one new tensor the others are added into in
    place (`torch.add(a, b).add_(c)`): a node costs one buffer, not one per `+`. In-place adds
    and scalar products on a fresh tensor save nothing for the backward."""
    nodes = tuple(
        attrs.evolve(node, expr=attrs.evolve(node.expr, accumulate=True))
        if isinstance(node.expr, Combine)
        else node
        for node in graph.nodes
    )
    return attrs.evolve(graph, nodes=nodes)
