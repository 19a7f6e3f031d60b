"""Validation over micro-batches with a per-batch progress line."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))

    def forward(self, x):
        return self.net(x)


@torch.no_grad()
def evaluate(model, batches):
    total, count = 0.0, 0
    for i, (x, y) in enumerate(batches):
        loss = F.cross_entropy(model(x), y, reduction="sum")
        total = total + loss
        count += y.numel()
        print(f"  batch {i}: loss {loss.item() / y.numel():.4f}")
    return total / count


def example_inputs():
    model = Classifier()
    batches = [(torch.randn(5, 6), torch.randint(0, 3, (5,))) for _ in range(3)]
    return model, batches
