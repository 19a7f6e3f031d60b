"""Weighted regression loss with a sanity assert that reports the offending values."""

import torch


@torch.compile(fullgraph=True)
def _loss(pred, target, weights):
    return (weights * (pred - target) ** 2).sum() / weights.sum()


@torch.compiler.disable
def weighted_mse(pred, target, weights):
    loss = _loss(pred, target, weights)
    assert torch.isfinite(loss), f"loss is not finite: {loss} (weight sum {weights.sum()})"
    return loss


def example_inputs():
    return torch.randn(16), torch.randn(16), torch.rand(16)
