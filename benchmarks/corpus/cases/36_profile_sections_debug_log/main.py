"""Encoder/decoder forward with section timings sent to a (disabled) debug log."""

import logging
import time

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)


class EncoderDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(12, 6), nn.ReLU())
        self.decoder = nn.Linear(6, 12)


def forward_profiled(model, x):
    t0 = time.perf_counter()
    h = model.encoder(x)
    t1 = time.perf_counter()
    out = model.decoder(h)
    t2 = time.perf_counter()
    logger.debug("encoder %.2f ms, decoder %.2f ms", (t1 - t0) * 1e3, (t2 - t1) * 1e3)
    return out


def example_inputs():
    return EncoderDecoder(), torch.randn(3, 12)
