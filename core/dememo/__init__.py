"""dememo: a benchmark harness for model dememorization.

The public plugin API: the hook markers ``hookimpl``/``hookspec``, the family base classes, ``Column``
(metric column declarations, with ``Plot`` and ``Tuning``; ``Sweep`` for attacks), ``Series`` (a curve-valued column), and the objects plugins receive (``Context``, ``Data``, ``Task``,
``Splits``, ``AttackData``, ``LearnerData``, ``Evaluation``, ``Budget``, ``Recipe``).
"""

from dememo.budget import Budget
from dememo.context import Context
from dememo.data import Data, Splits, Task
from dememo.errors import BudgetViolation, ContractViolation, DatasetError, UserError
from dememo.evaluation import Evaluation
from dememo.families import (Architecture, Attack, AttackData, Column, DatasetSource, LearnerData, Metric, Plot,
                             Poisoner, Scorer, Series, Sweep, Tuning, Unlearner)
from dememo.hookspecs import hookimpl, hookspec
from dememo.version import __version__
from dememo.training import History, Recipe

#: the modules plugins may import besides this package (tests/core/test_layout.py checks the first-party ones)
PUBLIC_MODULES = ("budget", "context", "data", "ensemble", "errors", "evaluation", "families", "forget", "hashing",
                  "hookspecs", "models", "numbers", "params", "pgd", "testing", "training", "validate")

__all__ = [
    "Architecture", "Attack", "AttackData", "Budget", "BudgetViolation", "Column", "Context",
    "ContractViolation", "Data", "DatasetError", "DatasetSource", "Evaluation", "History", "LearnerData", "Metric",
    "Plot", "Poisoner", "Recipe", "Scorer", "Series", "Splits", "Sweep", "Task", "Tuning", "Unlearner", "UserError",
    "__version__", "evaluate", "export", "hookimpl", "hookspec", "load_export", "load_results", "plan", "run",
]

from dememo import (budget, context, data, ensemble, errors, evaluation, families, forget, hashing,  # noqa: E402
                    hookspecs, models, numbers, params, pgd, training, validate)
from dememo import _moved  # noqa: E402

_moved.install()

#: the Python API (``dememo.api``), imported when first used: a plugin importing dememo does not load the engine
_API = ("run", "plan", "load_results", "Results", "export", "load_export", "evaluate")


def __getattr__(name: str) -> object:
    if name in _API:
        import dememo.api

        return getattr(dememo.api, name)
    raise AttributeError(f"module 'dememo' has no attribute {name!r}")
