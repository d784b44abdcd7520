"""Docker's `table` output: templates applied to a list of items, in tab-aligned columns."""
from __future__ import annotations

from pyminidocker.cli.gotemplate.execute import Template
from pyminidocker.cli.gotemplate.funcs import HEADER_FUNCS
from pyminidocker.cli.gotemplate.values import TemplateError
from pyminidocker.engine import StringMap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# ---- Docker's table output ------------------------------------------------------------------

def _width(s: str) -> int:
    """Display width: East Asian wide characters take two cells (go-runewidth)."""
    if s.isascii():
        return len(s)
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else
               0 if unicodedata.combining(c) else 1 for c in s)


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter with padchar ' ' and no flags, as Docker's tables use it.

    Cells are tab-terminated; the text after a line's last tab is not part of a column.
    Consecutive lines that have a cell in column k form a block aligned to its widest cell
    plus padding, at least minwidth.
    """
    lines = [ln.split("\t") for ln in text.split("\n")]
    out: list[str] = []

    def write(l0: int, l1: int, widths: list[int]) -> None:
        for ln in lines[l0:l1]:
            parts = []
            for j, cell in enumerate(ln):
                parts.append(cell)
                if j < len(widths) and j < len(ln) - 1:
                    parts.append(" " * (widths[j] - _width(cell)))
                elif j < len(widths):
                    parts.append(" " * (widths[j] - _width(cell)) if cell else "")
            out.append("".join(parts))

    def fmt(l0: int, l1: int, widths: list[int]) -> None:
        col = len(widths)
        this = l0
        while this < l1:
            if col >= len(lines[this]) - 1:
                this += 1
                continue
            write(l0, this, widths)
            l0 = this
            width = minwidth
            while this < l1 and col < len(lines[this]) - 1:
                width = max(width, _width(lines[this][col]) + padding)
                this += 1
            fmt(l0, this, [*widths, width])
            l0 = this
        write(l0, l1, widths)

    fmt(0, len(lines), [])
    return "\n".join(out)


def format_items(fmt: str, items: list[Any], header: dict[str, str] | None = None,
                 default_table: str = "", missingkey: str = "default") -> str:
    """Docker's --format for a listing: `table ...`, `json`, or a template per item.

    Each item is rendered and followed by a newline. `table` adds the header row (the
    template applied to header, a map of field name to column title, with Docker's
    HeaderFunctions) and aligns the columns as Docker's tabwriter does. `\\t` and `\\n`
    written literally in the format become a tab and a newline, as Docker replaces them.
    Raises TemplateError (with Docker's "template parsing error: " prefix left to the caller).
    """
    is_table = fmt.startswith("table")
    body = fmt
    if is_table:
        # `table` alone: the command's default table (itself a `table ...` format)
        body = fmt[len("table"):].strip(" ") or default_table.removeprefix("table")
    elif fmt == "json":
        body = "{{json .}}"
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    tmpl = Template(body)
    rows = [tmpl.execute(item, missingkey=missingkey) + "\n" for item in items]
    if not is_table:
        return "".join(rows)
    head: list[str] = []
    try:
        tmpl.execute(StringMap(header or {}), funcs=HEADER_FUNCS, partial=head)
    except TemplateError:
        pass   # Docker ignores a header that does not render and prints what it got
    return tabwrite("".join(head) + "\n" + "".join(rows))
