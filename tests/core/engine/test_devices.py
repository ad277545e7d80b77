"""Process setup for CPU work: the allocator keeps freed activation memory for the next batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dememo.engine.devices import USER_MALLOC_SETTINGS

MMAPPED = """
import ctypes, sys, torch
if sys.argv[1] == "tuned":
    from dememo.engine.devices import tune_allocator
    assert tune_allocator()

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]

info = ctypes.CDLL(None).mallinfo2
info.restype = MallInfo2
before = info().hblks
x = torch.empty(2**20)  # 4 MiB: one activation of a small CNN at 256 images
print(info().hblks - before)
"""


def mmapped_blocks_for_4_mib(mode: str, **env: str) -> int:
    """How many blocks glibc serves with mmap (fresh pages, faulted in and given back on free) for one
    4 MiB tensor in a fresh interpreter."""
    clean = {k: v for k, v in os.environ.items() if k not in USER_MALLOC_SETTINGS}
    out = subprocess.run([sys.executable, "-c", MMAPPED, mode], capture_output=True, text=True, check=True,
                         env={**clean, "OMP_NUM_THREADS": "1", **env})
    return int(out.stdout.strip().splitlines()[-1])


def glibc_with_mallinfo2() -> bool:
    import ctypes

    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION")) and hasattr(ctypes.CDLL(None), "mallinfo2")
    except (AttributeError, ValueError, OSError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not glibc_with_mallinfo2(), reason="glibc ≥ 2.33 only")
def test_tuned_allocator_serves_activation_sized_blocks_from_the_heap():
    # glibc's default mmaps a 4 MiB block (fresh pages at every batch); tuned, the heap serves it
    assert mmapped_blocks_for_4_mib("default") == 1
    assert mmapped_blocks_for_4_mib("tuned") == 0


def test_tune_allocator_leaves_a_users_malloc_settings_and_other_platforms_alone(monkeypatch):
    from dememo.engine import devices

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert devices.tune_allocator() is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setattr(devices, "glibc_version", lambda: None)  # musl, macOS, Windows
    assert devices.tune_allocator() is False


def test_prepare_process_tunes_the_allocator(monkeypatch):
    from dememo.engine import devices

    called = []
    monkeypatch.setattr(devices, "tune_allocator", lambda: called.append(True) or True)
    devices.prepare_process(1)
    assert called == [True]


def test_prepare_process_sets_the_thread_count(monkeypatch):
    import torch

    from dememo.engine.devices import prepare_process

    before = torch.get_num_threads()
    monkeypatch.delenv("DEMEMO_THREADS", raising=False)
    try:
        assert prepare_process(2) == 2 and torch.get_num_threads() == 2
        assert prepare_process() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
