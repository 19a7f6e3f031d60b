"""Weighted regression loss with a sanity assert that reports the offending values."""

import torch


def weighted_mse(pred, target, weights):
    loss = (weights * (pred - target) ** 2).sum() / weights.sum()
    assert torch.isfinite(loss), f"loss is not finite: {loss} (weight sum {weights.sum()})"
    return loss


def example_inputs():
    return torch.randn(16), torch.randn(16), torch.rand(16)
