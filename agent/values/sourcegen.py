"""Writing one Python function's source, line by line, for a type
(:mod:`agent.values.encodergen`, :mod:`agent.values.readergen`).

A generator adds lines through :meth:`Source.add`, names its variables with
:meth:`Source.name` and hands every value the lines use (names a component
declares, keys, tables, structs) to :meth:`Source.const`, which gives it a
variable of its own: nothing but variable names, numbers and this project's
templates is ever spelled into the text. :meth:`Source.function` compiles it.
"""

from __future__ import annotations

from typing import Any


class Source:
    """The lines of one function being written and the constants they name."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self._count = 0

    def name(self, stem: str) -> str:
        """A variable name no other line uses."""
        self._count += 1
        return f"{stem}{self._count}"

    def const(self, value: Any) -> str:
        """A variable the compiled function finds ``value`` in."""
        name = self.name("k")
        self.constants[name] = value
        return name

    def add(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def function(self, head: str, result: str, names: dict[str, Any], label: str) -> Any:
        """Compile ``def head:`` with the lines added, returning ``result``; ``names``: what else the
        lines may use; ``label`` names the source in tracebacks."""
        text = f"def {head}:\n" + "\n".join(self.lines) + f"\n    return {result}\n"
        namespace = {**names, **self.constants}
        exec(compile(text, f"<{label}>", "exec"), namespace)  # noqa: S102 - our own template, constants apart
        name = head.partition("(")[0]
        return namespace[name]
