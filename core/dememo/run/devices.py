"""The run's device and determinism switch, shared by the command line and the executors' workers."""

from __future__ import annotations

import os

import torch

from dememo.errors import UserError


def set_deterministic() -> None:
    """Deterministic kernels everywhere (CUDA's cuBLAS needs a fixed workspace, set before it starts)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def resolve_device(name: str) -> torch.device:
    """``--device``: auto (CUDA when torch sees a GPU, else CPU), cpu, cuda, cuda:N or mps; one line when unusable."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    return device
