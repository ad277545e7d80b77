"""Helpers shared by metrics/test_ou_at_eps.py, metrics/test_residual_knowledge.py."""

from __future__ import annotations

import copy
import functools
import json

from torch import nn

from dememo.evaluation import Evaluation
from dememo_plugins.unlearners.finetune import Finetune
from dememo_plugins.unlearners.gradient_ascent import GradientAscent
from dememo_plugins.unlearners.rurk import Rurk

import support.unlearning as kit
from support import ROOT

TUNING = ROOT / "core" / "dememo" / "suites" / "quick.tuning.json"


@functools.cache
def chosen(unlearner: str, dataset: str, forget: str) -> dict:
    for entry in json.loads(TUNING.read_text())["entries"]:
        if (entry["unlearner"], entry["dataset"], entry["forget"]) == (unlearner, dataset, forget):
            return dict(entry["chosen"])
    raise KeyError((unlearner, dataset, forget))


@functools.cache
def unlearned(dataset: str, kind: str, name: str, scale: float = 1.0) -> nn.Module:
    """The tuned unlearner's model (seed 0); ``scale`` multiplies the tuned learning rate."""
    cls = {"finetune": Finetune, "gradient-ascent": GradientAscent, "rurk": Rurk}[name]
    params = chosen(name, dataset, "random-10%" if kind == "random" else "class-0")
    params["lr"] *= scale
    s = kit.setting(dataset, 0, kind)
    u = cls(**params)
    return u.unlearn(copy.deepcopy(s.original), s.given(u), s.context()).eval()


def evaluation(model, s, refs=None) -> Evaluation:
    refs = refs or {"original": s.original, "retrained": s.retrained}
    return Evaluation(model=model, splits=s.splits, track="unlearning", task=s.task, references=refs.__getitem__)
