"""The GPU path's options, run on the CPU: bf16 autocast, torch.compile, deterministic mode, and cache keys
that do not move when the options are left at their defaults."""

from __future__ import annotations

import attrs
import pytest
import torch

from dememo.testing import tiny_context, tiny_splits
from dememo.training import Recipe

from support import bench, load


def _fit(recipe: Recipe, seed: int = 0):
    splits = tiny_splits()
    ctx = attrs.evolve(tiny_context(splits, seed=seed), recipe=recipe)
    model = ctx.new_model()
    history = ctx.fit(model, splits.train)
    return model, history, splits


def test_default_speed_options_stay_out_of_cache_keys():
    """Caches written before the options existed stay valid: the key holds them only when set."""
    assert set(Recipe().spec()) == {"epochs", "batch_size", "lr", "momentum", "weight_decay", "schedule", "warmup",
                                    "label_smoothing", "optimizer"}
    assert Recipe(precision="bf16").spec()["precision"] == "bf16" and Recipe(compile=True).spec()["compile"] is True


def test_bf16_autocast_trains_float32_weights_close_to_fp32():
    base = Recipe(epochs=4, batch_size=32, lr=0.05)
    fp32, h32, splits = _fit(base)
    bf16, h16, _ = _fit(attrs.evolve(base, precision="bf16"))
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    assert h16.column("loss")[-1] < h16.column("loss")[0]  # it learns
    assert abs(h16.column("loss")[-1] - h32.column("loss")[-1]) < 0.1  # rounding, not a different method
    acc = lambda m: float((m(splits.test.x).argmax(1) == splits.test.y).float().mean())  # noqa: E731
    assert abs(acc(bf16) - acc(fp32)) < 0.15


def test_compiled_training_matches_eager_training():
    """torch.compile (inductor, CPU) gives the same fit up to floating-point rounding (about 30 s: compiling)."""
    base = Recipe(epochs=2, batch_size=32, lr=0.05)
    eager, he, _ = _fit(base)
    try:
        compiled, hc, _ = _fit(attrs.evolve(base, compile=True))
    except Exception as exc:  # no C++ toolchain for inductor on this machine
        pytest.skip(f"torch.compile is not usable here: {type(exc).__name__}: {exc}")
    assert hc.column("loss") == pytest.approx(he.column("loss"), rel=1e-3, abs=1e-4)
    for a, b in zip(eager.state_dict().values(), compiled.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-4)
    assert list(eager.state_dict()) == list(compiled.state_dict())  # the uncompiled module's names


def test_deterministic_flag_is_recorded_and_runs(tiny_suite, tmp_path):
    proc = bench("--all", "--suite", str(tiny_suite), "--deterministic", "--poisoner", "none", "--metric", "clean-accuracy",
                 "--attack", "none", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = load(tmp_path / "out")
    assert results["environment"]["deterministic"] is True and results["cells"]
