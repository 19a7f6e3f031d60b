"""Training-step loss that appends a formatted line to a caller-owned history list."""

import torch
import torch.nn as nn
import torch.nn.functional as F


def train_step(model, x, y, history):
    loss = F.cross_entropy(model(x), y)
    history.append("loss=%.4f" % loss.item())
    return loss


def example_inputs():
    return nn.Linear(5, 3), torch.randn(7, 5), torch.randint(0, 3, (7,)), ["loss=1.0986"]
