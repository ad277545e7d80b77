"""Test kit for plugin authors (binding API).

- ``isolated_registry(*plugins)``: a registry holding only the given plugin objects (modules or classes
  with ``@dememo.hookimpl`` functions), no entry points.
- ``registered(plugin)``: register a plugin object with the process-wide manager for one test (in a
  ``with`` block; it is unregistered afterwards even if the test fails).
- ``tiny_splits(...)``, ``tiny_task(...)``, ``tiny_class_task(...)``, ``tiny_context(...)``, ``TinyMLP``: small,
  learnable data, forget tasks and models.
- ``PoisonerContract``, ``UnlearnerContract``, ``AttackContract``, ``MetricContract``, ``ScorerContract``,
  ``DatasetContract``, ``ArchitectureContract``: pytest classes to subclass in a plugin's own tests; set ``plugin_class`` (and optionally ``params``).

Example::

    from dememo.testing import PoisonerContract
    from my_plugin import MyPoisoner

    class TestMyPoisoner(PoisonerContract):
        plugin_class = MyPoisoner
        params = {"strength": 0.5}
"""

try:  # pytest rewrites asserts only in test files: the contracts' checks show their values too
    import pytest

    pytest.register_assert_rewrite("dememo.testing.contracts")
except ImportError:  # the kit needs pytest; the fixtures do not
    pass

from .contracts import (ArchitectureContract, AttackContract, DatasetContract, MetricContract,  # noqa: E402
                        PoisonerContract, ScorerContract, UnlearnerContract)
from .fixtures import (TinyArchitecture, TinyMLP, evaluation_for, isolated_registry, registered,  # noqa: E402
                       tiny_class_task, tiny_context, tiny_splits, tiny_task)

__all__ = [
    "ArchitectureContract", "AttackContract", "DatasetContract", "MetricContract", "PoisonerContract", "ScorerContract", "TinyArchitecture", "TinyMLP",
    "UnlearnerContract",
    "evaluation_for", "isolated_registry", "registered", "tiny_class_task", "tiny_context", "tiny_splits", "tiny_task",
]
