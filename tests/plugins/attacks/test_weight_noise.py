"""The ``weight-noise`` attack (plugins/dememo_plugins/attacks/weight_noise.py): behaviour tests and reference checks.

Reference checks for the weight-space probes (issue 17): ``weight-recovery``'s projections, the ``depth``
metric with its fresh-initialisation control, ``weight-noise`` and ``certified-learnability``.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from dememo import AttackData
from dememo.testing import tiny_context, tiny_splits
from dememo_plugins.attacks.weight_noise import WeightNoise

from support.metrics.weight_space_reference import tiny  # noqa: F401 (pytest fixtures, used as arguments)


def test_weight_noise_scales_with_sigma_and_zero_is_identity():
    splits = tiny_splits()
    ctx = tiny_context(splits, budget=None)
    model = ctx.train(splits.train)
    base = torch.cat([p.detach().flatten() for p in model.parameters()])
    (same,) = WeightNoise(sigma=0.0, draws=1).attack(model, None, ctx)
    assert torch.equal(torch.cat([p.detach().flatten() for p in same.parameters()]), base)
    for sigma in (0.01, 0.1):
        draws = WeightNoise(sigma=sigma, draws=2).attack(model, None, ctx)
        moved = torch.cat([p.detach().flatten() for p in draws[0].parameters()]) - base
        assert abs(float(moved.std()) - sigma) < 0.2 * sigma
        assert not torch.equal(draws[0].state_dict()["net.1.weight"], draws[1].state_dict()["net.1.weight"])


@pytest.mark.reference("attack", "weight-noise", source="NeuralSec/certified-data-learnability:certify.py")
def test_weight_noise_is_sigma_times_a_standard_normal_on_every_parameter(tiny):
    """certify.py's perturbation, transcribed: every ``named_parameters`` tensor gets σ·N(0, 1) (``randn_like``),
    independently per draw; buffers are not touched. The plugin's offsets must have mean 0 and standard
    deviation σ on every tensor and across draws (checked on 64 draws × 643 weights), be different per draw
    and identical under the seed."""
    splits, model = tiny
    sigma, draws = 0.05, 64
    out = WeightNoise(sigma=sigma, draws=draws).attack(copy.deepcopy(model), AttackData(splits),
                                                     tiny_context(splits, budget=None))
    assert len(out) == draws
    base = {n: p.detach() for n, p in model.named_parameters()}
    offsets = torch.stack([torch.cat([(p.detach() - base[n]).flatten() for n, p in m.named_parameters()]) for m in out])
    n = offsets.numel()
    assert abs(float(offsets.mean())) < 4 * sigma / math.sqrt(n)
    assert float(offsets.std()) == pytest.approx(sigma, rel=0.03)
    for name, p in model.named_parameters():  # each tensor, not only the concatenation
        per = torch.stack([dict(m.named_parameters())[name].detach() - p.detach() for m in out])
        assert float(per.std()) == pytest.approx(sigma, rel=0.25), name
    corr = torch.corrcoef(offsets[:8])
    assert float((corr - torch.eye(8)).abs().max()) < 0.2  # independent draws
    for m in out:
        assert all(torch.equal(a, b) for a, b in zip(m.buffers(), model.buffers()))
    again = WeightNoise(sigma=sigma, draws=draws).attack(copy.deepcopy(model), AttackData(splits),
                                                       tiny_context(splits, budget=None))
    assert all(torch.equal(a, b) for x, y in zip(out, again) for a, b in zip(x.parameters(), y.parameters()))
