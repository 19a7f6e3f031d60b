"""Segmentation evaluation: confusion matrix via numpy, then per-class IoU."""

import numpy as np
import torch


def confusion_matrix(preds, targets, num_classes):
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (targets.cpu().numpy(), preds.cpu().numpy()), 1)
    return torch.from_numpy(cm)


def evaluate_segmentation(logits, targets):
    preds = logits.argmax(dim=1)
    cm = confusion_matrix(preds.flatten(), targets.flatten(), logits.shape[1])
    inter = cm.diag()
    union = cm.sum(0) + cm.sum(1) - inter
    iou = inter / union.clamp(min=1)
    return iou.mean(), cm


def example_inputs():
    return torch.randn(2, 4, 6, 6), torch.randint(0, 4, (2, 6, 6))
