"""Multi-task loss over the configured tasks (deduplicated with a set), logged per task."""

import torch
import torch.nn.functional as F

TASKS = ("depth", "normals", "segmentation", "edges", "albedo", "depth")


def multi_task_loss(outputs, targets):
    total = 0.0
    for task in set(TASKS):
        loss = F.l1_loss(outputs[task], targets[task])
        print(f"{task}: {loss.item():.4f}")
        total = total + loss
    return total


def example_inputs():
    names = ("depth", "normals", "segmentation", "edges", "albedo")
    outputs = {name: torch.randn(2, 3) for name in names}
    targets = {name: torch.randn(2, 3) for name in names}
    return outputs, targets
