"""Fault scenarios for ``dememo-bench``: kills, concurrent runs, damaged caches, full disks, bad plugins.

Each scenario runs the real command (in fresh processes, as a user would) against a reference run of the
same suite, and returns a :class:`Tally`: cases tried, cases handled correctly, results lost. The tests
(``tests/test_chaos.py``) run them small; ``benchmarks/bench_reliability.py`` runs them larger and prints
the figures quoted in the README's reliability section.

What "handled" and "lost" mean, per scenario:

- ``chaos``: a case is one SIGKILL at a seeded random moment. Handled: after the kill every cache entry
  and every finished cell file is whole (:meth:`Store.check` is clean, every cell file parses). Lost: cells
  of the final, resumed run whose numbers differ from the uninterrupted run's, or that are missing.
- ``concurrency``: a case is one run among several started at once on one cache. Handled: it finishes with
  exit 0 and numbers equal to the reference; the cache is sound; no stage was computed twice (the claims'
  purpose). Lost: differing or missing cells.
- ``corruption``: a case is one damaged cache entry (bit flip, truncation, emptied, deleted). Handled: the
  re-run reports it (a warning naming it) and its cells equal the reference. Lost: differing cells.
- ``disk-full``: a case is a disk that fills after N bytes. Handled: exit 74 with one line, no partial
  file under a final name, and a re-run with space again equals the reference. Lost: cells finished before
  the disk filled that are neither on disk nor recomputable (a cell file that is missing or damaged).
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from ..cache import Store


@attrs.define
class Tally:
    """Cases tried, handled correctly and results lost in one fault category."""

    category: str
    tried: int = 0
    handled: int = 0
    lost: int = 0
    notes: list[str] = attrs.field(factory=list)

    def case(self, ok: bool, note: str = "") -> None:
        self.tried += 1
        self.handled += bool(ok)
        if not ok and note:
            self.notes.append(note)

    def add(self, other: Tally) -> None:
        """Count ``other``'s cases in this tally (rounds of one scenario)."""
        self.tried, self.handled, self.lost = self.tried + other.tried, self.handled + other.handled, self.lost + other.lost
        self.notes += other.notes

    def to_json(self) -> dict[str, Any]:
        return {"tried": self.tried, "handled": self.handled, "lost": self.lost, "notes": self.notes[:10]}


def command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from dememo.cli import entry; entry()", *args]


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "DEMEMO_PROGRESS": "0", "DEMEMO_HTML_PLOTS": "0", **(extra or {})}


def bench(args: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout, env=environment(env))


def run_args(suite: str, out: Path, cache: Path, extra: list[str]) -> list[str]:
    return ["--all", "--suite", suite, "--out", str(out), "--cache-dir", str(cache), "--quiet", *extra]


def comparable(results: dict[str, Any]) -> dict[str, Any]:
    """Each cell's status, error message, numbers and series, by key, without wall-clock columns (the
    only values a correct resume may change)."""
    clock = {col for cols in results["columns"].values() for col, c in cols.items() if c.get("wall_clock")}
    out = {}
    for cell in results["cells"]:
        out[cell["key"]] = {
            "status": cell["status"],
            "error": (cell.get("error") or {}).get("message"),
            "metrics": {k: v for k, v in cell["metrics"].items() if k not in clock},
            "series": cell.get("series"),
        }
    return out


def differing(reference: dict[str, Any], results: dict[str, Any]) -> list[str]:
    """Keys of reference cells missing from ``results`` or with other numbers."""
    ref, got = comparable(reference), comparable(results)
    return [k for k in ref if got.get(k) != ref[k]]


def load(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


def cells_whole(out: Path) -> bool:
    """Every finished cell file parses (an atomic write never leaves half a file under its name)."""
    for path in (out / "cells").glob("*.json"):
        try:
            json.loads(path.read_text())
        except ValueError:
            return False
    return True


def reference_run(suite: str, workdir: Path, extra: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """One uninterrupted run in its own cache: what every scenario compares against."""
    proc = bench(run_args(suite, workdir / "reference", workdir / "reference-cache", extra), env)
    if proc.returncode != 0:
        raise RuntimeError(f"the reference run failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return load(workdir / "reference")


# -- scenarios --------------------------------------------------------------------------------------


def chaos(suite: str, workdir: Path, reference: dict[str, Any], kills: int, seed: int, extra: list[str],
          env: dict[str, str] | None = None, window: tuple[float, float] = (1.0, 6.0)) -> Tally:
    """SIGKILL ``dememo-bench`` ``kills`` times at seeded random moments, restarting it each time, then let
    it finish and compare with ``reference``."""
    tally = Tally("chaos")
    rng = random.Random(seed)
    out, cache = workdir / "chaos", workdir / "chaos-cache"
    args = command(*run_args(suite, out, cache, extra))
    for i in range(kills):
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment(env))
        delay = rng.uniform(*window)
        try:
            proc.wait(delay)
            tally.notes.append(f"kill {i} at {delay:.2f} s came after the run had finished: not counted")
            continue
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        bad = Store(cache).check()
        whole = cells_whole(out)
        tally.case(not bad and whole, f"kill {i} at {delay:.2f} s: corrupt entries {sorted(bad.items())[:2]}, "
                                      f"cell files whole: {whole}")
    final = subprocess.run(args, capture_output=True, text=True, env=environment(env), timeout=1800)
    if final.returncode not in (0, 1):
        tally.notes.append(f"the resumed run ended with exit {final.returncode}: {final.stderr[-500:]}")
        tally.lost = len(reference["cells"])
        return tally
    tally.lost = len(differing(reference, load(out)))
    return tally


def concurrency(suite: str, workdir: Path, reference: dict[str, Any], runs: list[list[str]],
                env: dict[str, str] | None = None) -> Tally:
    """Start one process per entry of ``runs`` (extra arguments, overlapping cells) at once on one cache."""
    tally = Tally("concurrency")
    cache = workdir / "shared-cache"
    procs = []
    for i, extra in enumerate(runs):
        out = workdir / f"concurrent-{i}"
        procs.append((out, subprocess.Popen(command(*run_args(suite, out, cache, extra)), stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, text=True, env=environment(env))))
    computed = 0
    for out, proc in procs:
        _, err = proc.communicate(timeout=1800)
        got = load(out) if (out / "results.json").exists() else {"cells": [], "columns": {}}
        mine = {c["key"] for c in got["cells"]}
        ref = {**reference, "cells": [c for c in reference["cells"] if c["key"] in mine]}
        lost = differing(ref, got)
        tally.lost += len(lost)
        computed += sum(int(w) for w in _stages_computed(err))
        tally.case(proc.returncode == 0 and not lost, f"exit {proc.returncode}, {len(lost)} differing: {err[-300:]}")
    bad = Store(cache).check()
    entries = len(Store(cache).keys())
    if bad or computed != entries:
        tally.handled = 0
        tally.notes.append(f"{len(bad)} corrupt entries; {computed} stages computed for {entries} entries")
    return tally


def _stages_computed(stderr: str) -> Iterator[str]:
    for line in stderr.splitlines():
        if "stages computed here" in line:
            yield line.split("stages computed here")[0].split(",")[-1].split()[0]


def damage(path: Path, how: str, rng: random.Random) -> None:
    raw = bytearray(path.read_bytes())
    if how == "bit-flip":
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(raw))
    elif how == "truncated":
        path.write_bytes(bytes(raw[: rng.randrange(len(raw))]))
    elif how == "emptied":
        path.write_bytes(b"")
    elif how == "deleted":
        path.unlink()
    else:
        raise ValueError(how)


def corruption(suite: str, workdir: Path, reference: dict[str, Any], entries: int, seed: int, extra: list[str],
               env: dict[str, str] | None = None) -> Tally:
    """Damage ``entries`` random files of a finished run's cache, one way each, and re-run."""
    tally = Tally("corruption")
    rng = random.Random(seed)
    out, cache = workdir / "corrupt", workdir / "corrupt-cache"
    first = bench(run_args(suite, out, cache, extra), env)
    if first.returncode != 0:
        raise RuntimeError(first.stderr[-2000:])
    files = sorted(p for p in (cache / "objects").glob("*/*") if not p.name.startswith("."))
    chosen = rng.sample(files, min(entries, len(files)))
    hows = ["bit-flip", "truncated", "emptied", "deleted"]
    damaged: dict[Path, str] = {}
    for i, path in enumerate(chosen):
        damage(path, hows[i % len(hows)], rng)
        damaged[path] = hows[i % len(hows)]
    again = bench(run_args(suite, workdir / "corrupt-again", cache, extra), env)
    reported = {line.split("cache entry ")[1][:12] for line in again.stderr.splitlines() if "is corrupt" in line}
    lost = differing(reference, load(workdir / "corrupt-again")) if again.returncode == 0 else list(damaged)
    tally.lost = len(lost)
    still = Store(cache).check()
    for path in chosen:
        key, how = path.stem, damaged[path]
        seen = key[:12] in reported
        # the store deletes a corrupt entry when it reads it: one still corrupt on disk was never read (its
        # stage was not needed, every dependent being cached), so it was never used either; a deleted
        # .json is a plain miss with nothing to report
        unread = key in still or (how == "deleted" and path.suffix == ".json")
        tally.case(again.returncode == 0 and not lost and (seen or unread), f"{how} {path.name[:16]}: reported {seen}")
    return tally


@contextmanager
def disk_of(capacity: int) -> Iterator[Callable[[], int]]:
    """Within the block, dememo's atomic writes behave as on a disk with ``capacity`` bytes free: the write
    that would exceed it fails with ENOSPC, as ``write(2)`` does, and so does every later one. Yields a
    function that returns the bytes written so far."""
    from .. import cache

    original = cache.atomic_write_bytes
    used = [0]

    def write(path: Path, data: bytes) -> None:
        if used[0] + len(data) > capacity:
            used[0] = capacity
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        used[0] += len(data)
        original(path, data)

    cache.atomic_write_bytes = write
    try:
        yield lambda: used[0]
    finally:
        cache.atomic_write_bytes = original


def disk_full(suite: str, workdir: Path, reference: dict[str, Any], capacities: list[int], extra: list[str]) -> Tally:
    """Run in this process on disks of the given sizes, then again with space; compare with ``reference``."""
    import contextlib
    import io

    from .. import cli

    tally = Tally("disk-full")
    total = len(reference["cells"])
    for i, capacity in enumerate(capacities):
        out, cache = workdir / f"full-{i}", workdir / f"full-{i}-cache"
        err = io.StringIO()
        with disk_of(capacity), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(run_args(suite, out, cache, extra))
        lines = [line for line in err.getvalue().splitlines() if line.startswith("dememo-bench: error:")]
        finished = list((out / "cells").glob("*.json"))
        whole = cells_whole(out) and not Store(cache).check() and not list(out.glob("*.tmp"))
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            again = cli.main(run_args(suite, out, cache, extra))
        lost = differing(reference, load(out)) if again in (0, 1) else list(range(total))
        tally.lost += len(lost)
        clear = code == 74 and len(lines) == 1 and "free space" in lines[0] and "Traceback" not in err.getvalue()
        ok = (clear or code == 0) and whole and not lost
        tally.case(ok, f"capacity {capacity}: exit {code}, {len(finished)} cells kept, lines {lines[:1]}, whole {whole}")
    return tally


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


# -- plugins that Python cannot stop ------------------------------------------------------------------

#: an installable third-party plugin whose unlearners crash the interpreter, hang, leak memory or exit
FAULTY_PLUGIN = '''
import ctypes
import os
import time
from typing import ClassVar

import attrs
import torch

import dememo

_hoard = []


@attrs.define
class Segfault(dememo.Unlearner):
    """Dereferences a null pointer (SIGSEGV)."""
    name: ClassVar[str] = "segfault"

    def unlearn(self, model, task, ctx):
        ctypes.string_at(0)
        return model


@attrs.define
class Hang(dememo.Unlearner):
    """Never returns."""
    name: ClassVar[str] = "hang"

    def unlearn(self, model, task, ctx):
        time.sleep(3600)
        return model


@attrs.define
class Leak(dememo.Unlearner):
    """Holds on to 64 MiB more memory every few milliseconds (up to 6 GiB, then sleeps)."""
    name: ClassVar[str] = "leak"

    def unlearn(self, model, task, ctx):
        while len(_hoard) < 96:
            _hoard.append(torch.ones(16 * 2**20))  # touched pages: resident memory
            time.sleep(0.01)
        time.sleep(3600)
        return model


@attrs.define
class Exit(dememo.Unlearner):
    """Calls os._exit(3) (skips every handler)."""
    name: ClassVar[str] = "exit"

    def unlearn(self, model, task, ctx):
        os._exit(3)


@dememo.hookimpl
def register_unlearners(register):
    for cls in (Segfault, Hang, Leak, Exit):
        register(cls)
'''

#: the reason each faulty unlearner's cells must fail with
FAULTY_REASONS = {
    "segfault": "died with SIGSEGV",
    "hang": "exceeded --cell-timeout",
    "leak": "over --cell-memory",
    "exit": "exited with code 3",
}


def install_faulty_plugin(site: Path) -> dict[str, str]:
    """Install :data:`FAULTY_PLUGIN` as a distribution in ``site``; returns the environment that sees it."""
    info = site / "dememo_faulty-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (site / "dememo_faulty.py").write_text(FAULTY_PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dememo-faulty\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dememo]\nfaulty = dememo_faulty\n")
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def isolation(suite: str, workdir: Path, reference: dict[str, Any], extra: list[str], faulty: list[str],
              timeout: float = 10.0, memory_gib: float = 1.5, env: dict[str, str] | None = None) -> Tally:
    """Run with ``--isolate`` and the faulty unlearners ``faulty`` added to ``extra``: a case is one cell.
    Handled: a faulty cell fails with its reason; any other cell equals ``reference``. Lost: other cells
    missing or differing (the run must go on past every fault)."""
    tally = Tally("isolation")
    env = {**(env or {}), **install_faulty_plugin(workdir / "site")}
    out = workdir / "isolated"
    args = run_args(suite, out, workdir / "isolated-cache",
                    [*extra, *[a for u in faulty for a in ("--unlearner", u)], "--isolate", "--cell-timeout", str(timeout),
                     "--cell-memory", str(memory_gib)])
    proc = bench(args, env, timeout=1800)
    if not (out / "results.json").exists():
        tally.notes.append(f"no results (exit {proc.returncode}): {proc.stderr[-500:]}")
        tally.lost = len(reference["cells"])
        return tally
    got = load(out)
    tally.lost = len(differing(reference, got))
    for cell in got["cells"]:
        if cell["unlearner"] in faulty:
            message = (cell.get("error") or {}).get("message") or ""
            tally.case(cell["status"] == "failed" and FAULTY_REASONS[cell["unlearner"]] in message,
                       f"{cell['unlearner']} @ {cell['attack']}: {message}")
        else:
            ref = comparable(reference).get(cell["key"])
            tally.case(ref is not None and ref == comparable(got)[cell["key"]], f"{cell['method']} differs")
    if proc.returncode != 1:
        tally.notes.append(f"exit {proc.returncode} (expected 1: some cells failed): {proc.stderr[-300:]}")
    return tally


# -- plugins that return bad values or modify what they are given --------------------------------------

import torch  # noqa: E402
from typing import ClassVar  # noqa: E402

import dememo  # noqa: E402

@attrs.define
class NaNPoisoner(dememo.Poisoner):
    """Returns NaN images."""

    name: ClassVar[str] = "nan-images"
    norm: ClassVar[str] = "linf"

    def poison(self, data, ctx):
        x = data.x.clone()
        x[0, 0, 0, 0] = float("nan")
        return x


@attrs.define
class ShapeShifter(dememo.Unlearner):
    """Replaces the head: changes the architecture."""

    name: ClassVar[str] = "shape-shifter"

    def unlearn(self, model, task, ctx):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(task.retain.x[0].numel(), 3))


@attrs.define
class ValScribbler(dememo.Unlearner):
    """Zeroes the validation images (shared by every cell of the dataset) in place."""

    name: ClassVar[str] = "aaa-val-scribbler"  # runs before finetune

    def unlearn(self, model, task, ctx):
        task.val.x.mul_(0)
        return model


@attrs.define
class InfUnlearner(dememo.Unlearner):
    """Returns +Inf in one weight."""

    name: ClassVar[str] = "inf-weights"

    def unlearn(self, model, task, ctx):
        with torch.no_grad():
            list(model.parameters())[-1][0] = float("inf")
        return model


@attrs.define
class ModelScribbler(dememo.Metric):
    """Doubles the evaluated model's first weight in place."""

    name: ClassVar[str] = "model-scribbler"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning",)
    columns: ClassVar[dict] = {"scribbled": dememo.Column("scribbled", "info", "never produced")}

    def compute(self, ev, ctx):
        with torch.no_grad():
            next(ev.model.parameters()).mul_(2)
        return {"scribbled": 1.0}


class NumericalFaults:
    @dememo.hookimpl
    def register_poisoners(self, register):
        register(NaNPoisoner)

    @dememo.hookimpl
    def register_unlearners(self, register):
        for cls in (ShapeShifter, ValScribbler, InfUnlearner):
            register(cls)

    @dememo.hookimpl
    def register_metrics(self, register):
        register(ModelScribbler)


#: the reason each numerical fault's cells must fail with: (record field, plugin name) → text
NUMERICAL_REASONS = {
    ("poisoner", "nan-images"): "NaN or Inf",
    ("unlearner", "shape-shifter"): "changed the model architecture",
    ("unlearner", "inf-weights"): "non-finite weights",
    ("unlearner", "aaa-val-scribbler"): "modified its input task.val.x",
    ("metric", "model-scribbler"): "modified its input model.",
}


def numerical(suite: str, workdir: Path, reference: dict[str, Any], extra: list[str]) -> Tally:
    """Run (in this process) with :class:`NumericalFaults` registered: a case is one cell. Handled: a faulty
    plugin's cell fails with its reason in one line; any other cell equals ``reference``."""
    import contextlib
    import io

    from .. import cli
    from .fixtures import registered

    tally = Tally("numerical")
    out = workdir / "numerical"
    faulty = ["--poisoner", "nan-images", "--unlearner", "shape-shifter", "--unlearner", "aaa-val-scribbler",
              "--unlearner", "inf-weights", "--metric", "model-scribbler"]
    with registered(NumericalFaults(), name="numerical-faults"), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        cli.main(run_args(suite, out, workdir / "numerical-cache", [*extra, *faulty]))
    got = load(out)
    ref = {slot(c): c for c in reference["cells"]}
    clock = {col for cols in got["columns"].values() for col, c in cols.items() if c.get("wall_clock")}
    for cell in got["cells"]:
        message = (cell.get("error") or {}).get("message") or ""
        expected = [text for (field, name), text in NUMERICAL_REASONS.items() if cell.get(field) == name]
        if not expected and cell["error"] and cell["error"]["stage"] == "metric:model-scribbler":
            expected = [NUMERICAL_REASONS[("metric", "model-scribbler")]]
        if expected:
            tally.case(cell["status"] == "failed" and expected[0] in message and "\n" not in message,
                       f"{cell['method']}: {message}")
        same = slot(cell) not in ref or all(ref[slot(cell)]["metrics"].get(k) == v for k, v in cell["metrics"].items()
                                            if k in ref[slot(cell)]["metrics"] and k not in clock)
        if slot(cell) in ref:  # the cell's other numbers: as without any faulty plugin
            tally.case(same, f"{cell['method']} differs")
            tally.lost += not same
    return tally


def slot(cell: dict[str, Any]) -> tuple:
    """What a cell is, independent of which metrics ran (its key also hashes the metric set)."""
    return tuple(cell.get(k) for k in ("track", "dataset", "poisoner", "train_attack", "unlearner", "forget", "attack", "seed"))
