"""Progress reporting: a tqdm bar for the run and nested, transient bars for long inner loops; the format of
the harness's log lines (the same in worker processes as in the command's own)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def log_lines() -> None:
    """Warnings and errors logged by the harness and plugins as ``dememo-bench: WARNING: ...`` on stderr."""
    logging.basicConfig(level=logging.WARNING, format="dememo-bench: %(levelname)s: %(message)s")


def enabled() -> bool:
    """Bars are drawn on an interactive stderr unless DEMEMO_PROGRESS=0; DEMEMO_PROGRESS=1 forces them."""
    flag = os.environ.get("DEMEMO_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false", "no")
    return sys.stderr.isatty()


class Progress:
    """Hands out progress bars; ``inner`` bars vanish when done so the run's bar stays readable."""

    def __init__(self, show: bool | None = None):
        self.show = enabled() if show is None else show

    def bar(self, total: int, desc: str) -> tqdm:
        return tqdm(total=total, desc=desc, disable=not self.show, file=sys.stderr, dynamic_ncols=True)

    def inner(self, iterable: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
        yield from tqdm(
            iterable, desc=desc, total=total, leave=False, disable=not self.show, file=sys.stderr, dynamic_ncols=True
        )
