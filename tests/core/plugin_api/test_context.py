"""Facilities of ``dememo.Context`` and ``dememo.Data`` that plugin authors asked for: one random model per seed
that every row shares (``ctx.seeded_model``), and samples from no split of the dataset (``Data.synthetic``)."""

from __future__ import annotations

import attrs
import torch

from dememo.context import seeded_generator
from dememo.data import SYNTHETIC, Data
from dememo.testing import tiny_context, tiny_splits


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_seeded_model_is_the_same_in_every_cell_of_a_seed_and_new_model_is_not():
    splits = tiny_splits()
    row_a = tiny_context(splits, seed=0)
    row_b = attrs.evolve(row_a, generator=seeded_generator(12345, row_a.device))  # another cell's stage key
    assert torch.equal(weights(row_a.seeded_model("zrf:teacher")), weights(row_b.seeded_model("zrf:teacher")))
    assert not torch.equal(weights(row_a.new_model()), weights(row_b.new_model()))
    other_seed = tiny_context(splits, seed=1)
    assert not torch.equal(weights(row_a.seeded_model("zrf:teacher")), weights(other_seed.seeded_model("zrf:teacher")))
    assert not torch.equal(weights(row_a.seeded_model("zrf:teacher")), weights(row_a.seeded_model("other")))
    before = row_a.generator.get_state()
    row_a.seeded_model("zrf:teacher")
    assert torch.equal(before, row_a.generator.get_state())  # the cell's own draws are untouched


def test_synthetic_samples_join_real_ones_and_train():
    splits = tiny_splits()
    noise = Data.synthetic(torch.rand(10, *splits.shape), torch.zeros(10, dtype=torch.int64), splits.num_classes, "noise")
    assert (noise.index == SYNTHETIC).all() and noise.fingerprint and len(noise) == 10
    again = Data.synthetic(noise.x.clone(), noise.y.clone(), splits.num_classes, "noise")
    assert again.fingerprint == noise.fingerprint
    mixed = Data(torch.cat([splits.train.x, noise.x]), torch.cat([splits.train.y, noise.y]), splits.num_classes,
                 f"{splits.train.fingerprint}+{noise.fingerprint}", torch.cat([splits.train.index, noise.index]))
    ctx = tiny_context(splits)
    model = ctx.new_model()
    ctx.fit(model, mixed, epochs=1)
    assert int((mixed.index >= 0).sum()) == len(splits.train)
