"""The environment fingerprint recorded with every result: what produced these numbers."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

import torch


def dememo_version() -> str:
    try:
        return metadata.version("dememo")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def fingerprint(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "dememo": dememo_version(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }
    for dist in ("numpy", "scikit-learn", "torchvision"):
        try:
            env[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            env[dist] = None
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env
