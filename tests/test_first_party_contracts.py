"""Every first-party plugin passes the same contract tests a third-party plugin would subclass."""

from __future__ import annotations

from dememo import plugins
from dememo.testing import AttackContract, MetricContract, PoisonerContract, UnlearnerContract

CONTRACTS = {"poisoner": PoisonerContract, "unlearner": UnlearnerContract, "attack": AttackContract,
             "metric": MetricContract}


def _first_party():
    registry = plugins.get_registry()
    for family, contract in CONTRACTS.items():
        for name in registry.names(family):
            info = registry.info(family, name)
            if info.distribution == "dememo":
                yield family, name, contract, info.cls


for _family, _name, _contract, _cls in _first_party():
    _test_name = "Test_" + _family + "_" + _name.replace("-", "_")
    globals()[_test_name] = type(_test_name, (_contract,), {"plugin_class": _cls})


def test_every_first_party_method_is_covered_by_a_contract():
    covered = {(f, n) for f, n, _, _ in _first_party()}
    assert ("poisoner", "em") in covered and ("unlearner", "retrain") in covered
    assert ("attack", "weight-noise") in covered and ("metric", "avg-gap") in covered
    assert len(covered) >= 15
