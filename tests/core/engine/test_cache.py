"""The stage store: content-addressed, atomic, checksummed; a corrupt entry is a logged miss, never a result."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import ClassVar

import attrs
import pytest
import torch

import dememo
from dememo.hashing import digest
from dememo.engine import cache
from dememo.files import atomic_write_bytes, atomic_write_json
from dememo.engine.cache import Store

KEY = digest("stage-a")
OTHER = digest("stage-b")


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def corruption_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "dememo.cache" and "corrupt" in r.getMessage()]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache")


def test_missing_key_is_a_miss(store):
    assert store.get(KEY) is None


def test_metadata_only_entry_round_trips(store):
    store.put(KEY, {"stage": "metric", "values": {"acc": 0.5}, "seconds": 1.25})
    meta, payload = store.get(KEY)
    assert payload is None
    assert meta["values"] == {"acc": 0.5} and meta["stage"] == "metric" and meta["key"] == KEY
    assert "payload_sha256" not in meta


def test_tensor_payload_round_trips_bit_exactly(store):
    g = torch.Generator().manual_seed(0)
    payload = {"state": {"w": torch.randn(3, 4, generator=g), "n": torch.tensor(7)}, "images": [torch.rand(2, 1, 2, 2, generator=g)]}
    store.put(KEY, {"stage": "train"}, payload)
    meta, got = store.get(KEY)
    assert meta["stage"] == "train" and len(meta["payload_sha256"]) == 64
    assert torch.equal(got["state"]["w"], payload["state"]["w"])
    assert torch.equal(got["state"]["n"], payload["state"]["n"])
    assert torch.equal(got["images"][0], payload["images"][0])


def test_entries_are_independent_and_overwritable(store):
    store.put(KEY, {"v": 1}, torch.zeros(2))
    store.put(OTHER, {"v": 2})
    store.put(KEY, {"v": 3}, torch.ones(2))
    assert store.get(KEY)[0]["v"] == 3 and torch.equal(store.get(KEY)[1], torch.ones(2))
    assert store.get(OTHER)[0]["v"] == 2


def test_entry_layout_is_objects_prefix_key(store):
    store.put(KEY, {}, torch.zeros(1))
    names = [p.relative_to(store.root).as_posix() for p in files(store.root)]
    assert names == [f"objects/{KEY[:2]}/{KEY}.json", f"objects/{KEY[:2]}/{KEY}.pt"]


def test_put_leaves_no_temporary_files(store):
    for i in range(3):
        store.put(digest(i), {"i": i}, torch.full((4,), float(i)))
        store.put(digest(i), {"i": i})
    assert not [p for p in files(store.root) if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_failed_atomic_write_leaves_neither_temp_file_nor_target(tmp_path, monkeypatch):
    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(cache.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(tmp_path / "d" / "x.bin", b"data")
    assert files(tmp_path) == []


def test_atomic_write_replaces_existing_content(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2, "nan": float("nan")})
    text = path.read_text()
    assert json.loads(text)["a"] == 2 and text.endswith("\n")
    assert files(tmp_path) == [path]


def payload_path(store: Store, key: str) -> Path:
    return store.root / "objects" / key[:2] / f"{key}.pt"


def meta_path(store: Store, key: str) -> Path:
    return store.root / "objects" / key[:2] / f"{key}.json"


def flip_one_bit(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


@pytest.mark.parametrize("damage", [flip_one_bit, truncate, lambda p: p.write_bytes(b""), lambda p: p.unlink()],
                         ids=["bit-flip", "truncated", "emptied", "deleted"])
def test_damaged_payload_is_detected_logged_deleted_and_missed(store, caplog, damage):
    store.put(KEY, {"stage": "train"}, {"w": torch.arange(64.0)})
    store.put(OTHER, {"stage": "train"}, {"w": torch.arange(3.0)})
    damage(payload_path(store, KEY))
    with caplog.at_level(logging.WARNING, logger="dememo.cache"):
        assert store.get(KEY) is None
        assert store.get(KEY) is None
    warnings = corruption_warnings(caplog)
    assert len(warnings) == 1 and KEY[:12] in warnings[0].getMessage()
    assert not meta_path(store, KEY).exists() and not payload_path(store, KEY).exists()
    assert torch.equal(store.get(OTHER)[1]["w"], torch.arange(3.0))  # the neighbour is untouched


def test_corruption_is_reported_once_per_key_even_if_it_recurs(store, caplog):
    with caplog.at_level(logging.WARNING, logger="dememo.cache"):
        for _ in range(2):
            store.put(KEY, {}, torch.arange(16.0))
            flip_one_bit(payload_path(store, KEY))
            assert store.get(KEY) is None
    assert len(corruption_warnings(caplog)) == 1


def test_recomputed_entry_after_corruption_is_served(store, caplog):
    store.put(KEY, {}, torch.arange(16.0))
    flip_one_bit(payload_path(store, KEY))
    with caplog.at_level(logging.WARNING, logger="dememo.cache"):
        assert store.get(KEY) is None
    store.put(KEY, {"again": True}, torch.arange(16.0))
    meta, payload = store.get(KEY)
    assert meta["again"] and torch.equal(payload, torch.arange(16.0))


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2]", '"a string"', "null", "{\"key\": \"0000\"}"])
def test_malformed_metadata_is_a_miss(store, caplog, text):
    store.put(KEY, {"stage": "metric"}, torch.zeros(2))
    meta_path(store, KEY).write_text(text)
    with caplog.at_level(logging.WARNING, logger="dememo.cache"):
        assert store.get(KEY) is None
    assert len(corruption_warnings(caplog)) == 1
    assert not meta_path(store, KEY).exists() and not payload_path(store, KEY).exists()


def test_metadata_of_another_key_is_not_served(store, caplog):
    store.put(OTHER, {"stage": "x"})
    meta_path(store, KEY).parent.mkdir(parents=True, exist_ok=True)
    meta_path(store, KEY).write_bytes(meta_path(store, OTHER).read_bytes())
    with caplog.at_level(logging.WARNING, logger="dememo.cache"):
        assert store.get(KEY) is None
    assert store.get(OTHER) is not None


def test_pickled_code_in_a_payload_is_refused(store, caplog):
    """A payload whose checksum matches but that holds a pickled object is not unpickled (weights_only)."""
    import hashlib
    import io

    buf = io.BytesIO()
    torch.save({"obj": Path("/")}, buf)  # a non-tensor, non-container object
    raw = buf.getvalue()
    store.put(KEY, {})
    payload_path(store, KEY).write_bytes(raw)
    meta = json.loads(meta_path(store, KEY).read_text())
    meta["payload_sha256"] = hashlib.sha256(raw).hexdigest()
    meta["meta_sha256"] = cache.meta_checksum(meta)  # a forger can recompute both checksums
    meta_path(store, KEY).write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="dememo.cache"):
        assert store.get(KEY) is None
    assert "cannot be loaded" in corruption_warnings(caplog)[0].getMessage()


@pytest.mark.parametrize("key", ["", "abc", KEY[:-1], KEY + "0", KEY.upper(), "../" + KEY[3:], KEY[:-1] + "g",
                                 "/" * 64])
def test_malformed_keys_are_rejected(store, key):
    with pytest.raises(ValueError, match="malformed cache key"):
        store.get(key)
    with pytest.raises(ValueError, match="malformed cache key"):
        store.put(key, {})
    assert not store.root.exists() or files(store.root) == []


def test_store_writes_only_under_its_root(tmp_path):
    root = tmp_path / "c"
    Store(root).put(KEY, {}, torch.zeros(1))
    assert all(root in p.parents for p in files(tmp_path))
    assert os.listdir(tmp_path) == ["c"]


def test_runner_memory_is_bounded_by_bytes_and_falls_back_to_disk(tmp_path):
    import torch

    from dememo.engine.runner import Runner

    runner = Runner(Store(tmp_path), torch.device("cpu"), memory_bytes=1000)
    big = torch.zeros(200)  # 800 bytes: two of them exceed the budget
    calls = []

    def make(i):
        def compute():
            calls.append(i)
            return big + i, {"t": big + i}, {}
        return compute

    keys = [f"{i:064x}" for i in range(3)]
    for i, k in enumerate(keys):
        runner.memo.stage(k, "test", make(i), lambda meta, payload: payload["t"])
    assert len(runner.memo.mem) == 1 and keys[2] in runner.memo.mem
    value, _, info = runner.memo.stage(keys[0], "test", make(0), lambda meta, payload: payload["t"])
    assert info.cached and calls == [0, 1, 2] and float(value[0]) == 0.0


# -- issue 9: metadata checksums, claims, full disks, sweeping ---------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["json", "pt"]), position=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_any_single_bit_flip_is_detected_never_served(tmp_path_factory, which, position, bit):
    """A flipped bit anywhere in either file: the entry is a miss or (never) a different value."""
    store = Store(tmp_path_factory.mktemp("c"))
    meta = {"stage": "metric", "values": {"acc": 0.8125, "gap": -0.03125}, "seconds": 1.5}
    store.put(KEY, meta, {"w": torch.arange(8.0)})
    path = meta_path(store, KEY) if which == "json" else payload_path(store, KEY)
    raw = bytearray(path.read_bytes())
    raw[int(position * len(raw))] ^= 1 << bit
    path.write_bytes(bytes(raw))
    got = store.get(KEY)
    assert got is None, "a damaged entry was served"
    assert store.check() == {}  # the damaged entry was deleted, not left for the next reader


def test_metadata_value_flip_that_stays_valid_json_is_caught(store, caplog):
    store.put(KEY, {"stage": "metric", "values": {"acc": 0.75}})
    path = meta_path(store, KEY)
    path.write_text(path.read_text().replace("0.75", "0.95"))  # still valid JSON, different number
    assert store.check() == {KEY: "metadata checksum mismatch"}
    with caplog.at_level(logging.WARNING, logger="dememo.cache"):
        assert store.get(KEY) is None
    assert len(corruption_warnings(caplog)) == 1


def test_entry_without_metadata_checksum_is_recomputed(store):
    atomic_write_json(meta_path(store, KEY), {"key": KEY, "stage": "metric", "values": {"acc": 0.5}})
    assert store.check() == {KEY: "metadata has no checksum (older format)"}
    assert store.get(KEY) is None


def test_check_reports_without_deleting(store):
    store.put(KEY, {}, torch.arange(4.0))
    store.put(OTHER, {})
    truncate(payload_path(store, KEY))
    assert store.check() == {KEY: "payload checksum mismatch"}
    assert payload_path(store, KEY).exists()
    assert store.keys() == sorted([KEY, OTHER])


def test_full_disk_raises_one_line_storage_error_and_keeps_the_old_entry(store, monkeypatch):
    import errno

    from dememo.errors import StorageError

    store.put(KEY, {"v": 1}, torch.zeros(3))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache.os, "replace", full)
    with pytest.raises(StorageError, match="No space left on device") as info:
        store.put(KEY, {"v": 2}, torch.ones(3))
    assert "\n" not in str(info.value) and info.value.exit_code == 74
    monkeypatch.undo()
    meta, payload = store.get(KEY)
    assert meta["v"] == 1 and torch.equal(payload, torch.zeros(3))
    assert not [p for p in files(store.root) if p.name.endswith(".tmp")]
    assert store.writes == 1


def test_claim_excludes_a_second_holder_until_released(store):
    import threading

    order: list[str] = []
    entered = threading.Event()

    def second():
        entered.wait()
        with store.claim(KEY):  # a separate open file description: flock makes it wait like another process
            order.append("second")

    thread = threading.Thread(target=second)
    with store.claim(KEY):
        thread.start()
        entered.set()
        thread.join(0.3)
        assert thread.is_alive(), "the second claim did not wait"
        order.append("first")
    thread.join(5)
    assert order == ["first", "second"]
    with store.claim(OTHER), store.claim(KEY):  # different keys never wait on each other
        pass


def test_claim_is_released_when_its_holder_is_killed(store):
    import signal
    import subprocess
    import sys
    import time

    code = ("import sys, time; from dememo.engine.cache import Store; s = Store(sys.argv[1]); "
            "c = s.claim(sys.argv[2]); c.__enter__(); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(store.root), KEY], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        start = time.monotonic()
        with store.claim(KEY):
            pass
        assert time.monotonic() - start < 5
    finally:
        proc.kill()


def test_sweep_removes_only_stale_temporaries(store):
    store.put(KEY, {}, torch.zeros(2))
    folder = meta_path(store, KEY).parent
    stale, fresh = folder / f".{KEY}.json.abc.tmp", folder / f".{KEY}.pt.def.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = os.path.getmtime(stale) - 2 * cache.STALE_TEMPORARY_SECONDS
    os.utime(stale, (old, old))
    assert store.sweep() == 1
    assert not stale.exists() and fresh.exists() and store.get(KEY) is not None


# -- issue 20: a warm run reads the models it needs, not every model it passes -----------------------


def test_deferred_entry_is_read_only_when_asked_for(store, caplog):
    from dememo.engine.memo import StageMemo

    key = "d" * 64
    store.put(key, {"stage": "test", "seconds": 2.5}, {"t": torch.arange(3.0)})
    memo = StageMemo(store, 2**20, lambda: None)
    reads = []
    original = store.get
    store.get = lambda k: reads.append(k) or original(k)
    load, meta, info = memo.deferred(key, "test", lambda: pytest.fail("computed"), lambda m, p: p["t"])
    assert reads == [] and meta["seconds"] == 2.5 and info.cached and info.seconds == 2.5
    assert torch.equal(load(), torch.arange(3.0)) and reads == [key]
    assert load() is load() and reads == [key]  # held in memory from then on


@pytest.mark.parametrize("damage", [flip_one_bit, truncate, lambda p: p.unlink()])
@pytest.mark.parametrize("when", ["before", "after"])
def test_deferred_entry_with_a_damaged_payload_is_recomputed_when_read(store, caplog, damage, when):
    """Damaged before the entry is looked up (its metadata names a missing payload: computed at once) or
    after (the lazy read finds it): either way the damaged payload is never served."""
    from dememo.engine.memo import StageMemo

    key = "e" * 64
    store.put(key, {"stage": "test"}, {"t": torch.zeros(4)})
    if when == "before":
        damage(payload_path(store, key))
    memo = StageMemo(store, 2**20, lambda: None)
    load, _, info = memo.deferred(key, "test", lambda: (torch.ones(4), {"t": torch.ones(4)}, {}), lambda m, p: p["t"])
    if when == "after":
        assert info.cached
        damage(payload_path(store, key))
    assert torch.equal(load(), torch.ones(4)), "a damaged payload is never served"
    assert Store(store.root).get(key) is not None


def test_a_warm_run_loads_no_model_whose_later_stages_are_cached(tiny_suite, tmp_path, monkeypatch):
    """A slice of the tiny suite (both tracks, a multi-draw attack) twice, the second time with a fresh
    runner on the same cache: its records are identical and it reads no trained, unlearned or attacked
    model (only what keys need: the poisons, whose δ makes the training data)."""
    from dememo import plugins
    from dememo.planning.planner import Filters, Planner
    from dememo.planning.suite import load_suite
    from dememo.engine.cell import run_cell
    from dememo.engine.runner import Runner

    planner = Planner(plugins.get_registry(), load_suite(str(tiny_suite)))
    cells = planner.cells(Filters(poisoner=("random-noise",), unlearner=("finetune",), attack=("none", "weight-noise"),
                                  metric=("clean-accuracy", "unlearning-accuracy", "mia-efficacy")), seeds=1)
    first = [run_cell(Runner(Store(tmp_path), torch.device("cpu"), planner=planner), c) for c in cells]
    read: list[str] = []
    original = Store.get

    def get(self, key):
        found = original(self, key)
        if found is not None and found[1] is not None:
            read.append(found[0]["stage"])
        return found

    monkeypatch.setattr(Store, "get", get)
    runner = Runner(Store(tmp_path), torch.device("cpu"), planner=planner)
    second = [run_cell(runner, c) for c in cells]
    numbers = lambda records: [{k: repr(v) for k, v in r.metrics.items()} for r in records]  # noqa: E731 - NaN == NaN
    assert numbers(second) == numbers(first)
    assert all(r.status == "ok" for r in second) and {r.track for r in second} == {"unlearnability", "unlearning"}
    assert any(r.draws for r in second)
    assert read and set(read) <= {"poison"}, sorted(set(read))


class _GlobalNoise:
    """An unlearner that perturbs the weights with the *global* torch RNG (as code using torch.rand without
    a generator does): its output depends on what ran between the harness's seeding and its call."""

    @dememo.hookimpl
    def register_unlearners(self, register):
        register(GlobalNoiseUnlearner)


@attrs.define
class GlobalNoiseUnlearner(dememo.Unlearner):
    name: ClassVar[str] = "global-noise"

    def unlearn(self, model, task, ctx):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape) * 0.01)
        return model


def test_a_plugin_draws_the_same_global_randoms_whether_its_input_model_was_in_memory_or_on_disk(tiny_suite, tmp_path):
    """The unlearning stage computed right after the original model (held in memory), then again from a cold
    memo that must read the original from the cache: the same unlearned weights (loading a model, which
    builds and so initialises one, happens before the plugin's seeds are set and leaves the RNG alone)."""
    from dememo.planning.planner import Filters, Planner
    from dememo.planning.suite import load_suite
    from dememo.engine.runner import Runner
    from dememo.testing import registered

    with registered(_GlobalNoise(), name="global-noise") as registry:
        planner = Planner(registry, load_suite(str(tiny_suite)))
        cell = next(c for c in planner.cells(Filters(unlearner=("global-noise",), attack=("none",),
                                                     metric=("unlearning-accuracy",)), seeds=1)
                    if c.unlearner is not None and c.unlearner.name == "global-noise")
        weights = []
        for fresh in ("cold", "original cached"):
            runner = Runner(Store(tmp_path), torch.device("cpu"), planner=planner)
            env = runner.env(cell.data)
            stage = runner.unlearned(env, cell, runner.task(env, cell))
            assert stage.info.cached is False, fresh
            weights.append({k: v.clone() for k, v in stage.model.state_dict().items()})
            for path in (tmp_path / "objects").glob("*/*.json"):  # drop the unlearning stage, keep the original
                if json.loads(path.read_text()).get("stage") == "unlearn":
                    path.unlink()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
