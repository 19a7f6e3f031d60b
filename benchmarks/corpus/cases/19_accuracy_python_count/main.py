"""Top-1 accuracy computed with a Python counting helper."""

import torch


def _count_correct(preds, labels):
    return sum(int(p == t) for p, t in zip(preds, labels))


def accuracy(logits, labels):
    preds = logits.argmax(dim=-1)
    correct = _count_correct(preds.tolist(), labels.tolist())
    return correct / labels.numel()


def example_inputs():
    return torch.randn(20, 4), torch.randint(0, 4, (20,))
