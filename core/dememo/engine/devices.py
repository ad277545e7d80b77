"""The run's device, its processes and threads, and the determinism switch, shared by the command line and the
executors' workers."""

from __future__ import annotations

import math
import os

import torch

from dememo.errors import UserError


def set_deterministic() -> None:
    """Deterministic kernels everywhere (CUDA's cuBLAS needs a fixed workspace, set before it starts)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def resolve_device(name: str) -> torch.device:
    """``--device``: auto (CUDA when torch sees a GPU, else CPU), cpu, cuda, cuda:N or mps; one line when unusable."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    return device


#: memory a worker process may come to hold on the embedded suite (measured peak about 1.6 GiB): the default
#: number of workers leaves each this much of the available memory
WORKER_MEMORY = 2 * 2**30


def proc_kib(path: str, field: str) -> int | None:
    """A ``Field:  N kB`` line of a Linux /proc file (``/proc/meminfo``, ``/proc/<pid>/status``) in bytes, or
    None where the file or the field is not there; ``field`` in lower case (``memavailable``, ``vmrss``)."""
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.lower() == field:
                    return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def usable_cores() -> int:
    """CPU cores this process may use: its affinity, capped by a cgroup v2 CPU quota (a container limited to
    two CPUs on a large host has two, not the host's count)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def default_jobs(device: torch.device) -> int:
    """Worker processes when neither --jobs nor $DEMEMO_JOBS says: on a CPU one per usable core, at most one
    per ``WORKER_MEMORY`` of available memory; one on an accelerator (one process keeps it busy)."""
    if device.type != "cpu":
        return 1
    cores, memory = usable_cores(), proc_kib("/proc/meminfo", "memavailable")
    return max(1, min(cores, memory // WORKER_MEMORY if memory else cores))


def count_setting(flag: str, given: int | None, variable: str, default: int) -> int:
    """A positive count from the flag, else the environment variable, else ``default``; one line when bad."""
    if given is not None:
        if given < 1:
            raise UserError(f"{flag} must be at least 1, got {given}")
        return given
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    value = int(raw) if raw.isascii() and raw.isdigit() else 0
    if value < 1:
        raise UserError(f"${variable} must be a whole number of at least 1, got {raw!r}; fix or unset it")
    return value


#: glibc ``mallopt`` parameters and the values ``tune_allocator`` sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 256 * 2**20
#: environment variables through which a user sets glibc's malloc: ``tune_allocator`` then leaves it alone
USER_MALLOC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def tune_allocator() -> bool:
    """Let freed tensor memory be reused instead of returned to the kernel (glibc only; elsewhere nothing;
    True when set). glibc's ``malloc`` gives every block above its mmap threshold (128 KiB at start) fresh
    pages, which the kernel zero-fills on first touch and takes back on ``free``: a small model's forward and
    backward pass allocate and free their activations (MiBs each) at every batch, and on a CPU those page
    faults cost as much as the arithmetic (small-cnn at 256 images: ~2,400 faults per forward pass, ~25
    tuned; with ``training.eval_batch_size``, ``benchmarks/bench_eval_batch.py``: forward 1.86×, input
    gradient 1.73×). Blocks up to ``MMAP_THRESHOLD`` now come from the heap, which keeps up to
    ``TRIM_THRESHOLD`` free at its top, so a process's resident memory stays nearer its peak (``--cell-memory``
    measures a worker's). Speed only: no value changes. Left alone where the user set malloc's own variables."""
    if any(os.environ.get(v) for v in USER_MALLOC_SETTINGS):  # the user's own malloc settings win
        return False
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def release_free_memory() -> None:
    """Give the heap's free pages back to the kernel (glibc ``malloc_trim``; elsewhere nothing): between a
    worker's cells, so that the resident memory ``--cell-memory`` watches is the next cell's own, not what
    ``tune_allocator`` kept free after the last one."""
    malloc_trim = _glibc_function("malloc_trim")
    if malloc_trim is not None:
        malloc_trim(0)


def _glibc_function(name: str):
    """glibc's C function ``name`` in this process (Linux with glibc), else None."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux") or not glibc_version():
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def glibc_version() -> str | None:
    """``glibc 2.36`` where this process runs on glibc, else None (musl, macOS, Windows)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None


def use_threads(given: int | None = None) -> int:
    """Set torch's intra-op threads for this process: ``given`` (--threads), else $DEMEMO_THREADS, else 1. One
    thread by default: the harness's models are small, gain little from a second thread on an idle machine
    and lose up to 10x beside any other work; parallelism comes from worker processes (``--jobs``). The count
    changes floating-point summation order, so results are comparable only at equal counts."""
    threads = count_setting("--threads", given, "DEMEMO_THREADS", 1)
    torch.set_num_threads(threads)
    return threads


def prepare_process(threads: int | None = None) -> int:
    """Ready this process for CPU-heavy work: ``tune_allocator`` and ``use_threads`` (returns the count)."""
    tune_allocator()
    return use_threads(threads)
