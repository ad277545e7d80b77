"""The ``mnist-10k`` dataset (plugins/dememo_plugins/datasets/mnist10k.py) and its build tool
(tools/build_mnist10k.py): the shipped real digits, their split, the integrity check and the rebuild."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from dememo.errors import DatasetError
from dememo_plugins.datasets import mnist10k
from dememo_plugins.datasets.mnist10k import ARRAYS_SHA256, Mnist10k, arrays_sha256, mnist10k_arrays

from support import ROOT

COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


def build_tool():
    spec = importlib.util.spec_from_file_location("build_mnist10k", ROOT / "tools" / "build_mnist10k.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_digits_are_ten_thousand_28x28_grey_level_images_of_ten_classes():
    x, y = mnist10k_arrays()
    assert x.shape == (10_000, 28, 28) and x.dtype == np.uint8 and y.dtype == np.uint8
    assert np.bincount(y, minlength=10).tolist() == COUNTS
    assert len(np.unique(x)) == 256 and abs(x.mean() / 255 - 0.131) < 0.001  # MNIST's mean grey level 0.13
    assert arrays_sha256(x, y) == ARRAYS_SHA256


def test_split_is_seeded_disjoint_complete_and_in_unit_pixels():
    a, b = Mnist10k().load(None, False), Mnist10k().load(None, False)
    assert (len(a.train), len(a.val), len(a.test)) == (7000, 1000, 2000)
    assert a.train.shape == (1, 28, 28) and a.num_classes == 10
    assert a.train.fingerprint == b.train.fingerprint and a.test.fingerprint == b.test.fingerprint
    assert Mnist10k(split_seed=1).load(None, False).train.fingerprint != a.train.fingerprint
    x = torch.cat([a.train.x, a.val.x, a.test.x])
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0 and torch.equal(x * 255, (x * 255).round())
    shipped = torch.from_numpy(mnist10k_arrays()[0]).float().flatten(1)
    # every shipped image lands in exactly one split
    assert torch.equal((x.flatten(1) * 255).sum(1).sort().values, shipped.sum(1).sort().values)


def test_real_digits_are_learnable_by_nearest_class_mean_and_labels_matter():
    """Real MNIST: a nearest-class-mean classifier reaches ~80 % (82 % on full MNIST); shuffled labels chance."""
    s = Mnist10k().load(None, False)
    xtr, ytr, xte, yte = s.train.x.flatten(1), s.train.y, s.test.x.flatten(1), s.test.y

    def accuracy(labels):
        means = torch.stack([xtr[labels == c].mean(0) for c in range(10)])
        return float((torch.cdist(xte, means).argmin(1) == yte).float().mean())

    assert accuracy(ytr) > 0.75
    assert accuracy(ytr[torch.randperm(len(ytr), generator=torch.Generator().manual_seed(0))]) < 0.3


def test_a_damaged_shipped_file_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(mnist10k, "ARRAYS_SHA256", "0" * 64)
    with pytest.raises(DatasetError, match="SHA-256 mismatch.*reinstall"):
        Mnist10k().load(None, False)
    monkeypatch.setattr(mnist10k, "FILE", "missing.npz")
    with pytest.raises(DatasetError, match="cannot read the shipped missing.npz"):
        mnist10k_arrays()


def package_file(tmp_path, c: int, data) -> None:
    (tmp_path / f"{c}.json").write_text(json.dumps({"data": data}))


def test_the_build_tool_recovers_the_bytes_from_the_packages_three_decimal_values(tmp_path):
    tool = build_tool()
    rng = np.random.default_rng(0)
    truth = [rng.integers(0, 256, size=(c + 1, 28, 28), dtype=np.uint8) for c in range(10)]
    for c, images in enumerate(truth):  # the package's format: byte/255 rounded to 3 decimals
        package_file(tmp_path, c, [round(int(v) / 255, 3) for v in images.flatten()])
    x, y, hashes = tool.build(tmp_path)
    assert np.array_equal(x, np.concatenate(truth)) and np.bincount(y).tolist() == list(range(1, 11))
    assert sorted(hashes) == [f"{c}.json" for c in range(10)]


@pytest.mark.parametrize("bad, message", [([0.5] * 784, "not grey levels"), ([0.0] * 700, "whole number")])
def test_the_build_tool_refuses_values_that_are_not_the_packages_grey_levels(tmp_path, bad, message, capsys):
    tool = build_tool()
    for c in range(10):
        package_file(tmp_path, c, bad)
    with pytest.raises(SystemExit, match=message):
        tool.build(tmp_path)


@pytest.mark.reference("dataset", "mnist-10k", source="cazala/mnist:src/mnist.js")
def test_image_i_of_class_c_is_what_the_packages_get_returns(tmp_path):
    """The package's reader (src/mnist.js, transcribed): ``digit.length = raw.length / (28·28) | 0`` and
    ``digit.get(which)`` returns ``raw[which·784 : which·784 + 784]``, the image in row-major order. The
    build's image ``which`` of class ``c`` is that slice, ×255, as 28×28."""
    tool = build_tool()
    rng = np.random.default_rng(1)
    raw = {c: [round(int(v) / 255, 3) for v in rng.integers(0, 256, size=784 * (2 + c % 3))] for c in range(10)}
    for c, data in raw.items():
        package_file(tmp_path, c, data)
    x, y, _ = tool.build(tmp_path)

    def get(c: int, which: int) -> list[float]:  # mnist.js digit.get
        return raw[c][which * 784 : which * 784 + 784]

    row = 0
    for c in range(10):
        length = len(raw[c]) // (28 * 28)
        for which in range(length):
            assert y[row] == c
            assert np.array_equal(x[row], np.rint(np.array(get(c, which)) * 255).astype(np.uint8).reshape(28, 28))
            row += 1
    assert row == len(y)
