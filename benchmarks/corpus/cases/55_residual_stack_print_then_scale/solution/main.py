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
            torch._higher_order_ops.print("block {0}: rms {1:.5f}, max {2:.3f}", i, h.pow(2).mean().sqrt().item(), h.abs().max().item())
            h.div_(2.0)  # after the print: the printed values are the ones before the rescale
        return h


def example_inputs():
    return ResidualStack(), torch.randn(4, 12)
