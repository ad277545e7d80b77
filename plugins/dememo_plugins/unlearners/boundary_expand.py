"""``boundary-expand`` (Chen et al., "Boundary Unlearning: Rapid Forgetting of Deep Networks via Shifting
the Decision Boundary", CVPR 2023, Sec. 4.2, "Boundary Expanding").

The K-way head (W, b) is widened by one *shadow* class: logits z' = [W h + b, w_s·h + b_s] over the
penultimate features h, the first K rows copied from the trained head and (w_s, b_s) freshly initialised.
The whole widened network (body, head and shadow row) is fine-tuned on the forget set alone, every
sample labelled as the shadow class K:

    min_θ,w_s,b_s  E_(x,y)∈D_f  CE(z'(x), K)

so the forget samples' activations move into a region of the feature space the shadow class owns; then
the shadow row is pruned, leaving the original K-way architecture, in which the forget samples have no
class of their own and are scattered over the remaining ones. Published: SGD momentum 0.9, lr 1e-5,
10 epochs over the forget class (CIFAR-10: 5,000 images, ≈ 40 steps per epoch); no retain data.

Implementation: the head is ``dememo.models.last_linear(model)``; the shadow logit is appended to its
output by a forward hook (computed from the head's input, so gradients reach the body), removed before
returning, so the returned model has exactly the original parameters' names and shapes. A model whose
last ``nn.Linear`` does not produce its output is refused with a clear error (``dememo.models``).

Choices (dememo): the shadow row is drawn from PyTorch's default linear initialisation U(±1/√fan_in)
with the context's generator (the paper leaves it unspecified; its code uses its own initialiser). lr
1e-5 moves nothing on the embedded data (100–150 forget images: 1–2 steps per epoch); the default lr
1e-3 (10 epochs, as published) was chosen by measurement on digits and noisy-shapes class forgetting,
and ``search_space`` spans the CIFAR-like scale too. No weight decay (as published); Nesterov momentum
0.9 (the harness's SGD). Measured: on digits forget accuracy 0 with other-class test accuracy 0.93
(retrain 0.97); on noisy-shapes forget accuracy ≤ 0.05 but other-class accuracy falls to ≈ 0.56 at every
setting that forgets (retrain 0.87): with no retain data the body drifts and predictions pile into the
classes nearest the shadow region. That is the method's behaviour, not tuned away.
Class-level only (``forget_kinds = ("class",)``): the shadow class stands for one forgotten region; with
a random forget set it would be a class made of samples of every class.
"""

from __future__ import annotations

import math
from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F
from torch import nn

import dememo
from dememo import validate
from dememo import models


@attrs.define
class BoundaryExpand(dememo.Unlearner):
    """Boundary Expanding (Chen et al., CVPR 2023): train the forget set into a temporary shadow class, prune it."""

    name: ClassVar[str] = "boundary-expand"
    version: ClassVar[str] = "1"
    forget_kinds: ClassVar[tuple[str, ...]] = ("class",)
    search_space: ClassVar[dict[str, tuple]] = {"lr": (1e-4, 3e-4, 1e-3, 1e-2), "epochs": (2, 5, 10)}
    lr: float = 1e-3
    epochs: int = 10
    momentum: float = 0.9

    def __attrs_post_init__(self):
        validate.fit_schedule(self.lr, self.epochs)
        validate.in_range(0, 1, high_open=True, momentum=self.momentum)

    def unlearn(self, model, task, ctx):
        forget = task.forget
        if len(forget) == 0:
            return model
        head = models.last_linear(model)
        models.features(model, forget.x[:2], head)  # refuses a model whose head is not its output layer
        shadow_w, shadow_b = self._shadow_row(head, ctx.generator)
        k = head.out_features

        def widen(module, inputs, output):
            return torch.cat([output, F.linear(inputs[0], shadow_w, shadow_b)], dim=-1)

        def loss(m, x, y):
            return F.cross_entropy(m(x), torch.full_like(y, k))

        params = [*model.parameters(), shadow_w] + ([shadow_b] if shadow_b is not None else [])
        handle = head.register_forward_hook(widen)
        try:
            ctx.fit(model, forget, loss=loss, parameters=params, epochs=self.epochs, lr=self.lr,
                    schedule="constant", momentum=self.momentum, weight_decay=0.0, desc="boundary expand")
        finally:
            handle.remove()  # prune the shadow class: the model is back to its K-way head
        return model

    @staticmethod
    def _shadow_row(head: nn.Linear, generator: torch.Generator) -> tuple[nn.Parameter, nn.Parameter | None]:
        """One extra output row, U(±1/√fan_in) like a freshly built ``nn.Linear``, drawn from ``generator``."""
        bound = 1.0 / math.sqrt(head.in_features)

        def draw(*shape: int) -> torch.Tensor:
            return (torch.rand(shape, generator=generator, device=generator.device) * 2 - 1) * bound

        w = nn.Parameter(draw(1, head.in_features).to(head.weight))
        b = nn.Parameter(draw(1).to(head.bias)) if head.bias is not None else None
        return w, b


@dememo.hookimpl
def register_unlearners(register):
    register(BoundaryExpand)
