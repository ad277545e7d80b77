"""``local-data``: a user's .npz or image folder as a dataset, without a plugin of their own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dememo.errors import DatasetError
from dememo_plugins.datasets.local_files import LocalFiles


def npz(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def toy(n=200, shape=(8, 8, 3), classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8), rng.integers(0, classes, size=n)


def test_an_npz_of_x_and_y_is_scaled_laid_out_and_split_by_the_seeded_rule(tmp_path):
    x, y = toy()
    splits = LocalFiles(path=str(npz(tmp_path, x=x, y=y))).load(tmp_path, False)
    assert splits.shape == (3, 8, 8) and splits.num_classes == 4
    assert (len(splits.train), len(splits.val), len(splits.test)) == (140, 20, 40)
    # every image is the file's, channels first, scaled by 1/255, with its own label
    order = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    first_test = order[0].item()
    assert torch.equal(splits.test.x[0], torch.from_numpy(x[first_test]).permute(2, 0, 1).float() / 255)
    assert splits.test.y[0].item() == y[first_test]
    again = LocalFiles(path=str(tmp_path / "data.npz")).load(tmp_path, False)
    assert again.train.fingerprint == splits.train.fingerprint
    other = LocalFiles(path=str(tmp_path / "data.npz"), split_seed=1).load(tmp_path, False)
    assert other.train.fingerprint != splits.train.fingerprint


def test_given_splits_are_kept_and_a_missing_val_is_drawn_from_train(tmp_path):
    x, y = toy(300, (1, 6, 6), 3)
    path = npz(tmp_path, x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    splits = LocalFiles(path=str(path), val=0.1).load(tmp_path, False)
    assert len(splits.test) == 100 and len(splits.val) == 20 and len(splits.train) == 180
    assert torch.equal(splits.test.x, torch.from_numpy(x[200:]).float() / 255)
    path = npz(tmp_path, "v.npz", x_train=x[:200], y_train=y[:200], x_val=x[200:250], y_val=y[200:250],
               x_test=x[250:], y_test=y[250:])
    splits = LocalFiles(path=str(path)).load(tmp_path, False)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (200, 50, 50)


def test_float_grey_images_in_the_unit_interval_load_as_one_channel(tmp_path):
    x = np.random.default_rng(0).random((50, 5, 5)).astype(np.float32)
    splits = LocalFiles(path=str(npz(tmp_path, x=x, y=np.arange(50) % 2))).load(tmp_path, False)
    assert splits.shape == (1, 5, 5) and splits.num_classes == 2


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((10, 4, 4), np.int16), y=np.zeros(10, int)), "array x is int16; store uint8"),
    (dict(x=np.full((10, 4, 4), 2.0), y=np.zeros(10, int)), "float images must be in [0, 1]"),
    (dict(x=np.full((10, 4, 4), np.nan), y=np.zeros(10, int)), "holds NaN or infinite values"),
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.zeros(10)), "array y is float64; labels must be integers"),
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.zeros(9, int)), "has shape (9,); expected (10,)"),
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=-np.ones(10, int)), "holds the negative label -1"),
    (dict(x=np.zeros((10, 5, 5, 5), np.uint8), y=np.zeros(10, int)), "no axis of 1 or 3 channels"),
    (dict(x=np.zeros((10, 3, 5, 1), np.uint8), y=np.zeros(10, int)), "channels first or last? set layout"),
    (dict(x=np.zeros((10, 3, 5, 3), np.uint8), y=np.zeros(10, int)), "channels first or last? set layout"),
    (dict(x=np.zeros((0, 4, 4), np.uint8), y=np.zeros(0, int)), "holds no samples"),
    (dict(x=np.zeros((4, 4, 4), np.uint8), y=np.array([0, 1000, 0, 1000])), "999 of 0…1000 never occur"),
    (dict(images=np.zeros((10, 4, 4), np.uint8)), "expected arrays x and y, or x_train"),
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.zeros(10, int)), "needs at least two classes"),
])
def test_a_malformed_file_is_one_line_naming_it(tmp_path, arrays, message):
    path = npz(tmp_path, **arrays)
    with pytest.raises(DatasetError, match="^" + str(path).replace(".", r"\.") + ":.*" + message.replace("(", r"\(")
                       .replace(")", r"\)").replace("[", r"\[").replace("]", r"\]").replace("?", r"\?")):
        LocalFiles(path=str(path)).load(tmp_path, False)


def test_pickles_and_missing_paths_are_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([object()], dtype=object), y=np.zeros(1, int))
    with pytest.raises(DatasetError, match="not a plain .npz of arrays"):
        LocalFiles(path=str(path)).load(tmp_path, False)
    with pytest.raises(DatasetError, match="no such file or folder"):
        LocalFiles(path=str(tmp_path / "nope.npz")).load(tmp_path, False)
    with pytest.raises(DatasetError, match="no path: give the file or folder"):
        LocalFiles().load(tmp_path, False)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="not a plain .npz of arrays"):
        LocalFiles(path=str(tmp_path / "junk.npz")).load(tmp_path, False)
    with pytest.raises(DatasetError, match="label 7 is not below num_classes = 3"):
        LocalFiles(path=str(npz(tmp_path, x=np.zeros((9, 2, 2), np.uint8), y=np.arange(9) % 8)), num_classes=3).load(tmp_path, False)


def image_folder(root, sizes=None, mode="L", per_class=6):
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(["cat", "ant", "bee"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            size = (sizes or {}).get((name, i), (7, 5))
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / name / f"{i}.png")
    return root


@pytest.mark.reference("dataset", "local-data", source="pytorch/vision:torchvision/datasets/folder.py")
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_an_image_folder_reads_as_torchvision_imagefolder_does(tmp_path, mode):
    """Classes numbered in sorted order of their folder names, files in sorted order, pixels as read by PIL:
    torchvision's ImageFolder (``find_classes``, ``make_dataset``) gives the same labels and images."""
    from torchvision.datasets import ImageFolder
    from torchvision.transforms.functional import pil_to_tensor

    from dememo_plugins.datasets.local_files import read_folder

    root = image_folder(tmp_path / "imgs", mode=mode)
    from PIL import Image

    (root / "bee" / "nested").mkdir()  # class folders are walked recursively, .ppm/.pgm included
    Image.new(mode, (7, 5), 90).save(root / "bee" / "nested" / "z.ppm" if mode == "RGB" else root / "bee" / "nested" / "z.pgm")
    (root / "bee" / "notes.txt").write_text("not an image")
    x, y = read_folder(root)
    ref = ImageFolder(str(root), loader=lambda p: __import__("PIL.Image").Image.open(p).convert(mode))
    assert ref.classes == ["ant", "bee", "cat"] and y.tolist() == [t for _, t in ref.samples]
    for i, (img, _) in enumerate(ref):
        mine = torch.from_numpy(x[i])
        mine = mine.unsqueeze(0) if mode == "L" else mine.permute(2, 0, 1)
        assert torch.equal(mine, pil_to_tensor(img))
    splits = LocalFiles(path=str(root), test=0.2, val=0.2).load(tmp_path, False)
    assert splits.shape == ((1 if mode == "L" else 3), 5, 7) and splits.num_classes == 3


def test_an_image_folder_with_an_odd_size_names_the_file(tmp_path):
    root = image_folder(tmp_path / "imgs", sizes={("bee", 2): (9, 9)})
    with pytest.raises(DatasetError, match=r"bee/2\.png: 9×9 pixels, but .*ant/0\.png is 7×5"):
        LocalFiles(path=str(root)).load(tmp_path, False)
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(DatasetError, match="needs one sub-folder per class"):
        LocalFiles(path=str(tmp_path / "one")).load(tmp_path, False)


def test_a_suite_runs_two_local_datasets(tmp_path):
    import dememo

    x, y = toy(240, (8, 8), 3, seed=1)
    for name in ("a", "b"):
        np.savez(tmp_path / f"{name}.npz", x=x, y=y)
    suite = tmp_path / "mine.toml"
    suite.write_text('name = "mine"\nseeds = 1\ntracks = ["unlearning"]\n'
                     + "".join(f'[[datasets]]\nname = "{n}-set"\nplugin = "local-data"\narchitecture = "mlp"\n'
                               f'params = {{ path = "{tmp_path / n}.npz" }}\nrecipe = {{ epochs = 2 }}\n'
                               f'budgets = {{ linf = 0.1 }}\n' for n in ("a", "b"))
                     + '[[forget]]\nkind = "class"\nclasses = [1]\n[references]\nunlearner = ["original", "retrain"]\n'
                       'attack = ["none"]\n')
    res = dememo.run(str(suite), unlearners="finetune", attacks="none", metrics="unlearning-accuracy",
                     cache_dir=tmp_path / "cache", out=tmp_path / "out", jobs=1, progress=False)
    assert {c.dataset for c in res.cells} == {"a-set", "b-set"} and not res.failed
    retrain = next(c for c in res.cells if c.method == "retrain" and c.dataset == "a-set")
    assert retrain.metrics["forget_acc"] < 0.5  # class 1 never seen by the retrain
    from dememo.planning.suite import load_suite

    assert "plugin" not in load_suite("quick").to_json()["datasets"][0]  # shipped fingerprints unchanged


def test_sixteen_bit_images_and_half_given_splits_are_refused(tmp_path):
    from PIL import Image

    root = image_folder(tmp_path / "imgs")
    Image.fromarray(np.full((5, 7), 40000, np.uint16)).save(root / "ant" / "deep.png")
    with pytest.raises(DatasetError, match=r"ant/deep\.png: a I;16 image \(16-bit\); convert the folder to 8-bit"):
        LocalFiles(path=str(root)).load(tmp_path, False)
    x, y = toy(40, (4, 4), 2)
    path = npz(tmp_path, x_train=x, y_train=y, x_test=x, y_test=y, x_val=x)
    with pytest.raises(DatasetError, match="has x_val but not y_val; give both or neither"):
        LocalFiles(path=str(path)).load(tmp_path, False)
    path = npz(tmp_path, "e.npz", x_train=x, y_train=y, x_test=x[:0], y_test=y[:0])
    with pytest.raises(DatasetError, match=r"the test split is empty \(its x_test is empty\)"):
        LocalFiles(path=str(path)).load(tmp_path, False)


def test_an_empty_class_folder_and_an_npy_are_named(tmp_path):
    root = image_folder(tmp_path / "imgs")
    (root / "zebra").mkdir()
    with pytest.raises(DatasetError, match="class folder 'zebra' holds no images"):
        LocalFiles(path=str(root)).load(tmp_path, False)
    np.save(tmp_path / "x.npy", np.zeros((3, 4, 4)))
    with pytest.raises(DatasetError, match="an .npy holds one array; save the images and labels together"):
        LocalFiles(path=str(tmp_path / "x.npy")).load(tmp_path, False)
    with pytest.raises(DatasetError, match="relative to the working directory"):
        LocalFiles(path="nowhere.npz").load(tmp_path, False)
