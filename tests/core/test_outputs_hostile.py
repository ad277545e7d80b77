"""Output files under hostile conditions: umasks and caches shared by two users, a write set that fails on
its last file, interrupts while writing, and permission errors that are not a full disk (issue 18)."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import tempfile
import traceback
from pathlib import Path

import pytest
import torch

from dememo import cli, interrupts, results
from dememo import files as outputs
from dememo.board import leaderboard, writer
from dememo.errors import StorageError, UserError, storage_advice
from dememo.files import atomic_write_bytes
from dememo.results.record import CellRecord
from dememo.engine import cache
from dememo.engine.cache import Store

KEYS = [f"{i:02x}" + "a" * 62 for i in range(3)]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set the process umask for a test; the previous one is restored."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


# -- 1. modes follow the umask; a cache shared by two users ------------------------------------------------


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_write_follows_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write_bytes(tmp_path / "f.json", b"{}")
    assert mode(tmp_path / "f.json") == expected


def test_lock_files_and_cache_entries_follow_the_umask(tmp_path, umask):
    umask(0o002)
    store = Store(tmp_path / "cache")
    with store.claim(KEYS[0]):
        store.put(KEYS[0], {"v": 1}, {"t": torch.ones(2)})
    meta, payload = store._paths(KEYS[0])
    lock = tmp_path / "cache" / "locks" / KEYS[0][:2] / f"{KEYS[0]}.lock"
    assert (mode(meta), mode(payload), mode(lock)) == (0o664, 0o664, 0o664)


SHARED_GID, USER_A, USER_B = 54320, 54321, 54322


def as_user(uid: int, mask: int, fn) -> dict:
    """Run ``fn`` in a forked child as ``uid`` (primary group SHARED_GID, no other groups) under ``mask``;
    returns its JSON-able result, or {"error", "traceback"} when it raised. A fork, not a new interpreter:
    the interpreter under /root is not reachable by another user."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(SHARED_GID)
            os.setuid(uid)
            os.umask(mask)
            result = fn()
        except BaseException as exc:  # noqa: BLE001
            result = {"error": f"{type(exc).__name__}: {exc}", "type": type(exc).__name__,
                      "traceback": traceback.format_exc()}
        with os.fdopen(w, "w") as f:
            json.dump(result, f)
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        text = f.read()
    os.waitpid(pid, 0)
    return json.loads(text)


@pytest.fixture
def shared_dir():
    """A directory both test users may write in (group SHARED_GID, mode 2775), outside pytest's private
    /tmp/pytest-of-root."""
    if os.geteuid() != 0 or not hasattr(os, "fork"):
        pytest.skip("needs root (to act as two users) and fork; CI runners that are not root skip this")
    base = Path(tempfile.mkdtemp(prefix="dememo-shared-", dir="/tmp"))
    os.chown(base, 0, SHARED_GID)
    os.chmod(base, 0o2775)
    # warm up every lazy import torch.save/load need: the children cannot read the interpreter's files
    warm = Store(base / "warm")
    warm.put(KEYS[0], {"v": 0}, {"t": torch.ones(1)})
    assert warm.get(KEYS[0]) is not None
    yield base
    import shutil

    shutil.rmtree(base, ignore_errors=True)


def fill(root: Path):
    def run() -> dict:
        store = Store(root)
        for i, key in enumerate(KEYS):
            with store.claim(key):
                store.put(key, {"v": i}, {"t": torch.full((3,), float(i))})
        (root / "objects" / KEYS[0][:2] / f".{KEYS[0]}.json.stale.tmp").write_bytes(b"x")  # a killed writer's
        return {"ok": True}
    return run


def read_back(root: Path, also_write: bool = False):
    def run() -> dict:
        store = Store(root)
        hits = []
        for i, key in enumerate(KEYS):
            with store.claim(key):
                found = store.get(key)
            hits.append(found is not None and found[0]["v"] == i and found[1]["t"].tolist() == [float(i)] * 3)
        out: dict = {"hits": hits, "swept": store.sweep(max_age=0)}
        if also_write:
            try:
                store.put("ff" + "b" * 62, {"v": 9})
                out["wrote"] = "ok"
            except StorageError as exc:
                out["wrote"] = str(exc)
        return out
    return run


def entry_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "objects").rglob("*") if p.is_file() and not p.name.startswith("."))


def test_a_cache_shared_by_a_group_gives_hits_to_the_other_user(shared_dir):
    root = shared_dir / "cache"
    assert as_user(USER_A, 0o002, fill(root)) == {"ok": True}
    before = entry_files(root)
    got = as_user(USER_B, 0o002, read_back(root, also_write=True))
    assert "error" not in got, got.get("traceback")
    assert got["hits"] == [True, True, True] and got["wrote"] == "ok"
    assert set(before) <= set(entry_files(root)) and Store(root).check() == {}


def test_a_cache_written_under_umask_022_is_readable_and_never_deleted_by_another_user(shared_dir):
    root = shared_dir / "cache"
    assert as_user(USER_A, 0o022, fill(root)) == {"ok": True}
    before = entry_files(root)
    got = as_user(USER_B, 0o022, read_back(root, also_write=True))
    assert "error" not in got, got.get("traceback")  # a stale temporary it may not delete is left alone
    assert got["hits"] == [True, True, True] and got["swept"] == 0
    wrote = got["wrote"]  # B may not create files in A's directories: one line, about permissions
    assert "Permission denied" in wrote and "free space" not in wrote and "--cache-dir" in wrote and "\n" not in wrote
    assert entry_files(root) == before and Store(root).check() == {}


def test_an_entry_another_user_may_not_read_is_a_clear_error_not_corruption(shared_dir):
    root = shared_dir / "cache"
    assert as_user(USER_A, 0o002, fill(root)) == {"ok": True}
    private = Store(root)._paths(KEYS[1])[0]
    os.chmod(private, 0o600)  # as an older dememo (mkstemp) wrote every file
    before = entry_files(root)
    got = as_user(USER_B, 0o002, read_back(root))
    assert got.get("type") == "StorageError", got
    assert str(private) in got["error"] and "chmod" in got["error"] and "--cache-dir" in got["error"]
    assert "\n" not in got["error"]
    assert entry_files(root) == before  # nothing deleted as "corrupt"


# -- 2. a set of files: all new or all old --------------------------------------------------------------


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def fail_replacing(monkeypatch, final: Path) -> None:
    """``os.replace`` onto ``final`` fails (as on a full or read-only disk); every other replace works."""
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst) == final:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def fail_writing(monkeypatch, name: str, code: int = errno.ENOSPC) -> None:
    """dememo's atomic write of ``name`` (or of a temporary staged for it) fails with ``code``."""
    real = outputs.atomic_write_bytes

    def write(path: Path, data: bytes) -> None:
        if path.name == name or path.name.startswith(f".{name}."):
            raise OSError(code, os.strerror(code), str(path))
        real(path, data)

    monkeypatch.setattr(outputs, "atomic_write_bytes", write)


OLD = {"a.txt": "old a", "b.bin": b"old b", "c.txt": "old c"}
NEW = {"a.txt": "new a", "b.bin": b"new b", "added.txt": "new only", "c.txt": "new c"}


@pytest.mark.parametrize("stage", ["replace", "write"])
def test_a_set_that_fails_on_its_last_file_leaves_the_previous_set(tmp_path, monkeypatch, stage):
    outputs.atomic_write_set(tmp_path, OLD)
    before = snapshot(tmp_path)
    if stage == "replace":
        fail_replacing(monkeypatch, tmp_path / "c.txt")
    else:
        fail_writing(monkeypatch, "c.txt")
    with pytest.raises(OSError):
        outputs.atomic_write_set(tmp_path, NEW)
    assert snapshot(tmp_path) == before  # byte for byte; "added.txt" is not there either
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OLD)  # no temporaries left
    monkeypatch.undo()
    outputs.atomic_write_set(tmp_path, NEW)
    assert snapshot(tmp_path) == {k: v.encode() if isinstance(v, str) else v for k, v in NEW.items()}


def test_a_set_removes_the_members_it_drops_and_puts_them_back_on_failure(tmp_path, monkeypatch):
    outputs.atomic_write_set(tmp_path, OLD)
    before = snapshot(tmp_path)
    fail_replacing(monkeypatch, tmp_path / "c.txt")
    with pytest.raises(OSError):
        outputs.atomic_write_set(tmp_path, {"b.bin": None, "a.txt": "new a", "c.txt": "new c"})
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == sorted(OLD)
    monkeypatch.undo()
    assert outputs.atomic_write_set(tmp_path, {"b.bin": None, "c.txt": "new c"}) == [tmp_path / "c.txt"]
    assert snapshot(tmp_path) == {"a.txt": b"old a", "c.txt": b"new c"}


def test_a_set_with_a_long_file_name_is_written(tmp_path):
    name = "sweep_" + "x" * 230 + ".svg"  # report figure names are unbounded slugs; 255 bytes is the limit
    assert outputs.atomic_write_set(tmp_path, {name: "<svg/>"}) == [tmp_path / name]
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_an_interrupt_in_the_middle_of_a_set_rolls_it_back(tmp_path, monkeypatch):
    """Outside ``interrupts.handling`` (the Python API) a KeyboardInterrupt mid-set restores the old set."""
    outputs.atomic_write_set(tmp_path, OLD)
    before = snapshot(tmp_path)
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst) == tmp_path / "c.txt":
            raise KeyboardInterrupt
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        outputs.atomic_write_set(tmp_path, NEW)
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == sorted(OLD)


def test_a_board_write_that_fails_on_its_last_file_keeps_the_previous_board(tmp_path, monkeypatch):
    board = {"results.json": "{}\n", "leaderboard.md": "# old\n", "leaderboard.html": "<p>old</p>\n"}
    outputs.write_files(tmp_path, board)
    before = snapshot(tmp_path)
    fail_writing(monkeypatch, "leaderboard.html", errno.EACCES)
    with pytest.raises(UserError, match="cannot write the board") as info:
        outputs.write_files(tmp_path, {name: text.replace("old", "new") for name, text in board.items()})
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == sorted(board)
    assert "previous files there are unchanged" in str(info.value) and "free space" not in str(info.value)


def tiny_results(wall: float, partial: tuple[int, int] | None = None) -> dict:
    extra = {} if partial is None else {"partial": partial}
    return results.assemble(suite={"name": "t"}, environment={"wall_seconds": wall}, plugins=[], columns={},
                            cells=[], failures=[], **extra)


def test_a_run_whose_last_output_fails_keeps_the_previous_outputs(tmp_path, monkeypatch):
    writer.write_outputs(tmp_path, tiny_results(1.0), "t")
    before = snapshot(tmp_path)
    assert set(before) == {"results.json", "leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.html"}
    fail_writing(monkeypatch, "leaderboard.html")
    with pytest.raises(OSError):
        writer.write_outputs(tmp_path, tiny_results(2.0), "t")
    assert snapshot(tmp_path) == before and set(p.name for p in tmp_path.iterdir()) == set(before)


# -- 3. interrupts while writing; partial results never replace complete ones ----------------------------


SUITE_ARGS = ["--poisoner", "none", "--poisoner", "random-noise", "--unlearner", "original", "--attack", "none",
              "--metric", "clean-accuracy", "--quiet"]


@pytest.fixture
def tiny_run(tiny_suite, tmp_path, capsys):
    """``run(out)``: dememo-bench in this process on 3 cells of the tiny suite, sharing one cache; returns
    (exit code, stderr)."""
    def run(out: Path, extra: list[str] = ()) -> tuple[int, str]:
        try:
            code = cli.main(["--suite", str(tiny_suite), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                             *SUITE_ARGS, *extra])
        except KeyboardInterrupt:  # would stop pytest itself: fail this test instead
            return -1, capsys.readouterr().err + "\nTraceback: KeyboardInterrupt escaped dememo-bench"
        return code, capsys.readouterr().err
    return run


def interrupt_after_first_cell(monkeypatch) -> None:
    """The user presses Ctrl-C once a cell is written."""
    real = results.write_cell

    def write_cell(out, record):
        real(out, record)
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs at the next bytecode boundary
            pass

    monkeypatch.setattr(results, "write_cell", write_cell)


def interrupt_twice_while_writing(monkeypatch, name: str = "leaderboard.csv") -> None:
    """Two more Ctrl-Cs (or SIGTERMs) arrive while the output set is written."""
    real = outputs.atomic_write_bytes

    def write(path: Path, data: bytes) -> None:
        if path.name == name or path.name.startswith(f".{name}."):
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
        real(path, data)

    monkeypatch.setattr(outputs, "atomic_write_bytes", write)


@pytest.mark.parametrize("storm", [False, True], ids=["one-interrupt", "more-while-writing"])
def test_an_interrupted_run_keeps_the_complete_earlier_results(tmp_path, tiny_run, monkeypatch, storm):
    out = tmp_path / "out"
    code, err = tiny_run(out)
    assert code == 0, err
    complete = snapshot(out)
    interrupt_after_first_cell(monkeypatch)
    if storm:
        interrupt_twice_while_writing(monkeypatch)
    code, err = tiny_run(out)
    assert code == 130 and "Traceback" not in err, err
    assert snapshot(out) == complete  # the complete set, byte for byte
    assert "interrupted after 1 of 3 cells" in err and str(out / "partial") in err and "is kept" in err
    partial = snapshot(out / "partial")
    assert set(partial) == set(complete)  # all of the new set: no mix
    assert json.loads(partial["results.json"])["partial"] == {"cells_done": 1, "cells_planned": 3}
    assert b"PARTIAL: 1 of 3 cells" in partial["leaderboard.md"] and b"PARTIAL: 1 of 3 cells" in partial["leaderboard.html"]
    assert json.loads(partial["leaderboard.json"])["partial"] == {"cells_done": 1, "cells_planned": 3}
    rows = partial["leaderboard.csv"].decode().splitlines()
    assert rows[0].endswith(",partial") and all(r.endswith(",1/3") for r in rows[1:])
    assert not list(out.rglob("*.tmp"))
    monkeypatch.undo()
    code, err = tiny_run(out)  # finishing the run supersedes the partial set
    assert code == 0 and not (out / "partial").exists(), err


def test_an_interrupted_first_run_writes_partial_results_marked_as_such(tmp_path, tiny_run, monkeypatch, capsys):
    out = tmp_path / "out"
    interrupt_after_first_cell(monkeypatch)
    interrupt_twice_while_writing(monkeypatch, "results.json")
    code, err = tiny_run(out)
    assert code == 130 and "Traceback" not in err and "Run the same command again to resume" in err, err
    data = results.load_results(out)  # partial results load (report, leaderboard) ...
    assert results.is_partial(data) and len(data["cells"]) == 1
    assert leaderboard.partial_note(data).startswith("PARTIAL: 1 of 3 cells")
    assert json.loads((out / "leaderboard.json").read_text())["partial"]["cells_done"] == 1
    code = cli.main(["submit", "--results", str(out), "--name", "x", "--plugin", "dememo", "--out",
                     str(tmp_path / "b.json")])
    err = capsys.readouterr().err
    assert code == 2 and "holds partial results (1 of 3 cells" in err, err  # ... but make no bundle
    assert not (tmp_path / "b.json").exists()


def test_interrupts_while_writing_a_complete_run_leave_it_complete(tmp_path, tiny_run, monkeypatch):
    out = tmp_path / "out"
    interrupt_twice_while_writing(monkeypatch, "leaderboard.md")
    code, err = tiny_run(out)
    assert code == 130 and "Traceback" not in err and "interrupted while writing" in err, err
    data = results.load_results(out)
    assert not results.is_partial(data) and len(data["cells"]) == 3
    assert {p.name for p in out.iterdir() if p.is_file()} == set(writer.output_files(data, "tiny"))


def test_malformed_partial_fields_are_refused():
    data = tiny_results(1.0)
    for bad in ({"cells_done": 4, "cells_planned": 3}, {"cells_done": "1"}, [1, 3], {"cells_done": True, "cells_planned": 1}):
        assert "partial" in results.shape_problem({**data, "partial": bad})
    assert results.shape_problem({**data, "partial": {"cells_done": 1, "cells_planned": 3}}) is None


# -- 4. permission errors are not "free space"; "saved" only when saved ---------------------------------


@pytest.mark.parametrize("code, says", [(errno.ENOSPC, "free space"), (errno.EDQUOT, "free space"),
                                        (errno.EACCES, "fix the permissions"), (errno.EPERM, "fix the permissions"),
                                        (errno.EROFS, "writable disk"), (errno.EIO, "check the disk")])
def test_storage_advice_follows_errno(code, says):
    text = storage_advice(OSError(code, os.strerror(code), "/some/file"), "--out")
    assert says in text and os.strerror(code) in text and "/some/file" in text and "--out" in text
    assert ("free space" in text) == (code in (errno.ENOSPC, errno.EDQUOT))


def test_cache_and_cell_write_errors_name_the_real_cause(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), "/x")

    monkeypatch.setattr(cache.os, "replace", denied)
    with pytest.raises(StorageError) as put:
        Store(tmp_path / "c").put(KEYS[0], {"v": 1})
    with pytest.raises(StorageError) as cell:
        results.write_cell(tmp_path / "out", CellRecord("unlearning", "d", "m", "none", 0, "k" * 8))
    monkeypatch.undo()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), "/x")

    monkeypatch.setattr(cache.os, "open", read_only)
    with pytest.raises(StorageError) as lock:
        with Store(tmp_path / "c").claim(KEYS[0]):
            pass
    for info, says in ((put, "Permission denied"), (cell, "Permission denied"), (lock, "Read-only file system")):
        assert says in str(info.value) and "free space" not in str(info.value)


def test_cells_are_said_saved_only_when_they_were(tmp_path, tiny_run, monkeypatch):
    out = tmp_path / "out"
    real = outputs.atomic_write_bytes

    def write(path: Path, data: bytes) -> None:  # nothing under --out can be written; the cache can
        if str(path).startswith(str(out)):
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        real(path, data)

    monkeypatch.setattr(outputs, "atomic_write_bytes", write)
    code, err = tiny_run(out)
    lines = [line for line in err.splitlines() if line.startswith("dememo-bench: error:")]
    assert code == 74 and len(lines) == 1 and "Traceback" not in err, err
    assert "0 of the 1 finished cells are saved" in lines[0] and "could not be written" in lines[0]
    assert "Permission denied" in lines[0] and "free space" not in lines[0]
