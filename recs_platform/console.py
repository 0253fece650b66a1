"""What the command line prints: live progress on a terminal, plain lines anywhere else.

A terminal gets colours, bars and redrawn lines; a pipe, a file or CI gets plain lines without
cursor control, so logs stay readable.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TextIO, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")
# Wide enough for the summary tables when nothing tells us the width (a pipe, CI).
PLAIN_WIDTH = 120


def is_interactive(stream: TextIO) -> bool:
    """True for a terminal that understands cursor control."""
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def console_for(stream: TextIO | None = None) -> Console:
    """A rich console on ``stream`` (stdout by default); plain text unless it is a terminal."""
    stream = stream or sys.stdout
    if is_interactive(stream):
        return Console(file=stream, highlight=False)
    return Console(file=stream, force_terminal=False, no_color=True, width=PLAIN_WIDTH, highlight=False)


def track(items: Sequence[T], description: str, unit: str, stream: TextIO | None = None) -> Iterator[T]:
    """Yield ``items`` behind a progress bar on a terminal; elsewhere print a line at each quarter."""
    stream = stream or sys.stdout
    if is_interactive(stream):
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit))
        with Progress(*columns, TimeElapsedColumn(), console=console_for(stream)) as progress:
            yield from progress.track(items, description=description)
        return
    started, total = time.monotonic(), len(items)
    for done, item in enumerate(items, start=1):
        yield item
        if done == total or 4 * done // total > 4 * (done - 1) // total:
            print(f"{description}: {done}/{total} {unit} ({time.monotonic() - started:.1f}s)", file=stream, flush=True)


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, cut to ``limit`` characters: for one-sentence reasons and failures."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_sentence(error: BaseException) -> str:
    """An exception as ``Type: message`` on one line."""
    return one_line(f"{type(error).__name__}: {error}")
