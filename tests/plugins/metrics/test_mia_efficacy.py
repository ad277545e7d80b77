"""The ``mia-efficacy`` metric (plugins/dememo_plugins/metrics/mia_efficacy.py): behaviour tests and reference checks.

Reference checks (issue 17) for ``ssd``, ``salun`` and ``mia-efficacy``, and for the loss-based unlearners
``finetune``, ``gradient-ascent``, ``neggrad-plus``, ``random-label``, ``l1-sparse``, ``cf-k``, ``scrub`` and
``rurk``: each plugin against a loop transcription, written here independently, of its paper's equation as
the authors' released code computes it.

- mia-efficacy: OPTML-Group/Unlearn-Saliency, ``Classification/evaluation/SVC_MIA.py`` with the sets of
  ``Classification/main_random.py``.

Measured (seed 0, 2 loaded CPU cores): the tiny model (643 weights) on the class-0 task at α = 2: the released
batch-12 formula dampens 135 weights, the per-sample one 58, and the two dampened models differ in 157
entries (max 0.28); digits with class 0 forgotten: MIA-efficacy of the original 0.0, of the retrain 1.0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dememo.data import Data, Splits, Task
from dememo.evaluation import Evaluation
from dememo.testing import tiny_context
from dememo_plugins.metrics.mia_efficacy import MIAEfficacy

import support.unlearning as kit


class LogitsAreInputs(nn.Module):
    """Two-class 'model' whose logits are read off its input (20·(x − 0.5)), so a test chooses every
    sample's softmax output exactly."""

    def forward(self, x):
        return 20 * (x.flatten(1) - 0.5)


def _synthetic(n, member, g):
    """n samples with true-class margin drawn around ``member`` (members: confident; others: less so),
    about a fifth misclassified, so true-class confidence differs from the top probability."""
    y = torch.randint(0, 2, (n,), generator=g)
    margin = (0.25 if member else 0.08) + 0.12 * torch.randn(n, generator=g)
    x = torch.full((n, 2), 0.5)
    x[torch.arange(n), y] += margin / 2
    x[torch.arange(n), 1 - y] -= margin / 2
    return Data.from_tensors(x.clamp(0, 1).view(n, 1, 1, 2), y, 2)


def released_svc_mia(model, retain, test, forget, feature="true-class", members=None):
    """OPTML-Group/Unlearn-Saliency, SVC_MIA.py ("confidence": SVC(C=3, gamma="auto", kernel="rbf") on the
    softmax probability of the true class) with main_random.py's sets: shadow_train = the first |test|
    retain samples (label 1), shadow_test = the test set (label 0), target_test = the forget set; the value
    is 1 − mean prediction. ``feature="top"`` (the largest probability) and ``members`` (another number of
    retain samples as members) are wrong variants, for contrast."""
    from sklearn.svm import SVC

    def conf(x, y):
        with torch.no_grad():
            p = F.softmax(model(x), dim=-1)
        return (torch.gather(p, 1, y[:, None]) if feature == "true-class" else p.max(1, keepdim=True).values).numpy()

    n = len(test) if members is None else members
    features = np.concatenate([conf(retain.x[:n], retain.y[:n]), conf(test.x, test.y)]).reshape(-1, 1)
    labels = np.concatenate([np.ones(n), np.zeros(len(test))])
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(features, labels)
    return 1 - clf.predict(conf(forget.x, forget.y).reshape(len(forget), -1)).mean()


@pytest.mark.reference("metric", "mia-efficacy",
                       source="OPTML-Group/Unlearn-Saliency:Classification/evaluation/SVC_MIA.py")
@pytest.mark.parametrize("seed", [0, 1])
def test_mia_efficacy_is_the_released_svc_attack(seed):
    g = torch.Generator().manual_seed(seed)
    retain, test = _synthetic(300, True, g), _synthetic(120, False, g)
    seen, unseen = _synthetic(40, True, g), _synthetic(60, False, g)
    forget = Data.from_tensors(torch.cat([seen.x, unseen.x]), torch.cat([seen.y, unseen.y]), 2)
    model = LogitsAreInputs()
    splits = Splits(test, test, test)
    ev = Evaluation(model=model, splits=splits, track="unlearning", task=Task(retain, forget, test))
    got = MIAEfficacy().compute(ev, tiny_context(splits, budget=None))["mia_efficacy"]
    assert got == pytest.approx(released_svc_mia(model, retain, test, forget), abs=1e-12)
    # the data discriminate: an inverted orientation (1 − value), the top probability as the feature, or
    # every retain sample as members would each give a different value
    assert abs(got - (1 - got)) > 0.05
    assert released_svc_mia(model, retain, test, forget, feature="top") != pytest.approx(got)
    assert released_svc_mia(model, retain, test, forget, members=len(retain)) != pytest.approx(got)


def test_mia_efficacy_orientation_on_a_forgotten_class():
    """On a forgotten class the original reads below the retrain: the original is confident on the forget
    set (looks like members), the retrain is not (looks like test data). Measured 0.0 and 1.0 on digits."""
    s = kit.setting("digits", 0, "class", (0,))
    original, retrained = kit.mia_efficacy(s.original, s), kit.mia_efficacy(s.retrained, s)
    assert original < 0.2 and retrained > 0.8
