"""The ``neggrad-plus`` unlearner (plugins/dememo_plugins/unlearners/neggrad_plus.py): behaviour tests and reference checks.

Reference checks (issue 17) for ``ssd``, ``salun`` and ``mia-efficacy``, and for the loss-based unlearners
``finetune``, ``gradient-ascent``, ``neggrad-plus``, ``random-label``, ``l1-sparse``, ``cf-k``, ``scrub`` and
``rurk``: each plugin against a loop transcription, written here independently, of its paper's equation as
the authors' released code computes it.

- finetune, gradient-ascent, random-label, l1-sparse: OPTML-Group/Unlearn-Saliency ``Classification/unlearn/``
  (FT.py, GA.py, RL.py); neggrad-plus and scrub: meghdadk/SCRUB; cf-k: shash42/Evaluating-Inexact-Unlearning
  ``src/methods.py``; rurk: the paper (no code released). These are checked on their first optimiser step
  (the objective: terms, signs, weights, data), not on the optimiser or schedule (see the section below).
"""

from __future__ import annotations

import pytest
import torch

from support.unlearners.trained import _ce, _first_step, _params, _sgd_step


@pytest.mark.reference("unlearner", "neggrad-plus",
                       source="meghdadk/SCRUB:small_scale_unlearning.ipynb")
@pytest.mark.parametrize("alpha", [0.99, 0.8])
def test_neggrad_plus_first_step_is_the_weighted_retain_minus_forget_objective(alpha):
    """run_neggrad_epoch: loss = α·(CE(retain batch) + (wd/2)·‖θ − θ_0‖²) − (1 − α)·CE(forget batch), with
    a retain batch zipped with a cycled forget batch; at the first step θ = θ_0, so the penalty's gradient
    is 0 (dememo has no such term: it keeps the recipe's weight decay instead, a deviation)."""
    from dememo_plugins.unlearners.neggrad_plus import NegGradPlus

    model, task, after = _first_step(NegGradPlus(alpha=alpha, epochs=1, lr=0.05))
    expected = _sgd_step(model, lambda m: alpha * _ce(m, task.retain) - (1 - alpha) * _ce(m, task.forget), 0.05)
    assert torch.allclose(_params(after), expected, rtol=1e-4, atol=1e-6)
