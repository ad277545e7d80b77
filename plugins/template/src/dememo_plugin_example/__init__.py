"""``example-amnesiac``: the *Unlearning* method of Graves, Shokri and Nicolaou, "Amnesiac Machine
Learning" (AAAI 2021): give every forget sample a randomly chosen *incorrect* label, then keep training
the already trained model for a little while on the modified data. Training on the wrong labels
overwrites what the model memorised about those samples; the retain data keeps the rest of its knowledge
in place. (The paper's other method, *Amnesiac Unlearning*, undoes stored per-batch updates and needs
bookkeeping during training, which a post-hoc unlearner cannot have.)

Procedure, for forget set D_f = {(x_i, y_i)} with C classes:

1. y'_i = (y_i + k_i) mod C with k_i ~ U{1, …, C−1}, drawn from ``ctx.generator``: uniform over the C−1
   wrong labels, never the true one.
2. Fine-tune on D_r ∪ {(x_i, y'_i)} for ``epochs`` epochs at a constant learning rate ``lr`` with the
   suite's optimiser (``ctx.fit``).

Where the paper is ambiguous, the choices made here:

- *Which data to fine-tune on.* The paper's description of the modified training data leaves open how
  much non-sensitive data it still holds. We keep the whole retain set, with its true labels, so that the
  wrong labels are learnt as exceptions rather than as a new mapping for whole regions of input space.
- *When labels are drawn.* Once per sample, fixed for the whole fine-tune (a label redrawn every epoch
  averages out to a uniform target instead of a wrong one).
- *Optimiser and schedule.* Not specified: the suite's optimiser (momentum, weight decay) at a constant
  ``lr``, so that a short run is not spent warming up.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

import dememo


def wrong_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A label for each entry of ``y``, uniform over the ``num_classes - 1`` classes other than the true one."""
    if num_classes < 2:
        raise ValueError("relabelling needs at least two classes")
    shift = torch.randint(1, num_classes, y.shape, generator=generator, device=generator.device)
    return (y + shift.to(y.device)) % num_classes


@attrs.define
class Amnesiac(dememo.Unlearner):
    """Amnesiac unlearning: relabel the forget set with random wrong labels, fine-tune on retain ∪ forget."""

    name: ClassVar[str] = "example-amnesiac"
    version: ClassVar[str] = "1"  # bump whenever a code change changes the output (it is in every cache key)
    forget_kinds: ClassVar[tuple[str, ...]] = ("random", "class")
    lr: float = 0.01
    epochs: int = 2

    def unlearn(self, model, task, ctx):
        forget, retain = task.forget, task.retain
        wrong = wrong_labels(forget.y, forget.num_classes, ctx.generator)  # drawn once, fixed while training
        mixed = dememo.Data(
            x=torch.cat([retain.x, forget.x]),
            y=torch.cat([retain.y, wrong]),
            num_classes=forget.num_classes,
            # only needs to be unique for this content; ctx.fit does not cache by it
            fingerprint=f"{retain.fingerprint}+relabelled:{forget.fingerprint}",
            index=torch.cat([retain.index, forget.index]),
        )
        ctx.fit(model, mixed, epochs=self.epochs, lr=self.lr, schedule="constant", desc="amnesiac")
        return model


@dememo.hookimpl
def register_unlearners(register):
    register(Amnesiac)
