"""Generic views of a classifier that many methods need: its head, its penultimate features, its layers.

dememo's convention (every shipped architecture follows it, and third-party ones should): the model's
output is produced by its last ``nn.Linear`` (the *head*), whose inputs are the *penultimate features*.
Methods that work on the head over frozen features (deep feature reweighting, certified Newton
unlearning, prototype relearning) and methods that act on "the last k layers" (EU-k, CF-k) use these
helpers, so they work on any architecture that follows the convention and fail with a clear message on
one that does not.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from dememo.data import Data
from dememo.hashing import digest
from dememo.training import eval_batch_size


@contextlib.contextmanager
def evaluating(*models: nn.Module) -> Iterator[None]:
    """Put ``models`` in evaluation mode for the block and restore each one's previous mode afterwards
    (also on error): for probes, attacks and curvature passes on a model the caller keeps using."""
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)


def last_linear(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` in ``model.modules()`` (the head); a clear error if there is none."""
    found = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ValueError(f"this method needs a model whose output layer is an nn.Linear; {type(model).__name__} has none")
    return found[-1]


@torch.no_grad()
def features(model: nn.Module, x: torch.Tensor, layer: nn.Linear | None = None,
             batch_size: int | None = None) -> torch.Tensor:
    """The inputs of the head (``layer``, default ``last_linear(model)``) for images ``x``, N×in_features,
    computed in evaluation mode. Checks that the head's output *is* the model's output, so that working on
    the head over these features is working on the model."""
    layer = last_linear(model) if layer is None else layer
    captured: dict[str, torch.Tensor] = {}

    def hook(module, inputs, output):
        captured["in"], captured["out"] = inputs[0], output

    handle = layer.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        out = []
        batch_size = batch_size or eval_batch_size(x)
        for i in range(0, len(x), batch_size):
            logits = model(x[i : i + batch_size])
            if "in" not in captured or captured["out"].shape != logits.shape or not torch.allclose(captured["out"], logits):
                raise ValueError("this method needs the model's last nn.Linear to produce its output (nothing after it)")
            out.append(captured.pop("in").reshape(len(logits), -1))
            captured.clear()
        return torch.cat(out) if out else torch.empty(0, layer.in_features, device=x.device)
    finally:
        handle.remove()
        model.train(was_training)


def features_as_data(feats: torch.Tensor, data: Data, tag: str) -> Data:
    """Features N×F as ``Data`` of N×F×1×1 "images" with ``data``'s labels and indices, so a head can be
    trained with ``ctx.fit(nn.Sequential(nn.Flatten(), head), ...)``."""
    return Data(x=feats.view(len(feats), -1, 1, 1).contiguous(), y=data.y, num_classes=data.num_classes,
                fingerprint=digest([data.fingerprint, tag]), index=data.index)


def layers(model: nn.Module) -> list[nn.Module]:
    """The model's parameterised leaf modules in forward-definition order (convolutions, linears,
    normalisation layers ...): what "the last k layers" counts. Normalisation layers count as layers."""
    return [m for m in model.modules() if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """Convolution and linear layers only (normalisation layers excluded): the usual meaning of "layer"
    in EU-k / CF-k (Goel et al., 2022) and in depth counts."""
    return [m for m in layers(model) if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]


@torch.no_grad()
def reinitialise(module: nn.Module, generator: torch.Generator) -> None:
    """Re-draw ``module``'s own parameters from PyTorch's default initialisation, with ``generator``:
    Kaiming-uniform weights U(±1/√fan_in) and biases U(±1/√fan_in) for linear and convolution layers
    (the ``reset_parameters`` distributions, drawn here so the seed is the caller's); ones and zeros for
    normalisation layers' affine parameters."""
    g = generator
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        fan_in = module.weight[0].numel()
        bound = 1.0 / math.sqrt(fan_in)
        module.weight.copy_((torch.rand(module.weight.shape, generator=g, device=g.device) * 2 - 1).to(module.weight) * bound)
        if module.bias is not None:
            module.bias.copy_((torch.rand(module.bias.shape, generator=g, device=g.device) * 2 - 1).to(module.bias) * bound)
        return
    if isinstance(module, (nn.GroupNorm, nn.LayerNorm, nn.modules.batchnorm._NormBase)):
        if getattr(module, "weight", None) is not None:
            module.weight.fill_(1.0)
        if getattr(module, "bias", None) is not None:
            module.bias.zero_()
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            module.reset_running_stats()
        return
    raise ValueError(f"cannot re-initialise a {type(module).__name__}: only linear, convolution and normalisation layers")
