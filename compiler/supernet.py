"""Lowering a `SpaceIR` into an `nn.Module`: the masked supernet, or, for a space with no choices
left, the standalone network.

    net = compile_space(load_space("nb201", catalog=catalog()))
    print(net.code)            # the generated forward of the network and of every cell type
    net.arch.discard("nb201_cell", [("x->n1", "none")])   # the next forward runs without it
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import torch
from torch import nn

from nasc.dsl import NascUsageError, SpaceIR
from nasc.dsl.ir import Cell
from nasc.dsl.macro import Plan, Stage, instantiate

from . import codegen
from .archstate import ArchState
from .graph import Graph
from .modules import FactorizedReduce, Fuse, Identity
from .ops import catalog, get_op
from .passes import DEFAULT_PASSES, PASSES
from .probe import check_python_ops
from .widths import Widths


@attrs.frozen(kw_only=True)
class CompileOptions:
    """How to build the network.

    Attributes:
        search: supernet conventions: BatchNorms inside cells are not affine, and `pool_bn`
            cells follow pooling with a BN. False builds the evaluation network (affine BNs).
        track_running_stats: cell BNs keep running statistics; False makes them use batch
            statistics in eval mode too (the IS-DARTS reference searches so).
        auxiliary: build the `aux` head; forward then returns (logits, aux logits or None).
        drop_path: compile drop-path calls after every non-identity op (set `drop_prob` on the
            cells to use them), as DARTS trains evaluation networks.
        passes: the optimisation passes run over the live ops before code generation, by name
            (see `nasc.compiler.passes.PASSES`); `()` generates one call per live op.
        channels_last: the network converts its input to the channels-last memory layout, so
            every convolution and pooling runs channels-last (on the CPU, oneDNN's average
            pooling is several times faster so).
        cuda_compile: on CUDA inputs, run the generated forward through `torch.compile` with
            this mode (`"reduce-overhead"` captures CUDA graphs, `"max-autotune-no-cudagraphs"`,
            `"default"`), compiled again for every mask version. Never used on the CPU, where
            compiling the NB201 supernet takes minutes, nor while a hook watches an op (the
            forward then runs eagerly, so the hook sees every call). None (the default)
            compiles nothing.
        partial_channels: PC-DARTS' partial channel connections: the candidates of a choice
            edge are built for 1/K of its channels and read only those; the rest bypass them
            and the channels are shuffled (`kernels.partial_channels`). 1 builds the plain
            supernet. Fixed ops and the evaluation network are unaffected.
        edge_normalisation: PC-DARTS' edge normalisation: a weight per choice edge, softmaxed
            over the choice edges into a node (`ArchState.edge_weights`).
    """

    search: bool = True
    track_running_stats: bool = True
    auxiliary: bool = False
    drop_path: bool = False
    passes: tuple[str, ...] = attrs.field(
        default=DEFAULT_PASSES, converter=tuple, validator=lambda _, __, v: _check_passes(v)
    )
    channels_last: bool = True
    cuda_compile: str | None = None
    partial_channels: int = attrs.field(default=1, validator=lambda _, __, v: _check_partial(v))
    edge_normalisation: bool = False


def _check_passes(names: tuple[str, ...]) -> None:
    unknown = [name for name in names if name not in PASSES]
    if unknown:
        raise NascUsageError(
            f"unknown compiler pass `{unknown[0]}`", hint=f"known passes: {', '.join(PASSES)}"
        )


def _check_partial(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise NascUsageError(
            f"--partial-channels {k}: must be a whole number of at least 1",
            hint="PC-DARTS uses 4 on CIFAR-10 and 2 on ImageNet; 1 is the plain supernet",
        )


def _global_hooks() -> bool:
    module = nn.modules.module
    return bool(
        module._global_forward_hooks
        or module._global_forward_pre_hooks
        or module._global_backward_hooks
        or module._global_backward_pre_hooks
    )


class CellModule(nn.Module):
    """One placed cell: adapters for its inputs and an op per (edge, candidate).

    Its forward is the code generated for its cell type (shared by every instance). An input
    that reads `from all` gets a list of outputs: `fuse[input]` brings each through its own
    adapter and sums them before the generated code runs (its `adapters` entry is then the
    identity), since the number of outputs differs between instances of one cell type.
    """

    def __init__(self, cell: Cell, stage: Stage, options: CompileOptions, defs: tuple = ()):
        super().__init__()
        self.cell_type = cell.name
        self.width = stage.width
        self.node_channels = dict(stage.node_channels)
        self.drop_prob = 0.0
        self.program = None
        self.plain_program = None  # one call per op, for when hooks watch the op modules
        self.make_plain = None  # builds `plain_program` on first need (None: `program` is plain)
        self.program_version = -1  # the ArchState version `program` was generated for
        affine = not options.search
        track = options.track_running_stats
        if cell.block is not None:
            # A block choice's candidates are blocks: built as a fixed block would be, so the
            # choice masked to one block is that block's network.
            affine, track = True, True
        self.adapters = nn.ModuleDict()
        self.fuse = nn.ModuleDict()
        self.fused_inputs = tuple((slot, cell.inputs[slot].name) for slot in stage.fused)
        fused = {name for _, name in self.fused_inputs}
        for slot, _, channels, stride, up in stage.reads():
            item = cell.inputs[slot]
            if not item.adapter:
                continue
            extra = {"up": up} if up > 1 else {}
            module = get_op(item.adapter, defs).build(
                channels, stage.width, stride, affine, track_running_stats=track, **extra
            )
            if item.name in fused:
                if item.name not in self.fuse:
                    self.fuse[item.name] = Fuse()
                    self.adapters[item.name] = Identity()
                self.fuse[item.name].append(module)
            else:
                self.adapters[item.name] = module
        inputs = set(cell.input_names)
        self.edges = nn.ModuleDict()
        # PC-DARTS' partial channels split a cell's mixed edges; a block choice runs whole blocks.
        partial = options.partial_channels if cell.block is None else 1
        for edge in cell.edges:
            stride = 2 if cell.reduction and edge.source in inputs else 1
            ops = nn.ModuleDict()
            if edge.is_choice and partial > 1:
                check_partial_edge(cell, edge, self.node_channels[edge.source], stage, partial)
            for op in (*edge.ops, *edge.candidates):
                entry = get_op(op, defs)
                split = partial if op in edge.candidates and edge.is_choice else 1
                module = entry.build(
                    self.node_channels[edge.source] // split,
                    stage.width // split,
                    stride,
                    affine,
                    track_running_stats=track,
                )
                if options.search and "pool_bn" in cell.flags and entry.pooling:
                    module = nn.Sequential(
                        module,
                        nn.BatchNorm2d(
                            stage.width // split, affine=False, track_running_stats=track
                        ),
                    )
                ops[op] = module
            self.edges[edge.key] = ops

    @property
    def named_ops(self) -> dict[str, dict[str, nn.Module]]:
        """Per edge, its op modules and every module inside them by path (`nor_conv_3x3`,
        `nor_conv_3x3.1`): how generated code reaches the modules it calls, by name."""
        table = self.__dict__.get("_named_ops")
        if table is None:
            table = {
                edge: {
                    name: module
                    for name, module in ops.named_modules(remove_duplicate=False)
                    if name
                }
                for edge, ops in self.edges.items()
            }
            self.__dict__["_named_ops"] = table
        return table

    def forward(self, *inputs):
        arch = self.__dict__.get("arch_state")
        if arch is not None and self.program_version != arch.version:
            raise RuntimeError(
                f"the masks of `{self.cell_type}` changed since its code was generated: "
                "call the supernet, or its recompile(), before calling a cell on its own"
            )
        *features, weights = inputs
        for position, name in self.fused_inputs:
            features[position] = self.fuse[name](features[position])
        program = self.program
        if self.make_plain is not None and self.hooked():
            if self.plain_program is None:
                self.plain_program = self.make_plain()
            program = self.plain_program
        return program(self, *features, w=weights)

    def hooked(self) -> bool:
        """Whether a hook watches an op module (or a module inside one), or every module.

        Optimised code computes shared and fused steps without calling each candidate's module,
        so a hook would miss calls or see a shared value; while one is registered, the cell runs
        the plain code, where every live candidate's module computes its own output. IS-DARTS'
        measurement relies on this.
        """
        watched = self.__dict__.get("_watched")
        if watched is None:
            watched = []
            for module in self.edges.modules():
                watched.extend(
                    (
                        module._forward_hooks,
                        module._forward_pre_hooks,
                        module._backward_hooks,
                        module._backward_pre_hooks,
                    )
                )
            self.__dict__["_watched"] = watched
        return any(watched) or _global_hooks()

    def __getstate__(self):
        # The generated program cannot be pickled; the supernet rebuilds it after loading.
        state = self.__dict__.copy()
        state["program"] = None
        state["plain_program"] = None
        state["make_plain"] = None
        state["program_version"] = -1
        state.pop("_watched", None)
        state.pop("_named_ops", None)
        return state

    def extra_repr(self) -> str:
        return f"cell_type={self.cell_type}, width={self.width}"


class RecurrentCellModule(CellModule):
    """One placed recurrent cell (docs/language.md, section 25): the cell's generated step,
    unrolled over the time axis of its inputs, (batch, length, features), carrying its states
    (`next h = h1`) from step t - 1 to step t. Its output is the sequence of the step outputs.

    Attributes:
        initial: the states at the first step, in the order of the cell's `next` statements,
            or None for zeros (as torch's recurrent layers start); language modelling carries
            the last batch's final states over, detached (truncated backpropagation).
        final: the states after the last step of the latest forward.
        carry: start each forward from the previous one's final states, detached (truncated
            backpropagation through time), when both ran in the same mode (training or
            evaluation) on the same batch size; from zeros otherwise.
    """

    def __init__(self, cell: Cell, stage: Stage, options: CompileOptions, defs: tuple = ()):
        super().__init__(cell, stage, options, defs)
        self.positions = cell.step_inputs
        self.state_slots = tuple(cell.input_names.index(name) for name in cell.state_names)
        self.state_channels = tuple(stage.node_channels[name] for name in cell.state_names)
        self.initial: tuple[torch.Tensor, ...] | None = None
        self.final: tuple[torch.Tensor, ...] | None = None
        self.carry = False
        self._carried: tuple[bool, tuple[torch.Tensor, ...]] | None = None

    def forward(self, *inputs):
        *sequences, weights = inputs
        batch, length = sequences[0].shape[:2]
        states = self.initial
        if states is None and self.carry and self._carried is not None:
            mode, carried = self._carried
            if mode == self.training and carried[0].shape[0] == batch:
                states = carried
        if states is None:
            states = tuple(sequences[0].new_zeros(batch, c) for c in self.state_channels)
        arguments: list = [None] * (len(self.positions) + len(self.state_slots))
        outputs = []
        for t in range(length):
            for position, sequence in zip(self.positions, sequences):
                arguments[position] = sequence[:, t]
            for slot, state in zip(self.state_slots, states):
                arguments[slot] = state
            out, states = super().forward(*arguments, weights)
            outputs.append(out)
        self.final = states
        if self.carry:
            self._carried = (self.training, tuple(state.detach() for state in states))
        return torch.stack(outputs, dim=1)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", recurrent"


def check_partial_channels(space, overrides: Mapping[str, int] | None, k: int) -> None:
    """Refuse a `--partial-channels K` that some choice edge of the search supernet cannot take,
    from the macro plan alone: before data is loaded or weights are built."""
    plan = instantiate(space, overrides, catalog(), phase="search")
    for stage in plan.stages:
        if stage.kind != "cell":
            continue
        cell = space.cell(stage.name)
        if cell.block is not None:  # a block choice runs whole blocks
            continue
        for edge in cell.choices:
            check_partial_edge(cell, edge, stage.node_channels[edge.source], stage, k)


def check_partial_edge(cell: Cell, edge, channels: int, stage: Stage, k: int) -> None:
    """A partial-channel edge passes the channels it does not mix straight through: it needs as
    many channels in as out, and a number of them that K divides."""
    where = f"{cell.name}.{edge.key} (stage {stage.index})"
    if channels != stage.width:
        raise NascUsageError(
            f"--partial-channels {k}: the choice edge {where} maps {channels} channels to "
            f"{stage.width}, so its bypassed channels cannot pass through",
            hint="partial channels need choice edges whose source has the cell's width",
        )
    if channels % k:
        raise NascUsageError(
            f"--partial-channels {k}: the choice edge {where} has {channels} channels, "
            f"which {k} does not divide",
            hint=f"pick K dividing {channels}, or change the width with -D",
        )


class Supernet(nn.Module):
    """A compiled space: stages in order, the architecture state, and generated forward code.

    Attributes:
        space: the space it was compiled from.
        plan: the resolved macro (channels and resolutions of every stage).
        arch: the masks and architecture parameters of its cell types.
    """

    def __init__(
        self,
        space: SpaceIR,
        plan: Plan,
        options: CompileOptions,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        check_python_ops(space, plan)  # before anything is built: a plugin op of the wrong shape
        self.space = space
        self.plan = plan
        self.options = options
        self.arch = ArchState(space, generator, options.edge_normalisation)
        self.stages = nn.ModuleList(self.build_stage(stage) for stage in plan.stages)
        # Choices among widths: entangled weights sliced to the live widths (compiler/widths.py).
        self.widths = Widths(self) if space.width_choices else None
        tie_weights(self)
        # oneDNN's backward of a strided 1x1 conv on channels-last input with few input channels
        # corrupts the heap (docs/compiler.md); FactorizedReduce runs its own on NCHW, and a
        # network with any other runs NCHW throughout.
        self.channels_last = (
            options.channels_last and not plan.sequence and not strided_pointwise_convs(self)
        )
        self._compiled_version = -1
        self._forward = None
        self._cuda_forward = None  # `torch.compile` of `_forward`, built on first CUDA use
        self._sources: dict[str, str] = {}
        self._graphs: dict[str, Graph] = {}
        self.recompile()

    def build_stage(self, stage) -> nn.Module:
        """The module of one placed stage (a cell, or a stem, block or head op)."""
        space, options = self.space, self.options
        if stage.kind == "cell":
            cell = space.cell(stage.name)
            kind = RecurrentCellModule if cell.recurrent else CellModule
            module = kind(cell, stage, options, space.opdefs)
        elif stage.kind == "aux" and not options.auxiliary:
            module = nn.Identity()  # keeps stage indices aligned; never called
        elif (
            stage.kind == "aux"
            and get_op(stage.name, space.opdefs).sizes
            and (stage.in_size not in get_op(stage.name, space.opdefs).sizes)
        ):
            sizes = get_op(stage.name, space.opdefs).sizes
            raise NascUsageError(
                f"the auxiliary head `{stage.name}` reads {stage.in_size}x{stage.in_size} "
                f"features at stage {stage.index}; it works at "
                f"{' or '.join(f'{s}x{s}' for s in sizes)}",
                hint="train without it (--auxiliary-weight 0), or on images of the size the "
                "network was designed for",
            )
        else:
            # Stems, blocks and heads sit outside the cells: their BNs are always affine.
            module = get_op(stage.name, space.opdefs).build(
                stage.in_channels[0], stage.width, stage.stride, True
            )
        return module

    def recompile(self) -> None:
        """Regenerate the forward code from the current masks and mixing mode. Cell types whose
        code is the same share one function, printed once (the others name it)."""
        sources = {}
        programs = {}
        plain = {}
        passes = self.options.passes
        if self.widths is not None:
            # Sliced layers run one call per op: fused steps would read their whole weights.
            passes = ()
            self.widths.apply()
        groups: dict[str, list[tuple[Cell, int, str]]] = {}  # by body: (cell, partial, source)
        self._graphs = {}
        for cell in self.space.used_cells():
            if cell.widths:  # a choice among widths sizes layers; it has no code of its own
                continue
            instances = [m for m in self.cells() if m.cell_type == cell.name]
            partial = self.options.partial_channels if cell.block is None else 1
            graph = codegen.cell_graph(
                cell,
                self.arch,
                self.options.drop_path,
                passes,
                instances,
                self.space.opdefs,
                partial,
            )
            self._graphs[cell.name] = graph
            source = codegen.print_graph(graph)
            groups.setdefault(codegen.body(source), []).append((cell, partial, source))
        for members in groups.values():
            first, _, source = members[0]
            name = self._graphs[first.name].function
            if len(members) > 1:
                names = ", ".join(f"`{cell.name}`" for cell, _, _ in members)
                source = source.replace(f"Cell `{first.name}`", f"Cells {names}", 1)
            program = codegen.compile_source(source, name, first.name)
            aliases = [f"{self._graphs[cell.name].function} = {name}\n" for cell, _, _ in members]
            sources[first.name] = source + "".join(aliases[1:])
            for cell, partial, _ in members:
                programs[cell.name] = program
                # The plain code is generated only when a hook asks for it: masks change at
                # every step of a sampling strategy, and most steps are never watched.
                plain[cell.name] = (
                    self._plain_maker(cell, partial, source, programs) if passes else None
                )
        for module in self.stages:
            if isinstance(module, CellModule):
                module.program = programs[module.cell_type]
                module.plain_program = None
                module.make_plain = plain[module.cell_type]
                module.__dict__.pop("_watched", None)
                module.__dict__.pop("_named_ops", None)
                module.program_version = self.arch.version
                # A plain reference, not a submodule: the cell checks its code is current.
                module.__dict__["arch_state"] = self.arch
        source = codegen.network_source(self)
        self._forward = codegen.compile_source(source, "forward", self.space.name)
        sources["<network>"] = source
        self._sources = sources
        self._compiled_version = self.arch.version
        self._cuda_forward = None  # the masks changed: compile again on the next CUDA call

    def _plain_maker(self, cell, partial: int, source: str, programs: dict):
        """A function that generates and compiles, once, the plain (pass-free) code of a cell
        type under the current masks; the optimised program when the passes changed nothing."""
        made = []

        def make():
            if not made:
                name, text = codegen.cell_source(
                    cell, self.arch, self.options.drop_path, defs=self.space.opdefs,
                    partial=partial,
                )  # fmt: skip
                same = codegen.body(text) == codegen.body(source)
                made.append(
                    programs[cell.name]
                    if same
                    else codegen.compile_source(text, name, f"{cell.name} plain")
                )
            return made[0]

        return make

    def graph(self, cell_type: str) -> Graph:
        """The op graph of a cell type's current forward code (`nasc.compiler.graph`)."""
        self._sync()
        return self._graphs[cell_type]

    @property
    def code(self) -> str:
        """The generated Python of the network and of every cell type."""
        self._sync()
        return "\n".join(self._sources.values())

    def _sync(self) -> None:
        if self._compiled_version != self.arch.version:
            self.recompile()

    def forward(self, image: torch.Tensor):
        self._sync()
        if self.widths is not None:
            self.widths.set_weights()
        mode = self.options.cuda_compile
        # A hook on an op (IS-DARTS' measurement, the latency profile) must see each candidate
        # compute its own output: compiled code and CUDA graph replays call no hooks, so a
        # watched network runs eagerly.
        if mode is not None and image.is_cuda and not self.watched():
            if self._cuda_forward is None:
                self._cuda_forward = torch.compile(self._forward, mode=mode, dynamic=False)
            if mode == "reduce-overhead":
                # Each step's outputs live in the graph's own memory until the next step.
                torch.compiler.cudagraph_mark_step_begin()
            return self._cuda_forward(self, image)
        return self._forward(self, image)

    def watched(self) -> bool:
        """Whether a hook watches an op module of some cell (see `CellModule.hooked`)."""
        return any(cell.hooked() for cell in self.cells())

    def weights(self) -> list[nn.Parameter]:
        """The network weights, without the architecture parameters."""
        arch = {id(p) for p in self.arch.parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def num_parameters(self) -> int:
        """Weights of the network (architecture parameters and the unused aux head excluded).

        With choices among widths, the weights the current masks run: each layer's slice at the
        largest live width of every choice (one live width: the network of those widths), and
        of an op built in several structures, the one that runs.
        """
        if self.widths is not None:
            self._sync()
            return self.widths.live_parameters()
        return sum(p.numel() for p in self.weights())

    def cells(self) -> list[CellModule]:
        return [module for module in self.stages if isinstance(module, CellModule)]

    def set_drop_prob(self, probability: float) -> None:
        """The drop-path probability of every cell (needs `CompileOptions(drop_path=True)`)."""
        for cell in self.cells():
            cell.drop_prob = float(probability)

    def __getstate__(self):
        # Generated functions cannot be pickled; they are rebuilt from the masks after loading.
        state = self.__dict__.copy()
        state["_forward"] = None
        state["_cuda_forward"] = None
        state["_compiled_version"] = -1
        return state


def tie_weights(net: Supernet) -> None:
    """Share the embedding's weight with a head marked `tied` (docs/language.md, section 25).

    Raises:
        NascUsageError: the network has no embedding, or its size differs from the head's.
    """
    for stage, module in zip(net.plan.stages, net.stages):
        if stage.kind not in ("head", "aux") or not get_op(stage.name, net.space.opdefs).info.tied:
            continue
        embeddings = [m for m in net.stages.modules() if isinstance(m, nn.Embedding)]
        linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
        where = f"the head `{stage.name}` of `{net.space.name}`"
        if not embeddings or len(linears) != 1:
            raise NascUsageError(
                f"{where} is `tied`, but the network has no embedding or the head no single "
                "dense layer",
                hint="tie a head that is one `dense` to a network that starts with `embedding`",
            )
        embedding, linear = embeddings[0], linears[0]
        if embedding.weight.shape != linear.weight.shape:
            tokens, width = embedding.weight.shape
            raise NascUsageError(
                f"{where} is `tied` to an embedding of {tokens} tokens x {width} features, but "
                f"maps {linear.in_features} features to {linear.out_features} scores",
                hint="a tied decoder reads as many features as the embedding makes, and scores "
                "each token of the vocabulary: place the last cell at the embedding's width",
            )
        linear.weight = embedding.weight


def strided_pointwise_convs(net: nn.Module) -> list[str]:
    """The 1x1 convolutions with a stride, outside FactorizedReduce (which guards its own)."""
    guarded = {
        id(conv)
        for module in net.modules()
        if isinstance(module, FactorizedReduce)
        for conv in module.modules()
    }
    return [
        name
        for name, module in net.named_modules()
        if isinstance(module, nn.Conv2d)
        and id(module) not in guarded
        and module.kernel_size == (1, 1)
        and module.stride != (1, 1)
    ]


def compile_space(
    space: SpaceIR,
    overrides: Mapping[str, int] | None = None,
    options: CompileOptions | None = None,
    *,
    seed: int | None = None,
) -> Supernet:
    """Compile a linted space into a network.

    Args:
        overrides: `-D` parameter values.
        options: search or evaluation conventions; see `CompileOptions`.
        seed: seeds the architecture parameters' initialisation (weights follow torch's RNG).
    """
    options = options or CompileOptions()
    space = space.for_values(overrides)
    plan = instantiate(space, overrides, catalog(), phase="search" if options.search else "train")
    generator = None
    if seed is not None:
        generator = torch.Generator().manual_seed(seed)
    return Supernet(space, plan, options, generator)


def example_input(plan: Plan, batch: int = 2, length: int = 1, device=None) -> torch.Tensor:
    """Zeros of the network's input: images (batch, channels, size, size), token ids
    (batch, length) or sequences of vectors (batch, length, features)."""
    if plan.tokens:
        return torch.zeros(batch, length, dtype=torch.long, device=device)
    if plan.sequence:
        return torch.zeros(batch, length, plan.channels, device=device)
    return torch.zeros(batch, plan.channels, plan.size, plan.size, device=device)


def count_flops(net: nn.Module, channels: int, size: int) -> int:
    """Multiply-accumulates of convolutions and linear layers for one image (as NAS papers
    report FLOPs), measured by running the network once in eval mode."""
    total = 0

    def conv_hook(module, inputs, output):
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * (module.in_channels // module.groups) * kernel

    def linear_hook(module, inputs, output):
        nonlocal total
        total += output.numel() * module.in_features

    def transposed_hook(module, inputs, output):
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1]
        total += inputs[0].numel() * (module.out_channels // module.groups) * kernel

    handles = []
    for module in net.modules():
        if isinstance(module, nn.ConvTranspose2d):
            handles.append(module.register_forward_hook(transposed_hook))
        elif isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    plan = getattr(net, "plan", None)
    example = (
        example_input(plan, 2, device=device)
        if plan is not None and plan.sequence
        else torch.zeros(2, channels, size, size, device=device)
    )
    try:
        with torch.no_grad():
            net(example)
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)
    return total // 2
