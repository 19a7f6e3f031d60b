"""Binary classifier evaluation: BCE loss and ROC-AUC (Mann-Whitney ranks in Python)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


def roc_auc(scores, labels):
    ranked = sorted(zip(scores.tolist(), labels.tolist()))
    pos_rank_sum, n_pos = 0.0, 0
    for rank, (_, label) in enumerate(ranked, start=1):
        if label == 1:
            pos_rank_sum += rank
            n_pos += 1
    n_neg = len(ranked) - n_pos
    return torch.tensor((pos_rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluate(model, x, labels):
    logits = model(x).squeeze(-1)
    loss = F.binary_cross_entropy_with_logits(logits, labels.float())
    return loss, roc_auc(torch.sigmoid(logits), labels)


def example_inputs():
    x = torch.randn(24, 6)
    labels = torch.tensor([0, 1] * 12)
    return nn.Linear(6, 1), x, labels
