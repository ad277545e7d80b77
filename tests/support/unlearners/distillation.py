"""Helpers shared by unlearners/test_bad_teacher.py, unlearners/test_spotter.py."""

from __future__ import annotations

import numpy as np


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """Σ_c p_c log(p_c / q_c) with 0·log 0 = 0."""
    return float(sum(pc * (np.log(pc) - np.log(qc)) for pc, qc in zip(p, q, strict=True) if pc > 0))
