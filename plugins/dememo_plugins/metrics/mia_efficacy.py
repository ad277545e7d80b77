"""``mia-efficacy``: membership-inference efficacy as defined in SalUn (Fan et al., ICLR 2024, App. C.3;
introduced by Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023).

Attack: an SVC (RBF kernel, C = 3, gamma = "auto") on one feature, the model's softmax probability of
the true class. It is fitted with the first |test| retain samples as members (label 1) and the test set
as non-members (label 0), then applied to the forget set. MIA-efficacy = fraction of forget samples
predicted *non-member*: higher means the forget set looks less trained-on. The target is the paired
retrain's value (a retrained model does not give 100 %: some forget samples look like members because
they resemble retain data).

Authors' code: github.com/OPTML-Group/Unlearn-Saliency, ``Classification/evaluation/SVC_MIA.py``
(``SVC_fit_predict``; the ``"confidence"`` entry of ``SVC_MIA``'s result) with the sets chosen in
``Classification/main_random.py`` (``SVC_MIA_forget_efficacy``: shadow_train = the first |test| retain
samples, shadow_test = the test set, target_test = the forget set, value = 1 − mean prediction). dememo
computes exactly that. Deviations:
probabilities come from the evaluation-mode model on un-augmented data (the code converts its datasets to
the test transform too); when the retain set is smaller than the test set (the code would fail indexing
it), both sides use the first min(|retain|, |test|) samples, keeping the classes balanced.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np

import dememo
from dememo_plugins.metrics._membership import member_attack


def true_class_confidence(ev, model, data) -> np.ndarray:
    p = ev.probs(model, data)
    return p.gather(1, data.y.view(-1, 1)).squeeze(1).double().cpu().numpy()


@attrs.define
class MIAEfficacy(dememo.Metric):
    """MIA-efficacy (SalUn): SVC on true-class confidence; share of forget predicted non-member."""

    name: ClassVar[str] = "mia-efficacy"
    version: ClassVar[str] = "1"
    tracks: ClassVar[tuple[str, ...]] = ("unlearning", "interplay")
    columns: ClassVar[dict[str, dememo.Column]] = {
        "mia_efficacy": dememo.Column(
            "MIA-eff", "match",
            "SVC(rbf, C=3) on true-class confidence, trained retain=member vs test=non-member; share of forget "
            "samples predicted non-member (SalUn). Target: the paired retrain's value",
            reference="retrain", tuning=dememo.Tuning("mia_efficacy", order=4)),
    }
    C: float = 3.0

    def compute(self, ev, ctx):
        from sklearn.svm import SVC

        pred = member_attack(ev, lambda data: true_class_confidence(ev, ev.model, data),
                             SVC(C=self.C, kernel="rbf", gamma="auto"))
        if pred is None:
            return {"mia_efficacy": float("nan")}
        return {"mia_efficacy": float((pred == 0).mean())}


@dememo.hookimpl
def register_metrics(register):
    register(MIAEfficacy)
