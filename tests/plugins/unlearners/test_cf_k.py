"""The ``cf-k`` unlearner (plugins/dememo_plugins/unlearners/cf_k.py): behaviour tests and reference checks.

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

import copy

import pytest
import torch
from torch import nn

from support.unlearners.trained import _ce, _first_step, _params


def released_tail(model, k):
    """shash42/Evaluating-Inexact-Unlearning, src/methods.py (resetFinalResnet with reinit=False), transcribed:
    convolution, BatchNorm2d and linear modules in definition order, walked from the last; each one's
    parameters become trainable until the k-th convolution/linear module has been reached."""
    found = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    tail, done = [], 0
    for m in reversed(found):
        tail.append(m)
        done += isinstance(m, (nn.Conv2d, nn.Linear))
        if done >= k:
            break
    return {id(p) for m in tail for p in m.parameters()}


@pytest.mark.reference("unlearner", "cf-k", source="shash42/Evaluating-Inexact-Unlearning:src/methods.py")
@pytest.mark.parametrize("k", [1, 2])
def test_cf_k_first_step_fine_tunes_exactly_the_released_tail_on_the_retain_set(k):
    """cat_forget_finetune: freeze all but the last k layers (no re-initialisation), then train on the
    retain set with cross-entropy: the first step is θ − lr·∇CE(retain) on the tail, the rest unchanged."""
    from dememo_plugins.unlearners.cf_k import CfK

    model, task, after = _first_step(CfK(k=k, epochs=1, lr=0.05))
    tail = released_tail(model, k)
    stepped = copy.deepcopy(model).train()
    grads = torch.autograd.grad(_ce(stepped, task.retain), list(stepped.parameters()))
    expected = torch.cat([(p - 0.05 * g if id(q) in tail else p).detach().reshape(-1)
                          for p, q, g in zip(stepped.parameters(), model.parameters(), grads, strict=True)])
    assert torch.allclose(_params(after), expected, rtol=1e-4, atol=1e-6)
    moved = _params(after) != _params(model)
    assert int(moved.sum()) > 0 and (k == 2 or int(moved.sum()) <= 3 * 32 + 3)  # k = 1: the head only
