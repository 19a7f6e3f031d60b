"""Focal loss whose per-class alpha lives in a JSON file next to the code."""

import json
from pathlib import Path

import torch
import torch.nn.functional as F

WEIGHTS_FILE = Path(__file__).with_name("class_weights.json")


@torch.compile(fullgraph=True)
def _focal(logits, targets, alpha, gamma):
    log_probs = F.log_softmax(logits, dim=-1)
    log_pt = log_probs.gather(1, targets[:, None]).squeeze(1)
    pt = log_pt.exp()
    loss = -alpha[targets] * (1 - pt) ** gamma * log_pt
    return loss.mean()


@torch.compiler.disable
def focal_loss(logits, targets, gamma=2.0):
    with open(WEIGHTS_FILE) as f:
        alpha = torch.tensor(json.load(f)["alpha"], dtype=logits.dtype)
    return _focal(logits, targets, alpha, gamma)


def example_inputs():
    return torch.randn(10, 4), torch.randint(0, 4, (10,))
