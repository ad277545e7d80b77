"""The seeded random split shared by the shipped datasets (digits, mnist-10k)."""

from __future__ import annotations

import torch

import dememo


def seeded_split(x: torch.Tensor, y: torch.Tensor, num_classes: int, test: float, val: float, seed: int,
                 tag: str) -> dememo.Splits:
    """One random permutation seeded by ``seed``: the first round(test·n) samples are the test split, the next
    round(val·n) the validation split, the rest the training split; each tagged ``<tag>:<split>``."""
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test, n_val = round(test * len(y)), round(val * len(y))
    parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    made = {k: dememo.Data.from_tensors(x[i], y[i], num_classes, tag=f"{tag}:{k}") for k, i in parts.items()}
    return dememo.Splits(train=made["train"], val=made["val"], test=made["test"])
