"""Residual stack that logs each block's output scale, then rescales the activations in place."""

import torch
import torch.nn as nn


class ResidualStack(nn.Module):
    def __init__(self, dim: int = 12, depth: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(dim, dim), nn.SiLU()) for _ in range(depth))

    def forward(self, x):
        h = x.clone()
        for i, block in enumerate(self.blocks):
            h = h + block(h)
            print(f"block {i}: rms {h.pow(2).mean().sqrt().item():.5f}, max {h.abs().max().item():.3f}")
            h.div_(2.0)  # after the print: the printed values are the ones before the rescale
        return h


def example_inputs():
    return ResidualStack(), torch.randn(4, 12)
