"""``bad-teacher`` (Chundawat, Tarun, Mandal and Kankanhalli, "Can Bad Teaching Induce Forgetting?
Unlearning in Deep Networks using an Incompetent Teacher", AAAI 2023).

Two teachers and one student. The competent teacher T_s is the frozen original model; the incompetent
(“bad”) teacher T_d is a randomly initialised model of the same architecture; the student S starts as a copy
of the original. On the unlearning set D_u = D_f ∪ D_r' (the whole forget set and a random fraction of the
retain set), with l_u = 1 for forget samples and 0 for retain samples, the student minimises

    L(x) = (1 − l_u) · KL(T_s(x) ‖ S(x)) + l_u · KL(T_d(x) ‖ S(x)),

all three distributions being soft-maxes at temperature T: the student copies the competent teacher on the
retained data and the bad teacher on the forget data.

Published setting (paper and authors' CIFAR-Super20 notebook): T = 1, Adam (no weight decay), lr 1e-4,
batch 256, 1 epoch over D_u, D_r' a random 30 % of the retain set. Defaults here are those values.

dememo's choices and deviations:

- The divergence is averaged over the batch (``batchmean``, the KL of the paper's equation). The authors'
  code uses PyTorch's element-wise ``mean`` (the same divergence divided by the number of classes); with
  Adam this rescaling changes nearly nothing. It is not multiplied by T².
- The incompetent teacher is ``ctx.new_model()`` drawn from a sub-context seeded for this purpose, so its
  initialisation is fixed by the cell's seed and independent of the other draws; the retain fraction is
  drawn with ``ctx.generator``.
- Both teachers are frozen and the data are not augmented, so the target distribution of every sample of
  D_u is computed once (evaluation mode) rather than at every step.
- The published 1 epoch at lr 1e-4 is some 65 Adam steps on CIFAR-Super20 (2,500 forget + 30 % of 47,500
  retain images, batch 256); on the embedded data (100–150 forget + 300–400 retain images) it is 2–3 steps and
  barely moves the model (measured: digits class 0 keeps forget accuracy 1.0), so ``search_space`` reaches
  more epochs and larger learning rates (lr 1e-3 for 3 epochs forgets digits class 0 completely).

Where it applies: the paper evaluates class and sub-class forgetting. On *random* forgetting the forget and
retain samples are exchangeable for the network, so copying a near-uniform teacher on one and the original
on the other lowers confidence on both (and on test data) without changing accuracy much (measured on
noisy-shapes, 10 % random, lr 1e-3, 3 epochs: mean true-class probability 0.76 → 0.46 on forget, 0.77 →
0.46 on retain, 0.74 → 0.45 on test; forget accuracy within 2 samples of the original's).
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F

import dememo
from dememo import validate
from dememo.hashing import digest

from .scrub import keyed


@attrs.define
class BadTeacher(dememo.Unlearner):
    """Distil the original on (part of) retain and a randomly initialised teacher on forget."""

    name: ClassVar[str] = "bad-teacher"
    version: ClassVar[str] = "1"
    search_space: ClassVar[dict[str, tuple]] = {
        "lr": (1e-4, 3e-4, 1e-3),
        "epochs": (1, 3, 10),
    }
    lr: float = 1e-4
    epochs: int = 1
    temperature: float = 1.0
    retain_fraction: float = 0.3
    batch_size: int = 256

    def __attrs_post_init__(self):
        validate.fit_schedule(self.lr, self.epochs)
        validate.positive(temperature=self.temperature)
        validate.in_range(0, 1, retain_fraction=self.retain_fraction)
        validate.at_least(1, batch_size=self.batch_size)

    def unlearning_set(self, task, ctx) -> dememo.Data:
        """D_f followed by a random ``retain_fraction`` of D_r (drawn with ``ctx.generator``)."""
        n = math.ceil(self.retain_fraction * len(task.retain))
        order = torch.randperm(len(task.retain), generator=ctx.generator, device=ctx.generator.device)
        part = task.retain.subset(order[:n].to(task.retain.device), "bad-teacher retain part")
        return dememo.Data(x=torch.cat([task.forget.x, part.x]), y=torch.cat([task.forget.y, part.y]),
                           num_classes=task.retain.num_classes,
                           fingerprint=digest([task.forget.fingerprint, part.fingerprint]),
                           index=torch.cat([task.forget.index, part.index]))

    def unlearn(self, model, task, ctx):
        data = self.unlearning_set(task, ctx)
        if len(data) == 0:
            return model
        n_forget, T = len(task.forget), self.temperature
        incompetent = ctx.derive("bad-teacher:incompetent").new_model()
        with torch.no_grad():
            logits = ctx.predict(model, data.x)
            if n_forget:
                logits[:n_forget] = ctx.predict(incompetent, data.x[:n_forget])
            targets = F.log_softmax(logits / T, dim=1)
        del incompetent

        def loss(m, x, key):
            return F.kl_div(F.log_softmax(m(x) / T, dim=1), targets[key], reduction="batchmean", log_target=True)

        ctx.fit(model, keyed(data), epochs=self.epochs, lr=self.lr, loss=loss, batch_size=self.batch_size,
                optimizer="adam", weight_decay=0.0, schedule="constant", desc="bad teacher")
        return model


@dememo.hookimpl
def register_unlearners(register):
    register(BadTeacher)
