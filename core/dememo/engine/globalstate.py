"""Torch's process-wide settings, saved and restored around every stage so one plugin cannot change the
conditions of every later cell.

A plugin that calls ``torch.set_default_dtype(torch.float64)``, ``torch.set_grad_enabled(False)`` or
``torch.use_deterministic_algorithms(True)`` and forgets to undo it would otherwise change (or break)
every stage computed after it, and the failures would name those stages, not the culprit. Around each
stage the runner captures the settings below and the random-number generators' states; afterwards it
puts back every setting that moved and logs one warning per (plugin, setting) naming the plugin. The RNG
states (torch's, NumPy's and Python's) are restored silently: drawing from a global generator is allowed
(each stage reseeds torch's), and restoring keeps a plugin's draws independent of whether a stage it calls
was computed or cached. Beyond torch, the settings include the working directory, filters that turn
warnings into errors, ``logging.disable``, the recursion limit, SIGINT/SIGTERM handlers and process-wide
module hooks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

log = logging.getLogger("dememo")


def _deterministic() -> tuple[bool, bool]:
    return torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()


def _set_deterministic(value: tuple[bool, bool]) -> None:
    torch.use_deterministic_algorithms(value[0], warn_only=value[1])


def _cudnn(attr: str) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    return (lambda: getattr(torch.backends.cudnn, attr)), (lambda v: setattr(torch.backends.cudnn, attr, v))


#: name → (read, write) of each process-wide setting a stage must leave as it found it
SETTINGS: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
    "default dtype": (torch.get_default_dtype, torch.set_default_dtype),
    "default device": (torch.get_default_device, torch.set_default_device),
    "grad mode": (torch.is_grad_enabled, torch.set_grad_enabled),
    "thread count": (torch.get_num_threads, torch.set_num_threads),
    "deterministic algorithms": (_deterministic, _set_deterministic),
    "cudnn.deterministic": _cudnn("deterministic"),
    "cudnn.benchmark": _cudnn("benchmark"),
    "cudnn.enabled": _cudnn("enabled"),
    "anomaly detection": (torch.is_anomaly_enabled, torch.set_anomaly_enabled),
    "float32 matmul precision": (torch.get_float32_matmul_precision, torch.set_float32_matmul_precision),
    "matmul TF32": (lambda: torch.backends.cuda.matmul.allow_tf32,
                    lambda v: setattr(torch.backends.cuda.matmul, "allow_tf32", v)),
    "cudnn.allow_tf32": _cudnn("allow_tf32"),
    "CPU autocast": (lambda: (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")),
                     lambda v: (torch.set_autocast_enabled("cpu", v[0]), torch.set_autocast_dtype("cpu", v[1]))),
    "CUDA autocast": (lambda: (torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")),
                      lambda v: (torch.set_autocast_enabled("cuda", v[0]), torch.set_autocast_dtype("cuda", v[1]))),
    # the process around torch: paths the harness writes to are absolute, but a plugin's relative paths and
    # every later plugin's would follow a changed directory; warnings turned into errors, logging switched
    # off or a lowered recursion limit would fail or silence later cells
    "working directory": (os.getcwd, os.chdir),
    "warnings-as-errors filters": (lambda: _error_filters(), lambda v: _keep_error_filters(v)),
    "logging.disable level": (lambda: logging.root.manager.disable, logging.disable),
    "recursion limit": (sys.getrecursionlimit, sys.setrecursionlimit),
}


def _error_filters() -> tuple[Any, ...]:
    """The warning filters that turn warnings into errors (other filters are added by any first import of
    a library, e.g. SciPy's, and change no number)."""
    return tuple(f for f in warnings.filters if f[0] == "error")


def _keep_error_filters(keep: tuple[Any, ...]) -> None:
    warnings.filters[:] = [f for f in warnings.filters if f[0] != "error" or f in keep]


def _handlers() -> tuple[Any, ...]:
    """The SIGINT and SIGTERM handlers (the main thread's: where signals are delivered)."""
    return tuple(signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM))


def _set_handlers(value: tuple[Any, ...]) -> None:
    if threading.current_thread() is threading.main_thread():
        for s, h in zip((signal.SIGINT, signal.SIGTERM), value):
            signal.signal(s, h)


# a plugin that installs its own handler would turn the user's next Ctrl-C into an exception in some
# innocent later stage (or swallow it)
SETTINGS["SIGINT/SIGTERM handlers"] = (_handlers, _set_handlers)

def _global_hooks() -> tuple[int, ...]:
    """Handles of the hooks registered on every module at once (``register_module_forward_hook`` and kin)."""
    m = torch.nn.modules.module
    return tuple(sorted(k for name in GLOBAL_HOOKS for k in getattr(m, name, {})))


def _drop_global_hooks(keep: tuple[int, ...]) -> None:
    m = torch.nn.modules.module
    for name in GLOBAL_HOOKS:
        table = getattr(m, name, None)
        for k in [k for k in (table or {}) if k not in keep]:
            del table[k]


#: torch's process-wide module hook tables
GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                "_global_backward_pre_hooks")
SETTINGS["global module hooks"] = (_global_hooks, _drop_global_hooks)


def capture() -> dict[str, Any]:
    return {name: read() for name, (read, _) in SETTINGS.items()}


def restore(before: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Put back every setting that differs from ``before``; returns (setting, was, now) of each."""
    moved = []
    for name, (read, write) in SETTINGS.items():
        now = read()
        if now != before[name]:
            write(before[name])
            moved.append((name, before[name], now))
    return moved


@contextlib.contextmanager
def preserved(who: str, warned: set[tuple[str, str]] | None = None) -> Iterator[None]:
    """Run the block, then restore torch's settings and RNG states; name ``who`` for each setting it moved
    (logged once per plugin and setting among those in ``warned``, which it extends)."""
    warned = set() if warned is None else warned
    before = capture()
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    np_rng, py_rng = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        for name, was, now in restore(before):
            if (who, name) not in warned:
                warned.add((who, name))
                log.warning("%s changed the process-wide %s (%s -> %s) and did not set it back; dememo restored it for the "
                            "stages after it (a plugin must leave global state as it found it)", who, name, was, now)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        np.random.set_state(np_rng)
        random.setstate(py_rng)
