"""Training-step loss with a module-level step counter that logs every other step."""

import torch
import torch.nn as nn
import torch.nn.functional as F

_global_step = 0


def train_step(model, x, y, log_every=2):
    global _global_step
    _global_step += 1
    loss = F.mse_loss(model(x), y)
    if _global_step % log_every == 0:
        print(f"step {_global_step}: loss {loss.item():.4f}")
    return loss


def example_inputs():
    return nn.Linear(4, 2), torch.randn(5, 4), torch.randn(5, 2)
