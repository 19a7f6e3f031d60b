"""A small transformer whose blocks log activation statistics from a debug module."""

import torch
import torch.nn as nn

from layers import Block


class Transformer(nn.Module):
    def __init__(self, dim: int = 16, depth: int = 2) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, f"block{i}") for i in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def example_inputs():
    return Transformer(), torch.randn(2, 5, 16)
