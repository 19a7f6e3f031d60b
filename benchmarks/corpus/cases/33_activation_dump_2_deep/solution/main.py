"""An encoder that records intermediate activations to disk when asked to."""

import torch
import torch.nn as nn

from io_utils import dump_tensor


@torch.compile(fullgraph=True)
def _stem(encoder, x):
    return torch.relu(encoder.stem(x))


@torch.compile(fullgraph=True)
def _body(encoder, h):
    return torch.relu(encoder.body(h)) + h


@torch.compile(fullgraph=True)
def _pool(encoder, h):
    return encoder.pool(h).squeeze(-1)


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

    @torch.compiler.disable
    def forward(self, x):
        h = _stem(self, x)
        self._record("stem", h)
        h = _body(self, h)
        self._record("body", h)
        return _pool(self, h)


def example_inputs():
    return Encoder(), torch.randn(2, 2, 16)
