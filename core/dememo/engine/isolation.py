"""Cells in worker processes: ``--jobs N`` (N > 1; the default on a multi-core CPU) and ``--isolate``.

Why worker processes. A CPU run is many small trainings; torch's own intra-op threads speed one of them up
little and collapse when anything else runs on the machine (30 epochs of the digits MLP: 0.3 s idle, 9-14 s
with two threads beside another job, 1.2 s with one). N processes of **one thread each** use N cores for
N cells at once and degrade gracefully under load. And a worker is what isolates a plugin that Python
cannot catch: a segfault in an extension, an infinite loop, memory that grows without bound fails only
its own cell.

How it works
- The parent starts ``jobs`` workers (``multiprocessing``'s *spawn* start method: a fresh interpreter, safe
  with CUDA and with OpenMP thread pools, where *fork* is not). Like a Ray task, a worker gets the run's
  plain specification (:class:`~dememo.engine.executors.RunSpec`, with the thread count), re-plans the suite
  with the installed plugins and runs the cells it is sent, one at a time, against the shared cache. It
  keeps its in-memory stage outputs between cells, so a worker costs one process start and one dataset
  load, not one per cell.
- Scheduling (:class:`Schedule`). Cells of one dataset and seed share their expensive stages (the original
  and retrained models, the poisons, the shadow ensembles), and the cache's per-entry claims make a worker
  that needs a stage another is computing wait for it and then read it. So each worker keeps to one
  (dataset, seed) group and takes its cells in planning order; a worker whose group is done takes the next
  group nobody works on, and only when none is left shares the largest remaining group, from its far end
  (whose first stages are least likely to be in progress at the near end). Every stage is a pure function
  of its key, so the results equal ``--jobs 1``'s cell for cell (with the same thread count; tested).
- While a cell runs, its worker tells the parent each stage it starts and finishes computing. The parent
  watches three things per worker: it is alive, the cell's wall time is within ``--cell-timeout``, and its
  resident memory (``/proc/<pid>/status``, polled every 0.1 s) is within ``--cell-memory``. When one
  fails, the parent kills that worker (SIGKILL), records the cell as failed with the reason (``worker died
  with SIGSEGV``, ``cell exceeded --cell-timeout 30 s``, ...) and the stage it was in, and starts a fresh
  worker for the next cell; the other workers go on.
- The stage that was being computed is remembered as failed for the rest of the run: workers started
  later fail every cell that needs it at once, with the same reason, rather than crashing or waiting
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
from collections import OrderedDict
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

from dememo.errors import UserError, harness_storage
from dememo.results.record import CellRecord
from dememo.engine.devices import proc_kib, release_free_memory
from dememo.engine.executors import RunSpec, prepare

#: how often the parent checks the workers' memory and clocks
POLL_SECONDS = 0.1


def _worker(spec: RunSpec, keys: list[str], failed: dict[str, tuple[str, str]], conn: Connection) -> None:
    """The worker's body: plan, then run the cells the parent sends until it sends None."""
    from dememo import interrupts
    from dememo.progress import log_lines
    from dememo.engine.failures import StageFailure

    log_lines()
    with interrupts.handling():  # a plugin's own KeyboardInterrupt fails its stage, as in-process
        _serve(spec, keys, failed, conn, StageFailure)


def _serve(spec: RunSpec, keys: list[str], failed: dict[str, tuple[str, str]], conn: Connection, StageFailure: type) -> None:
    from dememo.engine.cell import run_cell

    try:
        planned, runner = prepare(spec, keys)
        for key, (stage, message) in failed.items():
            runner.memo.failed[key] = StageFailure(stage, message, "")
        runner.memo.on_stage = lambda key, name, started: conn.send(("stage", key, name, started))
        runner.memo.on_wait = lambda key, name, waiting: conn.send(("wait", key, name, waiting))
        conn.send(("ready",))
        while (message := conn.recv()) is not None:
            if message[0] == "failed":  # a stage that crashed or hung in another worker since this one started
                _, key, stage, text = message
                runner.memo.failed[key] = StageFailure(stage, text, "")
            else:
                record = run_cell(runner, planned[message[1]])
                release_free_memory()  # the next cell's resident memory is its own (--cell-memory)
                conn.send(("record", record))
    except UserError as exc:  # e.g. a full disk, or plugins that differ from the parent's: stop the run
        conn.send(("user-error", type(exc).__name__, str(exc), exc.exit_code))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):  # the parent went away or was interrupted
        pass
    except Exception:  # a bug of the harness's own (a plugin's errors fail its stages): stop the run, as in-process
        import traceback

        conn.send(("internal-error", traceback.format_exc()))


def rss_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid`` from /proc (Linux), or None where that is not available."""
    return proc_kib(f"/proc/{pid}/status", "vmrss")


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


class WorkerError(RuntimeError):
    """A bug of the harness's own in a worker: the run stops with its traceback, as it would in-process."""


def _raise_user_error(message: tuple) -> None:
    _, kind, text, code = message
    if kind == "StorageError":
        raise harness_storage(text)
    error = UserError(text)
    error.exit_code = code
    raise error


class Schedule:
    """Which cell a free worker runs next: cells grouped by (dataset, seed), one group per worker while
    groups last, then the largest remaining group shared from its far end; a worker keeps to the group it
    is on until that group is done (see the module docstring)."""

    def __init__(self, cells: list[Any]):
        self.groups: OrderedDict[tuple[str, int], list[Any]] = OrderedDict()
        for cell in cells:
            self.groups.setdefault((cell.data.name, cell.seed), []).append(cell)
        self.owner: dict[tuple[str, int], int] = {}  # group → the worker that started it (takes from the front)
        self.current: dict[int, tuple[str, int]] = {}  # worker → the group it is on

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups.values())

    def next(self, worker: int) -> Any | None:
        """The next cell for ``worker`` (None when every cell is handed out)."""
        group = self.current.get(worker)
        if group is None or not self.groups[group]:
            free = [g for g, cells in self.groups.items() if cells and g not in self.owner]
            left = [g for g, cells in self.groups.items() if cells]
            if not left:
                return None
            group = free[0] if free else max(left, key=lambda g: len(self.groups[g]))
            self.owner.setdefault(group, worker)
            self.current[worker] = group
        return self.groups[group].pop(0 if self.owner[group] == worker else -1)


class Slot:
    """One worker process and the cell it runs: started on demand, restarted after a crash, a timeout or
    a memory blow-up (the cell then fails with the reason)."""

    def __init__(self, ctx: Any, spec: RunSpec, keys: list[str], failed: dict[str, tuple[str, str]],
                 timeout: float | None, memory_bytes: int | None):
        self.ctx, self.spec, self.keys, self.failed = ctx, spec, keys, failed
        self.timeout, self.memory_bytes = timeout, memory_bytes
        self.proc: Any = None
        self.conn: Connection | None = None
        self.ready = False
        self.cell: Any = None  # the cell sent to the worker, None while idle
        self.waiting: Any = None  # the cell to send once the worker is ready
        self.started = 0.0
        self.waited = 0.0  # seconds of the cell spent waiting for another worker's claim (off the clock)
        self.wait_began: float | None = None
        self.stages: list[tuple[str, str]] = []  # stages being computed, innermost last
        self.told: set[str] = set()  # failed stages this worker knows of

    @property
    def busy(self) -> bool:
        return self.cell is not None or self.waiting is not None

    def start(self) -> None:
        parent, child = self.ctx.Pipe()
        self.told = set(self.failed)
        self.proc = self.ctx.Process(target=_worker, args=(self.spec, self.keys, dict(self.failed), child), daemon=True,
                                     name="dememo-cell-worker")
        self.proc.start()
        child.close()
        self.conn, self.ready = parent, False

    def assign(self, cell: Any) -> None:
        if self.proc is None or not self.proc.is_alive():  # never started, or ended while idle
            self.stop()
            self.start()
        self.waiting = cell
        if self.ready:
            self._send()

    def _send(self) -> None:
        assert self.conn is not None
        try:
            for key in [k for k in self.failed if k not in self.told]:  # crashed elsewhere since it started
                self.conn.send(("failed", key, *self.failed[key]))
                self.told.add(key)
            self.conn.send(("cell", self.waiting.key))
        except OSError:  # the worker died while idle: a fresh one gets the cell once it is ready
            self.stop()
            self.start()
            return
        self.cell, self.waiting = self.waiting, None
        self.stages, self.waited, self.wait_began = [], 0.0, None
        self.started = time.monotonic()  # the limit covers the cell, not the worker's start

    def poll(self) -> CellRecord | None:
        """Handle what the worker said and check its limits: the cell's record when it finished or failed."""
        assert self.conn is not None and self.proc is not None
        ended = False  # the pipe is closed: the worker is gone (a dead worker's pipe always reads as ready)
        try:
            while self.conn.poll(0):
                message = self.conn.recv()
                if message[0] == "user-error":
                    _raise_user_error(message)
                if message[0] == "internal-error":
                    raise WorkerError(f"a cell worker stopped on an internal error:\n{message[1]}")
                if message[0] == "ready":
                    self.ready = True
                    if self.waiting is not None:
                        self._send()
                elif message[0] == "record":
                    self.cell = None
                    return message[1]
                elif message[0] == "stage":
                    _, key, name, begun = message
                    if begun:
                        self.stages.append((key, name))
                    elif self.stages and self.stages[-1][0] == key:
                        self.stages.pop()
                elif message[0] == "wait":  # another worker computes a stage this cell needs: off the clock
                    now = time.monotonic()
                    if message[3]:
                        self.wait_began = now
                    elif self.wait_began is not None:
                        self.waited += now - self.wait_began
                        self.wait_began = None
        except (EOFError, OSError):
            self.proc.join(5)
            ended = True
        if ended or not self.proc.is_alive() and not self.conn.poll(0):
            if not self.ready:  # planning and loading data: a worker that dies here stops the run
                raise UserError(f"a cell worker could not start ({death(self.proc.exitcode)}); run with --jobs 1 "
                                "to see the error")
            return self._fail(death(self.proc.exitcode))
        if self.cell is None:
            return None
        if self.timeout is not None and self.elapsed() > self.timeout:
            return self._fail(f"cell exceeded --cell-timeout {self.timeout:g} s (worker killed)")
        if self.memory_bytes is not None:
            used = rss_bytes(self.proc.pid)
            if used is not None and used > self.memory_bytes:
                return self._fail(f"worker used {_gib(used)}, over --cell-memory {_gib(self.memory_bytes)} (worker killed)")
        return None

    def elapsed(self) -> float:
        """The cell's own seconds: wall time since it was sent, less the time spent waiting for stages that
        other workers were computing (their own limits cover those)."""
        now = time.monotonic()
        waiting = now - self.wait_began if self.wait_began is not None else 0.0
        return now - self.started - self.waited - waiting

    def _fail(self, reason: str) -> CellRecord | None:
        """Kill the worker; its cell (if any) fails with ``reason`` in the stage it was computing."""
        from dememo.engine.cell import blank_record

        cell, self.cell = self.cell, None
        self.stop()
        if cell is None:
            return None
        record = blank_record(cell)
        stage = self.stages[-1][1] if self.stages else "cell"
        if self.stages:
            self.failed[self.stages[-1][0]] = (stage, f"{reason} (while computing this stage for an earlier cell)")
        record.fail(stage, reason)
        return record

    def stop(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.join(5)
        if self.conn is not None:
            self.conn.close()
        self.proc, self.conn, self.ready = None, None, False

    def ask_to_stop(self) -> None:
        """An idle worker ends after its cell; a busy one is killed (the run is stopping)."""
        if self.proc is None or not self.proc.is_alive():
            return
        if self.cell is not None:
            self.proc.kill()
            return
        try:
            assert self.conn is not None
            self.conn.send(None)
        except OSError:
            self.proc.kill()


class Pool:
    """``jobs`` worker processes running the planned cells (:class:`Schedule` decides which goes where)."""

    def __init__(self, spec: RunSpec, jobs: int = 1, timeout: float | None = None, memory_bytes: int | None = None):
        if jobs < 1:
            raise UserError("--jobs must be at least 1")
        if timeout is not None and timeout <= 0:
            raise UserError("--cell-timeout must be a positive number of seconds")
        if memory_bytes is not None and memory_bytes <= 0:
            raise UserError("--cell-memory must be a positive number of GiB")
        if memory_bytes is not None and rss_bytes(os.getpid()) is None:
            raise UserError("--cell-memory needs /proc (Linux); leave it out on this system")
        self.spec, self.jobs, self.timeout, self.memory_bytes = spec, jobs, timeout, memory_bytes
        self.ctx = mp.get_context("spawn")
        #: stages that crashed, hung or blew the memory limit: key → (stage name, reason)
        self.failed: dict[str, tuple[str, str]] = {}
        self.slots: list[Slot] = []

    def status(self) -> str:
        """What each busy worker is doing: its cell and the stage it computes, with the seconds it has been at it."""
        now = time.monotonic()
        parts = []
        for slot in self.slots:
            if slot.cell is None:
                continue
            cell = slot.cell
            text = f"{cell.data.name}: {cell.method} @{cell.attack.label}"[:40]
            if slot.stages:
                text += f" · {slot.stages[-1][1]}"
            parts.append(f"{text} {now - slot.started:.0f} s")
        return " | ".join(parts)

    def run(self, cells: list[Any], on_record: Callable[[CellRecord], None],
            on_tick: Callable[[str], None] | None = None) -> Iterator[int]:
        """Run ``cells``; ``on_record`` gets each record as it finishes, ``on_tick`` what the workers are doing
        (:meth:`status`) whenever it changes. Yields the number of cells done."""
        keys = [c.key for c in cells]
        schedule = Schedule(cells)
        self.slots = [Slot(self.ctx, self.spec, keys, self.failed, self.timeout, self.memory_bytes)
                      for _ in range(min(self.jobs, len(cells)))]
        done = 0
        try:
            while True:
                for i, slot in enumerate(self.slots):
                    if not slot.busy and (cell := schedule.next(i)) is not None:
                        slot.assign(cell)
                busy = [s for s in self.slots if s.busy]
                if not busy:
                    return
                wait([s.conn for s in busy if s.conn is not None], POLL_SECONDS)
                for slot in busy:
                    record = slot.poll()
                    if record is not None:
                        on_record(record)
                        done += 1
                        yield done
                if on_tick is not None:
                    on_tick(self.status())
        finally:
            self.close()

    def close(self) -> None:
        """Stop every worker within one shared deadline (not five seconds each, one after another: a CI time
        limit's grace period must leave time to write the partial results)."""
        for slot in self.slots:
            slot.ask_to_stop()
        deadline = time.monotonic() + 5
        for slot in self.slots:
            if slot.proc is not None:
                slot.proc.join(max(0.0, deadline - time.monotonic()))
            slot.stop()


def run_isolated(spec: RunSpec, cells: list[Any], timeout: float | None, memory_bytes: int | None,
                 on_record: Callable[[CellRecord], None], jobs: int = 1,
                 on_tick: Callable[[str], None] | None = None) -> Iterator[int]:
    """Run ``cells`` in ``jobs`` worker processes; ``on_record`` gets each record, ``on_tick`` what the workers
    are doing. Yields cells done."""
    yield from Pool(spec, jobs, timeout, memory_bytes).run(cells, on_record, on_tick)
