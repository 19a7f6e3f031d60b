"""Batch-norm style layer that reports how far one step moved its running mean."""

import torch
import torch.nn as nn


class DriftTrackingNorm(nn.Module):
    def __init__(self, dim: int = 6, momentum: float = 0.1) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(dim))

    def forward(self, x):
        before = self.running_mean.clone()  # a snapshot: the buffer is updated in place below
        self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(dim=0).detach())
        drift = (self.running_mean - before).norm()
        return x - self.running_mean, drift


def example_inputs():
    return DriftTrackingNorm(), torch.randn(5, 6)
