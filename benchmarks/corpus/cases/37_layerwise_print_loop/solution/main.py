"""Residual MLP that prints the activation norm after every layer."""

import torch.nn as nn
import torch.nn.functional as F
import torch


@torch.compile(fullgraph=True)
def _residual(layer, x):
    return F.gelu(layer(x)) + x


class DeepMLP(nn.Module):
    def __init__(self, dim: int = 16, depth: int = 4) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(depth))
        self.verbose = True

    @torch.compiler.disable
    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = _residual(layer, x)
            if self.verbose:
                print(f"layer {i}: |x|={x.norm().item():.3f}")
        return x


def example_inputs():
    return DeepMLP(), torch.randn(3, 16)
