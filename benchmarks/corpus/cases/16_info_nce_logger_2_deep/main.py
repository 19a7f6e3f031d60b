"""SimCLR-style step: encode two views, InfoNCE loss from a sibling losses module."""

import logging

import torch
import torch.nn as nn

from losses import info_nce

logging.getLogger("contrastive").setLevel(logging.INFO)


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, 24), nn.ReLU(), nn.Linear(24, 8))

    def forward(self, x):
        return self.net(x)


def contrastive_step(encoder, view_a, view_b):
    za, zb = encoder(view_a), encoder(view_b)
    return info_nce(za, zb)


def example_inputs():
    x = torch.randn(6, 12)
    return Encoder(), x + 0.05 * torch.randn(6, 12), x + 0.05 * torch.randn(6, 12)
