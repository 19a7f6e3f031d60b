"""Tabular feature standardisation with statistics stored next to the code."""

import json
from pathlib import Path

import torch

STATS_PATH = Path(__file__).with_name("feature_stats.json")


def standardize(features):
    features = torch.nan_to_num(features, nan=0.0)
    clipped = features.clamp(-10.0, 10.0)
    with STATS_PATH.open() as f:
        stats = json.load(f)
    mean = torch.tensor(stats["mean"])
    std = torch.tensor(stats["std"])
    return (clipped - mean) / std


def example_inputs():
    x = 4 * torch.randn(5, 6)
    x[0, 3] = float("nan")
    return (x,)
