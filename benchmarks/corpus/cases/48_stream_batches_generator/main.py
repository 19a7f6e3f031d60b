"""Stream standardised mini-batches out of a feature matrix."""

import torch


def stream_batches(features, batch_size=4):
    mean, std = features.mean(dim=0), features.std(dim=0)
    for start in range(0, features.shape[0], batch_size):
        yield (features[start:start + batch_size] - mean) / std


def example_inputs():
    return (torch.randn(10, 3),)
