"""The ``avg-gap`` metric (plugins/dememo_plugins/metrics/avg_gap.py): behaviour tests and reference checks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dememo.evaluation import Evaluation
from dememo_plugins.metrics.avg_gap import AvgGap

from support.metrics.unlearning import fractions, stub_evaluation


def stub_for(row: tuple[float, float, float, float], retrain: tuple[float, float, float, float]) -> Evaluation:
    """UA, RA, TA, MIA-efficacy in percent (a paper's table row) as the metrics avg-gap reads, in fractions."""

    def metrics(ua, ra, ta, mia):
        return {"unlearning-accuracy": {"forget_acc": 1 - ua / 100, "retain_acc": ra / 100, "test_acc": ta / 100},
                "mia-efficacy": {"mia_efficacy": mia / 100}}

    return stub_evaluation({"model": metrics(*row), "retrained": metrics(*retrain)})


@pytest.mark.reference("metric", "avg-gap", source="paper: Fan et al., SalUn (ICLR 2024, arXiv 2310.12508), Table 1 Avg. Gap")
def test_avg_gap_reproduces_the_published_tables():
    """SalUn Table 1 (CIFAR-10, ResNet-18, 10 % random forgetting; UA / RA / TA / MIA-efficacy, Avg. Gap, all in
    %, as quoted in REFERENCES.md): the average of |UA − UA_r|, |RA − RA_r|, |TA − TA_r|, |MIA − MIA_r| to the
    retrain. The rows' published gaps must come back to the table's rounding (0.005) plus the inputs' (0.005);
    the RURK table (CIFAR-10, class 0 forgotten; retain / unlearn / test / MIA) is checked the same way."""
    salun_retrain = (5.24, 100.0, 94.26, 12.88)
    for row, gap in (((0.63, 99.88, 94.06, 2.70), 3.78), ((0.69, 99.50, 94.01, 1.70), 4.12),
                     ((2.85, 99.62, 93.93, 14.39), 1.15), (salun_retrain, 0.0)):
        assert 100 * AvgGap().compute(stub_for(row, salun_retrain), None)["avg_gap"] == pytest.approx(gap, abs=0.01)
    # RURK (arXiv 2601.22359) table: "Unlearn" is the forget accuracy itself, so enter 100 − it as UA
    retrain, rurk = (100 - 9.47, 100.0, 93.30, 22.50), (100 - 14.63, 99.55, 92.60, 18.20)
    assert 100 * AvgGap().compute(stub_for(rurk, retrain), None)["avg_gap"] == pytest.approx(2.65, abs=0.01)


@pytest.mark.reference("metric", "avg-gap", source="paper: Fan et al., SalUn (ICLR 2024, arXiv 2310.12508), Table 1 Avg. Gap")
@settings(max_examples=40, deadline=None)
@given(st.tuples(fractions, fractions, fractions, fractions), st.tuples(fractions, fractions, fractions, fractions))
def test_avg_gap_is_the_mean_absolute_gap_in_percent_over_four_numbers(model, retrain):
    """The same definition in a loop over the four numbers, in percent as the paper reports them."""
    as_pct = [tuple(100 * v for v in model), tuple(100 * v for v in retrain)]
    ua = [100 - as_pct[0][0], 100 - as_pct[1][0]]  # UA = 100 − forget accuracy
    total = abs(ua[0] - ua[1])
    for i in (1, 2, 3):
        total += abs(as_pct[0][i] - as_pct[1][i])
    expected = total / 4 / 100

    def metrics(fa, ra, ta, mia):
        return {"unlearning-accuracy": {"forget_acc": fa, "retain_acc": ra, "test_acc": ta},
                "mia-efficacy": {"mia_efficacy": mia}}

    ev = stub_evaluation({"model": metrics(*model), "retrained": metrics(*retrain)})
    assert AvgGap().compute(ev, None)["avg_gap"] == pytest.approx(expected, abs=1e-12)
