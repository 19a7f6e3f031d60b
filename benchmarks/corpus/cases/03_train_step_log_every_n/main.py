"""Training-step loss with periodic logging through the module's logger."""

import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(12, 24), nn.GELU(), nn.Linear(24, 5))

    def forward(self, x):
        return self.body(x)


def train_step(model, batch, step, log_every=10):
    x, y = batch
    logits = model(x)
    loss = F.cross_entropy(logits, y, label_smoothing=0.1)
    if step % log_every == 0:
        logger.info("step %d: loss %.4f", step, loss.item())
    return loss


def example_inputs():
    model = Classifier()
    batch = (torch.randn(6, 12), torch.randint(0, 5, (6,)))
    return model, batch, 20
