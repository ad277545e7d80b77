"""Progress reporting: a tqdm bar for the run and nested, transient bars for long inner loops; the format of
the harness's log lines (the same in worker processes as in the command's own)."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
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


def duration(value: float) -> str:
    """``42 s``, ``12 min``, ``3.4 h``."""
    value = max(0.0, value)
    if value < 90:
        return f"{value:.0f} s"
    if value < 600:
        return f"{value / 60:.1f} min"
    if value < 5400:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


class RunBar:
    """The run's bar: it advances by each finished cell's estimated cost (``weights``, seconds of compute;
    cells without a weight count one unit each), so its rate and time left follow the expensive cells
    rather than the count; it shows the cells done, and what is being computed now (``doing``) with how
    long it has been at it. A heartbeat redraws it every second, so a stage of a minute is seen to run."""

    def __init__(self, progress: Progress, cells: int, weights: dict[str, float] | None = None,
                 heartbeat: float = 1.0):
        self.weights = weights or {}
        self.cells, self.done = cells, 0
        total = sum(self.weights.values()) if self.weights else float(cells)
        self.weighted = bool(self.weights) and total > 0
        fmt = ("{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]{postfix}" if self.weighted else None)
        self.bar = tqdm(total=total if self.weighted else cells, desc="cells", disable=not progress.show,
                        file=sys.stderr, dynamic_ncols=True, bar_format=fmt)
        self.activity, self.since = "", time.monotonic()
        self.stages: list[tuple[str, float]] = []
        self.timed = True
        self._stop = threading.Event()
        self._beat = None
        if progress.show and heartbeat > 0:
            self._beat = threading.Thread(target=self._heartbeat, args=(heartbeat,), daemon=True)
            self._beat.start()
        self._show()

    def doing(self, activity: str, timed: bool = True, show: bool = True) -> None:
        """What runs now: a cell (``timed``: with a clock that restarts when it changes), or the workers'
        own account, which carries its clocks; ``show=False`` leaves the redraw to the heartbeat."""
        self.stages = []
        if activity != self.activity:
            self.activity, self.since = activity, time.monotonic()
        self.timed = timed
        if show:
            self._show()

    def stage(self, name: str, begun: bool) -> None:
        """A stage of the current cell begins (``begun``) or ends; the innermost one is shown, with its clock."""
        if begun:
            self.stages.append((name, time.monotonic()))
        elif self.stages:
            self.stages.pop()
        self._show()

    def finished(self, key: str) -> None:
        self.done += 1
        self.bar.update(self.weights.get(key, 0.0) if self.weighted else 1)
        self._show()

    def _show(self) -> None:
        if self.bar.disable:
            return
        count = f"{self.done}/{self.cells} cells" if self.weighted else ""
        stages = list(self.stages)
        if stages:
            name, since = stages[-1]
            now = f"{self.activity[:50]} · {name} {duration(time.monotonic() - since)}"
        else:
            clock = f" {duration(time.monotonic() - self.since)}" if self.timed else ""
            now = f"{self.activity[:100]}{clock}" if self.activity else ""
        self.bar.set_postfix_str(" · ".join(p for p in (count, now) if p), refresh=False)
        self.bar.refresh()

    def _heartbeat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self._show()
            except Exception:  # noqa: BLE001 - a closed stream must not take the run down
                return

    def close(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(2)
        self.bar.close()
