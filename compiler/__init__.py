"""The nasc compiler: ops, the masked supernet, the architecture state and export."""

from nasc.dsl.genotype import genotype_strings  # the strings need no torch; kept here for callers

from .archstate import MIXING_MODES, ArchState
from .export import export_network, export_torchscript, fixed_source
from .ops import OPS, catalog, get_op, register_op
from .supernet import (
    CellModule,
    CompileOptions,
    Supernet,
    check_partial_channels,
    compile_space,
    count_flops,
)

__all__ = [
    "MIXING_MODES",
    "OPS",
    "ArchState",
    "CellModule",
    "CompileOptions",
    "Supernet",
    "catalog",
    "check_partial_channels",
    "compile_space",
    "count_flops",
    "export_network",
    "export_torchscript",
    "fixed_source",
    "genotype_strings",
    "get_op",
    "register_op",
]
