"""``--executor ray``: a real local Ray instance runs the cells and gives the in-process results.

The tiny suite narrowed to a dozen cells over two seeds (two Ray tasks, one per dataset and seed), each run
from its own empty cache; every cell's key, status and metrics must equal the in-process run's (the
workers use the driver's thread count, so even floating-point summation order is the same). About 30 s,
most of it Ray's start-up. Skipped with the reason where Ray is not installed (`pip install 'dememo[ray]'`;
CI installs it).
"""

from __future__ import annotations

import pytest

from support import bench, load

#: the slow group (`python -m pytest -m slow`, run by .ci/run after the default fast group)
pytestmark = pytest.mark.slow

pytest.importorskip("ray", reason="Ray is not installed: pip install 'dememo[ray]' (CI installs it)")

NARROW = ["--poisoner", "none", "--poisoner", "random-noise", "--unlearner", "finetune", "--attack", "none",
          "--metric", "clean-accuracy", "--metric", "unlearning-accuracy", "--metric", "mia-efficacy", "--seeds", "2",
          "--quiet"]


def test_ray_run_equals_the_in_process_run(tiny_suite, tmp_path):
    local = bench("--all", "--suite", str(tiny_suite), *NARROW, "--out", str(tmp_path / "local"),
                  "--cache-dir", str(tmp_path / "cache-local"))
    assert local.returncode == 0, local.stderr[-2000:]
    remote = bench("--all", "--suite", str(tiny_suite), *NARROW, "--executor", "ray", "--out", str(tmp_path / "ray"),
                   "--cache-dir", str(tmp_path / "cache-ray"), timeout=300)
    assert remote.returncode == 0, remote.stderr[-3000:]
    a = {c["key"]: c for c in load(tmp_path / "local")["cells"]}
    b = {c["key"]: c for c in load(tmp_path / "ray")["cells"]}
    assert a.keys() == b.keys() and len(a) >= 10
    assert {c["seed"] for c in a.values()} == {0, 1}
    for key, cell in a.items():
        assert b[key]["status"] == cell["status"] == "ok"
        assert b[key]["metrics"] == cell["metrics"], cell["method"]
    # the workers wrote the shared cache: a second in-process run over it computes nothing
    again = bench("--all", "--suite", str(tiny_suite), *NARROW, "--out", str(tmp_path / "again"),
                  "--cache-dir", str(tmp_path / "cache-ray"))
    assert again.returncode == 0 and f"{len(a)} fully from cache" in again.stderr.replace("(", "").replace(")", "")


def test_unknown_cluster_address_is_a_clear_error(tiny_suite, tmp_path):
    proc = bench("--all", "--suite", str(tiny_suite), *NARROW, "--executor", "ray", "--address", "127.0.0.1:1",
                 "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), timeout=300)
    assert proc.returncode == 2
    assert "cannot reach a Ray cluster at '127.0.0.1:1'" in proc.stderr
