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


@torch.compile(fullgraph=True)
def _mean_loss(model, batches):
    losses = [F.cross_entropy(model(x), y) for x, y in batches]
    return torch.stack(losses).mean()


@torch.compiler.disable
def run_steps(model, loader_iter, num_steps):
    batches = list(loader_iter)[:num_steps]
    return _mean_loss(model, batches)


def example_inputs():
    model = Classifier()
    batches = [(torch.randn(4, 8), torch.randint(0, 4, (4,))) for _ in range(4)]
    return model, iter(batches), 3
