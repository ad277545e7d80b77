"""The ``boundary-expand`` unlearner (plugins/dememo_plugins/unlearners/boundary_expand.py): behaviour tests and reference checks.

boundary-shrink, boundary-expand and spotter: class-level forgetting on the embedded data.

- noisy-shapes: forget accuracy ≤ 0.03 for all three; other-class accuracy 0.80 (spotter, gap 0.02),
  0.67 (boundary-shrink, gap 0.09), 0.55 (boundary-expand, gap 0.14): the forget-only fine-tuning of the
  two boundary methods shifts predictions toward the absorbing classes on this weak-signal data.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from dememo import models
from dememo.context import Context
from dememo.testing import tiny_class_task, tiny_context, tiny_splits
from dememo_plugins.unlearners.boundary_expand import BoundaryExpand

from support.unlearning import setting


@pytest.mark.reference("unlearner", "boundary-expand",
                       source="paper: Chen et al., Boundary Unlearning, CVPR 2023, and its released code (Boundary-Unlearning-Code): "
                              "boundary_unlearning.py:boundary_expanding (widen the head by one shadow class, "
                              "train D_f toward it, prune it)")
def test_boundary_expand_trains_the_forget_set_into_a_shadow_class_of_a_widened_head(monkeypatch):
    """The objective handed to training must be CE([W h + b ; w_s·h + b_s], K) over the forget samples, with
    the shadow row (w_s, b_s) among the trained parameters; afterwards the head is K-way again."""
    splits = tiny_splits()
    model = tiny_context(splits, budget=None).train(splits.train)
    task = tiny_class_task(splits, classes=(1,))
    seen: dict = {}

    def probe(self, m, data, loss, parameters, **kw):
        x, y = data.x[:10], data.y[:10]
        with torch.no_grad():
            seen["value"] = float(loss(m, x, y))
            feats = {}
            head = list(m.modules())[-1]

            def keep(module, inputs, output):
                feats["h"] = inputs[0].double().numpy()

            handle = head.register_forward_hook(keep)
            m(x)
            handle.remove()
        w, b = head.weight.detach().double().numpy(), head.bias.detach().double().numpy()
        ws, bs = parameters[-2].detach().double().numpy(), parameters[-1].detach().double().numpy()
        seen.update(h=feats["h"], w=np.vstack([w, ws]), b=np.concatenate([b, bs]), k=w.shape[0],
                    trained_shadow=any(p is parameters[-2] for p in parameters))

    monkeypatch.setattr(Context, "fit", probe)
    out = BoundaryExpand().unlearn(copy.deepcopy(model), task, tiny_context(splits, seed=1, budget=None))
    z = seen["h"] @ seen["w"].T + seen["b"]
    ce = [np.log(np.exp(zi - zi.max()).sum()) + zi.max() - zi[seen["k"]] for zi in z]  # −log softmax at K
    assert seen["value"] == pytest.approx(float(np.mean(ce)), rel=1e-5)
    assert z.shape[1] == splits.num_classes + 1 and seen["trained_shadow"]
    assert out(splits.test.x[:4]).shape[1] == splits.num_classes  # pruned back to K classes


def test_boundary_expand_returns_the_original_architecture():
    s = setting("digits", 0, "class", (0,))
    out = BoundaryExpand().unlearn(copy.deepcopy(s.original), s.task, s.context())
    assert {k: v.shape for k, v in out.state_dict().items()} == {k: v.shape for k, v in s.original.state_dict().items()}
    head = models.last_linear(out)
    assert not head._forward_hooks  # the shadow class is pruned: no hook left behind
    assert out(s.task.forget.x[:4]).shape == (4, s.splits.num_classes)
    # the body was fine-tuned too (the shadow class is reached through the features, not the head alone)
    head_name = next(n for n, m in out.named_modules() if m is head)
    before = s.original.state_dict()
    assert any(not torch.equal(v, before[k]) for k, v in out.state_dict().items() if not k.startswith(head_name))


def test_boundary_expand_refuses_a_model_whose_head_is_not_its_output():
    s = setting("digits", 0, "class", (0,))
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.LogSoftmax(dim=1))
    with pytest.raises(ValueError, match="last nn.Linear"):
        BoundaryExpand().unlearn(model, s.task, s.context())
    assert not model[1]._forward_hooks
