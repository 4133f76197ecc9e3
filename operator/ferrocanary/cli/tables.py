"""Tables and text on the terminal (rich) for the commands: cells that print literally, kubectl's look.

Status and recording text is data, not markup: a ``decisionReason`` can hold an echoed Prometheus
answer, so ``[/x]`` in it must print as ``[/x]`` (rich would parse it as a closing tag and raise) and
an escape sequence must not reach the terminal. Every cell is therefore a ``rich.text.Text`` (never
parsed for markup or emoji codes) of :func:`printable` text. Numbers are formatted by
``ferrocanary.model.formatting``; this module only lays them out.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# Control characters (C0, DEL, C1 such as CSI), format characters (bidi overrides that reorder what
# a terminal shows), surrogates and the Unicode line and paragraph separators.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def printable(value: Any) -> str:
    """``str(value)`` with every control or format character shown as its Python escape (``\\x1b``).

    A newline becomes ``\\n`` too: one status field is one table cell, one header line.
    """
    text = str(value)
    if text.isprintable():  # the common case, and isprintable() is False for all we escape
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in _ESCAPED_CATEGORIES else ch
        for ch in text
    )


def cell(value: Any, style: str | None = None) -> Text:
    """A table cell or line that prints ``value`` literally, in ``style`` if given."""
    return Text(printable(value), style=style or "")


def kubectl_table(columns: Sequence[str]) -> Table:
    """kubectl's look: no borders, upper-case headers, three spaces between columns."""
    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 3, 0, 0), header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def show(renderable: Any) -> None:
    """Print to stdout: in colour on a terminal; piped (scripts, tests), whole lines without colour."""
    if sys.stdout.isatty():
        Console(highlight=False).print(renderable)
        return
    # No padding of the last column either, and wide enough that a row is one line for grep and awk.
    console = Console(highlight=False, width=250, no_color=True, color_system=None)
    with console.capture() as captured:
        console.print(renderable)
    print("\n".join(line.rstrip() for line in captured.get().splitlines()))
