"""``sep``: self-ensemble protection (Chen et al., "Self-Ensemble Protection: Training Checkpoints Are Good
Data Protectors", ICLR 2023).

*Targeted* L∞ PGD on every training image against an ensemble of checkpoints f_{θ_1}, …, f_{θ_K} of ONE
standard training run of a surrogate on the clean data, towards the label half-way round the label cycle,
t(y) = (y + ⌊C/2⌋) mod C for C classes (the released ``ens.py`` uses (y + 5) mod 10 on CIFAR-10):

    δ = argmin_{‖δ‖∞ ≤ ε}  (1/K) Σ_k  L(f_{θ_k}(x + δ), t(y))

by ``steps`` steps δ ← Π(δ − α·sign(∇δ Σ_k L_k / K)) from δ = 0 (``dememo.pgd``), where Π projects onto
the ε-ball and the image range, so the stored perturbation equals the applied one. This is the released
rule (Sizhe-Chen/SEP, ``ens.py``): the input gradient of the cross-entropy towards the target is taken on
every checkpoint (eval mode), the K gradients are averaged, and the image moves by −α·sign of the mean,
then is clipped to the ε-ball around the clean image and to [0, 1]; the script reports the mean number
of checkpoints that predict the target. Sample-wise: each image's gradient moves its own δ. The idea:
examples that every checkpoint along training assigns to another class are "never learned" during
training, and a model trained on them learns features that do not transfer to clean data (the
checkpoints' gradients are nearly orthogonal, so the self-ensemble is as diverse as an ensemble of
architectures, at the cost of one training run).

The surrogate is a fresh model of the suite's architecture trained with the suite's recipe (its epochs,
learning-rate schedule and batch size) in one ``ctx.fit`` call; ``checkpoints`` snapshots are taken at
evenly spaced optimiser steps, the last one at the end of training (step ⌈k·S/K⌉ for k = 1..K of S; the
released script picks every (E/K)-th of its per-epoch checkpoints, the last one included).

Choices where the paper leaves room, or where dememo deviates:

- ``target``: ``"shift"`` (default) is the released targeted rule with t(y) = (y + ``shift``) mod C and
  ``shift`` = ⌊C/2⌋ unless set; ``"untargeted"`` maximises the true-label loss instead (δ ← Π(δ + α·sign
  ∇δ Σ_k L(f_k(x + δ), y) / K)), an error-maximising variant that is NOT the released method, kept only
  under this explicit name. A shift that is a multiple of C (the true label) is rejected, as is C < 2.
- ``checkpoints``: the released commands ensemble 30 checkpoints (SEP) or 15 (SEP-FA-VR) of the
  surrogate's CIFAR-10 run; the default here is 5, since the cost of a PGD step grows linearly with K.
- The loss is the mean cross-entropy over the checkpoints (``dememo.pgd.cross_entropy_loss``). The paper's
  strongest variant, SEP-FA-VR (``ens_feature_svre.py``), adds a feature-alignment term and
  variance-reduced (SVRE-style) steps; dememo implements the plain SEP of ``ens.py``.
- Step size relative to ε: α = ``step_fraction``·ε with ``step_fraction = 0.1`` (0.8/255 at ε = 8/255);
  the released script takes absolute steps of 1/255 (its README runs ε = 2/255, 30 steps). ``steps = 30``
  as released. δ starts at zero, as released (no randomness in the attack; the seed enters through the
  surrogate's initialisation and data order).
- Checkpoints are evaluated in eval mode with frozen parameters.

Measured on noisy-shapes (1,500 training images, small-cnn, quick recipe, L∞ 8/255; clean test accuracy
0.932 / 0.958 / 0.920 for seeds 0 / 1 / 2, measured for version 1): the quick suite's settings (5
checkpoints, 10 steps of ε/4) give test accuracy 0.077 / 0.061 / 0.077 after training on the poison,
about 16 s of CPU time per seed on one thread of the 2-core reference machine (surrogate training
included). Accuracy *below chance* (0.1): the model learns the shifted classes, as with TAP. The
paper-size default (30 steps of ε/10) is not re-measured for this version (version 1's untargeted figures
no longer apply); the quick-suite re-run will give its figures.
"""

from __future__ import annotations

import copy
import math
from typing import ClassVar, Literal

import attrs
import torch

import dememo
from dememo import validate
from dememo.pgd import cross_entropy_loss, pgd_dataset


def snapshot_steps(total: int, checkpoints: int) -> list[int]:
    """The optimiser steps (1-based) after which to snapshot: ⌈k·total/K⌉ for k = 1..K, deduplicated."""
    return sorted({max(1, math.ceil(k * total / checkpoints)) for k in range(1, checkpoints + 1)})


@attrs.define
class SelfEnsembleProtection(dememo.Poisoner):
    """Self-ensemble protection (Chen et al., ICLR 2023): targeted PGD over the checkpoints of one run."""

    name: ClassVar[str] = "sep"
    version: ClassVar[str] = "2"  # 2: the released targeted rule (1 maximised the true-label loss)
    norm: ClassVar[str] = "linf"
    checkpoints: int = 5
    steps: int = 30
    step_fraction: float = 0.1
    target: Literal["shift", "untargeted"] = "shift"
    shift: int | None = None  # None: ⌊C/2⌋ for C classes, the released (y + 5) mod 10 on CIFAR-10
    batch_size: int = 512

    def __attrs_post_init__(self):
        validate.at_least(1, checkpoints=self.checkpoints, steps=self.steps)
        validate.positive(about="step size / ε", step_fraction=self.step_fraction)
        validate.at_least(1, batch_size=self.batch_size)
        validate.one_of(("shift", "untargeted"), about="'shift' is the released rule", target=self.target)
        validate.at_least(1, none="half the number of classes", shift=self.shift)

    def targets(self, y: torch.Tensor, num_classes: int) -> torch.Tensor:
        """The labels the checkpoints are pushed towards: t(y) = (y + shift) mod C, shift = ⌊C/2⌋ by default."""
        shift = num_classes // 2 if self.shift is None else self.shift
        if num_classes < 2 or shift % num_classes == 0:
            raise ValueError(f"sep.shift={shift} with {num_classes} classes targets the true label; choose a shift "
                             f"in 1..{num_classes - 1} (or target='untargeted')")
        return (y + shift) % num_classes

    def ensemble(self, data, ctx) -> list[torch.nn.Module]:
        """Snapshots of one standard training run of a fresh surrogate on ``data`` (frozen, eval mode)."""
        model = ctx.new_model()
        total = ctx.recipe.epochs * math.ceil(len(data) / ctx.recipe.batch_size)
        wanted = set(snapshot_steps(total, self.checkpoints)) if total else set()
        snaps: list[torch.nn.Module] = []
        counter = {"step": 0}

        def after_step(m):
            counter["step"] += 1
            if counter["step"] in wanted:
                snaps.append(copy.deepcopy(m))

        ctx.fit(model, data, after_step=after_step, desc="sep surrogate")
        if not snaps:  # a recipe with no steps: the initial model is the only checkpoint
            snaps.append(model)
        for m in snaps:
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
        return snaps

    def poison(self, data, ctx):
        budget = ctx.budget
        if budget.norm != "linf":
            raise ValueError(f"sep perturbs in the L∞ ball, got a {budget.norm} budget")
        if self.target == "shift":  # descend the loss of the target label (released ens.py)
            labels, direction = self.targets(data.y, data.num_classes), "min"
        else:  # ascend the true label's loss (explicit, non-released variant)
            labels, direction = data.y, "max"
        models = self.ensemble(data, ctx)
        delta = pgd_dataset(cross_entropy_loss(models), data.x, labels, budget, steps=self.steps,
                            alpha=self.step_fraction * budget.eps, direction=direction,
                            delta=torch.zeros_like(data.x), batch_size=self.batch_size, progress=ctx.progress)
        return (data.x + delta).clamp(0, 1)


@dememo.hookimpl
def register_poisoners(register):
    register(SelfEnsembleProtection)
