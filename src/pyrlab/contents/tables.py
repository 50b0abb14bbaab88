"""Tables for people: what an image holds (`inspect`), what changed (`diff`) and what could
be upgraded (`outdated`).

Each function returns the text for `stream` and prints nothing. On a terminal the tables
have rules and colour (NO_COLOR is honoured); piped, they are plain aligned columns with
one header line, no box-drawing characters, no escape codes and no wrapping, so that
`grep` and `awk` read them.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TextIO

from pyrlab import ecosystems
from pyrlab.contents.diff import Change, ChangeKind, InventoryDiff
from pyrlab.contents.model import Inventory, Outdated
from pyrlab.ecosystems.base import sort_key

if TYPE_CHECKING:
    from rich.table import Table

_CHANGE_STYLES: dict[ChangeKind, str] = {"added": "green", "removed": "red", "upgraded": "cyan",
                  "downgraded": "yellow", "changed": "magenta"}
_PLAIN_WIDTH = 1_000_000  # piped output is never wrapped


class _Output:
    """A console that writes into a string, styled for `stream`."""

    def __init__(self, stream: TextIO) -> None:
        # rich is imported here, when a table is drawn: every pyrlab command would
        # otherwise pay for it at start-up (a no-op build is meant to take a blink).
        from rich.console import Console

        self.terminal = _is_terminal(stream)
        self.buffer = io.StringIO()
        self.console = Console(
            file=self.buffer,
            force_terminal=self.terminal,
            force_jupyter=False,
            color_system="auto" if self.terminal else None,
            width=_terminal_width(stream) if self.terminal else _PLAIN_WIDTH,
            markup=False, emoji=False, highlight=False, legacy_windows=False,
        )

    def line(self, text: str = "", style: str = "") -> None:
        from rich.text import Text

        self.console.print(Text(text, style=style), soft_wrap=True)

    def table(self, *headers: str) -> Table:
        from rich import box
        from rich.table import Table

        table = Table(
            box=box.SIMPLE_HEAD if self.terminal else None,
            header_style="bold",
            show_edge=False, pad_edge=False, expand=False,
        )
        for header in headers:  # on a narrow terminal, fold long URLs rather than cut them
            table.add_column(header, overflow="fold")
        return table

    def row(self, table: Table, *cells: str, style: str = "") -> None:
        from rich.text import Text

        table.add_row(*(Text(cell, style=style) for cell in cells))

    def text(self) -> str:
        text = self.buffer.getvalue()
        if not self.terminal:  # rich pads every cell; trailing blanks only get in the way
            text = "\n".join(line.rstrip() for line in text.split("\n"))
        return text


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real stream
        return False


def _terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return shutil.get_terminal_size().columns


# --- inspect ----------------------------------------------------------------------------

def inspect_table(inventory: Inventory, *, stream: TextIO, platform: str = "") -> str:
    """One image: its facts, then a table per ecosystem. `platform`: named after the
    image's name (`pylab (linux/arm64): …`) when not the engine's own."""
    out = _Output(stream)
    meta = inventory.meta
    runtimes = [meta.os or f"{meta.os_id} {meta.os_version}", f"Python {meta.python}"]
    runtimes.append(f"R {meta.r}" if meta.r else "no R")
    shown = f"{meta.image} ({platform})" if platform else meta.image
    out.line(f"{shown}: {', '.join(runtimes)}", style="bold")
    out.line(f"input hash {meta.input_hash or '-'}, base {meta.base_id or '-'}, "
             f"pyrlab {meta.pyrlab_version or '-'}")
    for eco in ecosystems.registered():
        packages = inventory.packages(eco.name)
        out.line()
        if not packages:
            out.line(f"{eco.title}: none", style="bold")
            continue
        out.line(f"{eco.title} ({len(packages)})", style="bold")
        table = out.table("package", "version", eco.contents.origin_header)
        for package in packages:
            out.row(table, package.name, package.version, package.origin)
        out.console.print(table)
    return out.text()


# --- diff -------------------------------------------------------------------------------

def diff_table(diffs: Iterable[InventoryDiff], *, stream: TextIO) -> str:
    """Per image, a summary line, changed image facts and one row per changed package.
    A new or removed image gets the summary only (`inspect` lists what it holds)."""
    out = _Output(stream)
    for number, image_diff in enumerate(diffs):
        if number:
            out.line()
        out.line(f"{image_diff.image}: {_summary(image_diff)}", style="bold")
        if image_diff.status != "changed":
            continue
        for fact in image_diff.meta:
            out.line(f"  {fact.field} {fact.old or '-'} -> {fact.new or '-'}")
        if not image_diff.all_changes:
            continue
        table = out.table("ecosystem", "package", "change", "old", "new")
        for change in image_diff.all_changes:
            old, new = _change_sides(change)
            out.row(table, ecosystems.named(change.ecosystem).lock_key, change.name,
                    change.kind, old, new,
                    style=_CHANGE_STYLES[change.kind])
        out.console.print(table)
    return out.text()


def _summary(image_diff: InventoryDiff) -> str:
    if image_diff.status in ("added", "removed"):
        count = len(image_diff.all_changes)
        verb = "new image" if image_diff.status == "added" else "removed"
        return f"{verb} ({count} package{'s' if count != 1 else ''})"
    if image_diff.status == "unchanged":
        return "unchanged"
    counts = [f"{image_diff.count(kind)} {kind}"
              for kind in _CHANGE_STYLES if image_diff.count(kind)]
    return ", ".join(counts) if counts else "image facts changed"


def _change_sides(change: Change) -> tuple[str, str]:
    """Old and new as shown: the version, with its origin where that says something (a
    Python URL, an R source) or where it changed (a Debian architecture)."""
    contents = ecosystems.named(change.ecosystem).contents
    show_origin = contents.origin_in_diff or (
        change.old_origin != change.new_origin and change.kind not in ("added", "removed"))

    def side(version: str | None, origin: str) -> str:
        if version is None:
            return "-"
        return contents.shown(version, origin) if origin and show_origin else version

    return side(change.old_version, change.old_origin), side(change.new_version,
                                                             change.new_origin)


# --- outdated ---------------------------------------------------------------------------

def outdated_table(rows: Sequence[Outdated], *, stream: TextIO) -> str:
    """Packages with a newer version available, one table per image."""
    out = _Output(stream)
    if not rows:
        out.line("Everything is up to date.")
        return out.text()
    images = sorted({row.image for row in rows})
    order = {eco.name: number for number, eco in enumerate(ecosystems.registered())}
    for number, image in enumerate(images):
        if number:
            out.line()
        mine = sorted((row for row in rows if row.image == image),
                      key=lambda row: (order[row.ecosystem], sort_key(row.name)))
        out.line(f"{image}: {len(mine)} outdated", style="bold")
        table = out.table("ecosystem", "package", "installed", "available")
        for row in mine:
            out.row(table, ecosystems.named(row.ecosystem).lock_key, row.name, row.installed,
                    row.available)
        out.console.print(table)
    return out.text()
