"""Run each cell in a worker process (``dememo-bench --isolate``): a plugin that crashes the interpreter,
hangs or leaks memory fails only its own cell.

In-process execution stays the default: it is faster (no process start, stage outputs stay in one memory)
and a Python exception in a plugin already fails only its cells. A worker is for what Python cannot catch:
a segfault in an extension, an infinite loop, memory that grows without bound.

How it works
- The parent starts one worker (``multiprocessing``'s *spawn* start method: a fresh interpreter, safe with
  CUDA and with OpenMP thread pools, where *fork* is not). Like a Ray task, the worker gets the run's plain
  specification (:class:`~dememo.run.executors.RunSpec`), re-plans the suite with the installed plugins and
  runs the cells it is sent, one at a time, against the shared cache. It keeps its in-memory stage outputs
  between cells, so isolation costs one process start and one dataset load, not one per cell.
- While a cell runs, the worker tells the parent each stage it starts and finishes computing. The parent
  waits for the cell's record and watches three things: the worker is alive, the cell's wall time is within
  ``--cell-timeout``, and the worker's resident memory (``/proc/<pid>/status``, polled every 0.1 s) is within
  ``--cell-memory``. When one fails, the parent kills the worker (SIGKILL), records the cell as failed with
  the reason (``worker died with SIGSEGV``, ``cell exceeded --cell-timeout 30 s``, ...) and the stage it
  was in, and starts a fresh worker for the next cell.
- The stage that was being computed is remembered as failed for the rest of the run: the next worker
  fails every later cell that needs it at once, with the same reason, rather than crashing or waiting
  again. Stages cached before the crash are reused, and the cache never holds a half-written entry
  (atomic writes), so nothing finished is lost.

The time limit covers the cell, not the worker's start (importing torch and loading the dataset); choose it
above the slowest cell, which is usually the first of each dataset and seed (it trains the original model).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

from dememo.errors import UserError, harness_storage
from dememo.results.record import CellRecord
from dememo.run.executors import RunSpec, prepare

#: how often the parent checks the worker's memory and clock
POLL_SECONDS = 0.1


def _worker(spec: RunSpec, keys: list[str], failed: dict[str, tuple[str, str]], conn: Connection) -> None:
    """The worker's body: plan, then run the cells the parent sends until it sends None."""
    from dememo import interrupts
    from dememo.run.failures import StageFailure

    with interrupts.handling():  # a plugin's own KeyboardInterrupt fails its stage, as in-process
        _serve(spec, keys, failed, conn, StageFailure)


def _serve(spec: RunSpec, keys: list[str], failed: dict[str, tuple[str, str]], conn: Connection, StageFailure: type) -> None:
    from dememo.run.cell import run_cell

    try:
        planned, runner = prepare(spec, keys)
        for key, (stage, message) in failed.items():
            runner.memo.failed[key] = StageFailure(stage, message, "")
        runner.memo.on_stage = lambda key, name, started: conn.send(("stage", key, name, started))
        conn.send(("ready",))
        while (key := conn.recv()) is not None:
            conn.send(("record", run_cell(runner, planned[key])))
    except UserError as exc:  # e.g. a full disk, or plugins that differ from the parent's: stop the run
        conn.send(("user-error", type(exc).__name__, str(exc), exc.exit_code))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):  # the parent went away or was interrupted
        pass


def rss_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid`` from /proc (Linux), or None where that is not available."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def death(exitcode: int | None) -> str:
    """Why a worker process ended, in words."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"worker process died with {name}"
    return f"worker process exited with code {exitcode}"


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


class Isolated:
    """Cells run one at a time in a worker process, restarted after a crash, a timeout or a memory blow-up."""

    def __init__(self, spec: RunSpec, timeout: float | None = None, memory_bytes: int | None = None):
        if timeout is not None and timeout <= 0:
            raise UserError("--cell-timeout must be a positive number of seconds")
        if memory_bytes is not None and memory_bytes <= 0:
            raise UserError("--cell-memory must be a positive number of GiB")
        if memory_bytes is not None and rss_bytes(os.getpid()) is None:
            raise UserError("--cell-memory needs /proc (Linux); leave it out on this system")
        self.spec, self.timeout, self.memory_bytes = spec, timeout, memory_bytes
        self.ctx = mp.get_context("spawn")
        #: stages that crashed, hung or blew the memory limit: key → (stage name, reason)
        self.failed: dict[str, tuple[str, str]] = {}
        self.restarts = 0
        self._proc: Any = None
        self._conn: Connection | None = None

    # -- the worker ---------------------------------------------------------------------------------

    def _start(self, keys: list[str]) -> None:
        parent, child = self.ctx.Pipe()
        self._proc = self.ctx.Process(target=_worker, args=(self.spec, keys, dict(self.failed), child), daemon=True,
                                      name="dememo-cell-worker")
        self._proc.start()
        child.close()
        self._conn = parent
        while True:  # planning and loading data: no time limit, but a worker that dies here stops the run
            message = self._receive(None)
            if message is None:
                raise UserError(f"the cell worker could not start ({death(self._proc.exitcode)}); run without --isolate "
                                "to see the error")
            if message[0] == "ready":
                return

    def _stop(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
        if self._proc is not None:
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    def _receive(self, wait: float | None) -> tuple | None:
        """The worker's next message; None when it died (or, with ``wait``, nothing came in ``wait`` s)."""
        assert self._conn is not None and self._proc is not None
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            step = POLL_SECONDS if deadline is None else max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))
            try:
                if self._conn.poll(step):
                    message = self._conn.recv()
                    if message[0] == "user-error":
                        _, kind, text, code = message
                        if kind == "StorageError":
                            raise harness_storage(text)
                        error = UserError(text)
                        error.exit_code = code
                        raise error
                    return message
            except (EOFError, OSError):
                self._proc.join(5)
                return None
            if not self._proc.is_alive():
                if self._conn.poll(0):  # a last message written just before exiting
                    continue
                return None
            if deadline is not None and time.monotonic() >= deadline:
                return ("idle",)

    # -- cells --------------------------------------------------------------------------------------

    def run_cell(self, cell: Any, keys: list[str]) -> CellRecord:
        """Run ``cell`` in the worker (started with the plan of ``keys``); a failure is the record's."""
        if self._proc is None:
            self._start(keys)
        assert self._conn is not None
        self._conn.send(cell.key)
        started = time.monotonic()
        stages: list[tuple[str, str]] = []  # stages being computed, innermost last
        reason = None
        while reason is None:
            message = self._receive(POLL_SECONDS)
            if message is None:
                reason = death(self._proc.exitcode)
            elif message[0] == "record":
                return message[1]
            elif message[0] == "stage":
                _, key, name, begun = message
                if begun:
                    stages.append((key, name))
                elif stages and stages[-1][0] == key:
                    stages.pop()
            elapsed = time.monotonic() - started
            if reason is None and self.timeout is not None and elapsed > self.timeout:
                reason = f"cell exceeded --cell-timeout {self.timeout:g} s (worker killed)"
            if reason is None and self.memory_bytes is not None:
                used = rss_bytes(self._proc.pid)
                if used is not None and used > self.memory_bytes:
                    reason = f"worker used {_gib(used)}, over --cell-memory {_gib(self.memory_bytes)} (worker killed)"
        self._stop()
        self.restarts += 1
        from dememo.run.cell import blank_record

        record = blank_record(cell)
        stage = stages[-1][1] if stages else "cell"
        if stages:
            self.failed[stages[-1][0]] = (stage, f"{reason} (while computing this stage for an earlier cell)")
        record.fail(stage, reason)
        return record

    def close(self) -> None:
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(5)
            except (BrokenPipeError, OSError):
                pass
        self._stop()


def run_isolated(spec: RunSpec, cells: list[Any], timeout: float | None, memory_bytes: int | None,
                 on_record: Callable[[CellRecord], None]) -> Iterator[int]:
    """Run ``cells`` in worker processes, in order; ``on_record`` gets each record. Yields cells done."""
    pool = Isolated(spec, timeout, memory_bytes)
    keys = [c.key for c in cells]
    try:
        for done, cell in enumerate(cells, 1):
            on_record(pool.run_cell(cell, keys))
            yield done
    finally:
        pool.close()
