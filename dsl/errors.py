"""Errors of nasc: one root, `NascError`, and source spans that point into `.nas` files."""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class Span:
    """A region of a source file; lines and columns count from 1."""

    file: str = "<string>"
    line: int = 1
    column: int = 1
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class NascError(Exception):
    """The root of every error nasc raises on purpose.

    Args:
        message: what is wrong, in one sentence.
        span: where in a `.nas` file, when the error has a place.
        hint: how to fix it.
        path: a dotted path to the offending part, e.g. `darts.normal.n2.edge[c_k1]`.
    """

    def __init__(
        self,
        message: str,
        *,
        span: Span | None = None,
        hint: str | None = None,
        path: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint
        self.path = path
        self.source: str | None = None  # the file's text, attached by the loader to show the line

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        """Format as `FILE:LINE:COL: error: WHAT`, the source line with a caret, and the hint."""
        where = f"{self.span}: " if self.span else ""
        what = self.message if not self.path else f"{self.message} (at {self.path})"
        lines = [f"{where}error: {what}"]
        if self.span and self.source is not None:
            source_lines = self.source.splitlines()
            if 1 <= self.span.line <= len(source_lines):
                text = source_lines[self.span.line - 1].expandtabs(1)
                width = 1
                if self.span.end_line == self.span.line and self.span.end_column:
                    width = max(1, self.span.end_column - self.span.column)
                lines.append(f"    {text}")
                lines.append("    " + " " * (self.span.column - 1) + "^" * width)
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class NasSyntaxError(NascError):
    """The text of a `.nas` file does not follow the grammar."""


class NasSemanticError(NascError):
    """The file parses, but what it says is inconsistent (unknown op, cycle, bad `keep`, ...)."""


class NascUsageError(NascError):
    """A command-line argument or a programmatic input is invalid (a `-D` name, an `--arch`)."""
