"""An encoder that records intermediate activations to disk when asked to."""

import torch
import torch.nn as nn

from io_utils import dump_tensor


class Encoder(nn.Module):
    def __init__(self, record_activations: bool = True) -> None:
        super().__init__()
        self.stem = nn.Conv1d(2, 4, kernel_size=3, padding=1)
        self.body = nn.Conv1d(4, 4, kernel_size=3, padding=1)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.record_activations = record_activations

    def _record(self, name, t):
        if self.record_activations:
            dump_tensor(name, t)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        self._record("stem", h)
        h = torch.relu(self.body(h)) + h
        self._record("body", h)
        return self.pool(h).squeeze(-1)


def example_inputs():
    return Encoder(), torch.randn(2, 2, 16)
