"""Old module paths kept for one release after the core moved into packages (issue 19).

``dememo.runner`` is now ``dememo.engine.runner`` and so on. An old path is an alias, not a copy: importing it
returns the new module object itself, with a :class:`DeprecationWarning`. Names that moved on to another
module when a module was split (``dememo.runner.run_cell`` is ``dememo.engine.cell.run_cell``; the bundle
checks of ``dememo.submission`` are in ``dememo.board.bundle``, which ``dememo.board.submission`` re-exports)
are not forwarded, and patching a re-export does not patch the code that runs: patch the new home. The
aliases live in this finder rather than as files so that the package's directory shows only the current
layout.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

#: old module (under ``dememo.``) → its new home
MOVED = {
    "runner": "dememo.engine.runner", "cache": "dememo.engine.cache", "guards": "dememo.engine.guards",
    "globalstate": "dememo.engine.globalstate", "executors": "dememo.engine.executors",
    "isolation": "dememo.engine.isolation", "devices": "dememo.engine.devices", "tuning": "dememo.engine.tuner",
    "suite": "dememo.planning.suite", "planner": "dememo.planning.planner", "tuning_record": "dememo.planning.tuning_record",
    "leaderboard": "dememo.board.leaderboard", "leaderboard_html": "dememo.board.html",
    "report": "dememo.board.report", "submission": "dememo.board.submission", "outputs": "dememo.files",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self) -> None:
        self._specs: dict[str, Any] = {}  # real module name → its spec

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        head, _, leaf = fullname.rpartition(".")
        if head != "dememo" or leaf not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name.rpartition(".")[2]]
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in the next release", DeprecationWarning,
                      stacklevel=2)
        module = importlib.import_module(new)
        self._specs[module.__name__] = module.__spec__  # the import system sets the alias's spec: put it back
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._specs[module.__name__]


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
