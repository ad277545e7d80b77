"""Fuzzing dememo's input edges: ``--set`` values, suite files, ``results.json``, submission bundles and
dataset files in their real formats (issue 9, "Hostile and malformed input").

Each edge is a *group* with a hypothesis strategy of cases and a function that runs one case and says
how it ended (:class:`Outcome`). A case is *handled* when every call it makes either succeeds with correct
handling or raises a :class:`~dememo.errors.UserError` whose message is one line, and every
``dememo-bench`` command it runs exits 0 (or 1 where the command reports refusals) or 2 with exactly one
``dememo-bench: error:`` line and no traceback. Anything else — another exception type, a
``RecursionError``, a case that runs past :data:`CASE_SECONDS`, a multi-line message — is not handled and
is recorded by its kind. A case *loses* results when a failed command leaves partially written output
behind (files in the directory it was told to write), or when a command that reported success wrote
output that cannot be read back.

The same strategies and runners serve the tests (``tests/system/test_fuzz_inputs.py``, through hypothesis'
``@given``) and :func:`fuzz_report`, which runs each group's property programmatically (derandomized, so
the figures are reproducible) and counts cases tried, handled and lost per group::

    cd tests && python -m qa.fuzz 200

Inputs stay bounded: a mutation adds at most a few thousand list items or :data:`GROW_BYTES` of JSON,
nesting goes up to 100,000 levels (deep nesting is a case of its own), and the one oversized file is a
sparse file just over the bundle limit. Nothing here needs the network or a GPU.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import math
import os
import pickle
import re
import shlex
import signal
import sys
import tempfile
import threading
import tomllib
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
from hypothesis import strategies as st

from dememo.errors import UserError

GROUPS = ("set-values", "suite-files", "results-json", "bundles", "dataset-files")
#: a case that runs longer than this is counted as a hang
CASE_SECONDS = 20.0


# -- outcomes --------------------------------------------------------------------------------------------


@attrs.frozen
class Outcome:
    """How one case (or one call of a case) ended. ``kind``: ``ok``, ``user-error``, or what went wrong (an
    exception type, ``multi-line error``, ``hang``, ``exit code N``, ``partial output``, ``wrong data``...)."""

    handled: bool
    kind: str
    detail: str = ""
    lost: bool = False


class _Hang(BaseException):
    """Raised by the case timer (a BaseException, so that no ``except Exception`` under test swallows it)."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """SIGALRM after ``seconds`` in the main thread (elsewhere: no limit)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def fire(signum: int, frame: Any) -> None:
        raise _Hang()

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def one_line(text: str) -> bool:
    return bool(text.strip()) and len(text.splitlines()) == 1


def _brief(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}{where}: {text}"


def attempt(fn: Callable[[], Any]) -> Outcome:
    """Run ``fn``: handled when it returns or raises a one-line UserError."""
    try:
        with _time_limit(CASE_SECONDS):
            fn()
    except _Hang:
        return Outcome(False, "hang", f"still running after {CASE_SECONDS:g} s")
    except UserError as exc:
        text = str(exc)
        if not one_line(text):
            return Outcome(False, "multi-line error", repr(text[:300]))
        return Outcome(True, "user-error", text[:300])
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - every other ending is the finding
        return Outcome(False, type(exc).__name__, _brief(exc))
    return Outcome(True, "ok")


def cli(argv: list[str]) -> tuple[int | None, str, str, Outcome | None]:
    """``dememo-bench ARGV`` in this process: exit code, stdout, stderr, and an Outcome if it raised."""
    from dememo.cli import main

    out, err = io.StringIO(), io.StringIO()
    rc: int | None = None
    problem = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _time_limit(CASE_SECONDS):
            rc = main(argv)
    except _Hang:
        problem = Outcome(False, "hang", f"dememo-bench {argv[:2]} still running after {CASE_SECONDS:g} s")
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001
        problem = Outcome(False, type(exc).__name__, f"dememo-bench {' '.join(argv[:1])}: {_brief(exc)}")
    return rc, out.getvalue(), err.getvalue(), problem


def _files(where: Path) -> list[Path]:
    if not where.exists():
        return []
    if where.is_file():
        return [where]
    return sorted(p for p in where.rglob("*") if p.is_file())


def cli_outcome(argv: list[str], ok: tuple[int, ...] = (0,), output: Path | None = None,
                check_output: Callable[[int, str], str | None] | None = None) -> Outcome:
    """Run a command; handled when it exits with a code in ``ok`` (and ``check_output(rc, stdout)`` finds no
    problem) or with 2 and one ``dememo-bench: error:`` line and no traceback — in which case ``output`` (the
    file or directory the command was told to write) must hold no file."""
    rc, out, err, problem = cli(argv)
    if problem is not None:
        return problem
    if "Traceback" in err or "Traceback" in out:
        return Outcome(False, "traceback", f"dememo-bench {argv[0]}: traceback printed (exit {rc})")
    if rc in ok:
        try:
            bad = check_output(rc, out) if check_output else None
        except Exception as exc:  # noqa: BLE001 - reading the output back failed: the output is the finding
            return Outcome(False, type(exc).__name__, f"reading back the output of dememo-bench {argv[0]}: {_brief(exc)}",
                           lost=True)
        return Outcome(False, "wrong output", bad, lost=True) if bad else Outcome(True, "ok")
    if rc == 2:
        prefix = "dememo-bench: error:"
        tail = err[err.rfind(prefix):] if prefix in err else ""
        if err.count(prefix) != 1 or not tail.endswith("\n") or len(tail.splitlines()) != 1:
            return Outcome(False, "multi-line error", f"dememo-bench {argv[0]}: not one error line: {err[-300:]!r}")
        left = _files(output) if output is not None else []
        if left:
            return Outcome(False, "partial output", f"dememo-bench {argv[0]} failed ({tail[:200].strip()}) but left "
                                                     f"{len(left)} files, e.g. {left[0].name}", lost=True)
        return Outcome(True, "user-error", tail[:300].strip())
    return Outcome(False, f"exit code {rc}", f"dememo-bench {argv[0]}: {err[-300:]!r}")


def combine(outcomes: list[Outcome]) -> Outcome:
    """The first unhandled outcome (lost if any was), else the first one (a case's main call)."""
    lost = any(o.lost for o in outcomes)
    for o in outcomes:
        if not o.handled:
            return attrs.evolve(o, lost=lost)
    return attrs.evolve(outcomes[0], lost=lost) if outcomes else Outcome(True, "ok")


# -- values and mutations --------------------------------------------------------------------------------

_TEXT = st.characters(codec=None)  # every code point, lone surrogates included
_SPECIAL_TEXT = ["", " ", "\n", "\r\n", "\x00", "\u2028", "none", "retrain", "random-10%", "NaN", "x" * 3000,
                 "../../etc/passwd", "\ud800", "é", "🙂"]
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(-(2**70), 2**70),
    st.sampled_from([10**400, -(10**400), 2**63, 2**63 - 1, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e308, 5e-324, -0.0]),
    st.text(_TEXT, max_size=12), st.sampled_from(_SPECIAL_TEXT),
)
#: JSON-like values of every type, small (nesting beyond a few levels is the ``deepen`` mutation's job)
WEIRD = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(_TEXT, max_size=8), inner, max_size=4)),
                     max_leaves=6)

#: which node a mutation hits: (depth cap, index); the root only when the cap is 24 (one draw in 25)
_WHERE = st.tuples(st.integers(0, 24), st.integers(0, 2**32))
#: one structural mutation of a JSON-like document
JSON_OP = st.one_of(
    st.tuples(st.just("drop"), _WHERE),
    st.tuples(st.just("replace"), _WHERE, WEIRD),
    st.tuples(st.just("insert"), _WHERE, st.text(_TEXT, max_size=10) | st.sampled_from(["key", "name", "x", "timings"]), WEIRD),
    st.tuples(st.just("retype"), _WHERE),
    st.tuples(st.just("grow"), _WHERE, st.integers(0, 3000)),
    st.tuples(st.just("deepen"), _WHERE, st.sampled_from([2, 50, 500, 990, 5000, 100_000])),
    st.tuples(st.just("tweak"), _WHERE, st.integers(0, 2**16)),
    st.tuples(st.just("tweak"), _WHERE, st.integers(0, 2**16)),
)
#: one mutation of a file's bytes (positions as fractions of its length)
_FRACTION = st.floats(0, 1)
BYTE_OP = st.one_of(
    st.tuples(st.just("truncate"), _FRACTION),
    st.tuples(st.just("flip"), st.lists(st.tuples(_FRACTION, st.integers(0, 7)), min_size=1, max_size=8)),
    st.tuples(st.just("splice"), _FRACTION, st.binary(max_size=12)
              | st.sampled_from([b"\xff\xfe", b"\x00", b"\xc3", b"\xed\xa0\x80", b"[", b"{", b"}", b"]", b'"', b"\\"])),
    st.tuples(st.just("prefix"), st.sampled_from([b"\xef\xbb\xbf", b"\x80\x04", b"\x80\x02", b"PK\x03\x04",
                                                  b"\x1f\x8b", b"\xff\xfe", b"\x00", b" ", b"\x93NUMPY"])),
)
#: duplicate keys inserted after the n-th "{" of a JSON text (text level: parsers keep the last one)
DUP_OP = st.tuples(st.just("duplicate-key"), st.integers(0, 2**32))


#: same-type replacements (``tweak``): values a well-typed but wrong document holds
TWEAKS: dict[type, list[Any]] = {
    int: [-1, 0, 1, 2, 7, 10**6, 2**31, 2**63, 10**30],
    float: [-0.5, 0.0, 5e-324, 1e-9, 0.3, 0.999, 1.0, 1.5, 1e308, math.nan, math.inf, -math.inf],
    str: ["", "none", "retrain", "original", "em", "em(mode=class)", "finetune", "weight-noise", "digits", "mlp",
          "random-10%", "class-0", "sample", "class", "share", "clean", "test_acc", "forget_acc", "ok", "failed", "x",
          "é\u2028", "a\nb", "🙂", "\x00", "0" * 64, "1.0", "unlearning", "interplay", "unlearnability"],
}


def _tweak(node: Any, choice: int) -> Any:
    """A value of the same JSON type as ``node`` (a container: emptied, doubled, cut to one item)."""
    if isinstance(node, bool):
        return not node
    for kind in (int, float, str):
        if isinstance(node, kind):
            pool = TWEAKS[kind]
            return pool[choice % len(pool)]
    if isinstance(node, list):
        return [[], node + node, node[:1], node[::-1]][choice % 4]
    if isinstance(node, dict):
        items = list(node.items())
        return [{}, dict(items[: len(items) // 2]), dict(items[::-1])][choice % 3]
    return node


def _walk(doc: Any, limit: int = 50_000) -> list[tuple[Any, ...]]:
    """Every node's path, breadth first (iterative: no recursion on deep documents)."""
    out: list[tuple[Any, ...]] = []
    queue: deque[tuple[tuple[Any, ...], Any]] = deque([((), doc)])
    while queue and len(out) < limit:
        path, node = queue.popleft()
        out.append(path)
        if isinstance(node, dict):
            queue.extend((path + (k,), v) for k, v in node.items())
        elif isinstance(node, list):
            queue.extend((path + (i,), v) for i, v in enumerate(node))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _pick(doc: Any, where: tuple[int, int]) -> tuple[Any, ...]:
    cap, index = where
    cap = 0 if cap >= 24 else 6 - cap // 4  # hypothesis favours small draws: they reach the deepest nodes
    paths = _walk(doc)
    shallow = [p for p in paths if len(p) <= cap] or paths
    return shallow[index % len(shallow)]


@attrs.frozen
class Deep:
    """A placeholder for ``depth`` nested lists, spliced in as text (building them would need recursion)."""

    depth: int

    @property
    def token(self) -> str:
        return f"\x00deep{self.depth}\x00"


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


#: the most JSON a ``grow`` mutation adds (keeps cases fast: inputs are bounded)
GROW_BYTES = 300_000


def _room(fill: Any, n: int) -> int:
    """How many copies of ``fill`` (up to ``n``) fit in :data:`GROW_BYTES`."""
    size = len(json.dumps(fill, default=repr)) + 2
    return max(0, min(n, GROW_BYTES // size))


def mutate(doc: Any, ops: list[tuple]) -> Any:
    """Apply structural mutations to a deep copy of ``doc``."""
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, where = op[0], op[1]
        path = _pick(doc, where)
        node = _get(doc, path)
        if kind == "drop":
            if path:
                parent = _get(doc, path[:-1])
                del parent[path[-1]]
            else:
                doc = {}
        elif kind == "replace":
            doc = _set(doc, path, copy.deepcopy(op[2]))
        elif kind == "insert":
            if isinstance(node, dict):
                node[op[2]] = copy.deepcopy(op[3])
            elif isinstance(node, list):
                node.insert(len(op[2]) % (len(node) + 1), copy.deepcopy(op[3]))
            else:
                doc = _set(doc, path, {op[2]: node})
        elif kind == "retype":
            if isinstance(node, dict):
                new: Any = list(node.values())
            elif isinstance(node, list):
                new = {str(i): v for i, v in enumerate(node)}
            elif isinstance(node, bool):
                new = int(node)
            elif isinstance(node, (int, float)):
                new = str(node)
            elif isinstance(node, str):
                new = [node]
            else:
                new = {}
            doc = _set(doc, path, new)
        elif kind == "grow":  # to n items, at most GROW_BYTES more of JSON
            if isinstance(node, list):
                fill = node[-1] if node else 0
                node.extend(copy.deepcopy(fill) for _ in range(_room(fill, op[2] - len(node))))
            elif isinstance(node, dict):
                fill = next(iter(node.values()), 0)
                node.update({f"k{i}": copy.deepcopy(fill) for i in range(_room(fill, op[2]))})
            else:
                doc = _set(doc, path, [node] * _room(node, op[2]))
        elif kind == "deepen":
            doc = _set(doc, path, Deep(op[2]))
        elif kind == "tweak":
            doc = _set(doc, path, copy.deepcopy(_tweak(node, op[2])))
    return doc


def _deep_default(value: Any) -> Any:
    if isinstance(value, Deep):
        return value.token
    raise TypeError(type(value).__name__)


def to_json_text(doc: Any, indent: int | None = 1) -> str:
    """JSON text with NaN/Infinity literals where the document holds them, and ``Deep`` placeholders spliced
    in as nested lists."""
    text = json.dumps(doc, indent=indent, default=_deep_default, allow_nan=True)
    return _splice_deep(text, lambda t: json.dumps(t))


def _splice_deep(text: str, quote: Callable[[str], str]) -> str:
    pattern = re.escape(quote(Deep(12345).token)).replace("12345", "([0-9]+)")
    return re.sub(pattern, lambda m: "[" * int(m[1]) + "0" + "]" * int(m[1]), text)


def duplicate_key(text: str, n: int) -> str:
    """``"dup": 1, "dup": 2,`` after the n-th ``{`` (an object that already has a key is also given one of its
    own keys twice)."""
    starts = [i for i, ch in enumerate(text) if ch == "{"]
    if not starts:
        return text
    i = starts[n % len(starts)] + 1
    rest = text[i:].lstrip()
    if rest.startswith('"'):
        end = rest.find('":')
        if end > 0:
            key = rest[: end + 1]
            return text[:i] + f"{key}: 0, " + text[i:]
    return text[:i] + '"dup": 1, "dup": 2' + ("" if rest.startswith("}") else ", ") + text[i:]


def mutate_bytes(data: bytes, ops: list[tuple]) -> bytes:
    for op in ops:
        kind = op[0]
        if kind == "truncate":
            data = data[: int(len(data) * op[1])]
        elif kind == "flip" and data:
            buf = bytearray(data)
            for where, bit in op[1]:
                i = min(int(where * len(buf)), len(buf) - 1)
                buf[i] ^= 1 << bit
            data = bytes(buf)
        elif kind == "splice":
            i = int(len(data) * op[1])
            data = data[:i] + op[2] + data[i:]
        elif kind == "prefix":
            data = op[1] + data
    return data


# -- a tiny TOML writer (tomllib only reads) -------------------------------------------------------------

_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _toml_string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable() and ch not in "\x7f":
            out.append(ch)
        else:  # control characters and lone surrogates (which TOML refuses) as escapes
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _toml_key(k: Any) -> str:
    k = str(k)
    return k if k and set(k) <= _BARE else _toml_string(k)


def _toml_value(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, Deep):
        return "[" * v.depth + "0" + "]" * v.depth
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, (list, tuple)):
        items = [t for t in (_toml_value(x) for x in v) if t is not None]
        return "[" + ", ".join(items) + "]"
    if isinstance(v, dict):
        items = [f"{_toml_key(k)} = {t}" for k, x in v.items() if (t := _toml_value(x)) is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise TypeError(type(v).__name__)


def to_toml(doc: dict[str, Any]) -> str:
    """TOML text of a document: one ``key = value`` line per top-level key, tables inline; None is left out
    (TOML has no null)."""
    lines = []
    for k, v in doc.items():
        t = _toml_value(v)
        if t is not None:
            lines.append(f"{_toml_key(k)} = {t}")
    return "\n".join(lines) + "\n"


# -- the environment every group runs in -----------------------------------------------------------------

#: the suite of the one real run whose results.json and bundle the mutations start from (seconds on a CPU)
RUN_SUITE = """
name = "fuzz"
description = "digits, 2 epochs: the results the fuzzer mutates"
seeds = 1
tracks = ["unlearnability", "unlearning"]

[[datasets]]
name = "digits"
architecture = "mlp"
recipe = { epochs = 2, batch_size = 128, lr = 0.05 }

[[forget]]
kind = "random"
fraction = 0.1

[references]
poisoner = ["none"]
unlearner = ["original", "retrain"]
attack = ["none"]

[headline]
unlearnability = ["test_acc"]
unlearning = ["forget_acc"]

[[variants.poisoner.random-noise]]
mode = "sample"
[[variants.poisoner.random-noise]]
mode = "class"

[[variants.attack.weight-noise]]
sigma = 0.02
[[variants.attack.weight-noise]]
sigma = 0.05

[[curves]]
attack = "weight-noise"
param = "sigma"
column = "test_acc"
"""
RUN_FILTERS = ["--poisoner", "none", "--poisoner", "random-noise", "--unlearner", "finetune",
               "--metric", "clean-accuracy", "--metric", "unlearning-accuracy", "--attack", "none",
               "--attack", "weight-noise"]

#: the suite the suite-file mutations start from: every section a suite may have
SUITE_TEXT = """
name = "fuzz-suite"
description = "every section of a suite"
seeds = 2
tracks = ["unlearnability", "unlearning", "interplay"]

[[datasets]]
name = "digits"
architecture = "mlp"
recipe = { epochs = 3, batch_size = 64, lr = 0.05, momentum = 0.9, weight_decay = 5e-4, schedule = "onecycle" }
budgets = { linf = 0.1 }
params = { split_seed = 1 }
architecture_params = { hidden = 64 }
plugin_params.attack.weight-recovery = { fraction = 1.0 }

[[datasets]]
name = "noisy-shapes"
architecture = "small-cnn"

[[forget]]
kind = "random"
fraction = 0.1

[[forget]]
kind = "class"
classes = [0, 3]

[[forget]]
kind = "memorization"
stratum = "mix"
fraction = 0.1
scorer = "confidence"

[grid]
train_attack_poisoners = ["none", "em(mode=sample)"]
train_attack_datasets = ["noisy-shapes"]
model_attacks_after_train_attacks = false
model_attack_forget = ["random-10%"]
attack_forget = { prototype-relearn = ["class-0+3"] }
metric_forget = { u-lira = ["random-10%"] }
metric_datasets = { memorization = ["digits"] }
metric_train_attacks = { depth = ["none"] }

[interplay]
share = 0.4
targets = ["share", "clean"]
clean_forget = 0.1
datasets = ["digits"]
poisoners = ["none", "em(mode=class)"]
unlearners = ["finetune"]

[[curves]]
attack = "weight-noise"
param = "sigma"
column = "test_acc"

[references]
poisoner = ["none"]
unlearner = ["original", "retrain"]
attack = ["none"]

[headline]
unlearnability = ["test_acc"]
unlearning = ["forget_acc", "test_acc"]

[columns]
unlearnability = ["test_acc", "train_acc"]

[params.poisoner.em]
train_steps = 5
pgd_steps = 10

[params.metric.u-lira]
shadows = 6

[[variants.poisoner.em]]
mode = "sample"
[[variants.poisoner.em]]
mode = "class"

[[variants.attack.weight-noise]]
sigma = 0.01
[[variants.attack.weight-noise]]
sigma = 0.1

[tuned]
schema = "dememo.tuning/1"
seeds = [1000, 1001]
[[tuned.entries]]
dataset = "digits"
forget = "random-10%"
unlearner = "finetune"
chosen = { lr = 0.01, epochs = 2 }
objective = 0.05
trials = [{ params = { lr = 0.01, epochs = 2 }, status = "ok", objective = 0.05 }]
"""

#: a suite whose only dataset has no files in the (empty) data directory: ``--set`` runs stop after planning
SET_SUITE = """
name = "fuzz-set"
seeds = 1
tracks = ["unlearnability", "unlearning", "interplay"]

[[datasets]]
name = "mnist"
architecture = "mlp"
recipe = { epochs = 1, batch_size = 64, lr = 0.05 }

[[forget]]
kind = "random"
fraction = 0.1

[[forget]]
kind = "class"
classes = [1]

[interplay]
share = 0.3
unlearners = ["finetune"]

[references]
poisoner = ["none"]
unlearner = ["original", "retrain"]
attack = ["none"]
"""


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@attrs.define
class FuzzEnv:
    """What the groups share: the plugin registry, one real run's results and bundle, and scratch space.
    ``create`` runs a tiny suite once (seconds on a CPU) with a cache under ``root``."""

    root: Path
    registry: Any
    results_dir: Path
    results: dict[str, Any]
    results_bytes: bytes
    bundle: dict[str, Any]
    bundle_bytes: bytes
    set_suite: Path
    empty_data: Path
    targets: list[str]
    families: dict[str, str]
    _count: int = 0

    @classmethod
    def create(cls, root: Path | str) -> "FuzzEnv":
        from dememo import plugins
        from dememo.board import submission
        from dememo.results import load_results

        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        (root / "run.toml").write_text(RUN_SUITE)
        (root / "set.toml").write_text(SET_SUITE)
        (root / "empty-data").mkdir(exist_ok=True)
        with environment(DEMEMO_PROGRESS="0", DEMEMO_HTML_PLOTS="0"):
            rc, _, err, problem = cli(["--all", "--suite", str(root / "run.toml"), *RUN_FILTERS, "--device", "cpu",
                                       "--out", str(root / "run"), "--cache-dir", str(root / "cache"), "--quiet"])
        if problem is not None or rc != 0:
            raise RuntimeError(f"the fuzzer's seed run failed (exit {rc}): {problem or err[-2000:]}")
        results = load_results(root / "run")
        bundle = submission.bundle(results, "fuzz entry", "dememo")
        registry = plugins.get_registry()
        targets, families = [], {}
        for family in ("poisoner", "unlearner", "attack", "metric", "dataset", "architecture"):
            for name in registry.names(family):
                families.setdefault(name, family)
                cls_ = registry.get(family, name)
                targets += [f"{name}.{f.name}" for f in attrs.fields(cls_)]
        from dememo.training import Recipe

        targets += [f"recipe.{f.name}" for f in attrs.fields(Recipe)]
        return cls(root=root, registry=registry, results_dir=root / "run", results=results,
                   results_bytes=(root / "run" / "results.json").read_bytes(), bundle=bundle,
                   bundle_bytes=submission.canonical_bytes(bundle), set_suite=root / "set.toml",
                   empty_data=root / "empty-data", targets=sorted(targets), families=families)

    def case_dir(self) -> Path:
        self._count += 1
        d = self.root / "cases" / str(self._count)
        d.mkdir(parents=True)
        return d


# -- group 1: --set values -------------------------------------------------------------------------------

_JSON_TEXT = WEIRD.map(lambda v: json.dumps(v, allow_nan=True))
SET_VALUE = st.one_of(
    st.text(_TEXT, max_size=20), _JSON_TEXT,
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "nan", "inf", "1" * 5000, "9" * 400,
                     "1e-400", "0x10", "1_000", "true", "null", "[]", "{}", "[[[[1]]]]", '{"a": {"b": [1]}}',
                     "[" * 10000 + "]" * 10000, "sample", "class", "-1", "0", "2.5", " 3 ", "'a'", '"a"']),
    st.integers(-(2**80), 2**80).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
#: ``PLUGIN.PARAM`` targets: index into the installed plugins' parameters, or free text
SET_TARGET = st.one_of(st.integers(0, 2**32), st.text(_TEXT, max_size=16),
                       st.sampled_from(["recipe.epochs", "recipe.lr", "em.mode", "em.eps", "finetune.lr", "mnist.val_size",
                                        ".x", "x.", ".", "", "em..steps", "em.steps.x", "recipe", "=", "a.b=c"]))
SET_CASES = st.fixed_dictionaries({
    "items": st.lists(st.tuples(SET_TARGET, st.sampled_from(["=", "=", "=", "", "==", " = "]), SET_VALUE), min_size=1, max_size=3),
    "label": st.text(_TEXT, max_size=24) | st.sampled_from(["em(mode=class)", "em(", "em)", "(a=1)", "em(mode)", "em(=1)",
                                                             "em(a=1,,b=[1, 2])", "em(a=(1))", "", "()", "em(a=NaN)"]),
    "cli": st.booleans(),
})


def _set_items(env: FuzzEnv, case: dict[str, Any]) -> list[str]:
    items = []
    for target, eq, value in case["items"]:
        if isinstance(target, int):
            target = env.targets[target % len(env.targets)]
        items.append(f"{target}{eq}{value}")
    return items


def run_set_case(env: FuzzEnv, case: dict[str, Any]) -> Outcome:
    """parse_label, parse_sets, then planning a suite with the values (each target's plugin selected by a
    filter, so its values are structured), and the same through ``dememo-bench --set`` (which stops when
    loading the suite's dataset, whose files are absent)."""
    from dememo.params import parse_label, parse_sets
    from dememo.planning.planner import Filters, Planner
    from dememo.planning.suite import load_suite

    items = _set_items(env, case)
    wanted: dict[str, list[str]] = {"poisoner": ["none"]}
    for item in items:
        name = item.partition("=")[0].rpartition(".")[0].strip()
        family = env.families.get(name)
        if family in ("poisoner", "unlearner", "attack", "metric"):
            wanted.setdefault(family, []).append(name)

    def plan() -> None:
        sets = parse_sets(items)
        planner = Planner(env.registry, load_suite(str(env.set_suite)), sets)
        planner.cells(Filters(**{f: tuple(n) for f, n in wanted.items()}))

    outcomes = [attempt(plan), attempt(lambda: parse_label(case["label"]))]
    if case["cli"]:
        d = env.case_dir()
        flags = [x for f, names in wanted.items() for n in names for x in (f"--{f}", n)]
        argv = ["--suite", str(env.set_suite), *flags, *(f"--set={i}" for i in items), "--data-dir", str(env.empty_data),
                "--out", str(d / "out"), "--cache-dir", str(d / "cache"), "--device", "cpu", "--quiet"]
        outcomes.append(cli_outcome(argv, ok=()))  # never reaches training: exit 2 either way
    return combine(outcomes)


# -- group 2: suite files --------------------------------------------------------------------------------

SUITE_CASES = st.one_of(
    st.fixed_dictionaries({"mode": st.just("doc"), "ops": st.lists(JSON_OP, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"mode": st.just("bytes"), "ops": st.lists(BYTE_OP, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"mode": st.just("text"), "text": st.text(_TEXT, max_size=200)}),
    st.fixed_dictionaries({"mode": st.just("special"), "what": st.sampled_from(
        ["empty", "directory", "missing", "non-utf8", "bom", "no-suffix", "unknown-name", "shipped"])}),
)


def _suite_base() -> dict[str, Any]:
    return tomllib.loads(SUITE_TEXT)


def _suite_path(env: FuzzEnv, case: dict[str, Any], d: Path) -> str:
    path = d / "suite.toml"
    mode = case["mode"]
    if mode == "doc":
        doc = mutate(_suite_base(), [op if op[0] != "grow" else (op[0], op[1], min(op[2], 40)) for op in case["ops"]])
        if not isinstance(doc, dict):
            doc = {"value": doc}
        path.write_text(to_toml(doc), encoding="utf-8", errors="surrogatepass")
    elif mode == "bytes":
        path.write_bytes(mutate_bytes(SUITE_TEXT.encode(), case["ops"]))
    elif mode == "text":
        path.write_bytes(case["text"].encode("utf-8", "surrogatepass"))
    else:
        what = case["what"]
        if what == "empty":
            path.write_bytes(b"")
        elif what == "directory":
            path.mkdir()
        elif what == "non-utf8":
            path.write_bytes(SUITE_TEXT.encode("utf-16"))
        elif what == "bom":
            path.write_bytes(b"\xef\xbb\xbf" + SUITE_TEXT.encode())
        elif what == "no-suffix":
            path = d / "suite"
            path.write_text(SUITE_TEXT)
        elif what == "unknown-name":
            return "no-such-suite"
        elif what == "shipped":
            return "quick"
    return str(path)


def run_suite_case(env: FuzzEnv, case: dict[str, Any]) -> Outcome:
    """load_suite on the file, then planning it with every installed plugin; and ``dememo-bench --suite``
    with an unknown unlearner (the command stops after reading the suite)."""
    from dememo.planning.planner import Planner
    from dememo.planning.suite import load_suite

    d = env.case_dir()
    where = _suite_path(env, case, d)

    def load_and_plan() -> None:
        suite = load_suite(where)
        suite.fingerprint()
        Planner(env.registry, suite).cells()

    argv = ["--all", "--suite", where, "--unlearner", "no-such-unlearner", "--out", str(d / "out"),
            "--cache-dir", str(d / "cache"), "--device", "cpu", "--quiet"]
    return combine([attempt(load_and_plan), cli_outcome(argv, ok=(), output=d / "out")])


# -- group 3: results.json -------------------------------------------------------------------------------

RESULTS_CASES = st.one_of(
    st.fixed_dictionaries({"mode": st.just("doc"), "ops": st.lists(JSON_OP | DUP_OP, min_size=1, max_size=3),
                           "report": st.sampled_from([False] * 5 + [True])}),
    st.fixed_dictionaries({"mode": st.just("bytes"), "ops": st.lists(BYTE_OP, min_size=1, max_size=3),
                           "report": st.sampled_from([False] * 5 + [True])}),
    st.fixed_dictionaries({"mode": st.just("special"), "what": st.sampled_from(
        ["empty", "directory", "missing", "null", "list", "nan-metric", "huge-int", "surrogate", "deep"]),
        "report": st.booleans()}),
)


def _doc_text(doc: Any, ops: list[tuple]) -> str:
    text = to_json_text(mutate(doc, [op for op in ops if op[0] != "duplicate-key"]))
    for op in ops:
        if op[0] == "duplicate-key":
            text = duplicate_key(text, op[1])
    return text


def _results_file(env: FuzzEnv, case: dict[str, Any], run: Path) -> None:
    run.mkdir()
    path = run / "results.json"
    mode = case["mode"]
    if mode == "doc":
        path.write_bytes(_doc_text(env.results, case["ops"]).encode("utf-8", "surrogatepass"))
    elif mode == "bytes":
        path.write_bytes(mutate_bytes(env.results_bytes, case["ops"]))
    else:
        what = case["what"]
        doc = copy.deepcopy(env.results)
        cell = doc["cells"][0]
        if what == "empty":
            path.write_bytes(b"")
        elif what == "directory":
            path.mkdir()
        elif what == "missing":
            pass
        elif what == "null":
            path.write_text("null")
        elif what == "list":
            path.write_text(json.dumps([doc]))
        else:
            if what == "nan-metric":
                cell["metrics"]["test_acc"] = float("nan")
            elif what == "huge-int":
                cell["metrics"]["test_acc"] = 10**400
                cell["seed"] = 10**30
            elif what == "surrogate":
                cell["method"] = "\ud800"
                doc["suite"]["name"] = "\udfff"
            elif what == "deep":
                cell["metrics"] = Deep(100_000)
            path.write_bytes(to_json_text(doc).encode("utf-8", "surrogatepass"))


def _readers(path: Path) -> None:
    from dememo.board import leaderboard, report, submission
    from dememo.results import load_results

    data = load_results(path)
    leaderboard.render(data, "simple")
    leaderboard.render(data, "github")
    leaderboard.to_csv(data)
    json.dumps(leaderboard.to_json(data), ensure_ascii=False).encode("utf-8")
    report.figures(data)
    submission.bundle(data, "fuzz", "dememo")


def _bundle_readable(path: Path) -> Callable[[int, str], str | None]:
    def check(rc: int, out: str) -> str | None:
        from dememo.board.submission import check_bundle, load_bundle

        try:
            schema = check_bundle(load_bundle(path))[0]
        except UserError as exc:
            return f"submit reported success but wrote a bundle that does not load: {exc}"
        return None if schema.ok else f"submit wrote a bundle that fails its schema: {schema.detail[:200]}"
    return check


def _report_complete(out: Path) -> Callable[[int, str], str | None]:
    def check(rc: int, stdout: str) -> str | None:
        listed = [Path(line) for line in stdout.splitlines() if line.strip()]
        missing = [p for p in listed if not p.is_file()]
        if not (out / "report.html").is_file() or missing:
            return f"report reported success but {missing[:1] or ['report.html']} is missing"
        return None
    return check


def run_results_case(env: FuzzEnv, case: dict[str, Any]) -> Outcome:
    """load_results and every reader (leaderboard tables, CSV, JSON, report figures, submission bundle);
    ``dememo-bench submit`` (and, for some cases, ``dememo-bench report``) on the file: exit 0 with complete
    output, or 2 with one line and nothing written."""
    d = env.case_dir()
    run = d / "run"
    _results_file(env, case, run)
    outcomes = [attempt(lambda: _readers(run))]
    entry = d / "submit" / "entry.json"
    outcomes.append(cli_outcome(["submit", "--results", str(run), "--name", "fuzz", "--plugin", "dememo", "--out", str(entry)],
                                output=d / "submit", check_output=_bundle_readable(entry)))
    if case["report"]:
        out = d / "report"
        outcomes.append(cli_outcome(["report", "--results", str(run), "--out", str(out)], output=out,
                                    check_output=_report_complete(out)))
    return combine(outcomes)


# -- group 4: submission bundles -------------------------------------------------------------------------

BUNDLE_CASES = st.one_of(
    st.fixed_dictionaries({"mode": st.just("doc"), "ops": st.lists(JSON_OP | DUP_OP, min_size=1, max_size=3),
                           "rehash": st.sampled_from(["", "hash", "all", "all"]), "genuine": st.booleans(),
                           "rerun": st.sampled_from([False] * 7 + [True])}),
    st.fixed_dictionaries({"mode": st.just("bytes"), "ops": st.lists(BYTE_OP, min_size=1, max_size=3),
                           "rehash": st.just(""), "genuine": st.booleans(), "rerun": st.just(False)}),
    st.fixed_dictionaries({"mode": st.just("special"), "what": st.sampled_from(
        ["empty", "directory", "pickle", "big", "utf16", "deep", "board-json", "nan", "huge-int"]),
        "rehash": st.just(""), "genuine": st.booleans(), "rerun": st.just(False)}),
)


def _rehash(doc: Any, keys: bool = False) -> Any:
    """The content hash recomputed (as a naive tamperer would); with ``keys`` also every cell key and the
    suite fingerprint, so that mutations reach the checks behind the hashes."""
    from dememo.board.submission import content_hash
    from dememo.hashing import digest

    if not isinstance(doc, dict):
        return doc
    with contextlib.suppress(ValueError, TypeError, RecursionError, AttributeError, KeyError):
        if keys:  # NaN, a Deep placeholder or a non-dict: the hash cannot be computed, the old one stays
            for cell in doc["cells"]:
                with contextlib.suppress(ValueError, TypeError, RecursionError, AttributeError, KeyError):
                    cell["key"] = digest(cell["params"])
            doc["suite_fingerprint"] = digest(doc["suite"])
    with contextlib.suppress(ValueError, TypeError, RecursionError):
        doc["content_sha256"] = content_hash(doc)
    return doc


def _bundle_file(env: FuzzEnv, case: dict[str, Any], entries: Path) -> Path:
    from dememo.board.submission import MAX_BYTES

    entries.mkdir()
    path = entries / "entry.json"
    mode = case["mode"]
    if mode == "doc":
        doc = mutate(env.bundle, [op for op in case["ops"] if op[0] != "duplicate-key"])
        if case["rehash"]:
            doc = _rehash(doc, keys=case["rehash"] == "all")
        text = to_json_text(doc)
        for op in case["ops"]:
            if op[0] == "duplicate-key":
                text = duplicate_key(text, op[1])
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
    elif mode == "bytes":
        path.write_bytes(mutate_bytes(env.bundle_bytes, case["ops"]))
    else:
        what = case["what"]
        doc = copy.deepcopy(env.bundle)
        if what == "empty":
            path.write_bytes(b"")
        elif what == "directory":
            path.mkdir()
        elif what == "pickle":
            path.write_bytes(pickle.dumps(doc))
        elif what == "big":
            with open(path, "wb") as f:
                f.truncate(MAX_BYTES + 1)  # sparse: no disk used
        elif what == "utf16":
            path.write_bytes(json.dumps(doc).encode("utf-16"))
        elif what == "deep":
            doc["suite"]["x"] = Deep(990)
            path.write_text(to_json_text(_rehash(doc)))
        elif what == "board-json":
            (entries / "board.json").write_text(json.dumps({"schema": "dememo.board/1", "suite_fingerprint": [1]}))
            path.write_bytes(env.bundle_bytes)
        elif what == "nan":
            path.write_text(env.bundle_bytes.decode().replace('"seed":0', '"seed":NaN', 1))
        elif what == "huge-int":
            doc["cells"][0]["metrics"] = {k: 10**400 for k in doc["cells"][0]["metrics"]}
            path.write_text(to_json_text(_rehash(doc)))
    if case["genuine"]:
        (entries / "a-genuine.json").write_bytes(env.bundle_bytes)
    return path


def _checks_printed(rc: int, out: str) -> str | None:
    bad = [line for line in out.splitlines() if not line.startswith(("PASS ", "FAIL "))]
    return f"verify printed a line that is not a check: {bad[0][:200]!r}" if bad else None


def _board_complete(out: Path) -> Callable[[int, str], str | None]:
    def check(rc: int, stdout: str) -> str | None:
        from dememo.results import load_results

        if not all((out / n).is_file() for n in ("results.json", "leaderboard.md", "leaderboard.csv")):
            return "leaderboard build exited normally but wrote no complete board"
        try:
            load_results(out)
        except UserError as exc:
            return f"the board's results.json does not load back: {exc}"
        return None
    return check


def run_bundle_case(env: FuzzEnv, case: dict[str, Any]) -> Outcome:
    """load_bundle, check_bundle (and for some cases a re-run of one cell), ``dememo-bench verify`` and
    ``dememo-bench leaderboard build`` on a directory holding the bundle (and sometimes a genuine one):
    every check line one line, exit 0/1 or 2 with one line and no board written."""
    from dememo.board.submission import check_bundle, load_bundle, verify

    d = env.case_dir()
    path = _bundle_file(env, case, d / "entries")

    def api() -> None:
        b = load_bundle(path)
        checks = verify(b, rerun=1, seed=0) if case["rerun"] else check_bundle(b)
        for c in checks:
            if not one_line(c.line()):
                raise AssertionError(f"check {c.name} is not one line: {c.line()[:200]!r}")

    board = d / "board"
    return combine([
        attempt(api),
        cli_outcome(["verify", str(path)], ok=(0, 1), check_output=_checks_printed),
        cli_outcome(["leaderboard", "build", str(d / "entries"), "--out", str(board)], ok=(0, 1), output=board,
                    check_output=_board_complete(board)),
    ])


# -- group 5: dataset files ------------------------------------------------------------------------------

N_TRAIN, N_TEST = 30, 10


def py2_pickle(entries: dict[str, object], protocol: int = 2) -> bytes:
    """A pickle of a dict whose keys are Python-2 ``str`` (SHORT_BINSTRING), like the CIFAR files."""
    out = [b"\x80\x02}("]
    for key, value in entries.items():
        k = key.encode("latin1")
        out += [b"U", bytes([len(k)]), k, pickle.dumps(value, protocol=protocol)[2:-1]]
    out.append(b"u.")
    return b"".join(out)


def rgb_images(ids: Any, size: int = 32) -> Any:
    import numpy as np

    x = np.empty((len(ids), 3, size, size), np.uint8)
    x[:, 0] = (ids % 256)[:, None, None]
    x[:, 1] = (8 * np.arange(size))[None, :, None] % 256
    x[:, 2] = (8 * np.arange(size))[None, None, :] % 256
    return x


def idx_file(array: Any, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.tobytes()


DATASETS = ("cifar10", "cifar100", "mnist", "svhn")
#: structural mutations of a dataset file's content (before it is serialised), per format
CIFAR_MUTATIONS = ("float-data", "int64-data", "short-rows", "flat-data", "4d-data", "labels-out-of-range",
                   "negative-labels", "huge-labels", "string-labels", "float-labels", "none-labels", "missing-data",
                   "missing-labels", "extra-key", "list-top", "bytes-keys", "count-mismatch", "object-data", "empty",
                   "protocol-0", "protocol-4", "protocol-5", "hostile-system", "hostile-eval", "hostile-import",
                   "nested-deep", "none")
MNIST_MUTATIONS = ("magic-type", "magic-zero", "dims-2", "dims-4", "dims-0", "header-count", "labels-out-of-range",
                   "image-size", "train-test-size", "short-header", "labels-as-images", "empty", "none")
SVHN_MUTATIONS = ("float-x", "x-3d", "x-5d", "y-out-of-range", "y-negative", "missing-x", "missing-y", "count-mismatch",
                  "y-strings", "empty", "none")
DATASET_CASES = st.fixed_dictionaries({
    "dataset": st.sampled_from(DATASETS),
    "structure": st.integers(0, 2**16),
    "file": st.integers(0, 2**16),
    "ops": st.lists(BYTE_OP, max_size=2),
})


class _Hostile:
    """A pickle payload that calls ``func(*args)`` when unpickled by a plain ``pickle.load``."""

    def __init__(self, func: Any, args: tuple):
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args


def hostile_pickle(command: str) -> bytes:
    """A CIFAR-looking batch whose ``data`` value runs ``os.system(command)`` under ``pickle.load``."""
    return py2_pickle({"batch_label": "x", "labels": [0], "data": _Hostile(os.system, (command,))})


def _cifar_entry(kind: str, ids: Any, classes: int, mutation: str, marker: Path) -> tuple[dict[str, Any] | Any, int]:
    """(the dict to pickle, pickle protocol) for one CIFAR batch, mutated; the hostile payloads would
    create the file ``marker`` if they ran."""
    import numpy as np

    label_key = "labels" if classes == 10 else "fine_labels"
    data = rgb_images(ids).reshape(len(ids), -1)
    labels: Any = [int(k) % classes for k in ids]
    entry: dict[str, Any] = {"batch_label": kind, label_key: labels, "data": data, "filenames": [f"{k}.png" for k in ids]}
    protocol = 2
    m = mutation
    if m == "float-data":
        entry["data"] = data.astype(np.float32)
    elif m == "int64-data":
        entry["data"] = data.astype(np.int64) * 300
    elif m == "short-rows":
        entry["data"] = data[:, :3071]
    elif m == "flat-data":
        entry["data"] = data.reshape(-1)
    elif m == "4d-data":
        entry["data"] = data.reshape(len(ids), 3, 32, 32)
    elif m == "labels-out-of-range":
        entry[label_key] = [classes + 5] * len(ids)
    elif m == "negative-labels":
        entry[label_key] = [-1] * len(ids)
    elif m == "huge-labels":
        entry[label_key] = [2**70] * len(ids)
    elif m == "string-labels":
        entry[label_key] = ["cat"] * len(ids)
    elif m == "float-labels":
        entry[label_key] = [0.5] * len(ids)
    elif m == "none-labels":
        entry[label_key] = None
    elif m == "missing-data":
        del entry["data"]
    elif m == "missing-labels":
        del entry[label_key]
    elif m == "extra-key":
        entry["extra"] = {"a": [1, 2]}
    elif m == "list-top":
        return [data, labels], 2
    elif m == "count-mismatch":
        entry[label_key] = labels[:-1]
    elif m == "object-data":
        entry["data"] = np.array([[1, "a"]] * len(ids), dtype=object)
    elif m == "empty":
        entry["data"] = data[:0]
        entry[label_key] = []
    elif m.startswith("protocol-"):  # a Python-3 pickle of the batch (str keys) in another protocol
        protocol = int(m.split("-")[1])
    elif m == "bytes-keys":
        return {k.encode(): v for k, v in entry.items()}, 3
    elif m == "hostile-system":
        entry["data"] = _Hostile(os.system, (f"touch {shlex.quote(str(marker))}",))
    elif m == "hostile-eval":
        entry["data"] = _Hostile(eval, (f"open({str(marker)!r}, 'w').close()",))
    elif m == "hostile-import":
        entry["data"] = _Hostile(__import__, ("os",))
    elif m == "nested-deep":
        entry["filenames"] = Deep(5000)
    return entry, protocol


def _pickle_entry(entry: Any, protocol: int) -> bytes:
    if isinstance(entry, dict) and any(isinstance(v, Deep) for v in entry.values()):
        deep = [k for k, v in entry.items() if isinstance(v, Deep)][0]
        depth = entry[deep].depth
        entry = {k: v for k, v in entry.items() if k != deep}
        body = py2_pickle(entry, protocol)[:-2]  # without SETITEMS, STOP
        k = deep.encode()
        return body + b"U" + bytes([len(k)]) + k + b"]" * depth + b"a" * (depth - 1) + b"u."
    if isinstance(entry, dict) and protocol == 2:
        return py2_pickle(entry, protocol)
    return pickle.dumps(entry, protocol=protocol)


@contextlib.contextmanager
def patched_checksums(dataset: str, where: Path) -> Iterator[None]:
    """torchvision's published MD5s of the CIFAR and SVHN files, set to the files in ``where`` (the way the
    tests read tiny files through the unpatched readers)."""
    import torchvision.datasets as tv

    def md5(name: str) -> str:
        p = where / name
        return hashlib.md5(p.read_bytes()).hexdigest() if p.is_file() else "0" * 32

    saved: list[tuple[Any, str, Any]] = []

    def put(cls: Any, attr: str, value: Any) -> None:
        saved.append((cls, attr, cls.__dict__.get(attr, getattr(cls, attr))))
        setattr(cls, attr, value)

    try:
        if dataset == "cifar10":
            cls = tv.CIFAR10
            put(cls, "train_list", [[f"data_batch_{i}", md5(f"data_batch_{i}")] for i in range(1, 6)])
            put(cls, "test_list", [["test_batch", md5("test_batch")]])
            put(cls, "meta", {**cls.meta, "md5": md5("batches.meta")})
        elif dataset == "cifar100":
            cls = tv.CIFAR100
            put(cls, "train_list", [["train", md5("train")]])
            put(cls, "test_list", [["test", md5("test")]])
            put(cls, "meta", {**cls.meta, "md5": md5("meta")})
        elif dataset == "svhn":
            cls = tv.SVHN
            put(cls, "split_list", {**cls.split_list, "train": [cls.split_list["train"][0], "train_32x32.mat", md5("train_32x32.mat")],
                                    "test": [cls.split_list["test"][0], "test_32x32.mat", md5("test_32x32.mat")]})
        yield
    finally:
        for cls, attr, value in reversed(saved):
            setattr(cls, attr, value)


def write_dataset(dataset: str, root: Path, structure: int, file_index: int, ops: list[tuple],
                  marker: Path) -> tuple[Path, str, str]:
    """Tiny files of ``dataset`` in its real format under ``root`` with one structural mutation (chosen by
    ``structure``) in one file (``file_index``) and byte mutations ``ops`` of that file (hostile pickle
    payloads would create ``marker``). Returns the folder, the mutation and the mutated file's name."""
    import numpy as np

    train_ids, test_ids = np.arange(N_TRAIN), np.arange(100, 100 + N_TEST)
    if dataset in ("cifar10", "cifar100"):
        classes = 10 if dataset == "cifar10" else 100
        where = root / dataset / ("cifar-10-batches-py" if classes == 10 else "cifar-100-python")
        if classes == 10:
            parts = [(f"data_batch_{i}", ids) for i, ids in enumerate(np.array_split(train_ids, 5), 1)]
            parts.append(("test_batch", test_ids))
            meta = ("batches.meta", {"num_cases_per_batch": 10000, "label_names": [f"c{c}" for c in range(10)], "num_vis": 3072})
        else:
            parts = [("train", train_ids), ("test", test_ids)]
            meta = ("meta", {"fine_label_names": [f"f{c}" for c in range(100)], "coarse_label_names": [f"c{c}" for c in range(20)]})
        mutation = CIFAR_MUTATIONS[structure % len(CIFAR_MUTATIONS)]
        target = file_index % len(parts)
        where.mkdir(parents=True)
        for i, (name, ids) in enumerate(parts):
            entry, protocol = _cifar_entry(name, ids, classes, mutation if i == target else "none", marker)
            (where / name).write_bytes(_pickle_entry(entry, protocol))
        (where / meta[0]).write_bytes(py2_pickle(meta[1]))
        name = parts[target][0]
    elif dataset == "mnist":
        where = root / "mnist" / "MNIST" / "raw"
        where.mkdir(parents=True)
        mutation = MNIST_MUTATIONS[structure % len(MNIST_MUTATIONS)]
        files = {}
        for prefix, ids in (("train", train_ids), ("t10k", test_ids)):
            h, w = np.arange(28)[:, None], np.arange(28)[None, :]
            files[f"{prefix}-images-idx3-ubyte"] = ((ids[:, None, None] + 3 * h + 5 * w) % 256).astype(np.uint8)
            files[f"{prefix}-labels-idx1-ubyte"] = (ids % 10).astype(np.uint8)
        names = sorted(files)
        name = names[file_index % len(names)]
        m = mutation
        for n, arr in files.items():
            data = idx_file(arr)
            if n == name:
                if m == "magic-type":
                    data = idx_file(arr.astype(">i4"), 0x0C)
                elif m == "magic-zero":
                    data = b"\x01\x02" + data[2:]
                elif m == "dims-2":
                    data = idx_file(arr.reshape(len(arr), -1))
                elif m == "dims-4":
                    data = idx_file(arr.reshape(len(arr), 1, *arr.shape[1:]) if arr.ndim > 1 else arr.reshape(-1, 1, 1, 1))
                elif m == "dims-0":
                    data = bytes([0, 0, 8, 0])
                elif m == "header-count":
                    data = data[:4] + (2**31 - 1).to_bytes(4, "big") + data[8:]
                elif m == "labels-out-of-range":
                    data = idx_file(np.full(len(arr), 200, np.uint8)) if arr.ndim == 1 else data
                elif m == "image-size":
                    data = idx_file(arr[:, :27, :] if arr.ndim == 3 else arr[:-1])
                elif m == "short-header":
                    data = data[:6]
                elif m == "labels-as-images":
                    data = idx_file(arr[:, None, None].repeat(28, 1).repeat(28, 2) if arr.ndim == 1 else arr[:, 0, 0])
                elif m == "empty":
                    data = b""
            if m == "train-test-size" and n.startswith("t10k-images") and arr.ndim == 3:
                data = idx_file(np.zeros((len(arr), 14, 14), np.uint8))
            (where / n).write_bytes(data)
    else:
        import scipy.io

        where = root / "svhn"
        where.mkdir(parents=True)
        mutation = SVHN_MUTATIONS[structure % len(SVHN_MUTATIONS)]
        names = ["test_32x32.mat", "train_32x32.mat"]
        name = names[file_index % 2]
        for n, ids in (("train_32x32.mat", train_ids), ("test_32x32.mat", test_ids)):
            x = np.ascontiguousarray(rgb_images(ids).transpose(2, 3, 1, 0))  # H×W×C×N
            y = ((ids % 10) + (ids % 10 == 0) * 10).reshape(-1, 1).astype(np.uint8)
            content: dict[str, Any] = {"X": x, "y": y}
            m = mutation if n == name else "none"
            if m == "float-x":
                content["X"] = x.astype(np.float64) * 1000
            elif m == "x-3d":
                content["X"] = x[..., 0]
            elif m == "x-5d":
                content["X"] = x[..., None]
            elif m == "y-out-of-range":
                content["y"] = np.full_like(y, 42)
            elif m == "y-negative":
                content["y"] = -np.ones(y.shape, np.int16)
            elif m == "missing-x":
                del content["X"]
            elif m == "missing-y":
                del content["y"]
            elif m == "count-mismatch":
                content["y"] = y[:-1]
            elif m == "y-strings":
                content["y"] = np.array(["a"] * len(y))
            if m == "empty":
                (where / n).write_bytes(b"")
            else:
                scipy.io.savemat(where / n, content)
    path = where / name
    if ops and path.is_file():
        path.write_bytes(mutate_bytes(path.read_bytes(), ops))
    return where, mutation, name


def _dataset_class(name: str) -> Any:
    """The installed dataset plugin ``name``, found through the entry-point group like any plugin."""
    from dememo import plugins

    return plugins.get_registry().get("dataset", name)


def _check_splits(splits: Any, classes: int) -> None:
    import torch

    shapes = {tuple(d.x.shape[1:]) for d in (splits.train, splits.val, splits.test)}
    for part, d in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if len(d.x) != len(d.y) or len(d.y) == 0:
            raise AssertionError(f"{part}: {len(d.x)} images, {len(d.y)} labels")
        if d.x.dtype != torch.float32 or d.x.ndim != 4 or not bool(((d.x >= 0) & (d.x <= 1)).all()):
            raise AssertionError(f"{part}: images not float32 N×C×H×W in [0, 1]")
        if int(d.y.min()) < 0 or int(d.y.max()) >= classes:
            raise AssertionError(f"{part}: labels outside 0..{classes - 1}")
    if len(shapes) != 1:
        raise AssertionError(f"splits of different image shapes {sorted(shapes)}")


def run_dataset_case(env: FuzzEnv, case: dict[str, Any]) -> Outcome:
    """Tiny files in the dataset's real format, mutated, read through the plugin's ``load`` (torchvision's
    readers, the checksums set to the mutated files so that the parsers see them): the data loads and is
    well-formed, or a one-line DatasetError."""
    from dememo.errors import DatasetError

    d = env.case_dir()
    name = case["dataset"]
    marker = d / "executed"
    where, mutation, _ = write_dataset(name, d / "data", case["structure"], case["file"], case["ops"], marker)
    cls = _dataset_class(name)

    def load() -> None:
        with patched_checksums(name, where):
            splits = cls(val_size=5).load(d / "data", download=False)
        _check_splits(splits, cls.num_classes)

    outcome = attempt(load)
    if outcome.kind == "user-error":
        # the one-line error must be the dataset's (an unrelated UserError would hide the problem)
        try:
            with patched_checksums(name, where):
                cls(val_size=5).load(d / "data", download=False)
        except DatasetError:
            pass
        except UserError as exc:
            return Outcome(False, "wrong error type", f"{type(exc).__name__}: {exc}")
        except BaseException:  # noqa: BLE001 - reported by the first attempt
            pass
    if marker.exists():
        return Outcome(False, "code execution", "a pickle payload ran", lost=True)
    if mutation.startswith("hostile") and outcome.kind == "ok" and not case["ops"]:
        return Outcome(False, "code execution", f"a {mutation} pickle was loaded")
    return outcome


# -- the report -------------------------------------------------------------------------------------------

STRATEGIES: dict[str, Any] = {
    "set-values": SET_CASES, "suite-files": SUITE_CASES, "results-json": RESULTS_CASES, "bundles": BUNDLE_CASES,
    "dataset-files": DATASET_CASES,
}
RUNNERS: dict[str, Callable[[FuzzEnv, dict[str, Any]], Outcome]] = {
    "set-values": run_set_case, "suite-files": run_suite_case, "results-json": run_results_case,
    "bundles": run_bundle_case, "dataset-files": run_dataset_case,
}


def run_case(env: FuzzEnv, group: str, case: dict[str, Any]) -> Outcome:
    """One case of ``group``; a failure of the case's own set-up is reported as an unhandled ``harness``
    outcome rather than raised."""
    try:
        return RUNNERS[group](env, case)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001
        return Outcome(False, f"harness {type(exc).__name__}", _brief(exc))


def run_group(env: FuzzEnv, group: str, max_examples: int,
              derandomize: bool = True) -> list[tuple[dict[str, Any], Outcome]]:
    """Run ``group``'s property for ``max_examples`` generated cases (hypothesis; derandomized: the same
    cases every time; no shrinking, no example database): every case and its outcome."""
    from hypothesis import HealthCheck, Phase, given, settings

    seen: list[tuple[dict[str, Any], Outcome]] = []

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=derandomize, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(case=STRATEGIES[group])
    def prop(case: dict[str, Any]) -> None:
        seen.append((case, run_case(env, group, case)))

    prop()
    return seen


def summarize(outcomes: list[Outcome]) -> dict[str, int]:
    out = {"tried": len(outcomes), "handled": sum(o.handled for o in outcomes), "lost": sum(o.lost for o in outcomes)}
    for kind, n in sorted(Counter(o.kind for o in outcomes if not o.handled).items()):
        out[f"unhandled:{kind}"] = n
    return out


def fuzz_report(max_examples: int, groups: tuple[str, ...] = GROUPS, root: Path | str | None = None,
                details: list[tuple[str, dict[str, Any], Outcome]] | None = None,
                env: FuzzEnv | None = None) -> dict[str, dict[str, int]]:
    """Per group: cases ``tried``, ``handled`` (correct handling or a one-line UserError; CLI exit codes
    and output checked), ``lost`` (partial or unreadable output left by a command; must be 0), and for each
    kind of unhandled ending ``unhandled:<kind>`` (an exception type, ``hang``...). The cases are the same
    on every call (derandomized). Work happens in ``root`` (default: a temporary directory, removed
    afterwards) or in the given ``env``; ``details``, when given, receives every unhandled case."""
    tmp = tempfile.TemporaryDirectory(prefix="dememo-fuzz-") if root is None and env is None else None
    base = Path(tmp.name if tmp is not None else (root or "."))
    try:
        with environment(DEMEMO_PROGRESS="0", DEMEMO_HTML_PLOTS="0"):
            env = env or FuzzEnv.create(base)
            report = {}
            for group in groups:
                seen = run_group(env, group, max_examples)
                report[group] = summarize([o for _, o in seen])
                if details is not None:
                    details += [(group, c, o) for c, o in seen if not o.handled]
        return report
    finally:
        if tmp is not None:
            tmp.cleanup()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    n = int(argv[0]) if argv else 100
    groups = tuple(argv[1:]) or GROUPS
    details: list[tuple[str, dict[str, Any], Outcome]] = []
    report = fuzz_report(n, groups, details=details)
    print(f"{'group':<15} {'tried':>6} {'handled':>8} {'lost':>5}")
    for group, r in report.items():
        print(f"{group:<15} {r['tried']:>6} {r['handled']:>8} {r['lost']:>5}")
    for group, case, o in details[:50]:
        print(f"UNHANDLED {group} [{o.kind}] {o.detail[:300]} case={str(case)[:300]}", file=sys.stderr)
    return 0 if all(r["tried"] == r["handled"] and r["lost"] == 0 for r in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
