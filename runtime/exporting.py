"""`nasc export`: write a found architecture in the format a user asks for."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from nasc.compiler import catalog, export_network, export_torchscript, fixed_source
from nasc.dsl import Genotype, NascUsageError, load_space, parse_arch, parse_space, read_source
from nasc.dsl.genotype import darts_genotype, format_darts, nb201_string
from nasc.runtime.plugins import load_plugins


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
    if fmt == "torchscript":
        target = Path(output) if output else (run_dir or Path(".")) / "arch.pt"
        export_torchscript(export_network(space, genotype, overrides), target)
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
        Path(output).write_text(text)
        return None
    return text


def export_as(source: str | Path, fmt: str, arch: str | None = None, output=None, params=None):
    """What `nasc.export` returns: the text, the `nn.Module` for `module`, or the written path
    (for `torchscript`, or when `output` is given). `source` is a search run directory, or a
    `.nas` file with `arch`."""
    where, params = str(source), dict(params or {})
    if fmt == "module":
        space, genotype, overrides, _ = load_decision(where, arch, params)
        return export_network(space, genotype, overrides)
    text = export(where, arch, fmt, None if output is None else str(output), params)
    if text is not None:
        return text
    if output is not None:
        return Path(output)
    return Path(where) / "arch.pt"
