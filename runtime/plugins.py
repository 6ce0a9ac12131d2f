"""`--ops` plugins: Python modules that register ops with `nasc.compiler.register_op` when
imported. A `.nas` file never runs code; this is the one way Python ops come in. A run records the
plugins it loaded (`recorded`), so its resume, and sweep jobs in other processes, load them again.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from nasc.dsl import NascError, NascUsageError

_loaded: set[str] = set()


def _is_file(name: str) -> bool:
    # A folder of that name is a package on the path (`--ops my_ops` beside `my_ops/`), not a file.
    return name.endswith(".py") or Path(name).is_file()


def recorded(names: Iterable[str] | None) -> list[str]:
    """The plugins as a run records them: files by absolute path (a resume may start elsewhere),
    modules by name."""
    return [str(Path(n).resolve()) if _is_file(n) else n for n in names or []]


def load_plugins(names: list[str] | None, recorded_in: Path | None = None) -> None:
    """Import the `--ops` modules (each registers its ops when imported), each once per process.

    Args:
        recorded_in: the run's config.json, when the names come from there (a resume), so an
            error says where the name came from rather than blaming a flag never given.

    Raises:
        NascUsageError: a module that cannot be found or fails while it is imported.
    """
    for name in names or []:
        try:
            _load(name)
        except NascUsageError as error:
            if recorded_in is None:
                raise
            raise NascUsageError(
                f"{recorded_in} records the plugin {name}, which the run needs: "
                + error.message.removeprefix(f"--ops {name}: "),
                hint="put the plugin back where the run found it (or on the Python path)",
            ) from None


def _load(name: str) -> None:
    """Import one plugin (a .py file or a module name), unless this process already did."""
    import importlib
    import importlib.util

    path = Path(name)
    key = str(path.resolve()) if _is_file(name) else name
    if key in _loaded:  # imported once per process: a module's code runs once
        return
    try:
        if _is_file(name):
            if not path.is_file():
                raise NascUsageError(
                    f"--ops {name}: no such file", hint="give a .py file or a module name"
                )
            spec = importlib.util.spec_from_file_location(f"nasc_plugin_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            importlib.import_module(name)
        _loaded.add(key)
    except NascError:
        raise
    except ImportError as error:
        raise NascUsageError(
            f"--ops {name}: cannot import it ({error})",
            hint="give a module on the Python path (e.g. my_ops) or the path of a .py file",
        ) from None
    except Exception as error:  # noqa: BLE001 - the user's module failed; say where
        raise NascUsageError(
            f"--ops {name}: importing it raised {type(error).__name__}: {error}",
            hint="fix the module; it should only define and register ops",
        ) from None
