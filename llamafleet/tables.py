"""The one way llamafleet prints a table (`plan`, `status`): rich on a terminal, plain aligned
columns otherwise (stable for logs and scripts that grep)."""

from __future__ import annotations

from typing import Sequence


def aligned(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart; a cell's several lines joined with "; "."""
    table = [list(header), *[[cell.replace("\n", "; ") for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table]


def rich_table(header: Sequence[str], rows: Sequence[Sequence[str]], title: str = "",
               no_wrap: Sequence[str] = (), row_styles: Sequence[str | None] = ()):
    """The same table as a rich Table; cells are plain text (a "[::]:8080" is no markup)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title or None, title_justify="left")
    for column in header:
        table.add_column(column, no_wrap=column in no_wrap)
    styles = list(row_styles) + [None] * (len(rows) - len(row_styles))
    for row, style in zip(rows, styles):
        table.add_row(*[cell if isinstance(cell, Text) else Text(cell) for cell in row], style=style)
    return table
