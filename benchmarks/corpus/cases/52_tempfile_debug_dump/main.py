"""Debug forward that dumps activations to a fresh temporary file and says where."""

import os
import tempfile

import torch
import torch.nn as nn


def debug_forward(model, x):
    h = model(x)
    fd, path = tempfile.mkstemp(prefix="activations-", suffix=".pt", dir=".")
    os.close(fd)
    torch.save(h.detach(), path)
    print(f"saved activations to {os.path.basename(path)}")
    return h


def example_inputs():
    return nn.Linear(4, 2), torch.randn(3, 4)
