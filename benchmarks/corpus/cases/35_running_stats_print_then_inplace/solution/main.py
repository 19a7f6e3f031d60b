"""A running-statistics normaliser that prints its buffer before the in-place update."""

import torch
import torch.nn as nn


@torch.compile(fullgraph=True)
def _batch_stats(x):
    return x.mean(dim=0), x.var(dim=0, unbiased=False)


@torch.compile(fullgraph=True)
def _update(module, mean, var):
    module.running_mean.mul_(1 - module.momentum).add_(mean, alpha=module.momentum)
    module.running_var.mul_(1 - module.momentum).add_(var, alpha=module.momentum)


@torch.compile(fullgraph=True)
def _normalize(module, x):
    return (x - module.running_mean) / (module.running_var + module.eps).sqrt()


class RunningNorm(nn.Module):
    def __init__(self, dim: int = 4, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    @torch.compiler.disable
    def forward(self, x):
        if self.training:
            mean, var = _batch_stats(x)
            print(f"running_mean before update: {self.running_mean}")
            _update(self, mean, var)
        return _normalize(self, x)


def example_inputs():
    module = RunningNorm()
    module.running_mean.fill_(0.5)
    return module, torch.randn(6, 4) + 2.0
