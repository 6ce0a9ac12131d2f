"""The `nasc` command line: a thin layer over the Python API. `main` is the entry point;
`build_parser` (in `parser.py`) says every command and flag."""

from nasc.runtime.cli.commands import main
from nasc.runtime.cli.parser import build_parser

__all__ = ["build_parser", "main"]
