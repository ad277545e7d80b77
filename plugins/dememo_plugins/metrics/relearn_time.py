"""``relearn-time``: how many epochs of fine-tuning on the forget set bring its loss back to the original
model's (Golatkar et al., "Eternal Sunshine of the Spotless Net", CVPR 2020; reported as "relearn time" in
the RURK paper, Hsu et al., "The Unseen Threat: Residual Knowledge in Machine Unlearning under Perturbed
Samples", NeurIPS 2025, arXiv 2601.22359, Table 1).

    L(θ) = mean cross-entropy of model θ on the forget set S_f (evaluation mode)
    target = (1 + tolerance) · L(θ_original)
    relearn time = min { e ≥ 0 : L(θ_e) ≤ target },  θ_0 = the evaluated model, θ_e after e epochs of
                   fine-tuning on S_f; reported as CAP + 1 = 31 (rendered "> 30") if no e ≤ 30 reaches it.

Slow relearning means the forget set's influence is really gone; fast relearning means it was hidden. The
original model reads 0 (its loss *is* the target, so the condition holds before any step: dememo defines
relearn time as 0 whenever the evaluated model already satisfies it), the retrain needs several epochs.
Higher is better for the unlearner; the paired retrain's value is the natural yardstick.

Fine-tuning: a deep copy of the evaluated model (the model under evaluation is never touched), trained on
the forget set only with plain cross-entropy (always: a recipe's label smoothing is not applied, since the
target is a plain cross-entropy), ``ctx.fit``'s loop with SGD and Nesterov momentum 0.9 (fixed,
whatever the suite's recipe, so values compare across suites), a *constant* learning rate ``lr``, batch size
``batch_size`` and no weight decay, one continuous run (the optimizer state carries over between epochs);
the loss is checked after every epoch and the run stops at the first epoch that reaches the target.

Hyper-parameters (dememo's choice, documented because the sources do not fix them): the RURK paper
reports relearn time (Retrain 17.3 epochs, RURK > 30 on CIFAR-10 class 0) but neither the text retrieved
nor any public code gives its fine-tuning optimiser, lr or batch size (the authors' code is unreleased).
Golatkar et al. fine-tune with the training optimiser. dememo uses SGD (the quick recipes' optimiser) with
a small *constant* lr, chosen by measurement so that the paired retrain needs several epochs and stays
below the cap: ``lr`` = 0.003 (Nesterov momentum 0.9, so an effective step near 0.03) and ``batch_size`` =
32 (the forget sets of the embedded data have 100-150 samples; 128 would be one step per epoch). Measured
retrain relearn times (seed 0): digits random-10 % 14-15 (depending on the batch order), class-0 2;
noisy-shapes random-10 % 4, class-0 3 (lr 0.001 censors the digits retrain at > 30, lr 0.01 leaves 1-6
epochs with little room between methods). ``tolerance`` = 0.05 and the cap of 30 epochs are the paper's.
The cap is fixed (not a parameter) because the leaderboard column declares it.

Version 2: version 1 fine-tuned with ``ctx.fit``'s default loss, which carries the recipe's label smoothing
(0.2 in the cifar10-fast suite) while the stopping rule reads the plain cross-entropy, so there the relearn
time measured how fast smoothed-target fine-tuning happens to lower the plain loss (on the reference check's
tiny model, smoothing 0.3: 24 / 14 epochs instead of 18 / 12). Suites without label smoothing (quick, cifar10)
give the same values as version 1, so the figures above stand; cifar10-fast figures are pending a re-run.

Note that on data a model does not memorise (noisy-shapes: the original's forget loss is close to its test
loss), an unlearner can end *below* the original's forget loss and read 0 without having kept anything.

Run only on cells without a model-stage attack (``after_model_attack = False``): it costs up to 30 epochs
on the forget set per cell. NaN for an empty forget set.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F

import dememo
from dememo import validate
from dememo.training import predict

#: the largest relearn time measured; a model that never reaches the target reads CAP + 1 ("> 30")
CAP = 30


class _Reached(Exception):
    """Raised from the epoch hook to stop fine-tuning at the first epoch that reaches the target."""



def forget_loss(model: torch.nn.Module, data) -> float:
    """Mean cross-entropy of ``model`` (evaluation mode) on ``data``."""
    return float(F.cross_entropy(predict(model, data.x), data.y).item())


@attrs.define
class RelearnTime(dememo.Metric):
    """Relearn time: epochs of fine-tuning on the forget set until its loss is within 5 % of the original's."""

    name: ClassVar[str] = "relearn-time"
    version: ClassVar[str] = "2"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning",)
    needs: ClassVar[tuple[str, ...]] = ("original",)
    after_model_attack: ClassVar[bool] = False
    columns: ClassVar[dict[str, dememo.Column]] = {
        "relearn_time": dememo.Column(
            "relearn", "higher",
            f"epochs of fine-tuning a copy on the forget set (SGD, constant lr) until its forget loss is ≤ (1 + tolerance, "
            f"default 0.05) × "
            f"the original model's (0 = already there, as the original is); > {CAP} = never within {CAP} epochs. "
            "Slower relearning = deeper forgetting; the paired retrain is the yardstick",
            unit="epochs", cap=CAP),
    }
    tolerance: float = 0.05
    lr: float = 0.003
    batch_size: int = 32

    def __attrs_post_init__(self):
        validate.non_negative(about="relative slack over the original's forget loss", tolerance=self.tolerance)
        validate.positive(lr=self.lr)
        validate.at_least(1, batch_size=self.batch_size)

    def compute(self, ev, ctx):
        forget = ev.task.forget
        if len(forget) == 0:
            return {"relearn_time": float("nan")}
        target = (1 + self.tolerance) * forget_loss(ev.reference("original"), forget)
        model = copy.deepcopy(ev.model)
        if forget_loss(model, forget) <= target:
            return {"relearn_time": 0.0}
        reached: list[int] = []

        def check(m: torch.nn.Module, epoch: int) -> None:
            if forget_loss(m, forget) <= target:
                reached.append(epoch)
                raise _Reached

        try:
            ctx.fit(model, forget, epochs=CAP, lr=self.lr, batch_size=self.batch_size, schedule="constant",
                    optimizer="sgd", momentum=0.9, weight_decay=0.0, label_smoothing=0.0, after_epoch=check, desc="relearn")
        except _Reached:
            pass
        return {"relearn_time": float(reached[0]) if reached else float(CAP + 1)}


@dememo.hookimpl
def register_metrics(register):
    register(RelearnTime)
