"""``cifar10``, ``cifar100``, ``mnist``, ``fashion-mnist``, ``svhn``: the standard image benchmarks, read
by torchvision's dataset classes from the files their authors publish.

Source and layout. Each dataset lives under its own folder ``<data-dir>/<name>`` (the CLI's ``--data-dir``,
default ``~/.cache/dememo/data``), which is torchvision's ``root``, so the five never collide:

- ``cifar10``: ``cifar10/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`` (the Python
  pickles of Krizhevsky's CIFAR-10; 50,000 train / 10,000 test, 3×32×32, 10 classes);
- ``cifar100``: ``cifar100/cifar-100-python/{train,test,meta}`` (fine labels, 100 classes);
- ``mnist``: ``mnist/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (LeCun's idx files,
  uncompressed; 60,000 / 10,000, 1×28×28);
- ``fashion-mnist``: ``fashion-mnist/FashionMNIST/raw/`` with the same idx file names (Zalando);
- ``svhn``: ``svhn/{train,test}_32x32.mat`` (Netzer et al., cropped digits; 73,257 / 26,032, 3×32×32;
  the file's label 10 is digit 0, which torchvision maps to 0; the ``extra`` set is not used).

Files are fetched only with ``--download`` (torchvision's own downloader, which verifies the published
MD5 sums); without it, missing files are a ``DatasetError`` that names the folder and the fix. A file
that is present but corrupt or truncated (wrong MD5 for CIFAR/SVHN, an idx file whose length disagrees
with its header for MNIST) is a ``DatasetError`` that names the file, and so is one whose content is not
what the format holds (images that are not uint8, shapes that differ between the splits, labels out of
range): dataset files are untrusted data.

CIFAR pickles are never given to ``pickle.load``. The official batches are Python pickles, and
torchvision reads them with a plain ``pickle.load`` — which runs whatever code a hostile file asks for.
dememo reads them itself, after the MD5 check, with an unpickler whose ``find_class`` resolves only the
names a CIFAR batch needs (:data:`PICKLE_GLOBALS`: NumPy's array reconstruction, ``numpy.dtype``,
``numpy.ndarray`` and the byte codec of protocol-2 pickles); any other reference (``os.system``,
``builtins.eval``...) is refused before anything is called, with a one-line ``DatasetError`` naming it.
The unpickled batch must be a dict whose ``data`` is a uint8 N×3072 array and whose ``labels`` (or
``fine_labels``) are N integers.

Conversion. The raw uint8 arrays torchvision holds (``data``/``targets``, SVHN's ``labels``) are turned
into float32 N×C×H×W in [0, 1] by one vectorised division by 255 — never image by image through PIL —
and int64 labels.

Splits. Validation is a fixed held-out part of the *official training set*: ``val_size`` images (default
5,000) chosen by a random permutation seeded with ``split_seed``; the rest is ``train``, kept in the
official order. The official test set is ``test``, untouched. ``subset`` > 0 keeps only that many
training images, a seeded random choice (the next ones in the same permutation, so a smaller subset is
contained in a larger one and the validation split does not change), for quick experiments.

Budgets. CIFAR-10, CIFAR-100 and SVHN: the unlearnable-example papers' defaults — L∞ 8/255 (EM, REM, TAP
and others on all three), L2 1.0 (AR; LSP uses ≈ 1.0–1.3), L0 1 pixel (OPS). MNIST and Fashion-MNIST:
L∞ 0.3, the standard MNIST radius since Madry et al. (ICLR'18); L2 2.0, the MNIST ℓ2 radius of the
multiple-perturbation robustness papers (Tramèr & Boneh, NeurIPS'19; Maini et al., ICML'20), which
pair it with ℓ∞ 0.3; L0 1 pixel (OPS). 8/255 is not used for the 28×28 sets: their pixels are nearly
binary, and that radius is far below the perturbations the MNIST literature considers meaningful.
"""

from __future__ import annotations

import abc
import importlib.util
import io
import pickle
from pathlib import Path
from typing import Any, ClassVar

import attrs
import torch

import dememo
from dememo import validate

FIX = "run with --download (needs network) or put the files in {where}"


@attrs.define
class TorchvisionDataset(dememo.DatasetSource, abc.ABC):
    """Base of the torchvision-backed datasets: files, split and conversion shared by all five. Abstract:
    each on-disk format (CIFAR pickles, idx files, SVHN's .mat) says which files it reads and how."""

    val_size: int = 5000
    split_seed: int = 0
    subset: int = 0

    title: ClassVar[str] = ""          # the dataset's usual name, for messages
    tv_class: ClassVar[str] = ""       # the class in torchvision.datasets
    folder: ClassVar[str] = ""         # where the files lie, relative to torchvision's root
    num_classes: ClassVar[int] = 10

    def __attrs_post_init__(self) -> None:
        validate.at_least(1, val_size=self.val_size)
        validate.non_negative(about="0 = the whole training set", subset=self.subset)

    # -- per format -----------------------------------------------------------------------------------

    @abc.abstractmethod
    def expected(self, tv: Any) -> list[tuple[str, str | None]]:
        """The files torchvision reads, relative to ``folder``, each with its MD5 (None: not checked)."""

    @abc.abstractmethod
    def read(self, tv: Any, root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images N×C×H×W and int64 labels of the official train or test set."""

    def bad_file(self, tv: Any, where: Path) -> tuple[Path, str] | None:
        """The first file that fails its MD5 check, if any, and why."""
        from torchvision.datasets.utils import check_integrity

        for name, md5 in self.expected(tv):
            if md5 is not None and not check_integrity(str(where / name), md5):
                return where / name, "its MD5 differs from the published file's"
        return None

    # -- shared ---------------------------------------------------------------------------------------

    def load(self, data_dir: Path, download: bool) -> dememo.Splits:
        import torchvision.datasets

        tv = getattr(torchvision.datasets, self.tv_class)
        root = Path(data_dir).expanduser() / self.name
        where = root / self.folder if self.folder else root
        missing = [n for n, _ in self.expected(tv) if not (where / n).is_file()]
        if missing and not download:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise dememo.DatasetError(
                f"{self.name}: {self.title} files not found in {where} ({missing[0]}{more} missing); "
                + FIX.format(where=where))
        try:
            x_train, y_train = self.read(tv, root, True, download)
            x_test, y_test = self.read(tv, root, False, download)
        except dememo.DatasetError:
            raise
        except Exception as exc:
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if missing:  # only reachable with download=True
                raise dememo.DatasetError(
                    f"{self.name}: downloading {self.title} into {root} failed ({cause}); check the network, "
                    f"or put the files in {where}") from exc
            bad = self.bad_file(tv, where)
            what, why = (f"file {bad[0]} is", bad[1]) if bad else (f"the {self.title} files in {where} are", cause)
            raise dememo.DatasetError(
                f"{self.name}: {what} corrupt or truncated ({why}); delete it and "
                + FIX.format(where=where)) from exc
        for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
            shape = tuple(x.shape)
            if x.dtype != torch.uint8 or x.ndim != 4 or shape[1] not in (1, 3) or min(shape[2:], default=0) < 1:
                raise dememo.DatasetError(
                    f"{self.name}: the {split} files in {where} do not hold {self.title} images (uint8 N×C×H×W "
                    f"expected, got {str(x.dtype).removeprefix('torch.')} {'×'.join(map(str, shape))}); "
                    + FIX.format(where=where))
            if y.ndim != 1 or len(x) != len(y) or len(y) == 0 or int(y.min()) < 0 or int(y.max()) >= self.num_classes:
                raise dememo.DatasetError(
                    f"{self.name}: the {split} files in {where} do not hold {self.title} (labels outside "
                    f"0..{self.num_classes - 1} or counts that disagree); " + FIX.format(where=where))
        if x_train.shape[1:] != x_test.shape[1:]:
            raise dememo.DatasetError(
                f"{self.name}: the train and test files in {where} hold images of different shapes "
                f"({'×'.join(map(str, x_train.shape[1:]))} and {'×'.join(map(str, x_test.shape[1:]))}); "
                + FIX.format(where=where))
        return self.split(x_train, y_train, x_test, y_test)

    def split(self, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
              y_test: torch.Tensor) -> dememo.Splits:
        n = len(y_train)
        if self.val_size >= n:
            raise dememo.DatasetError(
                f"{self.name}: val_size={self.val_size} leaves no training images (the training set has {n})")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        val, rest = order[: self.val_size], order[self.val_size :]
        if self.subset:
            if self.subset > len(rest):
                raise dememo.DatasetError(
                    f"{self.name}: subset={self.subset} exceeds the {len(rest)} training images left "
                    f"after val_size={self.val_size}")
            rest = rest[: self.subset]
        train = rest.sort().values

        def make(x: torch.Tensor, y: torch.Tensor, part: str) -> dememo.Data:
            return dememo.Data.from_tensors(x.to(torch.float32).div_(255.0), y.to(torch.int64),
                                            self.num_classes, tag=f"{self.name}:{part}")

        return dememo.Splits(train=make(x_train[train], y_train[train], "train"),
                             val=make(x_train[val], y_train[val], "val"),
                             test=make(x_test, y_test, "test"))


# -- CIFAR ------------------------------------------------------------------------------------------------


def _pickle_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR batch may name, resolved to objects here (never imported by name): NumPy's
    array reconstruction under its NumPy 1 and 2 module names, ``ndarray``, ``dtype`` and its scalar
    constructor, and ``_codecs.encode``, which protocol-2 pickles use for raw bytes."""
    import _codecs

    import numpy as np

    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    scalar = np.float64(0).__reduce__()[0]
    out: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                       ("_codecs", "encode"): _codecs.encode}
    for core in ("numpy.core", "numpy._core"):
        out[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        out[(f"{core}.multiarray", "scalar")] = scalar
        out[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return out


#: (module, name) → object: what :class:`BatchUnpickler` lets a CIFAR pickle reference (filled on first use)
PICKLE_GLOBALS: dict[tuple[str, str], Any] = {}


class RefusedPickle(Exception):
    """A pickle referenced a global outside :data:`PICKLE_GLOBALS` (nothing was called)."""


class BatchUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only :data:`PICKLE_GLOBALS`: data in, never code run."""

    def find_class(self, module: str, name: str) -> Any:
        if not PICKLE_GLOBALS:
            PICKLE_GLOBALS.update(_pickle_globals())
        try:
            return PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedPickle(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickle("a persistent id")


def read_batch(path: Path, dataset: str, title: str, fix: str) -> tuple[Any, Any]:
    """The ``data`` (uint8 N×3072) and labels (N ints, ``labels`` or CIFAR-100's ``fine_labels``) of one
    CIFAR batch, unpickled with :class:`BatchUnpickler`; anything else is a one-line DatasetError."""
    import numpy as np

    def bad(why: str) -> dememo.DatasetError:
        return dememo.DatasetError(f"{dataset}: {path} is not a {title} batch ({why}); delete it and {fix}")

    raw = path.read_bytes()  # parsed from memory: a length in the file cannot make a read allocate more
    try:
        entry = BatchUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except RefusedPickle as exc:
        raise dememo.DatasetError(
            f"{dataset}: {path} is refused: the pickle references {exc}, which a {title} batch never does "
            f"(dememo does not run code from data files); delete it and {fix}") from None
    except RecursionError:
        raise bad("its pickle is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure of untrusted bytes is the file's fault
        cause = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise bad(f"its pickle is truncated or corrupt: {cause}") from None
    if not isinstance(entry, dict):
        raise bad(f"it holds a {type(entry).__name__}, not a dict")
    data = entry.get("data")
    labels = entry["labels"] if "labels" in entry else entry.get("fine_labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        what = f"a {data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise bad(f"'data' must be a uint8 N×3072 array, got {what}")
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
        y = labels.astype(np.int64)
    elif isinstance(labels, list) and all(type(v) is int and -(2**63) <= v < 2**63 for v in labels):
        y = np.array(labels, dtype=np.int64).reshape(-1)
    else:
        raise bad("its labels are not a list of integers")
    if len(y) != len(data):
        raise bad(f"{len(data)} images but {len(y)} labels")
    return data, y


@attrs.define
class Cifar10(TorchvisionDataset):
    """CIFAR-10 (torchvision): 3×32×32, 10 classes; val = 5,000 held out of the 50,000 training images."""

    name: ClassVar[str] = "cifar10"
    version: ClassVar[str] = "1"
    budgets: ClassVar[dict[str, float]] = {"linf": 8 / 255, "l2": 1.0, "l0": 1}
    title: ClassVar[str] = "CIFAR-10"
    tv_class: ClassVar[str] = "CIFAR10"
    folder: ClassVar[str] = "cifar-10-batches-py"

    def expected(self, tv: Any) -> list[tuple[str, str | None]]:
        return [(n, md5) for n, md5 in tv.train_list + tv.test_list] + [(tv.meta["filename"], tv.meta["md5"])]

    def read(self, tv: Any, root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """torchvision's file list, MD5 check and downloader; the batches read by :func:`read_batch`
        (torchvision's own reader would ``pickle.load`` them)."""
        import sys

        import numpy as np
        from torchvision.datasets.utils import check_integrity

        where = root / self.folder
        if download and self.bad_file(tv, where) is not None:  # missing or damaged: fetch the archive again,
            fetch = sys.modules[tv.__module__].download_and_extract_archive  # as torchvision's CIFAR does
            fetch(tv.url, str(root), filename=tv.filename, md5=tv.tgz_md5)
        parts = tv.train_list if train else tv.test_list
        for name, md5 in parts:
            if not check_integrity(str(where / name), md5):
                raise RuntimeError("Dataset not found or corrupted")  # load() names the file
        fix = FIX.format(where=where)
        batches = [read_batch(where / name, self.name, self.title, fix) for name, _ in parts]
        x = np.concatenate([b[0] for b in batches]).reshape(-1, 3, 32, 32)
        return torch.from_numpy(x), torch.from_numpy(np.concatenate([b[1] for b in batches]))


@attrs.define
class Cifar100(Cifar10):
    """CIFAR-100 (torchvision): 3×32×32, 100 fine classes; val = 5,000 held out of the 50,000 training images."""

    name: ClassVar[str] = "cifar100"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "CIFAR-100"
    tv_class: ClassVar[str] = "CIFAR100"
    folder: ClassVar[str] = "cifar-100-python"
    num_classes: ClassVar[int] = 100


# -- MNIST-like (idx files) ---------------------------------------------------------------------------------

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@attrs.define
class Mnist(TorchvisionDataset):
    """MNIST (torchvision): 1×28×28, 10 classes; val = 5,000 held out of the 60,000 training images."""

    name: ClassVar[str] = "mnist"
    version: ClassVar[str] = "1"
    budgets: ClassVar[dict[str, float]] = {"linf": 0.3, "l2": 2.0, "l0": 1}
    title: ClassVar[str] = "MNIST"
    tv_class: ClassVar[str] = "MNIST"
    folder: ClassVar[str] = "MNIST/raw"

    def expected(self, tv: Any) -> list[tuple[str, str | None]]:
        return [(n, None) for n in IDX_FILES]

    def read(self, tv: Any, root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
        ds = tv(str(root), train=train, download=download)
        return ds.data.unsqueeze(1), ds.targets.to(torch.int64)

    def bad_file(self, tv: Any, where: Path) -> tuple[Path, str] | None:
        """The first idx file whose length disagrees with the sizes in its header."""
        for n in IDX_FILES:
            path = where / n
            size = path.stat().st_size
            with open(path, "rb") as f:
                head = f.read(4)
                dims = head[3] if len(head) == 4 else 0
                shape = f.read(4 * dims)
            if len(head) < 4 or len(shape) < 4 * dims:
                return path, "its idx header is incomplete"
            count = 1
            for i in range(dims):
                count *= int.from_bytes(shape[4 * i : 4 * i + 4], "big")
            if size != 4 + 4 * dims + count:  # uint8 payload
                return path, f"{size} bytes where its idx header announces {4 + 4 * dims + count}"
        return None


@attrs.define
class FashionMnist(Mnist):
    """Fashion-MNIST (torchvision): 1×28×28, 10 classes; val = 5,000 held out of the 60,000 training images."""

    name: ClassVar[str] = "fashion-mnist"
    version: ClassVar[str] = "1"
    title: ClassVar[str] = "Fashion-MNIST"
    tv_class: ClassVar[str] = "FashionMNIST"
    folder: ClassVar[str] = "FashionMNIST/raw"


# -- SVHN -------------------------------------------------------------------------------------------------

@attrs.define
class Svhn(TorchvisionDataset):
    """SVHN cropped digits (torchvision): 3×32×32, 10 classes; val = 5,000 held out of the 73,257 training images."""

    name: ClassVar[str] = "svhn"
    version: ClassVar[str] = "1"
    budgets: ClassVar[dict[str, float]] = {"linf": 8 / 255, "l2": 1.0, "l0": 1}
    title: ClassVar[str] = "SVHN"
    tv_class: ClassVar[str] = "SVHN"

    def expected(self, tv: Any) -> list[tuple[str, str | None]]:
        return [(tv.split_list[s][1], tv.split_list[s][2]) for s in ("train", "test")]

    def read(self, tv: Any, root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if importlib.util.find_spec("scipy") is None:  # torchvision's SVHN reader needs it
            raise dememo.DatasetError("svhn: reading SVHN's .mat files needs scipy; install scipy")
        ds = tv(str(root), split="train" if train else "test", download=download)
        return torch.from_numpy(ds.data), torch.from_numpy(ds.labels).to(torch.int64)


@dememo.hookimpl
def register_datasets(register):
    for cls in (Cifar10, Cifar100, Mnist, FashionMnist, Svhn):
        register(cls)
