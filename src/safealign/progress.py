"""Progress bars for long work (rich), silent where output is not a terminal or SAFEALIGN_QUIET is set."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def _enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("SAFEALIGN_QUIET")


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    if not _enabled():
        yield from items
        return
    from rich.progress import track as rich_track

    from rich.console import Console

    yield from rich_track(items, description=description, total=total, transient=True,
                          console=Console(stderr=True))


@contextmanager
def status(message: str):
    """A spinner for one long step whose length is unknown (e.g. converting a model)."""
    if not _enabled():
        print(message, file=sys.stderr)
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield
