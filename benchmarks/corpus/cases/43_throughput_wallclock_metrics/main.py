"""Training-step loss that also reports throughput, measured with the wall clock."""

import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def train_step(model, x, y):
    start = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    elapsed = time.perf_counter() - start
    return {"loss": loss, "samples_per_sec": x.shape[0] / elapsed, "step_time_ms": elapsed * 1e3}


def example_inputs():
    return nn.Linear(6, 3), torch.randn(8, 6), torch.randint(0, 3, (8,))
