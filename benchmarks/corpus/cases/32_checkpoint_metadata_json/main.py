"""Export a model head, writing a JSON metadata sidecar between backbone and head."""

import json

import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.head = nn.Linear(16, 2)


def export_head(model, x, run_name):
    features = model.backbone(x)
    meta = {
        "run": run_name,
        "feature_dim": features.shape[-1],
        "feature_norm": round(features.norm(dim=-1).mean().item(), 5),
    }
    with open(f"{run_name}_meta.json", "w") as f:
        json.dump(meta, f, indent=2)
    return model.head(features)


def example_inputs():
    return Model(), torch.randn(4, 8), "baseline"
