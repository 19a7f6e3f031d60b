"""Top-1 accuracy computed with a Python counting helper."""

import torch


@torch.compile(fullgraph=True)
def _predictions(logits):
    return logits.argmax(dim=-1)


def _count_correct(preds, labels):
    return sum(int(p == t) for p, t in zip(preds, labels))


@torch.compiler.disable
def accuracy(logits, labels):
    preds = _predictions(logits)
    correct = _count_correct(preds.tolist(), labels.tolist())
    return correct / labels.numel()


def example_inputs():
    return torch.randn(20, 4), torch.randint(0, 4, (20,))
