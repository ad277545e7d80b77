"""``boundary-shrink`` (Chen et al., "Boundary Unlearning: Rapid Forgetting of Deep Networks via Shifting
the Decision Boundary", CVPR 2023, Sec. 4.1).

Each forget sample (x, y) is given its *nearest but incorrect* label, found by one untargeted FGSM step on
the original model θ₀ (L∞ bound ε = 0.1 in [0, 1] pixel space, the published value, no random start):

    x' = clip(x + ε·sign(∇ₓ CE(f_θ₀(x), y)), 0, 1),      y_nbi = argmax_{c ≠ y} f_θ₀(x')_c

and the model is fine-tuned on the forget set alone with these labels, minimising CE(f_θ(x), y_nbi), so
the forget samples' region is absorbed by their neighbouring classes' regions ("shrinking" the forgotten
class's boundary) instead of being scattered at random as with random labels. Published: SGD momentum
0.9, lr 1e-5, constant, 10 epochs over the forget set (a CIFAR-10 class: 5,000 images, ≈ 40 steps per
epoch); no retain data.

Choices and deviations (dememo):

- The published code takes the adversarial example's predicted label, so a sample whose FGSM step fails
  keeps its own label and is trained *toward* it. dememo takes the arg-max over the other classes of the
  adversarial logits (identical where the attack succeeds; the paper's stated intent, "nearest but
  incorrect", where it fails). Classes with no sample in the retain set (wholly forgotten classes) are
  excluded too, so forgetting several classes never relabels a sample into another forgotten class; with
  one forgotten class this changes nothing (a sample left with no candidate falls back to excluding its
  own class only). That is the only use of the retain set (its labels).
- The released code (``adv_generator.py:FGSM``) rounds x' to the 8-bit grid (multiples of 1/255) before
  predicting; dememo does not (the embedded digits are not on that grid). Checked against a closed-form
  transcription of the released rule on a linear model: ``tests/plugins/unlearners/test_boundary_shrink.py``.
- The labels are computed once, before fine-tuning (the published code recomputes them every step on a
  frozen copy of θ₀ without augmentation: the same labels).
- lr 1e-5 moves nothing on the embedded data: a forgotten class there has 100–150 images, i.e. 1–2
  steps of 128 per epoch, against ≈ 40 on CIFAR-10. The default lr 1e-3 (10 epochs, as published) was
  chosen by measurement on digits (MLP) and noisy-shapes (small CNN) class forgetting: forget accuracy
  0 on both; other-class test accuracy 0.96 on digits but 0.74 on noisy-shapes (retrain: 0.97 / 0.87),
  whose weak class signal lets the hard relabelling shift predictions toward the absorbing classes.
  lr 0.03 collapses both models. ``search_space`` spans both scales (lr × epochs reaches the CIFAR
  setting's 400 steps of 1e-5). No weight decay (as published); Nesterov momentum 0.9 (the harness's
  SGD). ε barely matters here (0.03 and 0.1 give similar label histograms), it is in the search anyway.
- Forget kinds: the paper targets class forgetting. The relabelling is defined per sample, so the method
  runs on random and memorization forget sets as later benchmarks do (SalUn, Fan et al. 2024, lists it
  on 10 % random forgetting); there it pushes every forget sample out of its class, which over-forgets
  relative to a retrained model (whose forget accuracy is near its test accuracy), and damages the
  retain set as much (measured, seed 0, 10 % random, defaults: avg gap 0.26 on digits and 0.48 on
  noisy-shapes against finetune's 0.03; the search space's best, lr 1e-4 for 2 epochs, changes almost
  nothing: gap 0.03). dememo allows all kinds and reports the gap rather than hide the method's scope.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F

import dememo
from dememo import validate
from dememo.hashing import digest
from dememo.pgd import cross_entropy_loss, pgd_dataset


def nearest_wrong_labels(model: torch.nn.Module, data: dememo.Data, eps: float, exclude: torch.Tensor,
                         batch_size: int = 512) -> torch.Tensor:
    """Per sample, the class other than its own (and other than ``exclude``, a boolean mask over classes)
    with the largest logit on its one-step FGSM example (L∞ ``eps``) against ``model`` (in eval mode).
    A sample for which ``exclude`` leaves no class but its own falls back to excluding its own only."""
    was_training = model.training
    model.eval()
    try:
        delta = pgd_dataset(cross_entropy_loss(model), data.x, data.y, dememo.Budget("linf", eps), steps=1,
                            alpha=eps, direction="max", batch_size=batch_size)
        with torch.no_grad():
            logits = torch.cat([model(data.x[i:i + batch_size] + delta[i:i + batch_size])
                                for i in range(0, len(data), batch_size)])
    finally:
        model.train(was_training)
    own = F.one_hot(data.y.to(logits.device), data.num_classes).bool()
    banned = own | exclude.to(logits.device).unsqueeze(0)
    banned = torch.where(banned.all(1, keepdim=True), own, banned)
    return logits.masked_fill(banned, float("-inf")).argmax(1).to(data.y.device)


@attrs.define
class BoundaryShrink(dememo.Unlearner):
    """Boundary Shrink (Chen et al., CVPR 2023): fine-tune forget samples toward their FGSM-nearest wrong class."""

    name: ClassVar[str] = "boundary-shrink"
    version: ClassVar[str] = "1"
    search_space: ClassVar[dict[str, tuple]] = {"lr": (1e-4, 1e-3, 1e-2), "epochs": (2, 10), "eps": (0.03, 0.1)}
    eps: float = 0.1
    lr: float = 1e-3
    epochs: int = 10
    momentum: float = 0.9

    def __attrs_post_init__(self):
        validate.in_range(0, 1, low_open=True, about="the FGSM L∞ bound in [0, 1] pixel space", eps=self.eps)
        validate.fit_schedule(self.lr, self.epochs)
        validate.in_range(0, 1, high_open=True, momentum=self.momentum)

    def unlearn(self, model, task, ctx):
        forget = task.forget
        if len(forget) == 0:
            return model
        k = forget.num_classes
        present = torch.zeros(k, dtype=torch.bool, device=forget.y.device)
        present[task.retain.y.to(forget.y.device)] = True
        labels = nearest_wrong_labels(model, forget, self.eps, exclude=~present)  # not into a wholly forgotten class
        relabelled = dememo.Data(x=forget.x, y=labels, num_classes=k, index=forget.index,
                                 fingerprint=digest([forget.fingerprint, "boundary-shrink", self.eps]))
        ctx.fit(model, relabelled, epochs=self.epochs, lr=self.lr, schedule="constant", momentum=self.momentum,
                weight_decay=0.0, desc="boundary shrink")
        return model


@dememo.hookimpl
def register_unlearners(register):
    register(BoundaryShrink)
