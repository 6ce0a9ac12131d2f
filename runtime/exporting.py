"""`nasc export`: write a found architecture in the format a user asks for."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from nasc.compiler import catalog, export_network, export_torchscript, fixed_source
from nasc.compiler.circuits import SuperCircuit
from nasc.dsl import (
    CircuitSpace,
    Genotype,
    NascUsageError,
    format_space,
    load_space,
    parse_arch,
    parse_space,
    read_source,
)
from nasc.dsl.genotype import darts_genotype, format_darts, nb201_string
from nasc.runtime.plugins import load_plugins
from nasc.runtime.requests import EXPORT_FORMATS
from nasc.runtime.runs.checkpoint import atomic_path, write_atomic

# The file a single-stage search writes: its supernet, architecture frozen, traced in eval mode.
SINGLE_STAGE_NETWORK = "network.pt"


def single_stage_network(run_dir: Path | None) -> Path | None:
    """The supernet a single-stage search kept as its found network (None: not such a run)."""
    if run_dir is None or not (run_dir / SINGLE_STAGE_NETWORK).is_file():
        return None
    return run_dir / SINGLE_STAGE_NETWORK


def load_decision(source: str, arch: str | None, overrides: Mapping[str, int]):
    """The space and genotype named by a run directory, or by a .nas file and `--arch`."""
    path = Path(source)
    if path.is_dir():
        space_file, genotype_file = path / "space.nas", path / "genotype.json"
        if not space_file.is_file() or not genotype_file.is_file():
            raise NascUsageError(
                f"{path} is not a finished search run: it needs space.nas and genotype.json",
                hint="give a run directory under runs/, or a .nas file with --arch",
            )
        config = {}
        if (path / "config.json").is_file():
            config = json.loads((path / "config.json").read_text())
        load_plugins(config.get("plugins"), path / "config.json")  # before the space names ops
        merged = {**config.get("defines", {}), **overrides}
        space = parse_space(
            read_source(space_file), str(space_file), catalog=catalog(), overrides=merged
        ).for_values(merged)
        genotype = Genotype.from_json(
            json.loads(genotype_file.read_text()), source=str(genotype_file)
        )
        return space, genotype, merged, path
    space = load_space(source, catalog=catalog(), overrides=overrides).for_values(overrides)
    if arch is None:
        if space.is_fixed:
            return space, Genotype({}), dict(overrides), None
        raise NascUsageError(
            f"{source} has choices: say which architecture with --arch",
            hint="--arch '|nor_conv_3x3~0|+|...|', --arch DARTS_V2 or --arch genotype.json",
        )
    return space, parse_arch(space, arch), dict(overrides), None


def export(
    source: str, arch: str | None, fmt: str, output: str | None, overrides: Mapping[str, int]
) -> str | None:
    """Write or return the architecture in `fmt`; returns text when no output file is given."""
    space, genotype, overrides, run_dir = load_decision(source, arch, overrides)
    if isinstance(space, CircuitSpace):
        text = circuit_text(space, genotype, fmt, run_dir)
        if output:
            write_atomic(Path(output), text.encode(), hint=_hint(Path(output)))
            return None
        return text
    if fmt == "qasm":
        raise NascUsageError(
            "OpenQASM describes circuits; this is a network of cells",
            hint="--format nas, genotype, nb201, darts or torchscript",
        )
    if fmt == "torchscript":
        target = Path(output) if output else (run_dir or Path(".")) / "arch.pt"
        kept = single_stage_network(run_dir)
        if kept is not None:  # the searched supernet itself, not a derived network
            write_atomic(target, kept.read_bytes(), hint=_hint(target))
            return None
        write_torchscript(export_network(space, genotype, overrides), target, _hint(target))
        return None
    if fmt == "nas":
        # -D values given with a .nas file become the exported defaults; a run directory's
        # search-time values (often narrowed for speed, or bound to the data) do not.
        header = f"Architecture found in {space.name} ({source})."
        decided = space if run_dir is not None else space.with_defaults(overrides)
        text = fixed_source(decided, genotype, header=header)
    elif fmt == "genotype":
        text = json.dumps(genotype.to_json(), indent=2) + "\n"
    elif fmt == "nb201":
        text = nb201_string(space, genotype) + "\n"
    else:
        text = format_darts(darts_genotype(space, genotype)) + "\n"
    if output:
        write_atomic(Path(output), text.encode(), hint=_hint(Path(output)))
        return None
    return text


CIRCUIT_FORMATS = ("nas", "genotype", "qasm")


def circuit_decisions(space: CircuitSpace, genotype: Genotype) -> dict[str, str]:
    """{placeholder: candidate} of a circuit's genotype ({"circuit": {placeholder: [name]}})."""
    chosen = genotype.cells.get("circuit", {})
    return {label: names[0] for label, names in chosen.items() if names}


def found_circuit(space: CircuitSpace, genotype: Genotype, run_dir: Path | None):
    """The standalone `FixedCircuit` of a circuit search's decisions, with the run's tuned
    angles (circuit.pt).

    Raises:
        NascUsageError: no run directory (the angles are what the search trained).
    """
    if run_dir is None or not (run_dir / "circuit.pt").is_file():
        raise NascUsageError(
            "a circuit's angles are trained by its search; they are in the run's circuit.pt",
            hint="export from the run directory, e.g. nasc export runs/ghz-dqas-... --format qasm",
        )
    fixed = space.decide(circuit_decisions(space, genotype))
    circuit = SuperCircuit(fixed.plan()).circuit({})  # the gates, angles and sharing of the run
    circuit.load_state_dict(torch.load(run_dir / "circuit.pt", weights_only=True))
    return circuit


def circuit_text(space: CircuitSpace, genotype: Genotype, fmt: str, run_dir: Path | None) -> str:
    """A found circuit as fixed `.nas` text, its genotype's JSON, or OpenQASM 2 with the run's
    tuned angles.

    Raises:
        NascUsageError: a format that networks of cells have and circuits do not.
    """
    if fmt == "nas":
        header = f"Circuit found in {space.name}."
        return format_space(space.decide(circuit_decisions(space, genotype)), header=header)
    if fmt == "genotype":
        return json.dumps(genotype.to_json(), indent=2) + "\n"
    if fmt == "qasm":
        return found_circuit(space, genotype, run_dir).qasm()
    raise NascUsageError(
        f"a circuit exports as {', '.join(CIRCUIT_FORMATS)}, not as {fmt}",
        hint="--format qasm for other toolkits, or nasc.export(RUN, 'module') for the nn.Module",
    )


def write_torchscript(network, path: Path, hint: str | None = None) -> Path:
    """Save a network as TorchScript through the atomic writer: an error or a kill while saving
    leaves the previous file at `path` whole (or no file), never a torn one.

    Args:
        hint: what to do when the disk refuses the file (default: a run directory's advice).
    """
    with atomic_path(Path(path), hint=hint) as temporary:
        export_torchscript(network, temporary)
    return Path(path)


def _hint(path: Path) -> str:
    """What to do when an export cannot be written."""
    return (
        f"free disk space or make {path.parent} writable, then export again "
        f"({path.name} is as it was)"
    )


def export_as(source: str | Path, fmt: str, arch: str | None = None, output=None, params=None):
    """What `nasc.export` returns: the text, the `nn.Module` for `module`, or the written path
    (for `torchscript`, or when `output` is given). `source` is a search run directory, or a
    `.nas` file with `arch`."""
    if fmt not in EXPORT_FORMATS:
        raise NascUsageError(
            f"unknown export format `{fmt}`", hint=f"known formats: {', '.join(EXPORT_FORMATS)}"
        )
    where, params = str(source), dict(params or {})
    if fmt == "module":
        space, genotype, overrides, run_dir = load_decision(where, arch, params)
        if isinstance(space, CircuitSpace):
            return found_circuit(space, genotype, run_dir)
        kept = single_stage_network(run_dir)
        if kept is not None:
            return torch.jit.load(str(kept), map_location="cpu")
        return export_network(space, genotype, overrides)
    text = export(where, arch, fmt, None if output is None else str(output), params)
    if text is not None:
        return text
    if output is not None:
        return Path(output)
    return Path(where) / "arch.pt"
