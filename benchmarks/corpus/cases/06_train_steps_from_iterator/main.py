"""Run a fixed number of steps pulling batches from a data-loader iterator."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x):
        return self.net(x)


def run_steps(model, loader_iter, num_steps):
    losses = []
    for _ in range(num_steps):
        x, y = next(loader_iter)
        losses.append(F.cross_entropy(model(x), y))
    return torch.stack(losses).mean()


def example_inputs():
    model = Classifier()
    batches = [(torch.randn(4, 8), torch.randint(0, 4, (4,))) for _ in range(4)]
    return model, iter(batches), 3
