"""Reference checks of the distillation unlearners (bad-teacher, Spotter): the objective each plugin hands to
the training loop, evaluated on a batch, against the released / published loss transcribed here as a plain
per-sample NumPy loop. The loss is captured by replacing ``Context.fit`` for the duration of one call, so the
check sees exactly the function the plugin trains with."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dememo.context import Context
from dememo.testing import tiny_class_task, tiny_context, tiny_splits, tiny_task
from dememo_plugins.unlearners.bad_teacher import BadTeacher
from dememo_plugins.unlearners.spotter import Spotter


def _capture_fit(monkeypatch) -> dict:
    calls: dict = {}

    def fake_fit(self, model, data, **kw):
        calls.update(kw, data=data, model=model)

    monkeypatch.setattr(Context, "fit", fake_fit)
    return calls


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """Σ_c p_c log(p_c / q_c) with 0·log 0 = 0."""
    return float(sum(pc * (np.log(pc) - np.log(qc)) for pc, qc in zip(p, q, strict=True) if pc > 0))


@pytest.mark.reference("unlearner", "bad-teacher", source="vikram2000b/bad-teaching-unlearning:unlearn.py "
                       "(UnlearnerLoss: KL(l·softmax(T_d/T) + (1 − l)·softmax(T_s/T) ‖ softmax(S/T)), l = 1 on forget)")
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_bad_teacher_objective_is_the_released_unlearner_loss(monkeypatch, temperature):
    splits = tiny_splits()
    original = tiny_context(splits, budget=None).train(splits.train)
    task = tiny_task(splits, forget_fraction=0.2, seed=0)
    calls = _capture_fit(monkeypatch)
    ctx = tiny_context(splits, seed=5, budget=None)
    BadTeacher(temperature=temperature, retain_fraction=0.5).unlearn(copy.deepcopy(original), task, ctx)
    data, loss = calls["data"], calls["loss"]
    n_forget = len(task.forget)
    incompetent = tiny_context(splits, seed=5, budget=None).derive("bad-teacher:incompetent").new_model()
    student = copy.deepcopy(original)
    with torch.no_grad():  # move the student away from the teacher so the divergence is not zero
        for p in student.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    rows = torch.arange(len(data))
    x = data.x[rows]
    with torch.no_grad():
        got = float(loss(student.eval(), x, data.y[rows]))
        s, ts, td = (m.eval()(x).double().numpy() / temperature for m in (student, original, incompetent))
    expected = np.mean([_kl(_softmax(td[i]) if i < n_forget else _softmax(ts[i]), _softmax(s[i]))
                        for i in range(len(x))])
    assert got == pytest.approx(expected, rel=1e-4)
    # the unlearning set is the whole forget set followed by retain_fraction of the retain set
    assert len(data) == n_forget + int(np.ceil(0.5 * len(task.retain)))
    assert torch.equal(data.x[:n_forget], task.forget.x)


@pytest.mark.reference("unlearner", "spotter", source="paper: Ha, Park and Yoon, Unlearning's Blind Spots, "
                       "arXiv 2506.01318, §4 (L = λ₁·KL(p̃(x) ‖ f(x)) + (1 − λ₁)·KL(p̃(x̃) ‖ f(x̃)) + λ₂·L_disp)")
def test_spotter_objective_is_the_published_loss(monkeypatch):
    splits = tiny_splits()
    original = tiny_context(splits, budget=None).train(splits.train)
    task = tiny_class_task(splits, classes=(0,))
    seen: dict = {}

    def probe(self, model, data, loss, paired, **kw):
        """Inside the plugin's fit call (its feature hook is live): the loss on one batch of a moved student."""
        x, y, px, py = data.x[:12], data.y[:12], paired.x[:12], paired.y[:12]
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
            seen["value"] = float(loss(model, x, y, px, py))
            head = list(model.modules())[-1]
            def keep(module, inputs, output):  # (returns None: a forward hook's return value replaces the output)
                seen.setdefault("h", inputs[0].double().numpy())

            handle = head.register_forward_hook(keep)
            seen["f_x"], seen["f_px"] = model(x).double().numpy(), model(px).double().numpy()
            handle.remove()
        seen.update(y=y.numpy(), t_x=original(x).detach().double().numpy(), t_px=original(px).detach().double().numpy(),
                    shift=float((paired.x - data.x).abs().max()))

    monkeypatch.setattr(Context, "fit", probe)
    Spotter(kd_weight=0.7, dispersion_weight=1.0).unlearn(copy.deepcopy(original), task,
                                                           tiny_context(splits, seed=2, budget=None))

    def masked(z):  # the original's softmax with the forgotten class zeroed and renormalised
        p = _softmax(z)
        p[0] = 0.0
        return p / p.sum()

    h, y, n = seen["h"], seen["y"], len(seen["y"])
    kd = np.mean([_kl(masked(seen["t_x"][i]), _softmax(seen["f_x"][i])) for i in range(n)])
    kd_perturbed = np.mean([_kl(masked(seen["t_px"][i]), _softmax(seen["f_px"][i])) for i in range(n)])
    cos = [h[i] @ h[j] / np.linalg.norm(h[i]) / np.linalg.norm(h[j])
           for i in range(n) for j in range(n) if i != j and y[i] == y[j]]
    assert seen["value"] == pytest.approx(0.7 * kd + 0.3 * kd_perturbed + 1.0 * np.mean(cos), rel=1e-4)
    # the perturbed copies stay within the published ε = 0.03 of their forget samples, and moved
    assert 0 < seen["shift"] <= 0.03 + 1e-6
