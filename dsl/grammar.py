"""The grammar `nas.lark` as an LALR parser (built once), and how its terminals read in errors."""

from __future__ import annotations

import functools

from lark import Lark


def _load_parser() -> Lark:
    return Lark.open(
        "nas.lark",
        rel_to=__file__,
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
    )


@functools.lru_cache(maxsize=1)
def parser() -> Lark:
    """The LALR parser for the `.nas` grammar (built once)."""
    return _load_parser()


def terminal_text(name: str) -> str:
    """A terminal of the grammar as an error names it: `` `=` ``, "a name", "an integer"."""
    terminal = next((t for t in parser().terminals if t.name == name), None)
    if terminal is not None and terminal.pattern.type == "str":
        return f"`{terminal.pattern.value}`"
    words = {
        "NAME": "a name",
        "INT": "an integer",
        "DECIMAL": "a number",
        "SCALED": "a scaled parameter such as `2C`",
        "$END": "the end of the file",
    }
    return words.get(name, name.lower())
