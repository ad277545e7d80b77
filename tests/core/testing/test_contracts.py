"""The contract kit fails a plugin author's mistakes with a message that names what is wrong, and is as strict
as the runner: what a run would refuse, the contract refuses."""

from __future__ import annotations

from typing import ClassVar

import attrs
import pytest
import torch

import dememo
import dememo.testing.contracts as contracts
from dememo.errors import ContractViolation
from dememo.testing import MetricContract, PoisonerContract, UnlearnerContract


def contract(base, plugin):
    return type(f"Test{plugin.__name__}", (base,), {"plugin_class": plugin, "check_entry_point": False})()


@attrs.define
class QuietWriter(dememo.Unlearner):
    """Writes the retain images in place without changing a value (the runner catches it: version counter)."""

    name: ClassVar[str] = "quiet-writer"
    version: ClassVar[str] = "1"

    def unlearn(self, model, task, ctx):
        task.retain.x.sub_(0)
        return model


@attrs.define
class Reshaper(dememo.Unlearner):
    """Returns a model with another last layer."""

    name: ClassVar[str] = "reshaper"
    version: ClassVar[str] = "1"

    def unlearn(self, model, task, ctx):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 2))


@attrs.define
class Chatty(dememo.Metric):
    """Returns a column it never declared."""

    name: ClassVar[str] = "chatty"
    version: ClassVar[str] = "1"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning",)
    columns: ClassVar[dict[str, dememo.Column]] = {"acc": dememo.Column("acc", "higher", "accuracy")}

    def compute(self, ev, ctx):
        return {"acc": 1.0, "extra_col": 2.0}


@attrs.define
class Restless(dememo.Poisoner):
    """Draws its noise from torch's global generator, not ctx.generator."""

    name: ClassVar[str] = "restless"
    version: ClassVar[str] = "1"
    norm: ClassVar[str] = "linf"

    def poison(self, data, ctx):
        return (data.x + 0.01 * torch.randn(data.x.shape).sign()).clamp(0, 1)


def test_a_value_preserving_in_place_write_is_refused_and_named():
    with pytest.raises(ContractViolation, match=r"unlearner 'quiet-writer' .*task\.retain\.x"):
        contract(UnlearnerContract, QuietWriter).test_does_not_mutate_task()


def test_a_wrong_architecture_names_the_tensor():
    with pytest.raises(AssertionError, match=r"unlearn returned a model whose tensors differ: missing '"):
        contract(UnlearnerContract, Reshaper).test_returns_same_architecture()


def test_an_undeclared_column_is_named():
    with pytest.raises(AssertionError, match=r"compute returned 'extra_col', which is not declared in columns \(acc\)"):
        contract(MetricContract, Chatty).test_returns_declared_columns()


def test_global_randomness_is_named_as_the_cause():
    with pytest.raises(AssertionError, match=r"two runs with seed 0 differ .*draw from ctx\.generator"):
        contract(PoisonerContract, Restless).test_deterministic_under_seed()


def test_the_kits_asserts_are_rewritten_by_pytest():
    # register_assert_rewrite in dememo.testing: a bare assert in the kit shows its values like a test's own
    assert "@pytest_ar" in vars(contracts)
