"""The `nasc` command line: a thin layer over the Python API. `main` is the entry point."""

from nasc.runtime.cli.commands import main

__all__ = ["main"]
