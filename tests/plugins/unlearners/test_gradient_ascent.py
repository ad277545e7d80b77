"""The ``gradient-ascent`` unlearner (plugins/dememo_plugins/unlearners/gradient_ascent.py): behaviour tests and reference checks.

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

from dememo.testing import tiny_context, tiny_splits, tiny_task
from dememo_plugins.unlearners.gradient_ascent import GradientAscent

from support.unlearners.trained import _ce, _first_step, _params, _sgd_step


def test_gradient_ascent_with_too_large_a_learning_rate_destroys_the_model():
    splits = tiny_splits()
    task = tiny_task(splits)
    ctx = tiny_context(splits, budget=None)
    model = ctx.train(splits.train)
    before = ctx.accuracy(model, splits.test)
    gentle = GradientAscent(lr=0.01, epochs=1).unlearn(ctx.train(splits.train), task, ctx)
    harsh = GradientAscent(lr=5.0, epochs=5).unlearn(ctx.train(splits.train), task, ctx)
    assert ctx.accuracy(gentle, splits.test) >= before - 0.1
    assert ctx.accuracy(harsh, splits.test) < before - 0.3


@pytest.mark.reference("unlearner", "gradient-ascent", source="OPTML-Group/Unlearn-Saliency:Classification/unlearn/GA.py")
def test_gradient_ascent_first_step_ascends_the_forget_cross_entropy():
    """GA.py: loss = −CE(forget batch), minimised, i.e. θ + lr·∇CE(forget)."""
    from dememo_plugins.unlearners.gradient_ascent import GradientAscent

    model, task, after = _first_step(GradientAscent(epochs=1, lr=0.05))
    expected = _sgd_step(model, lambda m: -_ce(m, task.forget), 0.05)
    assert torch.allclose(_params(after), expected, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        assert float(_ce(after, task.forget)) > float(_ce(model, task.forget))  # the forget loss went up
