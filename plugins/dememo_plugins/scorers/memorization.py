"""``memorization``: exact Feldman–Zhang memorization scores, and how well the one-run proxies track them.

Feldman & Zhang, "What Neural Networks Memorize and Why" (NeurIPS 2020), estimator of Eq. 3 / Alg. 1:
train K models on random subsets of r·n training samples and, for each sample i,

    mem_i = mean_{k : i ∈ S_k} 1[f_k(x_i) = y_i]  −  mean_{k : i ∉ S_k} 1[f_k(x_i) = y_i],

the accuracy on i of models that trained on it minus that of models that did not. The RUM paper (Zhao et
al., NeurIPS 2024) uses K = 400, r = 0.7 on CIFAR-10; dememo's default is K = 256 (the embedded suite sets
fewer, see quick.toml), r = 0.7. The K models are one vectorized ensemble (``ctx.train_many``): member k is
standard training on S_k with its own seed, and the ensemble is cached per dataset and seed.

As a scorer (``scorer = "memorization"`` in a forget set) it returns mem_i (higher = more memorized); its
``middle`` is 0.5, so a ``mid`` forget set holds the scores nearest 0.5, as in the RUM code. As a
metric (unlearning track, once per dataset and seed) it reports the Spearman correlation of each installed
one-run proxy (``confidence``, ``max-confidence``, ``entropy``, ``correctness``, ``holdout-retraining``,
``loss-curvature``; all oriented higher = more memorized) with the exact scores: ρ close to 1 means the proxy
ranks samples like memorization (the RUM follow-up, arXiv 2410.16516, reports |ρ| ≈ 0.8–0.9 on CIFAR for
the confidence proxies). A proxy that is not installed reads NaN.

Choices: subsets are drawn without replacement with exactly round(r·n) samples (FZ's definition), from a
generator seeded by (dataset, seed, K, r), so every cell of a run shares the ensemble. A sample that falls
in every subset or in none (possible only for small K: probability r^K or (1 − r)^K) has no estimate; it is
scored 0 (no evidence of memorization) and counted in ``memorization_undefined``.
"""

from __future__ import annotations

from typing import ClassVar

import attrs
import numpy as np
import torch

import dememo
from dememo import validate
from dememo.forget import first_of_permutation

PROXIES = ("confidence", "max-confidence", "entropy", "correctness", "holdout-retraining", "loss-curvature")


def column(proxy: str) -> str:
    return "rho_" + proxy.replace("-", "_")


def estimable(subsets: torch.Tensor) -> torch.Tensor:
    """Samples with an estimate: in at least one subset and out of at least one (K×N mask → N)."""
    return subsets.any(0) & (~subsets).any(0)


def feldman_zhang(correct: torch.Tensor, subsets: torch.Tensor) -> tuple[torch.Tensor, int]:
    """mem_i from a K×N correctness matrix and the K×N membership mask; undefined samples read 0."""
    c = correct.to(torch.float64)
    acc_in = (c * subsets).sum(0) / subsets.sum(0).clamp(min=1)
    acc_out = (c * ~subsets).sum(0) / (~subsets).sum(0).clamp(min=1)
    defined = estimable(subsets)
    return torch.where(defined, acc_in - acc_out, torch.zeros_like(acc_in)), int((~defined).sum())


@attrs.define
class Memorization(dememo.Scorer):
    """Feldman–Zhang memorization from K subset models; Spearman ρ of each one-run proxy against it."""

    name: ClassVar[str] = "memorization"
    version: ClassVar[str] = "1"
    middle: ClassVar[float] = 0.5  # a mid forget set is the scores nearest 0.5, as in the RUM code's main_forget.py
    tracks: ClassVar[tuple[str, ...]] = ("unlearning",)
    reads_model: ClassVar[bool] = False
    after_model_attack: ClassVar[bool] = False
    columns: ClassVar[dict[str, dememo.Column]] = {
        **{column(p): dememo.Column(f"ρ {p}", "info", f"Spearman correlation of the {p!r} proxy (oriented higher = "
                                    "more memorized) with exact Feldman–Zhang memorization of the training split",
                                    unit="number", detail=True) for p in PROXIES},
        "memorization_mean": dememo.Column("mem", "info", "mean Feldman–Zhang memorization score of the training split",
                                           unit="number", detail=True),
        "memorization_undefined": dememo.Column("undef", "info", "training samples in every subset or in none (no "
                                                "estimate; scored 0)", unit="count", detail=True),
    }

    models: int = 256
    fraction: float = 0.7

    def __attrs_post_init__(self) -> None:
        validate.in_range(0, 1, low_open=True, high_open=True, about="the share of the data each model trains on",
                          fraction=self.fraction)
        validate.at_least(2, models=self.models)

    def subsets(self, data: dememo.Data, seed: int) -> torch.Tensor:
        size = round(self.fraction * len(data))
        rows = [first_of_permutation(len(data), size, "fz-subset", data.fingerprint, seed, self.fraction, k)
                for k in range(self.models)]
        return torch.stack(rows)

    def exact(self, data: dememo.Data, ctx: dememo.Context) -> tuple[torch.Tensor, int]:
        masks = self.subsets(data, ctx.seed).to(data.device)
        ensemble = ctx.train_many(data, masks)
        correct = ensemble.logits(data.x).argmax(-1) == data.y
        return feldman_zhang(correct, masks)

    def score(self, data, ctx):
        return self.exact(data, ctx)[0].to(torch.float32)

    def compute(self, ev, ctx):
        from scipy.stats import spearmanr

        exact = ctx.scores(self.name).double().numpy()
        undefined = int((~estimable(self.subsets(ev.splits.train, ctx.seed))).sum())
        out = {"memorization_mean": float(exact.mean()), "memorization_undefined": float(undefined)}
        for proxy in PROXIES:
            try:
                values = ctx.scores(proxy).double().numpy()
            except Exception as exc:  # not installed or failed: NaN in the results, the reason in the log
                ctx.log.warning("memorization: proxy %r gave no scores (%s)", proxy, exc)
                out[column(proxy)] = float("nan")
                continue
            rho = spearmanr(values, exact).statistic if np.ptp(values) > 0 and np.ptp(exact) > 0 else float("nan")
            out[column(proxy)] = float(rho)
        return out


@dememo.hookimpl
def register_metrics(register):
    register(Memorization)
