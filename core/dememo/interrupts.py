"""Tell the user's interrupt (Ctrl-C, SIGTERM) from a plugin that raises ``KeyboardInterrupt`` itself, and
hold interrupts off while a set of output files is written.

Python turns SIGINT into ``KeyboardInterrupt`` wherever the main thread happens to be, so an exception
alone cannot say who stopped the run. While :func:`handling` is active (``dememo-bench`` and the Python
API's run wrap every run in it) SIGINT and SIGTERM go through :func:`_handler`, which counts the signal
before raising; a ``KeyboardInterrupt`` seen with no signal counted came from code, i.e. a plugin, and
fails that plugin's stage like any other exception (:func:`from_user`).

Inside :func:`deferred` (writing ``results.json`` and the leaderboards as one set) a signal is counted but
not raised, so a second Ctrl-C or a burst of SIGTERMs cannot leave a mix of old and new files; the caller
checks :func:`pending` afterwards.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

_signalled = 0
_deferring = 0
_installed = False


def _handler(signum: int, frame: Any) -> None:
    global _signalled
    _signalled += 1
    if not _deferring:
        raise KeyboardInterrupt


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Route SIGINT and SIGTERM through the counting handler for the block (main thread only; elsewhere,
    and when a caller already installed it, a no-op). Counts start from zero."""
    global _installed, _signalled
    if _installed or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    _signalled, _installed = 0, True
    try:
        for s in previous:
            signal.signal(s, _handler)
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _installed = False


def from_user(exc: BaseException | None = None) -> bool:
    """Whether a ``KeyboardInterrupt`` just caught is the user's (a signal arrived). Outside
    :func:`handling` nothing can tell, so every interrupt counts as the user's."""
    return not _installed or _signalled > 0


def pending() -> int:
    """Signals received so far in this :func:`handling` block."""
    return _signalled


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Count SIGINT/SIGTERM inside the block without raising (the caller checks :func:`pending`)."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
