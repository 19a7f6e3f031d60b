"""A running-statistics normaliser that prints its buffer before the in-place update."""

import torch
import torch.nn as nn


class RunningNorm(nn.Module):
    def __init__(self, dim: int = 4, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x):
        if self.training:
            mean = x.mean(dim=0)
            var = x.var(dim=0, unbiased=False)
            print(f"running_mean before update: {self.running_mean}")
            self.running_mean.mul_(1 - self.momentum).add_(mean, alpha=self.momentum)
            self.running_var.mul_(1 - self.momentum).add_(var, alpha=self.momentum)
        return (x - self.running_mean) / (self.running_var + self.eps).sqrt()


def example_inputs():
    module = RunningNorm()
    module.running_mean.fill_(0.5)
    return module, torch.randn(6, 4) + 2.0
