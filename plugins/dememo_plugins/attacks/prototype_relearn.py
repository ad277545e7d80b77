"""``prototype-relearn``: the Prototypical Relearning Attack on class-level unlearning (model stage).

Ha, Park and Yoon, "Unlearning's Blind Spots: Over-Unlearning and Prototypical Relearning Attack" (arXiv
2506.01318). Class-level unlearning often leaves the penultimate features of a forgotten class clustered and
only changes the classifier head, so an attacker with a handful of images of the class can rebuild its head
row from their mean feature, with no gradient step:

    p_c   = mean_{i ≤ k} φ(x_i)         (φ: the input of the model's last nn.Linear, ``dememo.models.features``;
                                          x_1 … x_k: k images of forgotten class c)
    p̂_c   = s · p_c / ‖p_c‖₂            (the normalised prototype, rescaled by s, see below)
    w_c  ← α · p̂_c + (1 − α) · w_c      (w_c: row c of the head's weight)
    b_c  ← α · b̂  + (1 − α) · b_c       (b_c: the head's bias for c, when it has one)

for every forgotten class c (the unique labels of the forget set). α = 0 is the identity (the returned
model's weights are bit-identical to the input's); α = 1 replaces the row. Success is the forget accuracy
after the attack (the ``unlearning-accuracy`` metric on the attacked model), to be compared with the paired
retrain under the same attack: the paper finds that a retrained model is also partly fooled (its CIFAR-10
notebook reads 56 % forget accuracy for Retrain at α = 1), because a retrained network still separates the
class in feature space, while approximate unlearners that only suppress the head come back almost fully.

Choices (the paper's text leaves them open; its public code fixes some, read for facts only):
- α is a parameter (default 1.0) and meant to be swept: the paper's comparison mixed values (its public
  notebook attacks the unlearned models with the code's default α = 0.5 and the retrain with α = 1; the
  tables are reported with α = 1 and 0.8), so dememo fixes α per row and sweeps it.
- k = ``shots`` = 5 images per forgotten class, the paper's. Drawn without replacement with the stage's
  seeded generator from ``shots_from``: ``"val"`` (default) = the validation split, the attacker's own
  labelled data, as the paper draws its attack images from held-out (test-split) data; it keeps the shots
  out of both the forget set and the test set the metrics read. ``"forget"`` draws them from the forget set.
  Fewer than k images of a class available: all of them are used; none: a clear error.
- Scale and bias, ``scale``. The published code (Seung-B/Spotter-Unlearning, ``proto_utils.py``,
  ``update_fc_with_prototypes``) uses the unit-norm prototype with a zero bias (its "cosine" variant,
  ``"unit"`` here; the reference check tests exactly this update). How that row competes with the others
  depends on the arbitrary scale of the
  head: on the embedded models the penultimate features are post-ReLU (non-negative), so a non-negative
  prototype has a large positive logit on *every* image, and at α = 1 the rebuilt class takes most of the
  retained images too (digits: retain accuracy 0.40-0.46 after the attack; a prototype rescaled to the
  retained rows' mean norm with their mean bias, ``"rows"``, takes 99 % of them). dememo's default,
  ``"calibrated"``, rescales p̂ to the mean ℓ2 norm of the retained classes' rows (s) and sets b̂ to the
  smallest bias with which the α = 1 row classifies every one of the attacker's k shots as class c against
  the retained rows (b̂ = max_i [max_{j retained} z_j(x_i) − s · p̂_c · φ(x_i)] plus a 1e-3 relative margin):
  the least intrusive row that recognises the shots, computed from the shots alone. Measured (seed 0, class
  0, default shots from the validation split): a gradient-ascent model on digits goes from 0 % to 98 %
  forget accuracy at α = 1 (retain 0.95 → 0.81) and to 93 % at α = 0.8 (retain unchanged), while
  ``"unit"`` and ``"rows"`` read 100 % forget accuracy with retain accuracy 0.40 and 0.01. At α = 1 the
  retrain comes back as well (digits 97 %, noisy-shapes 80 %), as in the paper (56 % on CIFAR-10), because a
  retrained network still separates the class in feature space; smaller α separates approximate unlearners
  from the retrain (noisy-shapes, α = 0.8: retrain 3 %, EU-k 0 %, SSD 56 %, SCRUB 75 %, Spotter 69 %;
  digits, α = 0.5: retrain 0 %, SSD 65 %, GA 55 %). If every class is forgotten (no retained row), the
  other rows stand in for the retained ones. A head without a bias gets the rescaled row only.
"""

from __future__ import annotations

import copy
from typing import ClassVar, Literal

import attrs
import torch

import dememo
from dememo import validate
from dememo.models import features, last_linear

SHOTS_FROM = ("val", "forget")
SCALES = ("calibrated", "rows", "unit")


@attrs.define
class PrototypeRelearn(dememo.Attack):
    """Prototypical relearning: rebuild each forgotten class's head row from a k-shot feature prototype."""

    name: ClassVar[str] = "prototype-relearn"
    version: ClassVar[str] = "1"
    stages: ClassVar[tuple[str, ...]] = ("model",)
    tracks: ClassVar[tuple[str, ...]] = ("unlearning",)
    forget_kinds: ClassVar[tuple[str, ...]] = ("class",)
    alpha: float = 1.0
    shots: int = 5
    shots_from: Literal["val", "forget"] = "val"
    scale: Literal["calibrated", "rows", "unit"] = "calibrated"

    def __attrs_post_init__(self):
        validate.in_range(0, 1, about="weight of the prototype in the new row", alpha=self.alpha)
        validate.at_least(1, about="images per forgotten class", shots=self.shots)
        validate.one_of(SHOTS_FROM, shots_from=self.shots_from)
        validate.one_of(SCALES, scale=self.scale)

    def attack(self, model, data, ctx):
        task = data.task
        if task is None:
            raise ValueError("prototype-relearn is an unlearning-track attack: it needs the task (the forget set)")
        model = copy.deepcopy(model)
        if self.alpha == 0 or len(task.forget) == 0:
            return model
        pool = data.splits.val if self.shots_from == "val" else task.forget
        classes = torch.unique(task.forget.y).tolist()
        head = last_linear(model)
        picks = []
        for c in classes:
            members = (pool.y == c).nonzero().flatten()
            if len(members) == 0:
                raise ValueError(f"prototype-relearn: no image of forgotten class {c} in the {self.shots_from} split to "
                                 "build its prototype from")
            order = torch.randperm(len(members), generator=ctx.generator, device=ctx.generator.device).to(members.device)
            picks.append(members[order[: self.shots]])
        counts = torch.tensor([len(p) for p in picks], device=pool.y.device)
        feats = features(model, pool.x[torch.cat(picks)], head)
        group = torch.repeat_interleave(torch.arange(len(classes), device=feats.device), counts.to(feats.device))
        sums = torch.zeros(len(classes), feats.shape[1], dtype=feats.dtype, device=feats.device).index_add_(0, group, feats)
        protos = sums / counts.to(feats)[:, None]
        protos = protos / protos.norm(dim=1, keepdim=True).clamp_min(1e-12)
        weight = head.weight.detach().clone()
        bias = None if head.bias is None else head.bias.detach().clone()
        rows = torch.tensor(classes, device=weight.device)
        retained = torch.ones(head.out_features, dtype=torch.bool, device=weight.device)
        retained[rows] = False
        if not retained.any():
            retained[:] = True
        if self.scale == "unit":
            row_scale = torch.ones((), dtype=weight.dtype, device=weight.device)
        else:
            row_scale = weight[retained].norm(dim=1).mean()
        new_weight = row_scale * protos.to(weight)
        new_bias = None
        if bias is not None:
            if self.scale == "unit":
                new_bias = torch.zeros(len(classes), dtype=bias.dtype, device=bias.device)
            elif self.scale == "rows":
                new_bias = bias[retained].mean().expand(len(classes))
            else:
                f = feats.to(weight)
                best_other = (f @ weight[retained].T + bias[retained]).max(dim=1).values
                own = (f * new_weight[group]).sum(dim=1)
                mine = group[None, :] == torch.arange(len(classes), device=group.device)[:, None]
                gap = torch.where(mine, (best_other - own)[None, :], -torch.inf).amax(dim=1)
                new_bias = gap + 1e-3 * gap.abs().clamp_min(1.0)
        with torch.no_grad():
            head.weight[rows] = self.alpha * new_weight + (1 - self.alpha) * weight[rows]
            if new_bias is not None:
                head.bias[rows] = self.alpha * new_bias + (1 - self.alpha) * bias[rows]
        return model


@dememo.hookimpl
def register_attacks(register):
    register(PrototypeRelearn)
