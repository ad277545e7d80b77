"""Reference checks of EU-k and Boundary Expanding: what each method's definition says the result may depend
on (EU-k) and the objective it trains (Boundary Expanding), transcribed independently here."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dememo.context import Context
from dememo.testing import tiny_class_task, tiny_context, tiny_splits, tiny_task
from dememo_plugins.unlearners.boundary_expand import BoundaryExpand
from dememo_plugins.unlearners.eu_k import EuK


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [v.detach().clone() for v in model.state_dict().values()]


@pytest.mark.reference("unlearner", "eu-k", source="shash42/Evaluating-Inexact-Unlearning:src/methods.py (EU-k: "
                       "re-initialise the last k layers, train them on D_r with the rest frozen)")
def test_eu_k_is_exact_for_its_tail_the_old_tail_and_the_forget_set_change_nothing():
    """EU-k's claim is exact unlearning of the last k layers: given the frozen prefix, the result is a fresh
    tail trained on D_r. So it must not depend on the tail's trained weights (they are re-drawn) nor on D_f,
    and the prefix must come back bit-identical. Fine-tuning the tail instead (CF-k) breaks the first."""
    splits = tiny_splits()
    task = tiny_task(splits, forget_fraction=0.2, seed=0)
    model = tiny_context(splits, budget=None).train(splits.train)
    out = EuK(k=1).unlearn(copy.deepcopy(model), task, tiny_context(splits, seed=4, budget=None))

    scrambled = copy.deepcopy(model)
    head = list(scrambled.modules())[-1]
    with torch.no_grad():
        head.weight.normal_(generator=torch.Generator().manual_seed(7))
        head.bias.normal_(generator=torch.Generator().manual_seed(8))
    other_forget = task.__class__(retain=task.retain, val=task.val,
                                  forget=task.forget.with_images(torch.rand_like(task.forget.x), "other"))
    again = EuK(k=1).unlearn(scrambled, other_forget, tiny_context(splits, seed=4, budget=None))
    assert all(torch.equal(a, b) for a, b in zip(_weights(out), _weights(again), strict=True))
    # the prefix is the original's, bit for bit; the tail moved
    before, after = model.state_dict(), out.state_dict()
    head_keys = [k for k in before if k.startswith("net.3.")]  # TinyMLP: net.1 linear, ReLU, net.3 the head
    assert head_keys and all(torch.equal(before[k], after[k]) for k in before if k not in head_keys)
    assert all(not torch.equal(before[k], after[k]) for k in head_keys)


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
