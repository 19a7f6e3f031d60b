"""Loss that skips corrupt batches with a warning instead of poisoning the weights."""

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F


class Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(10, 3)

    def forward(self, x):
        return self.proj(x)


@torch.compile(fullgraph=True)
def _loss(model, x, y):
    return F.smooth_l1_loss(model(x), y)


@torch.compile(fullgraph=True)
def _skipped(loss):
    return torch.zeros_like(loss)


@torch.compiler.disable
def compute_loss(model, x, y):
    loss = _loss(model, x, y)
    if not torch.isfinite(loss):
        warnings.warn("non-finite loss encountered; skipping this batch", RuntimeWarning)
        return _skipped(loss)
    return loss


def example_inputs():
    corrupt = bool(torch.rand(()) < 0.5)  # the data pipeline occasionally yields a corrupt label
    model = Head()
    x = torch.randn(4, 10)
    y = torch.randn(4, 3)
    if corrupt:
        y[1, 2] = float("nan")
    return model, x, y
