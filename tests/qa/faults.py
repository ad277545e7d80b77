"""Fault scenarios for ``dememo-bench``: kills, concurrent runs, damaged caches, full disks, bad plugins.

Each scenario runs the real command (in fresh processes, as a user would) against a reference run of the
same suite, and returns a :class:`Tally`: cases tried, cases handled correctly, results lost. The tests
(``tests/system/test_chaos.py``) run them small; ``benchmarks/bench_reliability.py`` runs them larger and prints
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

from dememo.engine.cache import Store


@attrs.define
class Tally:
    """Cases tried, handled correctly, results lost and wrong results served in one fault category. Where a
    scenario tells the two apart, ``lost`` counts reference numbers missing and ``wrong`` numbers served
    with another value; the older scenarios count both as ``lost``."""

    category: str
    tried: int = 0
    handled: int = 0
    lost: int = 0
    notes: list[str] = attrs.field(factory=list)
    wrong: int = 0

    def case(self, ok: bool, note: str = "") -> None:
        self.tried += 1
        self.handled += bool(ok)
        if not ok and note:
            self.notes.append(note)

    def add(self, other: Tally) -> None:
        """Count ``other``'s cases in this tally (rounds of one scenario)."""
        self.tried, self.handled, self.lost = self.tried + other.tried, self.handled + other.handled, self.lost + other.lost
        self.wrong += other.wrong
        self.notes += other.notes

    def to_json(self) -> dict[str, Any]:
        return {"tried": self.tried, "handled": self.handled, "lost": self.lost, "wrong": self.wrong,
                "notes": self.notes[:10]}


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
    from dememo import files
    original = files.atomic_write_bytes
    used = [0]

    def write(path: Path, data: bytes) -> None:
        if used[0] + len(data) > capacity:
            used[0] = capacity
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        used[0] += len(data)
        original(path, data)

    files.atomic_write_bytes = write
    try:
        yield lambda: used[0]
    finally:
        files.atomic_write_bytes = original


def disk_full(suite: str, workdir: Path, reference: dict[str, Any], capacities: list[int], extra: list[str]) -> Tally:
    """Run in this process on disks of the given sizes, then again with space; compare with ``reference``."""
    import contextlib
    import io

    from dememo import cli

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
    """Run in two worker processes (``--jobs 2``, with a cell time and memory limit) and the faulty unlearners
    ``faulty`` added to ``extra``: a case is one cell.
    Handled: a faulty cell fails with its reason; any other cell equals ``reference``. Lost: other cells
    missing or differing (the run must go on past every fault)."""
    tally = Tally("isolation")
    env = {**(env or {}), **install_faulty_plugin(workdir / "site")}
    out = workdir / "isolated"
    args = run_args(suite, out, workdir / "isolated-cache",
                    [*extra, *[a for u in faulty for a in ("--unlearner", u)], "--jobs", "2", "--cell-timeout", str(timeout),
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

from typing import ClassVar  # noqa: E402

import torch  # noqa: E402

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

    from dememo import cli
    from dememo.testing.fixtures import registered

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


# -- hostile bundles --------------------------------------------------------------------------------
#
# ``hostile bundle``: a case is one set of hostile bundles put next to a genuine first-party bundle (and a
# benign third-party one) in a board's entries directory. Handled: the board keeps the genuine entry's
# numbers exactly and shows no forged value, or holds the genuine entry back with a message naming the
# hostile file (a conflict: neither is trusted over the other); and its Markdown shows no raw markup. Cases
# the board must settle alone (a label that is not its config's, a look-alike name, a failing verify check,
# --set on the suite's data, a claim on an installed plugin) are handled only when the hostile file is
# refused and the genuine entry kept; others carry their own check (every number on the board drawable by
# re-runs, no formula in leaderboard.csv). Lost: genuine cells missing from the board or shown with other
# numbers while the genuine entry is accepted (or all of them, when it is held back without naming the
# hostile file).

GENUINE_BUNDLE = Path(__file__).resolve().parents[2] / "leaderboard" / "entries" / "dememo.json"
MARKUP = "A | B <img src=x onerror=alert(1)> ![t](http://e/x.png) *x* `y`"


def rehash(b: dict[str, Any]) -> dict[str, Any]:
    """The bundle with its content hash recomputed, as a determined tamperer would."""
    from dememo.board import submission
    b["content_sha256"] = submission.content_hash(b)
    return b


def tamper(b: dict[str, Any], rng: random.Random, n: int) -> int:
    """Change up to ``n`` fraction values of the bundle's finished non-reference cells (still in range), as
    a forger making an entry look better; the number changed."""
    from dememo.board.bundle import _is_reference
    refs = b["suite"].get("references", {})
    values = [(c, col) for c in b["cells"] if c["status"] == "ok" and not _is_reference(c, refs)
              for col, v in sorted(c["metrics"].items())
              if isinstance(v, float) and b["columns"][c["track"]].get(col, {}).get("unit") == "fraction"]
    for c, col in rng.sample(values, min(n, len(values))):
        v = c["metrics"][col]
        c["metrics"][col] = round(v - 0.25 if v > 0.5 else v + 0.25, 6)
    return min(n, len(values))


def third_party(genuine: dict[str, Any], dist: str, prefix: str, name: str | None = None) -> dict[str, Any]:
    """A third-party bundle made from the genuine one: the rows of one of its non-reference plugins, renamed
    ``prefix + name`` and claimed by distribution ``dist``, with the reference rows of their tables as
    context (what ``dememo-bench submit`` makes for a plugin of another distribution)."""
    from dememo.board import submission
    from dememo.board.bundle import _is_reference, _row_plugins, _table
    from dememo.hashing import digest

    refs = genuine["suite"].get("references", {})
    used = {fn for c in genuine["cells"] if not _is_reference(c, refs) for fn in _row_plugins(c)}
    reference = {(f, n) for f, names in refs.items() for n in names} | {("attack", "none")}
    family, plugin = sorted((fn for fn in used if fn not in reference), key=lambda fn: (fn[0] != "unlearner", fn))[0]
    new = prefix + plugin
    own, tables = [], set()
    for c in genuine["cells"]:
        fields = [f for f, fam in submission.CELL_FAMILIES.items()
                  if fam == family and (c["params"].get(f) or {}).get("name") == plugin]
        if not fields:
            continue
        c = json.loads(json.dumps(c))
        for f in fields:
            c["params"][f]["name"] = new
            old_label = c.get(f) if f != "attack" else c["attack"]
            if isinstance(old_label, str) and old_label.startswith(plugin):
                label = new + old_label[len(plugin):]
                c["method"] = c["method"].replace(old_label, label)
                c[f] = label
        c["key"] = digest(c["params"])
        own.append(c)
        tables.add(_table(c))
    context = [json.loads(json.dumps(c)) for c in genuine["cells"]
               if _table(c) in tables and _is_reference(c, refs)]
    version = next(p["version"] for p in genuine["plugins"] if (p["family"], p["name"]) == (family, plugin))
    tracks = sorted({c["track"] for c in own + context})
    b = {**json.loads(json.dumps({k: v for k, v in genuine.items() if k != "cells"})),
         "name": name or f"{dist} entry", "plugin": {"distribution": dist, "version": "0.1"},
         "plugins": [{"family": family, "name": new, "version": version}],
         "columns": {t: json.loads(json.dumps(genuine["columns"][t])) for t in tracks},
         "seeds": sorted({c["seed"] for c in own + context}),
         "cells": sorted(own + context, key=lambda c: c["key"])}
    return rehash(b)


def _own(b: dict[str, Any]) -> list[dict[str, Any]]:
    from dememo.board import submission
    return submission.own_cells(b)


def _rekey(c: dict[str, Any]) -> dict[str, Any]:
    from dememo.hashing import digest

    c["key"] = digest(c["params"])
    return c


def relabelled(genuine: dict[str, Any], label: str | None = None) -> dict[str, Any]:
    """A third party's rows shown under another row's label (item 13): distribution ``dememo-evil`` owns
    unlearner ``evil-…`` but labels its cells ``label`` (default: the reference unlearner ``retrain``, so
    that they would average into the first-party row), on a seed the genuine entry does not have."""
    b = third_party(genuine, "dememo-evil", "evil-", name="Evil")
    refs = genuine["suite"]["references"]
    label = label or refs.get("unlearner", ["retrain"])[-1]
    seed = max(genuine["seeds"]) + 1
    for c in _own(b):
        old = c["unlearner"]
        c["unlearner"], c["method"] = label, c["method"].replace(old, label)
        c["seed"] = c["params"]["seed"] = seed
        _rekey(c)
    b["seeds"] = sorted({*b["seeds"], seed})
    return rehash(b)


def lookalike(genuine: dict[str, Any]) -> dict[str, Any]:
    """A third party whose plugin's name is a look-alike of a first-party one (item 13): its first letter in
    full width (``ｆinetune`` for ``finetune``), NFKC-equal to it; labels consistent with its params."""
    b = third_party(genuine, "dememo-lookalike", "", name="Look-alike")
    old = b["plugins"][0]["name"]
    new = chr(ord(old[0]) - ord("a") + 0xFF41) + old[1:] if "a" <= old[0] <= "z" else "\ufb01" + old[2:]
    b["plugins"][0]["name"] = new
    fields = ("unlearner", "poisoner", "train_attack", "attack")
    for c in b["cells"]:
        if not any((c["params"].get(f) or {}).get("name") == old for f in fields):
            continue
        for f in fields:
            if (c["params"].get(f) or {}).get("name") == old:
                c["params"][f]["name"] = new
                c[f] = new + c[f][len(old):]
                c["method"] = c["method"].replace(old, new, 1)
        _rekey(c)
    return rehash(b)


def out_of_range(genuine: dict[str, Any]) -> dict[str, Any]:
    """A third party that fails ``verify``'s metrics and suite checks (item 14): a fraction metric of 3.0
    and a training recipe of 500 epochs, hashes recomputed."""
    b = third_party(genuine, "dememo-range", "range-", name="Range")
    for c in _own(b):
        meta = b["columns"][c["track"]]
        col = next((k for k in sorted(c["metrics"]) if meta.get(k, {}).get("unit") == "fraction"), None)
        if col is not None:
            c["metrics"][col] = 3.0
        c["params"]["data"]["recipe"]["epochs"] = 500
        _rekey(c)
    return rehash(b)


def failed_with_numbers(genuine: dict[str, Any]) -> dict[str, Any]:
    """A third party whose own cells say ``failed`` but carry (forged) numbers the board shows (item 15)."""
    b = third_party(genuine, "dememo-failed", "failed-", name="Failed")
    for c in _own(b):
        c["status"], c["error"] = "failed", {"stage": "metric:x", "message": "failed late"}
        c["metrics"] = {k: (0.999 if isinstance(v, float) and 0 <= v <= 1 else v) for k, v in c["metrics"].items()}
    return rehash(b)


def deviant_data(genuine: dict[str, Any]) -> dict[str, Any]:
    """A third party run with ``--set`` on the suite's dataset and architecture (item 16): another test split
    or model, keys recomputed; only a bundle's own plugins may differ from the suite's plan."""
    b = third_party(genuine, "dememo-deviant", "deviant-", name="Deviant")
    for c in _own(b):
        for part in ("dataset", "architecture"):
            params = c["params"]["data"][part]["params"]
            k = next((k for k in sorted(params) if isinstance(params[k], int) and not isinstance(params[k], bool)), None)
            if k is not None:
                params[k] += 7
        _rekey(c)
    return rehash(b)


def claims_reference(genuine: dict[str, Any], family: str, name: str) -> dict[str, Any]:
    """A third party that also claims a first-party (installed) plugin, e.g. ``attack none`` or ``unlearner
    retrain`` (item 18): it must be refused alone, never take the first-party entry off the board."""
    b = third_party(genuine, "dememo-claims", "claims-", name="Claims")
    version = next((p["version"] for p in genuine["plugins"] if (p["family"], p["name"]) == (family, name)), "1")
    b["plugins"].append({"family": family, "name": name, "version": version})
    return rehash(b)


def formula_column(genuine: dict[str, Any]) -> dict[str, Any]:
    """A third party whose own cells carry a column named like a spreadsheet formula (item D)."""
    b = third_party(genuine, "dememo-formula", "formula-", name="=HYPERLINK(\"http://e.vil\",\"x\")")
    b["columns"] = json.loads(json.dumps(b["columns"]))  # third_party shares the genuine's column dicts
    col = "-2-3"  # the column names a bundle may declare: ``^[A-Za-z0-9_.@-]+$``, so ``-`` or ``@`` first
    for track in b["columns"]:
        b["columns"][track][col] = {"label": "@SUM(1+1)", "direction": "info", "unit": "count"}
    for c in _own(b):
        c["metrics"][col] = 1.0
    return rehash(b)


def _refused_alone(hostile: list[str]) -> Any:
    """A check for cases the board settles alone: each hostile file refused, the genuine entry accepted."""
    def check(out: Path, board: Any) -> str:
        refused = dict(board.refused) if board is not None else {}
        if "dememo.json" in refused or board is None:
            return "the genuine entry is held back: " + (refused.get("dememo.json") or "no board")
        missing = [h for h in hostile if h not in refused]
        return f"accepted {missing}" if missing else ""
    return check


def _all_drawable(out: Path, board: Any) -> str:
    """Every own cell of an accepted entry that carries a number can be drawn by re-runs (item 15)."""
    from dememo.board import submission
    for path in sorted(out.parent.joinpath("entries").glob("*.json")):
        if path.name == "board.json" or path.name in dict(board.refused if board else []):
            continue
        b = submission.load_bundle(path)
        pool = {c["key"] for c in submission.pick_cells(b, len(b["cells"]), 0)}
        shown = [c for c in submission.own_cells(b) if c["key"] not in pool
                 and any(v is not None for v in c["metrics"].values())]
        if shown:
            return f"{path.name}: {len(shown)} own cells with numbers on the board that no re-run can draw"
    return ""


def _no_formula(out: Path, board: Any) -> str:
    """No field of the board's CSV starts like a spreadsheet formula (item D)."""
    import csv
    import io

    if board is None:
        return ""
    rows = list(csv.reader(io.StringIO((out / "leaderboard.csv").read_text(encoding="utf-8"))))
    bad = [f for r in rows for f in r if f[:1] in ("=", "+", "@") or (f[:1] == "-" and not _number(f))]
    return f"formula fields in leaderboard.csv, e.g. {bad[0]!r}" if bad else ""


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _hostile_cases(g: dict[str, Any], rng: random.Random) -> list[tuple]:
    """(case name, {file name: bundle}) of every hostile case; each file is written next to the genuine
    ``dememo.json`` and the benign third-party ``third.json``."""
    from dememo.board import submission
    from dememo.board.bundle import _is_reference, _row_plugins
    def copy(b: dict[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps(b))

    def forged(**fields: Any) -> dict[str, Any]:
        b = copy(g)
        tamper(b, rng, rng.randint(1, 60))
        b.update(fields)
        return rehash(b)

    evil = third_party(g, "dememo-evil", "evil-")
    claims = copy(evil)
    claims["plugins"].append(next(p for p in g["plugins"] if (p["family"], p["name"]) in
                                  {fn for c in submission.own_cells(g) for fn in _row_plugins(c)}
                                  and p["name"] not in ("none", "original", "retrain")))
    foreign = copy(evil)
    stolen = copy(next(c for c in g["cells"] if c["status"] == "ok" and not _is_reference(c, g["suite"]["references"])))
    stolen["metrics"] = {k: (round(1 - v, 6) if isinstance(v, float) and 0 <= v <= 1 else v) for k, v in stolen["metrics"].items()}
    foreign["cells"].append(stolen)
    foreign["columns"], foreign["seeds"] = copy(g["columns"]), copy(g["seeds"])
    refs = copy(evil)
    for c in refs["cells"]:
        if not submission.is_own(c, submission.claimed_plugins(refs)):
            c["metrics"] = {k: (round(1 - v, 6) if isinstance(v, float) and 0 <= v <= 1 else v) for k, v in c["metrics"].items()}
    markup = third_party(g, "dememo-markup", "mk-", name=MARKUP)
    for c in markup["cells"]:
        if submission.is_own(c, submission.claimed_plugins(markup)):
            c["method"] = MARKUP + " " + c["method"]
    partial = copy(g)
    partial["cells"] = rng.sample(copy(g)["cells"], max(1, len(g["cells"]) // 3))
    tamper(partial, rng, 10)
    have = {c["key"] for c in partial["cells"]}
    partial["cells"] += [c for c in copy(evil)["cells"] if c["key"] not in have]
    partial["plugins"] = g["plugins"] + evil["plugins"]
    partial["plugin"] = {"distribution": "dememo-partial", "version": "0.1"}
    partial["name"] = "Partial"
    flipped = copy(evil)
    track = sorted(flipped["columns"])[0]
    col = next(k for k, m in flipped["columns"][track].items() if m.get("direction") in ("higher", "lower"))
    flipped["columns"][track][col] = {**flipped["columns"][track][col],
                                      "direction": "lower" if flipped["columns"][track][col]["direction"] == "higher" else "higher"}
    same_name = copy(evil)
    same_name["name"] = g["name"]
    return [
        ("forged copy, name sorting first", {"0000-dememo.json": forged()}),
        ("forged copy, name sorting last", {"zzzz-dememo.json": forged()}),
        ("forged copy under another entry name", {"aaa.json": forged(name="Better first party")}),
        ("forged copy under another distribution", {"aab.json": forged(name="Evil", plugin={"distribution": "dememo-evil", "version": "9"})},
         _refused_alone(["aab.json"])),
        ("claims another distribution's plugin", {"0-claims.json": rehash(claims)}, _refused_alone(["0-claims.json"])),
        ("carries another distribution's row", {"0-foreign.json": rehash(foreign)}, _refused_alone(["0-foreign.json"])),
        ("tampered reference rows", {"0-refs.json": rehash(refs)}),
        ("markup in name and labels", {"0-markup.json": rehash(markup)}, _refused_alone(["0-markup.json"])),
        ("duplicate content", {"0000-copy.json": copy(g)}),
        ("partial copy with own rows", {"0-partial.json": rehash(partial)}, _refused_alone(["0-partial.json"])),
        ("redefines a column", {"0-columns.json": rehash(flipped)}, _refused_alone(["0-columns.json"])),
        ("takes the genuine entry's name", {"0-name.json": rehash(same_name)}, _refused_alone(["0-name.json"])),
        ("forged copies first and last", {"0000-dememo.json": forged(), "zzzz-dememo.json": forged()}),
        # cases the board settles alone (the hostile file refused, the genuine entry kept) or checks beyond it
        ("labels another row's name", {"0-relabel.json": relabelled(g)}, _refused_alone(["0-relabel.json"])),
        ("look-alike plugin name", {"0-lookalike.json": lookalike(g)}, _refused_alone(["0-lookalike.json"])),
        ("fails the metrics and suite checks", {"0-range.json": out_of_range(g)}, _refused_alone(["0-range.json"])),
        ("failed cells with numbers", {"0-failed.json": failed_with_numbers(g)}, _all_drawable),
        ("--set on the suite's dataset and architecture", {"0-deviant.json": deviant_data(g)},
         _refused_alone(["0-deviant.json"])),
        ("claims attack none", {"0-none.json": claims_reference(g, "attack", "none")}, _refused_alone(["0-none.json"])),
        ("claims a reference unlearner", {"0-retrain.json": claims_reference(g, "unlearner", "retrain")},
         _refused_alone(["0-retrain.json"])),
        ("distribution dememo at another version", {"0-version.json": forged(plugin={**g["plugin"], "version": "9.9"})},
         _refused_alone(["0-version.json"])),
        ("formula in a column name", {"0-formula.json": formula_column(g)}, _no_formula),
    ]


def _board_check(g: dict[str, Any], out: Path, board: Any, hostile: list[str],
                 error: str = "") -> tuple[bool, int, int, str]:
    """(handled, genuine rows missing, genuine rows shown with other values, why not) of one built board (or
    the ``error`` of a build that accepted nothing) against the genuine bundle ``g`` (``dememo.json``)."""
    from dememo.board import submission
    from dememo.board.bundle import _slot
    own = submission.own_cells(g)
    if board is None:  # everything held back: the one-line error must say why, naming the hostile files
        named = "dememo.json: held back" in error and all(h in error for h in hostile)
        return named, 0 if named else len(own), 0, "" if named else f"no board, and the error does not name {hostile}: {error}"
    refused = dict(board.refused)
    on_board = {_slot(c): c for c in json.loads((out / "results.json").read_text())["cells"]}
    if "dememo.json" in refused:
        named = any(h in refused["dememo.json"] for h in hostile) and all(h in refused for h in hostile)
        shown = [s for s in map(_slot, own) if s in on_board]
        ok = named and not shown
        return ok, 0 if named else len(own), 0, "" if ok else f"held back without naming {hostile}: {refused['dememo.json']}"
    missing = [c for c in own if _slot(c) not in on_board]
    changed = [c for c in own if _slot(c) in on_board and
               any(on_board[_slot(c)].get(k) != c.get(k) for k in ("key", "status", "metrics", "series"))]
    lost = len(missing) + len(changed)
    md = (out / "leaderboard.md").read_text(encoding="utf-8")
    ok = lost == 0 and not raw_markdown(md) and not ragged_tables(md)
    why = "" if ok else (f"{len(missing)} genuine rows missing, {len(changed)} shown with other values, raw markup "
                         f"{raw_markdown(md)}, ragged tables {ragged_tables(md)}")
    return ok, len(missing), len(changed), why


def raw_markdown(md: str) -> list[str]:
    """Markup in a Markdown text that is not escaped: HTML tags, images, links."""
    import re

    return re.findall(r"<[A-Za-z/!][^>]*>|(?<!\\)!\[|(?<!\\)\]\(", md)


def ragged_tables(md: str) -> list[str]:
    """Rows of a Markdown table with another number of (unescaped) column separators than its header."""
    import re

    bad = []
    for block in md.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        if rows and any(len(re.findall(r"(?<!\\)\|", r)) != len(re.findall(r"(?<!\\)\|", rows[0])) for r in rows):
            bad.append(rows[0])
    return bad


def hostile_bundles(workdir: Path, seed: int, genuine: Path | None = None) -> Tally:
    """Hostile bundles against a genuine first-party bundle (``genuine``, default the committed
    ``leaderboard/entries/dememo.json``; the board build re-runs nothing, so no run is needed): forged
    copies with recomputed hashes under names sorting first and last, claims on another distribution's
    plugins, rows of other plugins, tampered reference rows, markup in names and labels, duplicate content,
    a partial copy, a redefined column, a taken entry name; labels of another row and look-alike names,
    bundles failing the metrics and suite checks, failed cells with numbers, ``--set`` on the suite's data,
    claims on installed reference plugins or the first-party distribution at another version, a formula
    in a column name. ``seed`` draws which values are forged."""
    from dememo.board import submission
    from dememo.errors import UserError

    tally = Tally("hostile bundle")
    path = Path(genuine) if genuine is not None else GENUINE_BUNDLE
    if not path.is_file():
        raise FileNotFoundError(f"no genuine bundle at {path}: pass genuine=PATH (a bundle from 'dememo-bench submit')")
    g = submission.load_bundle(path)
    t = third_party(g, "dememo-third", "third-")
    rng = random.Random(seed)
    for i, (name, files, *extra) in enumerate(_hostile_cases(g, rng)):
        entries, out = Path(workdir) / f"hostile-{i}" / "entries", Path(workdir) / f"hostile-{i}" / "board"
        entries.mkdir(parents=True, exist_ok=True)
        (entries / "dememo.json").write_bytes(path.read_bytes())
        submission.write_bundle(t, entries / "third.json")
        for fname, b in files.items():
            submission.write_bundle(b, entries / fname)
        try:
            board, error = submission.build_board(entries, out), ""
        except UserError as exc:
            board, error = None, str(exc)
        ok, lost, wrong, why = _board_check(g, out, board, sorted(files), error)
        if ok and extra:  # a case with its own check beyond the genuine entry's numbers
            why = extra[0](out, board)
            ok = not why
        tally.case(ok, f"{name}: {why}")
        tally.lost += lost  # genuine rows missing from the board
        tally.wrong += wrong  # genuine rows shown with other values
    return tally
