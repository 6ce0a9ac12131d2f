"""Circuit spaces: the syntax of `gates` and `circuit` declarations, and their plan (the gates
each placeholder may apply, for given parameter values), with located errors.

A circuit space is a second kind of `.nas` file beside networks of cells; docs/circuits.md
teaches it. It knows nothing of torch: `compiler/circuits.py` simulates a plan.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

import attrs
from lark import Transformer, v_args

from . import ast
from .errors import NasSemanticError, Span
from .ir import Network, resolve_params

# name -> (qubits it acts on, whether it has an angle). `id` applies nothing.
GATES: dict[str, tuple[int, bool]] = {
    "id": (1, False),
    "h": (1, False),
    "x": (1, False),
    "y": (1, False),
    "z": (1, False),
    "s": (1, False),
    "t": (1, False),
    "rx": (1, True),
    "ry": (1, True),
    "rz": (1, True),
    "cnot": (2, False),
    "cz": (2, False),
    "swap": (2, False),
    "rxx": (2, True),
    "ryy": (2, True),
    "rzz": (2, True),
}
# Target patterns: one candidate per target, or every target at once after `all`.
PATTERNS = {"each": 1, "chain": 2, "ring": 2, "pairs": 2, "edges": 2}
GRAPHS = ("regular", "cycle", "complete")
MAX_QUBITS = 16  # a statevector of 2**16 amplitudes per drawn structure is the useful limit


def _tuple(value) -> tuple:
    return tuple(value)


def _span_field():
    return attrs.field(default=None, eq=False, repr=False)


# --- syntax --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class GateSpec:
    """`GATE on TARGET [shared]`: one gate on a qubit or a pair, a pattern of targets, or (with
    `layer`, written `on all`) every target of a pattern at once. `target` is None for a bare
    `id` and for `on all` (every qubit)."""

    gate: str
    target: ast.Expr | tuple[ast.Expr, ast.Expr] | None = None
    layer: bool = False
    shared: bool = False
    span: Span | None = _span_field()

    @property
    def pattern(self) -> str | None:
        """The pattern word the target names (`each`, `chain`, ...), if it is one."""
        if isinstance(self.target, ast.Ref) and self.target.name in PATTERNS:
            return self.target.name
        return None


@attrs.frozen(kw_only=True)
class GateSetDecl:
    """`gates NAME = {spec, ...}`: a pool of candidates that placeholders name."""

    name: str
    specs: tuple[GateSpec, ...] = attrs.field(converter=_tuple)
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class PlaceDecl:
    """`place [LABEL =] POOL`: a placeholder that applies one candidate of the pool."""

    label: str | None
    gateset: str | None = None
    specs: tuple[GateSpec, ...] = attrs.field(default=(), converter=_tuple)
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class ApplyDecl:
    """`apply SPEC`: fixed gates (every target of a pattern, in order)."""

    spec: GateSpec
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class RepeatDecl:
    """`repeat COUNT { ... }`: the body COUNT times; each placeholder decides per repetition."""

    count: ast.Expr
    body: tuple = attrs.field(converter=_tuple)
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class TaskDecl:
    """`task NAME` or `task NAME(key = value, ...)`: what the circuit is searched for."""

    name: str
    kwargs: tuple[tuple[str, ast.Expr], ...] = attrs.field(default=(), converter=_tuple)
    positional: int = 0
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class GraphDecl:
    """`graph regular(3, seed = 0)`: the problem graph that the `edges` pattern reads."""

    call: ast.CallDecl
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class NoiseDecl:
    """`noise depolarizing(0.01)`: the device noise the circuit is simulated and designed with."""

    call: ast.CallDecl
    span: Span | None = _span_field()


@attrs.frozen(kw_only=True)
class CircuitDecl:
    """`circuit NAME(qubits = N, ...) { statements }`."""

    name: str
    params: tuple[ast.ParamDecl, ...] = attrs.field(converter=_tuple)
    body: tuple = attrs.field(converter=_tuple)
    span: Span | None = _span_field()


@v_args(meta=True, inline=True)
class CircuitTransformer(Transformer):
    """The parser's rules for circuits (mixed into `syntax._ToAst`)."""

    def gate_bare(self, meta, name):
        return GateSpec(gate=str(name), span=self._s(meta))

    def gate_on(self, meta, name, target, shared):
        return GateSpec(gate=str(name), target=target, shared=bool(shared), span=self._s(meta))

    def gate_all(self, meta, name, target, shared):
        return GateSpec(
            gate=str(name), target=target, layer=True, shared=bool(shared), span=self._s(meta)
        )

    def target_one(self, meta, expr):
        return expr

    def target_pair(self, meta, first, second):
        return (first, second)

    def gateset(self, meta, name, *specs):
        return GateSetDecl(name=str(name), specs=[s for s in specs if s], span=self._s(meta))

    def gates_named(self, meta, name):
        return {"gateset": str(name)}

    def gates_inline(self, meta, *specs):
        return {"specs": [spec for spec in specs if spec is not None]}

    def place_stmt(self, meta, label, choice):
        return PlaceDecl(label=str(label) if label else None, span=self._s(meta), **choice)

    def apply_stmt(self, meta, spec):
        return ApplyDecl(spec=spec, span=self._s(meta))

    def circuit_repeat(self, meta, count, *body):
        return RepeatDecl(count=count, body=[s for s in body if s is not None], span=self._s(meta))

    def task_name(self, meta, name):
        return TaskDecl(name=str(name), span=self._s(meta))

    def task_call(self, meta, call):
        return TaskDecl(
            name=call.op, kwargs=call.kwargs, positional=len(call.args), span=self._s(meta)
        )

    def graph_stmt(self, meta, call):
        return GraphDecl(call=call, span=self._s(meta))

    def noise_stmt(self, meta, call):
        return NoiseDecl(call=call, span=self._s(meta))

    def circuit(self, meta, name, *rest):
        params = [item for item in rest if isinstance(item, ast.ParamDecl)]
        body = [item for item in rest if item is not None and not isinstance(item, ast.ParamDecl)]
        return CircuitDecl(name=str(name), params=params, body=body, span=self._s(name))


# --- the plan: concrete gates for given parameter values -----------------------------------------


@attrs.frozen(kw_only=True)
class Gate:
    """One gate application; `param` indexes its candidate's angles (None: no angle)."""

    gate: str
    qubits: tuple[int, ...] = attrs.field(converter=_tuple)
    param: int | None = None


@attrs.frozen(kw_only=True)
class Candidate:
    """What a placeholder may apply: `name` (`rx@2`, `cnot@0-1`, `rx@all`, `id`) and its gates;
    `spec` is its text with explicit targets (what an exported fixed circuit writes)."""

    name: str
    gates: tuple[Gate, ...] = attrs.field(converter=_tuple)
    params: int
    spec: GateSpec


@attrs.frozen(kw_only=True)
class Slot:
    """A placeholder (`choice`) or fixed gates, in circuit order."""

    label: str
    candidates: tuple[Candidate, ...] = attrs.field(converter=_tuple)
    choice: bool
    span: Span | None = _span_field()

    def index(self, name: str) -> int:
        return [candidate.name for candidate in self.candidates].index(name)


@attrs.frozen(kw_only=True)
class CircuitPlan:
    """A circuit space for given parameter values: qubits, slots, task and graph."""

    name: str
    qubits: int
    slots: tuple[Slot, ...] = attrs.field(converter=_tuple)
    task: str | None = None
    task_args: Mapping[str, float] = attrs.field(factory=dict)
    edges: tuple[tuple[int, int], ...] = attrs.field(default=(), converter=_tuple)
    values: Mapping[str, int] = attrs.field(factory=dict)
    noise: float = 0.0  # depolarising probability per qubit after every gate (see NOISES)

    @property
    def choices(self) -> tuple[Slot, ...]:
        return tuple(slot for slot in self.slots if slot.choice)

    def architectures(self) -> int:
        return math.prod(len(slot.candidates) for slot in self.choices)


@attrs.frozen(kw_only=True)
class CircuitSpace:
    """A whole circuit file: its gate pools and its circuit (the IR `nasc check` reads)."""

    gatesets: tuple[GateSetDecl, ...] = attrs.field(converter=_tuple)
    circuit: CircuitDecl
    file: str = attrs.field(default="<string>", eq=False)
    preset: None = None  # circuits have no hyperparameter presets; `nasc check` reads this
    preset_span: None = None

    @property
    def name(self) -> str:
        return self.circuit.name

    @property
    def network(self) -> Network:
        """The header as a `Network` with no statements (parameters resolve as a network's)."""
        return Network(name=self.name, params=self.circuit.params, items=(), span=self.circuit.span)

    def plan(self, overrides: Mapping[str, int] | None = None) -> CircuitPlan:
        """The concrete circuit for these parameter values.

        Raises:
            NasSemanticError: a qubit out of range, a gate on the wrong number of qubits, an
                unknown gate, pool, pattern, graph or parameter, two candidates alike, ...
        """
        return _Planner(self, resolve_params(self, overrides)).plan()

    def for_values(self, overrides: Mapping[str, int] | None) -> CircuitSpace:
        if not overrides:
            return self
        values = resolve_params(self, overrides)
        params = [
            attrs.evolve(param, default=ast.Num(value=values[param.name]))
            for param in self.circuit.params
        ]
        return attrs.evolve(self, circuit=attrs.evolve(self.circuit, params=params))

    @property
    def is_fixed(self) -> bool:
        return not self.plan().choices

    def architectures(self) -> int:
        return self.plan().architectures()

    def decide(self, decisions: Mapping[str, str]) -> CircuitSpace:
        """The fixed circuit that applies the decided candidate at every placeholder (the `id`
        candidate applies nothing and is left out).

        Raises:
            NasSemanticError: a placeholder without a decision, or a decision not among its
                candidates.
        """
        plan = self.plan()
        body: list = []
        for slot in plan.slots:
            if slot.choice:
                name = decisions.get(slot.label)
                known = [candidate.name for candidate in slot.candidates]
                if name not in known:
                    raise NasSemanticError(
                        f"placeholder `{slot.label}` has no decision among its candidates "
                        f"(got {name!r})",
                        span=slot.span,
                        path=f"{self.name}.{slot.label}",
                        hint=f"its candidates: {', '.join(known)}",
                    )
                candidate = slot.candidates[slot.index(name)]
            else:
                candidate = slot.candidates[0]
            if candidate.gates:
                body.append(ApplyDecl(spec=candidate.spec))
        extras = [
            item for item in self.circuit.body if isinstance(item, (TaskDecl, GraphDecl, NoiseDecl))
        ]
        params = [ast.ParamDecl(name="qubits", default=ast.Num(value=plan.qubits))]
        circuit = CircuitDecl(name=self.name, params=params, body=[*extras, *body])
        return CircuitSpace(gatesets=(), circuit=circuit, file=self.file)


def lower_circuit(module: ast.Module) -> CircuitSpace:
    """The circuit space of a parsed file that declares a `circuit`.

    Raises:
        NasSemanticError: two circuits, a network beside a circuit, two pools of one name.
    """
    circuits = [item for item in module.items if isinstance(item, CircuitDecl)]
    if len(circuits) > 1:
        raise NasSemanticError(
            f"the file declares {len(circuits)} circuits; a space has exactly one",
            span=circuits[1].span,
            hint="move the other circuits into files of their own",
        )
    others = [
        item
        for item in module.items
        if not isinstance(item, (CircuitDecl, GateSetDecl, ast.PresetDecl))
    ]
    if others:
        raise NasSemanticError(
            "a circuit file declares gate pools and one circuit, not ops, cells or networks",
            span=getattr(others[0], "span", None),
            hint="put networks of cells in a .nas file of their own",
        )
    pools = [item for item in module.items if isinstance(item, GateSetDecl)]
    seen: set[str] = set()
    for pool in pools:
        if pool.name in seen:
            raise NasSemanticError(
                f"two gate pools named `{pool.name}`",
                span=pool.span,
                path=f"{circuits[0].name}.gates.{pool.name}",
                hint="rename one of them",
            )
        seen.add(pool.name)
    space = CircuitSpace(gatesets=pools, circuit=circuits[0], file=module.file)
    space.plan()  # every error a default plan has, located, before anything is built
    return space


def is_circuit(module: ast.Module) -> bool:
    """Whether a parsed file declares a circuit (rather than a network of cells)."""
    return any(isinstance(item, CircuitDecl) for item in module.items)


class _Planner:
    """Walks a circuit's statements for one set of parameter values."""

    def __init__(self, space: CircuitSpace, values: dict[str, int]):
        self.space = space
        self.values = values
        self.name = space.name
        self.slots: list[Slot] = []
        self.counts = {"p": 0, "a": 0}
        self.edges: tuple[tuple[int, int], ...] | None = None
        self.task: TaskDecl | None = None
        self.noise: NoiseDecl | None = None

    def plan(self) -> CircuitPlan:
        circuit = self.space.circuit
        if "qubits" not in self.values:
            raise NasSemanticError(
                f"circuit `{self.name}` has no `qubits` parameter",
                span=circuit.span,
                path=f"{self.name}.params",
                hint=f"declare it in the header: `circuit {self.name}(qubits = 4)`",
            )
        self.qubits = self.values["qubits"]
        if self.qubits > MAX_QUBITS:
            raise NasSemanticError(
                f"{self.qubits} qubits; nasc simulates at most {MAX_QUBITS}",
                span=next(p.span for p in circuit.params if p.name == "qubits"),
                path=f"{self.name}.params.qubits",
                hint="a statevector doubles with every qubit; search on fewer",
            )
        for item in circuit.body:  # the graph first: `edges` may come before the statement
            if isinstance(item, GraphDecl):
                self._once(self.edges, item, "graph", "a circuit has one problem graph")
                self.edges = self._graph(item)
        self._walk(circuit.body, suffix="")
        task_args = {}
        if self.task is not None:
            task_args = {key: self._number(value, f"task.{key}") for key, value in self.task.kwargs}
        return CircuitPlan(
            name=self.name,
            qubits=self.qubits,
            slots=self.slots,
            task=self.task.name if self.task else None,
            task_args=task_args,
            edges=self.edges or (),
            values=self.values,
            noise=self._noise(self.noise) if self.noise else 0.0,
        )

    def _walk(self, body, suffix: str) -> None:
        for item in body:
            if isinstance(item, PlaceDecl):
                self._place(item, suffix)
            elif isinstance(item, ApplyDecl):
                self.counts["a"] += 1
                label = f"a{self.counts['a']}"
                candidate = self._candidate(item.spec, f"{self.name}.{label}", layer=True)
                self.slots.append(Slot(label=label, candidates=[candidate], choice=False))
            elif isinstance(item, RepeatDecl):
                count = self._int(item.count, "the repeat count", "repeat")
                if count < 1:
                    raise NasSemanticError(
                        f"the repeat count is {count}; it must be at least 1",
                        span=item.span,
                        path=f"{self.name}.repeat",
                        hint="leave the repeat out for no repetition",
                    )
                for index in range(1, count + 1):
                    self._walk(item.body, f"{suffix}_{index}")
            elif isinstance(item, TaskDecl):
                if self.task is not None:
                    raise NasSemanticError(
                        "the circuit names two tasks",
                        span=item.span,
                        path=f"{self.name}.task",
                        hint="keep one `task` line",
                    )
                if item.positional:
                    raise NasSemanticError(
                        f"the arguments of task `{item.name}` must be named",
                        span=item.span,
                        path=f"{self.name}.task",
                        hint=f"write e.g. `task {item.name}(field = 1.0)`",
                    )
                self.task = item
            elif isinstance(item, NoiseDecl):
                hint = "a circuit runs on one device: keep one `noise` line"
                self._once(self.noise, item, "noise", hint)
                self.noise = item

    def _once(self, earlier, item, keyword: str, hint: str) -> None:
        """Refuse a second statement of a kind the circuit has one of (`graph`, `noise`)."""
        if earlier is not None:
            raise NasSemanticError(
                f"the circuit has two `{keyword}` statements",
                span=item.span,
                path=f"{self.name}.{keyword}",
                hint=hint,
            )

    def _place(self, item: PlaceDecl, suffix: str) -> None:
        if item.label is not None:
            label = f"{item.label}{suffix}"
        else:
            self.counts["p"] += 1
            label = f"p{self.counts['p']}"
        path = f"{self.name}.{label}"
        if any(slot.label == label for slot in self.slots):
            raise NasSemanticError(
                f"two placeholders named `{label}`",
                span=item.span,
                path=path,
                hint="give each placeholder its own label",
            )
        specs = item.specs
        if item.gateset is not None:
            pool = next((p for p in self.space.gatesets if p.name == item.gateset), None)
            if pool is None:
                known = ", ".join(p.name for p in self.space.gatesets) or "none"
                raise NasSemanticError(
                    f"unknown gate pool `{item.gateset}`",
                    span=item.span,
                    path=path,
                    hint=f"declare it with `gates {item.gateset} = {{...}}`; known pools: {known}",
                )
            specs = pool.specs
            path = f"{path}[{pool.name}]"
        candidates: list[Candidate] = []
        for spec in specs:
            candidates.extend(self._candidates(spec, path))
        names: dict[str, Candidate] = {}
        for candidate in candidates:
            if candidate.name in names:
                raise NasSemanticError(
                    f"the candidate `{candidate.name}` appears twice in placeholder `{label}`",
                    span=candidate.spec.span,
                    path=f"{path}.{candidate.name}",
                    hint="each candidate is listed once; patterns such as `each` already "
                    "give one candidate per target",
                )
            names[candidate.name] = candidate
        self.slots.append(Slot(label=label, candidates=candidates, choice=True, span=item.span))

    # --- one gate spec -----------------------------------------------------------------------

    def _candidates(self, spec: GateSpec, path: str) -> list[Candidate]:
        """A placeholder's candidates from one spec: one per target of a pattern."""
        self._check_gate(spec, path)
        if spec.pattern is None or spec.layer:
            return [self._candidate(spec, path, layer=False)]
        targets = self._targets(spec, path)
        return [
            self._candidate(attrs.evolve(spec, target=_literal(target)), path, layer=False)
            for target in targets
        ]

    def _candidate(self, spec: GateSpec, path: str, layer: bool) -> Candidate:
        """One candidate: its gates. With `layer` (an `apply`), a pattern is every target."""
        self._check_gate(spec, path)
        arity, angle = GATES[spec.gate]
        if spec.target is None and not spec.layer:  # a bare `id`
            return Candidate(name="id", gates=(), params=0, spec=spec)
        if spec.pattern is not None or spec.target is None:
            targets = self._targets(spec, path)
            kind = spec.pattern or "all"
            name = f"{spec.gate}@{kind}"
            if spec.shared:
                name += ":shared"
            spec = spec if spec.layer else attrs.evolve(spec, layer=True)
        else:
            targets = [self._explicit(spec, path)]
            name = f"{spec.gate}@{'-'.join(map(str, targets[0]))}"
        if spec.gate == "id":
            return Candidate(name="id", gates=(), params=0, spec=GateSpec(gate="id"))
        gates = []
        for number, qubits in enumerate(targets):
            param = (0 if spec.shared else number) if angle else None
            gates.append(Gate(gate=spec.gate, qubits=qubits, param=param))
        params = (1 if spec.shared else len(gates)) if angle else 0
        return Candidate(name=name, gates=gates, params=params, spec=spec)

    def _check_gate(self, spec: GateSpec, path: str) -> None:
        where = f"{path}.{spec.gate}"
        if spec.gate not in GATES:
            raise NasSemanticError(
                f"unknown gate `{spec.gate}`",
                span=spec.span,
                path=where,
                hint=f"known gates: {', '.join(GATES)}",
            )
        arity, angle = GATES[spec.gate]
        if spec.target is None and not spec.layer and spec.gate != "id":
            raise NasSemanticError(
                f"the gate `{spec.gate}` needs its qubits",
                span=spec.span,
                path=where,
                hint=f"write e.g. `{spec.gate} on {'0' if arity == 1 else '(0, 1)'}` or "
                f"`{spec.gate} on {'each' if arity == 1 else 'chain'}`",
            )
        if spec.shared and not (spec.layer and angle):
            raise NasSemanticError(
                f"`shared` ties the angles of a layer; `{spec.gate} on ...` "
                + ("has no angle" if not angle else "is not a layer"),
                span=spec.span,
                path=where,
                hint=f"write `{spec.gate} on all ... shared` for one angle over a whole layer"
                if angle
                else "drop `shared`",
            )
        pattern = spec.pattern
        if (
            isinstance(spec.target, ast.Ref)
            and pattern is None
            and spec.target.name not in (self.values)
        ):
            raise NasSemanticError(
                f"unknown target `{spec.target.name}` of `{spec.gate}`",
                span=spec.target.span,
                path=where,
                hint=f"a qubit number, a pair `(0, 1)`, or a pattern: {', '.join(PATTERNS)}",
            )
        wants = PATTERNS[pattern] if pattern else (2 if isinstance(spec.target, tuple) else 1)
        if spec.target is None:
            wants = 1
        if wants != arity and spec.gate != "id":
            if pattern:
                what = f"`{pattern}` names {'pairs' if wants == 2 else 'single qubits'}"
            elif spec.target is None:
                what = "`on all` names every qubit singly"
            else:
                what = "a pair names two qubits" if wants == 2 else "it is given one qubit"
            raise NasSemanticError(
                f"`{spec.gate}` acts on {'two qubits' if arity == 2 else 'one qubit'} but {what}",
                span=spec.span,
                path=where,
                hint="pairs: (0, 1), chain, ring, pairs, edges; single qubits: 0, each, all"
                + (f"; e.g. `{spec.gate} on all chain`" if arity == 2 else ""),
            )

    def _targets(self, spec: GateSpec, path: str) -> list[tuple[int, ...]]:
        n, pattern = self.qubits, spec.pattern or "each"
        if pattern == "each":
            targets = [(q,) for q in range(n)]
        elif pattern == "chain":
            targets = [(q, q + 1) for q in range(n - 1)]
        elif pattern == "ring":
            targets = [(q, q + 1) for q in range(n - 1)] + ([(n - 1, 0)] if n > 2 else [])
        elif pattern == "pairs":
            targets = [(a, b) for a in range(n) for b in range(a + 1, n)]
        else:
            if self.edges is None:
                raise NasSemanticError(
                    "the pattern `edges` needs the circuit's problem graph",
                    span=spec.span,
                    path=f"{path}.{spec.gate}",
                    hint="add e.g. `graph regular(3, seed = 0)` to the circuit",
                )
            targets = list(self.edges)
        if not targets:
            raise NasSemanticError(
                f"`{spec.gate} on {pattern}` has no targets on {n} qubit(s)",
                span=spec.span,
                path=f"{path}.{spec.gate}",
                hint="pairs need at least 2 qubits",
            )
        return targets

    def _explicit(self, spec: GateSpec, path: str) -> tuple[int, ...]:
        where = f"{path}.{spec.gate}"
        exprs = spec.target if isinstance(spec.target, tuple) else (spec.target,)
        qubits = tuple(self._int(expr, f"a qubit of `{spec.gate}`", where) for expr in exprs)
        for qubit, expr in zip(qubits, exprs):
            if not 0 <= qubit < self.qubits:
                raise NasSemanticError(
                    f"`{spec.gate}` on qubit {qubit} of a {self.qubits}-qubit circuit",
                    span=expr.span or spec.span,
                    path=where,
                    hint=f"qubits count from 0 to {self.qubits - 1}",
                )
        if len(qubits) == 2 and qubits[0] == qubits[1]:
            raise NasSemanticError(
                f"`{spec.gate}` on qubit {qubits[0]} twice",
                span=spec.span,
                path=where,
                hint="a two-qubit gate acts on two different qubits",
            )
        return qubits

    # --- values --------------------------------------------------------------------------------

    def _int(self, expr: ast.Expr, what: str, where: str) -> int:
        path = where if "." in where else f"{self.name}.{where}"
        return ast.evaluate(expr, self.values, what=what, path=path)

    def _number(self, expr: ast.Expr, where: str) -> float:
        if isinstance(expr, ast.Decimal):
            return float(expr.text)
        if isinstance(expr, ast.Neg) and isinstance(expr.operand, ast.Decimal):
            return -float(expr.operand.text)
        return float(self._int(expr, f"`{where}`", where))

    def _graph(self, item: GraphDecl) -> tuple[tuple[int, int], ...]:
        call, path, n = item.call, f"{self.name}.graph", self.qubits
        if call.op not in GRAPHS:
            raise NasSemanticError(
                f"unknown graph `{call.op}`",
                span=item.span,
                path=path,
                hint=f"known graphs: {', '.join(GRAPHS)} (on the circuit's qubits)",
            )
        kwargs = dict(call.kwargs)
        seed = self._int(kwargs.pop("seed"), "the graph's seed", path) if "seed" in kwargs else 0
        if kwargs:
            raise NasSemanticError(
                f"unknown argument `{next(iter(kwargs))}` of graph `{call.op}`",
                span=item.span,
                path=path,
                hint="graphs take `seed = N`",
            )
        if call.op == "cycle":
            return tuple((q, (q + 1) % n) for q in range(n)) if n > 2 else ((0, 1),)
        if call.op == "complete":
            return tuple((a, b) for a in range(n) for b in range(a + 1, n))
        if len(call.args) != 1:
            raise NasSemanticError(
                "`regular` takes the degree: `graph regular(3, seed = 0)`",
                span=item.span,
                path=path,
            )
        degree = self._int(call.args[0], "the graph's degree", path)
        if not 0 < degree < n or n * degree % 2:
            raise NasSemanticError(
                f"no {degree}-regular graph on {n} vertices",
                span=item.span,
                path=path,
                hint="the degree is below the number of qubits, and their product is even",
            )
        return regular_graph(n, degree, seed)

    def _noise(self, item: NoiseDecl) -> float:
        call, path = item.call, f"{self.name}.noise"
        if call.op not in NOISES:
            raise NasSemanticError(
                f"unknown noise `{call.op}`",
                span=item.span,
                path=path,
                hint=f"known noise channels: {', '.join(NOISES)}, e.g. `noise depolarizing(0.01)`",
            )
        if len(call.args) != 1 or call.kwargs:
            raise NasSemanticError(
                f"`{call.op}` takes one number, the probability of an error per qubit and gate",
                span=item.span,
                path=path,
                hint="write e.g. `noise depolarizing(0.01)`",
            )
        probability = self._number(call.args[0], "noise")
        if not 0.0 <= probability <= 0.75:
            raise NasSemanticError(
                f"the depolarising probability is {probability:g}; it lies in [0, 0.75]",
                span=item.span,
                path=path,
                hint="0.75 already mixes a qubit completely; device errors are about 0.001 to 0.05",
            )
        return probability


# The noise channels a `noise` statement names: after every gate, on each qubit the gate acts
# on, X, Y or Z is applied, each with probability p / 3 (the depolarising channel
# rho -> (1 - p) rho + p/3 (X rho X + Y rho Y + Z rho Z)).
NOISES = ("depolarizing",)


def regular_graph(nodes: int, degree: int, seed: int) -> tuple[tuple[int, int], ...]:
    """A random `degree`-regular simple graph on `nodes` vertices (the pairing model, redrawn
    until simple), the same for the same seed on every machine; edges as sorted pairs."""
    generator = random.Random(seed)
    for _ in range(100_000):
        points = [vertex for vertex in range(nodes) for _ in range(degree)]
        generator.shuffle(points)
        edges = {tuple(sorted(points[i : i + 2])) for i in range(0, len(points), 2)}
        if len(edges) == len(points) // 2 and all(a != b for a, b in edges):
            return tuple(sorted(edges))
    raise NasSemanticError(f"no simple {degree}-regular graph on {nodes} vertices was drawn")


def _literal(target: tuple[int, ...]) -> ast.Expr | tuple[ast.Expr, ast.Expr]:
    exprs = tuple(ast.Num(value=qubit) for qubit in target)
    return exprs[0] if len(exprs) == 1 else exprs


def format_circuit(space: CircuitSpace) -> str:
    """The `.nas` text of a circuit space (pools, header, statements)."""
    lines = [
        f"gates {pool.name} = {{{', '.join(map(spec_text, pool.specs))}}}"
        for pool in space.gatesets
    ]
    if lines:
        lines.append("")
    params = ", ".join(f"{p.name} = {ast_text(p.default)}" for p in space.circuit.params)
    lines.append(f"circuit {space.name}({params}) {{")
    lines.extend(_statements(space.circuit.body, "    "))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _statements(body, indent: str) -> list[str]:
    lines = []
    for item in body:
        if isinstance(item, TaskDecl):
            args = ", ".join(f"{key} = {ast_text(value)}" for key, value in item.kwargs)
            lines.append(f"{indent}task {item.name}" + (f"({args})" if args else ""))
        elif isinstance(item, GraphDecl):
            args = [ast_text(a) for a in item.call.args]
            args += [f"{key} = {ast_text(value)}" for key, value in item.call.kwargs]
            lines.append(f"{indent}graph {item.call.op}({', '.join(args)})")
        elif isinstance(item, NoiseDecl):
            args = ", ".join(ast_text(a) for a in item.call.args)
            lines.append(f"{indent}noise {item.call.op}({args})")
        elif isinstance(item, ApplyDecl):
            lines.append(f"{indent}apply {spec_text(item.spec)}")
        elif isinstance(item, PlaceDecl):
            label = f"{item.label} = " if item.label else ""
            pool = item.gateset or "{" + ", ".join(map(spec_text, item.specs)) + "}"
            lines.append(f"{indent}place {label}{pool}")
        elif isinstance(item, RepeatDecl):
            lines.append(f"{indent}repeat {ast_text(item.count)} {{")
            lines.extend(_statements(item.body, indent + "    "))
            lines.append(f"{indent}}}")
    return lines


def spec_text(spec: GateSpec) -> str:
    """`rx on 2`, `cnot on (0, 1)`, `rzz on all edges shared`, `id`."""
    if spec.target is None and not spec.layer:
        return spec.gate
    if isinstance(spec.target, tuple):
        target = f"({ast_text(spec.target[0])}, {ast_text(spec.target[1])})"
    else:
        target = ast_text(spec.target) if spec.target is not None else ""
    words = [spec.gate, "on"] + (["all"] if spec.layer else []) + ([target] if target else [])
    return " ".join(words + (["shared"] if spec.shared else []))


def ast_text(expr: ast.Expr) -> str:
    """An expression as the language writes it."""
    if isinstance(expr, ast.Num):
        return str(expr.value)
    if isinstance(expr, ast.Decimal):
        return expr.text
    if isinstance(expr, ast.Ref):
        return expr.name
    if isinstance(expr, ast.Neg):
        return f"-{ast_text(expr.operand)}"
    return f"({ast_text(expr.left)} {expr.op} {ast_text(expr.right)})"
