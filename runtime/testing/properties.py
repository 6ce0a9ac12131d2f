"""Property checks of a search space, run under hypothesis, and the report `nasc test` prints.

Each `check_*` function checks one example (a shrink sequence, a genotype) and raises
`PropertyFailure`, located in the `.nas` source, when a property does not hold; `check_space`
runs them all under hypothesis and keeps the shrunk counterexample of each failing one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import SimpleNamespace

import attrs
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed

from nasc.dsl import Genotype, NascError, SpaceIR, format_space, parse_arch, parse_space
from nasc.dsl.genotype import genotype_strings
from nasc.runtime.testing.strategies import ShrinkSequence, genotypes, shrink_sequences

PROPERTIES = {
    "shrink-keeps-k": "every sequence of shrink steps keeps at least k live candidates in every "
    "comparison subset, and exactly k after the last step",
    "masks-only-lose": "a shrink step never brings back a discarded candidate",
    "genotypes-round-trip": "every genotype the subsets admit exports to a network that compiles "
    "and runs, keeps exactly its decisions, prints as .nas text that parses back, and whose "
    "NB201/DARTS strings read back as the same genotype",
    "supernet-equals-export": "the supernet restricted to a genotype computes what the exported "
    "standalone network computes on the same weights, with as many weights as its live ops",
}


class PropertyFailure(NascError):
    """A property that one example breaks; `span` and `path` say where in the space.

    Attributes:
        property: the name of the property, a key of `PROPERTIES`.
        example: the example, written out (a mask sequence or a genotype).
    """

    def __init__(self, prop: str, message: str, **kwargs):
        super().__init__(message, **kwargs)
        self.property = prop
        self.example: str | None = None


def _edge_path(space: SpaceIR, cell: str, edge) -> str:
    return f"{space.name}.{cell}.{edge.target}.edge[{edge.source}]"


def locate(space: SpaceIR, path: str | None):
    """The span in the space's own source of a dotted error path (`space.cell.node.edge[src]`):
    the edge, else the cell, else the network. Errors raised on exported text carry paths into
    that text; this points them back at the user's file."""
    parts = (path or "").split(".")
    cell = next((c for c in space.cells if len(parts) > 1 and c.name == parts[1]), None)
    if cell is None:
        return space.network.span
    if len(parts) > 3 and parts[3].startswith("edge["):
        key = f"{parts[3][5:-1]}->{parts[2]}"
        edge = next((e for e in cell.edges if e.key == key), None)
        if edge is not None:
            return edge.span
    return cell.span


def describe_genotype(space: SpaceIR, genotype: Genotype) -> str:
    """The genotype as lines `cell: edge=op+op, edge=-`, with its NB201/DARTS strings."""
    lines = [
        f"{cell}: " + ", ".join(f"{edge}={'+'.join(ops) or '-'}" for edge, ops in edges.items())
        for cell, edges in genotype.cells.items()
    ]
    try:
        strings = genotype_strings(space, genotype)
    except NascError:
        strings = {}
    lines += [f"{kind}: {text}" for kind, text in strings.items()]
    return "\n".join(lines)


# --- shrinking ------------------------------------------------------------------------------------


def check_shrinking(
    space: SpaceIR,
    sequence: ShrinkSequence,
    properties: tuple[str, ...] = ("shrink-keeps-k", "masks-only-lose"),
) -> None:
    """Run IS-DARTS' shrink steps with the sequence's F tables on fresh masks of the space.

    Raises:
        PropertyFailure: a subset with fewer than k live candidates after a step, or not exactly
            k after the last (`shrink-keeps-k`); a mask that gained a candidate
            (`masks-only-lose`). Its `example` lists what each step discarded.
    """
    import torch

    from nasc.compiler import ArchState
    from nasc.runtime.strategies.isdarts import shrink

    arch = ArchState(space)
    cells = {cell.name: cell for cell in space.used_cells()}
    lines = [f"{sequence.steps} shrink step{'s' if sequence.steps != 1 else ''}"]

    def fail(prop: str, message: str, **where) -> None:
        error = PropertyFailure(prop, message, **where)
        error.example = "\n".join(lines)
        raise error

    for step, scores in enumerate(sequence.scores):
        before = {cell: arch.mask(cell).clone() for cell in arch.choices}
        records = shrink(SimpleNamespace(arch=arch), scores, step, sequence.steps)
        gone = [
            f"{r['cell']}.{c['edge']}:{c['op']} (F={c['F']})"
            for r in records
            for c in r["candidates"]
            if c["discarded"]
        ]
        lines.append(f"step {step + 1}: discards {', '.join(gone) or 'nothing'}")
        for name, table in arch.choices.items():
            mask, cell = arch.mask(name), cells[name]
            revived = torch.nonzero(mask & ~before[name]).tolist()
            if revived and "masks-only-lose" in properties:
                row, column = revived[0]
                edge = cell.edge(table.edges[row])
                fail(
                    "masks-only-lose",
                    f"shrink step {step + 1} brought back {table.candidates[row][column]} on "
                    f"{name}.{edge.key}, discarded before",
                    span=edge.span,
                    path=_edge_path(space, name, edge),
                )
            flags = mask.tolist()  # indexing a tensor element by element is slow
            for subset, (k, members) in zip(cell.subsets, table.subsets):
                alive = sum(flags[r][c] for r, c in members)
                last = step == sequence.steps - 1
                if "shrink-keeps-k" in properties and (alive < k or (last and alive != k)):
                    live = [
                        f"{table.edges[r]}:{table.candidates[r][c]}"
                        for r, c in members
                        if flags[r][c]
                    ]
                    lines.append(f"live in {subset.label}: {', '.join(live) or 'nothing'}")
                    fail(
                        "shrink-keeps-k",
                        f"cell `{name}`, subset {subset.label}: {alive} live candidate"
                        f"{'s' if alive != 1 else ''} after shrink step {step + 1} of "
                        f"{sequence.steps}; it keeps "
                        + (f"exactly {k} at the end" if alive >= k else f"at least {k}"),
                        span=subset.span,
                        path=f"{space.name}.{name}.keep",
                        hint=f"the subset has {len(members)} candidates; shrinking can leave "
                        f"at most that many",
                    )


# --- exports --------------------------------------------------------------------------------------


def _input(network, seed: int = 1):
    import torch

    plan = network.plan
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, plan.channels, plan.size, plan.size, generator=generator)


def check_round_trip(
    space: SpaceIR,
    genotype: Genotype,
    overrides: Mapping[str, int] | None = None,
    export: Callable | None = None,
) -> None:
    """Export the genotype, run the network, print it as `.nas` and parse it back.

    Args:
        export: the exporter under test, with `nasc.compiler.export_network`'s signature (the
            default); property tests of nasc itself pass broken ones.

    Raises:
        PropertyFailure: `genotypes-round-trip`, at the edge whose decision the export lost.
    """
    import torch

    from nasc.compiler import catalog, export_network

    export = export or export_network
    prop = "genotypes-round-trip"
    network = export(space, genotype, overrides).eval()
    fixed = network.space
    decisions = _block_decisions(space)
    for cell in space.used_cells():
        # A block choice's decision becomes a plain block statement, not a cell: the output
        # comparison of `supernet-equals-export` checks those.
        if not cell.choices or cell.name in decisions:
            continue
        exported = next(
            (c for c in fixed.cells if c.name == cell.name), attrs.evolve(cell, edges=())
        )
        for edge in cell.choices:
            want = tuple(genotype.cells[cell.name][edge.key])
            found = next((e for e in exported.edges if e.key == edge.key), None)
            have = tuple(op for op in found.ops if op not in edge.ops) if found else ()
            if have != want and not (not want and have == ("none",)):
                raise PropertyFailure(
                    prop,
                    f"the exported network has {'+'.join(have) or 'no op'} on "
                    f"{cell.name}.{edge.key}, where the genotype keeps {'+'.join(want) or 'no op'}",
                    span=edge.span,
                    path=_edge_path(space, cell.name, edge),
                )
    with torch.no_grad():
        logits = network(_input(network))
    if isinstance(logits, tuple):
        logits = logits[0]
    if not torch.isfinite(logits).all():
        raise PropertyFailure(
            prop, "the exported network outputs non-finite values", span=space.network.span
        )
    text = format_space(fixed)
    try:
        again = parse_space(text, f"<{space.name} exported>", catalog=catalog())
    except NascError as error:
        raise PropertyFailure(
            prop,
            f"the exported .nas text does not parse: {error.message}",
            span=locate(space, error.path),
            path=error.path,
            hint=error.hint,
        ) from None
    if again != fixed or not again.is_fixed:
        raise PropertyFailure(
            prop,
            "the exported .nas text parses back to another architecture",
            span=space.network.span,
            hint="compare the space with `nasc export FILE --arch ... --format nas`: the "
            "printer and the parser disagree on it",
        )
    strings = {} if space.is_fixed else genotype_strings(space, genotype)  # nothing to decide
    for kind, string in strings.items():
        if parse_arch(space, string) != genotype:
            raise PropertyFailure(
                prop,
                f"the {kind} string `{string}` reads back as another genotype",
                span=space.network.span,
            )


def _block_decisions(space: SpaceIR) -> set[str]:
    """The names of the hidden one-edge cells that hold the network's block choices."""
    return {cell.name for choice in space.block_choices for cell in choice.cells}


def _parameter_count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def check_supernet_equals_export(
    net,
    genotype: Genotype,
    overrides: Mapping[str, int] | None = None,
    export: Callable | None = None,
) -> None:
    """Restrict the supernet to the genotype (`sum` mixing) and compare it with the network
    exported from its weights: the same live ops, as many weights, the same outputs in eval mode
    cell by cell.

    Raises:
        PropertyFailure: `supernet-equals-export`, at the edge that the export lacks, or at the
            first cell type whose outputs differ.
    """
    import torch

    from nasc.compiler import export_network

    export = export or export_network
    prop = "supernet-equals-export"
    space = net.space
    net.arch.set_mixing("sum")
    net.arch.restrict(genotype)
    exported = export(space, genotype, overrides, supernet=net).eval()
    net.eval()
    decisions = _block_decisions(space)
    everything = net.cells()
    cells = [cell for cell in everything if cell.cell_type not in decisions]
    twins = exported.cells()
    if len(cells) != len(twins):
        raise PropertyFailure(
            prop,
            f"the supernet places {len(cells)} cells, the exported network {len(twins)}",
            span=space.network.span,
        )
    twin_of = dict(zip(map(id, cells), twins))
    dead = 0
    for cell in everything:
        ir = space.cell(cell.cell_type)
        decided = genotype.cells.get(cell.cell_type, {})
        twin = twin_of.get(id(cell))
        for edge in ir.choices:
            for op in edge.candidates:
                if op not in decided.get(edge.key, ()):
                    dead += _parameter_count(cell.edges[edge.key][op])
                elif twin is None:  # a chosen block: the output comparison below checks it
                    continue
                elif edge.key not in twin.edges or op not in twin.edges[edge.key]:
                    raise PropertyFailure(
                        prop,
                        f"the exported network lacks {op} on {cell.cell_type}.{edge.key}, "
                        "which the genotype keeps",
                        span=edge.span,
                        path=_edge_path(space, cell.cell_type, edge),
                    )
    if exported.num_parameters() != net.num_parameters() - dead:
        raise PropertyFailure(
            prop,
            f"the exported network has {exported.num_parameters():,} weights, the supernet's "
            f"live ops {net.num_parameters() - dead:,}",
            span=space.network.span,
        )
    outputs: dict[int, list] = {0: [], 1: []}
    handles = [
        cell.register_forward_hook(lambda m, i, o, side=side: outputs[side].append(o))
        for side, network in enumerate((cells, twins))
        for cell in network
    ]
    try:
        with torch.no_grad():
            x = _input(net, seed=3)
            logits = [net(x), exported(x)]
    finally:
        for handle in handles:
            handle.remove()
    for index, (mine, theirs) in enumerate(zip(outputs[0], outputs[1])):
        scale = max(1.0, mine.abs().max().item())
        if not torch.allclose(mine, theirs, atol=1e-4 * scale, rtol=0):
            cell = cells[index]
            raise PropertyFailure(
                prop,
                f"cell {index} (`{cell.cell_type}`) computes other values in the exported network "
                f"(largest difference {(mine - theirs).abs().max().item():.3g})",
                span=space.cell(cell.cell_type).span,
                path=f"{space.name}.{cell.cell_type}",
            )
    scale = max(1.0, logits[0].abs().max().item())
    if not torch.allclose(logits[0], logits[1], atol=1e-4 * scale, rtol=0):
        raise PropertyFailure(
            prop, "the networks' cells agree but their outputs differ", span=space.network.span
        )


# --- running them all -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PropertyResult:
    """One property's outcome: `failure` is None when every example held."""

    name: str
    description: str
    examples: int
    failure: PropertyFailure | None = None
    counterexample: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None


@attrs.frozen(kw_only=True)
class Report:
    """The outcome of `check_space`."""

    space: str
    results: tuple[PropertyResult, ...] = attrs.field(converter=tuple)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)


def _falsify(space: SpaceIR, strategy, check: Callable, examples: int, seed: int):
    """Run `check` on up to `examples` draws; the shrunk failing example and its failure, or
    None. Hypothesis replays the minimal failing example last, so the last failure is it."""
    failures: list = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        # no database (nothing written into the user's folder) and no `explain` phase, which
        # reruns a shrunk example many times to say which parts of it matter
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(example):
        try:
            check(example)
        except PropertyFailure as error:
            failures.append((example, error))
            raise
        except Exception as error:  # a crash breaks the property as much as a wrong value
            if isinstance(error, NascError):
                failure = PropertyFailure(
                    "",
                    error.message,
                    span=locate(space, error.path) if error.path else error.span,
                    path=error.path,
                    hint=error.hint,
                )
            else:
                failure = PropertyFailure("", f"{type(error).__name__}: {error}")
            failures.append((example, failure))
            raise failure from error

    try:
        run()
    except Exception:  # PropertyFailure, or hypothesis' own (a flaky failure) after one
        if not failures:
            raise
        return failures[-1]
    return None


def check_space(
    space: SpaceIR,
    overrides: Mapping[str, int] | None = None,
    *,
    examples: int = 20,
    seed: int = 0,
    source: str | None = None,
    export: Callable | None = None,
    properties: tuple[str, ...] = tuple(PROPERTIES),
) -> Report:
    """Check the properties of `PROPERTIES` on a space, `examples` hypothesis examples each.

    Args:
        overrides: network parameters (`-D`), e.g. a small width to check quickly.
        seed: hypothesis' seed; a run is repeatable.
        source: the space's `.nas` text, to show the failing line under each failure.
        export: the exporter under test (default `nasc.compiler.export_network`).
        properties: which properties to check.

    Returns:
        one result per property, failures with hypothesis' shrunk counterexample.
    """
    import time

    import torch

    from nasc.compiler import compile_space

    started = time.perf_counter()
    space = space.for_values(overrides)  # block choices: one decision per instance of these values
    results = []
    supernet: list = []  # built once, for the first property that needs it

    def trained_supernet():
        if not supernet:
            state = torch.get_rng_state()
            torch.manual_seed(seed)
            net = compile_space(space, overrides, seed=seed)
            torch.set_rng_state(state)
            with torch.no_grad():  # BN running statistics off their initial values
                net.train()(_input(net, seed=7))
            supernet.append(net)
        return supernet[0]

    def shrinking(name):
        def check(sequence):
            check_shrinking(space, sequence, (name,))

        return shrink_sequences(space), check, lambda sequence, failure: failure.example

    def round_trip(name):
        def check(genotype):
            check_round_trip(space, genotype, overrides, export)

        return genotypes(space), check, lambda genotype, _: describe_genotype(space, genotype)

    def equivalence(name):
        net = trained_supernet()

        def check(genotype):  # `restrict` sets every mask anew
            check_supernet_equals_export(net, genotype, overrides, export)

        return genotypes(space), check, lambda genotype, _: describe_genotype(space, genotype)

    plans = {
        "shrink-keeps-k": shrinking,
        "masks-only-lose": shrinking,
        "genotypes-round-trip": round_trip,
        "supernet-equals-export": equivalence,
    }
    for name in properties:
        began = time.perf_counter()
        strategy, check, show = plans[name](name)
        found = _falsify(space, strategy, check, examples, seed)
        failure = counterexample = None
        if found is not None:
            example, failure = found
            failure.property = name
            if source is not None and failure.source is None:
                failure.source = source
            counterexample = show(example, failure)
        results.append(
            PropertyResult(
                name=name,
                description=PROPERTIES[name],
                examples=examples,
                failure=failure,
                counterexample=counterexample,
                seconds=time.perf_counter() - began,
            )
        )
    return Report(space=space.name, results=results, seconds=time.perf_counter() - started)


def render_report(report: Report) -> str:
    """The report as text: one line per property, and under a failing one its location, the
    source line, and the shrunk counterexample."""
    lines = []
    for result in report.results:
        mark = "ok  " if result.ok else "FAIL"
        lines.append(f"{mark} {result.name} ({result.seconds:.1f} s): {result.description}")
        if result.ok:
            continue
        lines += ["    " + line for line in result.failure.render().splitlines()]
        lines.append("    counterexample (shrunk by hypothesis):")
        lines += ["      " + line for line in (result.counterexample or "").splitlines()]
    failed = sum(not result.ok for result in report.results)
    count = len(report.results)
    lines.append(
        f"{report.space}: "
        + (f"{failed} of {count} properties fail" if failed else f"all {count} properties hold")
        + f" ({report.results[0].examples if count else 0} examples each, "
        f"{report.seconds:.1f} s)"
    )
    return "\n".join(lines)


__all__ = [
    "PROPERTIES",
    "PropertyFailure",
    "PropertyResult",
    "Report",
    "check_round_trip",
    "check_shrinking",
    "check_space",
    "check_supernet_equals_export",
    "describe_genotype",
    "locate",
    "render_report",
]
