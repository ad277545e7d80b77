"""The ``finetune`` unlearner (plugins/dememo_plugins/unlearners/finetune.py): behaviour tests and reference checks.

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


@pytest.mark.reference("unlearner", "finetune", source="OPTML-Group/Unlearn-Saliency:Classification/unlearn/FT.py")
def test_finetune_first_step_descends_the_retain_cross_entropy():
    """FT.py (FT_iter without ℓ1): loss = CE(retain batch), minimised."""
    from dememo_plugins.unlearners.finetune import Finetune

    model, task, after = _first_step(Finetune(epochs=1, lr=0.05))
    expected = _sgd_step(model, lambda m: _ce(m, task.retain), 0.05)
    assert torch.allclose(_params(after), expected, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(_params(after), _params(model))
