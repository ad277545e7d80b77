"""The torchvision-backed dataset plugins, on tiny files in each dataset's real on-disk format."""

from __future__ import annotations

import hashlib
import pickle
from urllib.error import URLError

import numpy as np
import pytest
import torch

import dememo
from dememo_plugins.datasets.torchvision_sets import Cifar10, Cifar100, FashionMnist, Mnist, Svhn

tv_datasets = pytest.importorskip("torchvision.datasets")


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def py2_pickle(entries: dict[str, object]) -> bytes:
    """A protocol-2 pickle of a dict whose keys are Python-2 ``str`` (SHORT_BINSTRING), like the CIFAR files."""
    out = [b"\x80\x02}("]  # PROTO 2, EMPTY_DICT, MARK
    for key, value in entries.items():
        k = key.encode()
        out += [b"U", bytes([len(k)]), k, pickle.dumps(value, protocol=2)[2:-1]]  # value without PROTO/STOP
    out.append(b"u.")  # SETITEMS, STOP
    return b"".join(out)


def rgb_images(ids: np.ndarray, size: int = 32) -> np.ndarray:
    """N×3×H×W uint8: channel 0 is k everywhere, channel 1 is 8·row, channel 2 is 8·column."""
    n = len(ids)
    x = np.empty((n, 3, size, size), np.uint8)
    x[:, 0] = ids[:, None, None]
    x[:, 1] = (8 * np.arange(size))[None, :, None]
    x[:, 2] = (8 * np.arange(size))[None, None, :]
    return x


def gray_images(ids: np.ndarray, size: int = 28) -> np.ndarray:
    """N×H×W uint8: (k + 3·row + 5·column) mod 256."""
    h, w = np.arange(size)[:, None], np.arange(size)[None, :]
    return ((ids[:, None, None] + 3 * h + 5 * w) % 256).astype(np.uint8)


def check_rgb(data: dememo.Data, classes: int) -> torch.Tensor:
    """Asserts the channel/row/column signature and label = k mod classes; returns the sample numbers."""
    px = torch.round(data.x * 255).to(torch.int64)
    k = px[:, 0, 0, 0]
    assert torch.equal(px[:, 0], k[:, None, None].expand(-1, 32, 32))
    assert torch.equal(px[:, 1, :, 5], (8 * torch.arange(32)).expand(len(k), -1))
    assert torch.equal(px[:, 2, 7, :], (8 * torch.arange(32)).expand(len(k), -1))
    assert torch.equal(data.y, k % classes)
    return k


def check_gray(data: dememo.Data) -> torch.Tensor:
    px = torch.round(data.x * 255).to(torch.int64)
    k = px[:, 0, 0, 0]
    h, w = torch.arange(28)[:, None], torch.arange(28)[None, :]
    assert torch.equal(px[:, 0], (k[:, None, None] + 3 * h + 5 * w) % 256)
    assert torch.equal(data.y, k % 10)
    return k


# -- writers, each returning (n_train, n_test) ------------------------------------------------------------

N_TRAIN, N_TEST = 60, 20


def write_cifar10(root, monkeypatch):
    where = root / "cifar10" / "cifar-10-batches-py"
    where.mkdir(parents=True)
    batches = np.array_split(np.arange(N_TRAIN), 5)
    for i, ids in enumerate(batches, 1):
        (where / f"data_batch_{i}").write_bytes(py2_pickle({
            "batch_label": f"training batch {i} of 5", "labels": [int(k) % 10 for k in ids],
            "data": rgb_images(ids).reshape(len(ids), -1), "filenames": [f"img_{k}.png" for k in ids]}))
    test_ids = np.arange(100, 100 + N_TEST)
    (where / "test_batch").write_bytes(py2_pickle({
        "batch_label": "testing batch 1 of 1", "labels": [int(k) % 10 for k in test_ids],
        "data": rgb_images(test_ids).reshape(N_TEST, -1), "filenames": [f"t_{k}.png" for k in test_ids]}))
    (where / "batches.meta").write_bytes(py2_pickle({
        "num_cases_per_batch": 10000, "label_names": [f"class{c}" for c in range(10)], "num_vis": 3072}))
    cls = tv_datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[f"data_batch_{i}", md5(where / f"data_batch_{i}")] for i in range(1, 6)])
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5(where / "test_batch")]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(where / "batches.meta")})
    return where


def write_cifar100(root, monkeypatch):
    where = root / "cifar100" / "cifar-100-python"
    where.mkdir(parents=True)
    for part, ids in (("train", np.arange(N_TRAIN)), ("test", np.arange(100, 100 + N_TEST))):
        (where / part).write_bytes(py2_pickle({
            "filenames": [f"{k}.png" for k in ids], "batch_label": part, "fine_labels": [int(k) % 100 for k in ids],
            "coarse_labels": [int(k) % 20 for k in ids], "data": rgb_images(ids).reshape(len(ids), -1)}))
    (where / "meta").write_bytes(py2_pickle({
        "fine_label_names": [f"f{c}" for c in range(100)], "coarse_label_names": [f"c{c}" for c in range(20)]}))
    cls = tv_datasets.CIFAR100
    monkeypatch.setattr(cls, "train_list", [["train", md5(where / "train")]])
    monkeypatch.setattr(cls, "test_list", [["test", md5(where / "test")]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(where / "meta")})
    return where


def idx(array: np.ndarray) -> bytes:
    """An idx file of a uint8 array: two zero bytes, type 0x08, rank, big-endian sizes, then the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.tobytes()


def write_mnist_like(folder: str):
    def write(root, monkeypatch):
        where = root / folder
        where.mkdir(parents=True)
        for prefix, ids in (("train", np.arange(N_TRAIN)), ("t10k", np.arange(100, 100 + N_TEST))):
            (where / f"{prefix}-images-idx3-ubyte").write_bytes(idx(gray_images(ids)))
            (where / f"{prefix}-labels-idx1-ubyte").write_bytes(idx((ids % 10).astype(np.uint8)))
        return where
    return write


def write_svhn(root, monkeypatch):
    import scipy.io

    where = root / "svhn"
    where.mkdir(parents=True)
    split_list = {k: list(v) for k, v in tv_datasets.SVHN.split_list.items()}
    for part, ids in (("train", np.arange(N_TRAIN)), ("test", np.arange(100, 100 + N_TEST))):
        x = rgb_images(ids).transpose(2, 3, 1, 0)  # H×W×C×N, as in the .mat files
        digit = ids % 10
        y = np.where(digit == 0, 10, digit).astype(np.uint8)[:, None]  # 1..10, 10 = digit 0
        scipy.io.savemat(where / f"{part}_32x32.mat", {"X": np.ascontiguousarray(x), "y": y})
        split_list[part][2] = md5(where / f"{part}_32x32.mat")
    monkeypatch.setattr(tv_datasets.SVHN, "split_list", split_list)
    return where


CASES = {
    "cifar10": (Cifar10, write_cifar10, (3, 32, 32), 10),
    "cifar100": (Cifar100, write_cifar100, (3, 32, 32), 100),
    "mnist": (Mnist, write_mnist_like("mnist/MNIST/raw"), (1, 28, 28), 10),
    "fashion-mnist": (FashionMnist, write_mnist_like("fashion-mnist/FashionMNIST/raw"), (1, 28, 28), 10),
    "svhn": (Svhn, write_svhn, (3, 32, 32), 10),
}
TRUNCATE = {"cifar10": "data_batch_3", "cifar100": "test", "mnist": "train-images-idx3-ubyte",
            "fashion-mnist": "t10k-labels-idx1-ubyte", "svhn": "train_32x32.mat"}


@pytest.mark.parametrize("name", CASES)
def test_loads_real_format(name, tmp_path, monkeypatch):
    cls, write, shape, classes = CASES[name]
    write(tmp_path, monkeypatch)
    source = cls(val_size=12, split_seed=3)
    assert source.name == name
    splits = source.load(tmp_path, download=False)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (N_TRAIN - 12, 12, N_TEST)
    assert splits.shape == shape and splits.num_classes == classes
    for part in (splits.train, splits.val, splits.test):
        assert part.x.dtype == torch.float32 and part.y.dtype == torch.int64
        assert 0.0 <= part.x.min() and part.x.max() <= 1.0
        assert 0 <= part.y.min() and part.y.max() < classes
    check = check_gray if shape[0] == 1 else (lambda d: check_rgb(d, classes))
    k_train, k_val, k_test = check(splits.train), check(splits.val), check(splits.test)
    # val is held out of the official training set, disjoint from train, together all of it
    assert set(k_train.tolist()).isdisjoint(k_val.tolist())
    assert sorted(k_train.tolist() + k_val.tolist()) == list(range(N_TRAIN))
    assert torch.equal(k_train, k_train.sort().values)  # train keeps the official order
    assert k_test.tolist() == list(range(100, 100 + N_TEST))  # the official test set, untouched
    if name == "svhn":
        assert (splits.test.y == 0).any() and int(splits.test.y.max()) == 9  # file label 10 became digit 0
    # a few known values: sample k carries label k mod K; pixel scale is /255
    assert splits.test.y[:3].tolist() == [100 % classes, 101 % classes, 102 % classes]
    assert splits.test.x[1, 0, 0, 0].item() == pytest.approx(101 / 255)


def test_split_is_deterministic_under_its_seed(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch)
    a = Cifar10(val_size=10, split_seed=1).load(tmp_path, False)
    b = Cifar10(val_size=10, split_seed=1).load(tmp_path, False)
    c = Cifar10(val_size=10, split_seed=2).load(tmp_path, False)
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.train.y, b.train.y)
    assert a.train.fingerprint == b.train.fingerprint and a.val.fingerprint == b.val.fingerprint
    assert not torch.equal(check_rgb(a.val, 10), check_rgb(c.val, 10))
    assert a.test.fingerprint == c.test.fingerprint


def test_subset_is_seeded_nested_and_leaves_val_alone(tmp_path, monkeypatch):
    write_mnist_like("mnist/MNIST/raw")(tmp_path, monkeypatch)
    full = Mnist(val_size=10).load(tmp_path, False)
    small = Mnist(val_size=10, subset=15).load(tmp_path, False)
    larger = Mnist(val_size=10, subset=30).load(tmp_path, False)
    assert len(small.train) == 15 and len(larger.train) == 30 and len(small.test) == N_TEST
    assert torch.equal(small.val.x, full.val.x)
    ks, kl, kf = check_gray(small.train), check_gray(larger.train), check_gray(full.train)
    assert set(ks.tolist()) <= set(kl.tolist()) <= set(kf.tolist())
    assert torch.equal(check_gray(Mnist(val_size=10, subset=15).load(tmp_path, False).train), ks)
    with pytest.raises(dememo.DatasetError, match="subset=100"):
        Mnist(val_size=10, subset=100).load(tmp_path, False)
    with pytest.raises(dememo.DatasetError, match="val_size=60"):
        Mnist(val_size=60).load(tmp_path, False)


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="val_size"):
        Cifar10(val_size=0)
    with pytest.raises(ValueError, match="subset"):
        Svhn(subset=-1)


@pytest.mark.parametrize("name", CASES)
def test_missing_files_name_the_flag_and_the_folder(name, tmp_path):
    cls = CASES[name][0]
    folder = {"cifar10": "cifar10/cifar-10-batches-py", "cifar100": "cifar100/cifar-100-python",
              "mnist": "mnist/MNIST/raw", "fashion-mnist": "fashion-mnist/FashionMNIST/raw", "svhn": "svhn"}[name]
    with pytest.raises(dememo.DatasetError) as err:
        cls().load(tmp_path, download=False)
    message = str(err.value)
    assert "\n" not in message and "--download" in message and str(tmp_path / folder) in message
    assert message.startswith(f"{name}:")
    assert not (tmp_path / name).exists()  # nothing was created, let alone downloaded


@pytest.mark.parametrize("name", CASES)
def test_truncated_file_is_a_dataset_error_naming_it(name, tmp_path, monkeypatch):
    cls, write, _, _ = CASES[name]
    where = write(tmp_path, monkeypatch)
    path = where / TRUNCATE[name]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(dememo.DatasetError) as err:
        cls(val_size=12).load(tmp_path, download=False)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "corrupt or truncated" in message
    assert "--download" in message
    assert ("MD5" in message) if name in ("cifar10", "cifar100", "svhn") else ("idx header" in message)


def test_download_failure_is_one_line_and_files_present_need_no_network(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("network unreachable")

    monkeypatch.setattr(tv_datasets.cifar, "download_and_extract_archive", offline)
    with pytest.raises(dememo.DatasetError, match=r"cifar10: downloading CIFAR-10 into .* failed \(.*unreachable"):
        Cifar10().load(tmp_path, download=True)
    write_cifar10(tmp_path, monkeypatch)  # with the files in place, --download does not touch the network
    assert len(Cifar10(val_size=10).load(tmp_path, download=True).train) == N_TRAIN - 10


def test_budgets():
    for cls in (Cifar10, Cifar100, Svhn):
        assert cls.budgets == {"linf": 8 / 255, "l2": 1.0, "l0": 1}
    for cls in (Mnist, FashionMnist):
        assert cls.budgets == {"linf": 0.3, "l2": 2.0, "l0": 1}


def test_registers_five_datasets_through_the_hook():
    """Until the entry point is added, register the module by hand with a fresh plugin manager."""
    from dememo import plugins
    from dememo_plugins.datasets import torchvision_sets

    pm = plugins.new_manager()
    pm.register(torchvision_sets, name="torchvision-datasets")
    registry = plugins.collect(pm)
    assert registry.names("dataset") == ["cifar10", "cifar100", "fashion-mnist", "mnist", "svhn"]
    assert registry.get("dataset", "cifar100") is Cifar100
    assert all(registry.info("dataset", n).cls.summary() for n in registry.names("dataset"))
    assert not registry.failures


@pytest.mark.slow
def test_the_cifar10_fast_suite_runs_end_to_end_on_files_in_the_real_format(tmp_path, monkeypatch):
    """The paper-scale suite's whole path on the CPU: tiny CIFAR-10 files in torchvision's format, the
    `cifar10` plugin, the `airbench` network with its data-dependent whitening, a poisoner, an unlearner,
    the interplay track and the leaderboard — a one-epoch recipe, one seed, a few cells. (The suite's
    accuracy on real CIFAR-10 needs a GPU and the real files; see benchmarks/bench_gpu.py.)"""
    import json

    from dememo import cli

    write_cifar10(tmp_path / "data", monkeypatch)
    code = cli.main(["--all", "--suite", "cifar10-fast", "--data-dir", str(tmp_path / "data"),
                     "--set", "cifar10.val_size=12", "--set", "recipe.epochs=1", "--set", "recipe.batch_size=16",
                     "--poisoner", "random-noise", "--unlearner", "finetune", "--attack", "none",
                     "--metric", "clean-accuracy", "--metric", "unlearning-accuracy", "--seeds", "1",
                     "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert code == 0, [c["error"] for c in results["cells"] if c["status"] != "ok"][:2]
    assert {c["track"] for c in results["cells"]} >= {"unlearnability", "unlearning"}
    assert {c["architecture"] for c in results["cells"]} == {"airbench"}
    assert all(c["status"] == "ok" for c in results["cells"])
