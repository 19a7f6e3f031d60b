"""Forward + loss of a classifier training step; backward and the optimizer run outside."""

import torch
import torch.nn as nn
import torch.nn.functional as F

# Lets dynamo compile through print() by dropping the call from the compiled code.
torch._dynamo.config.ignore_logging_functions.add(print)


class Classifier(nn.Module):
    def __init__(self, d_in: int = 16, d_hidden: int = 32, n_classes: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, n_classes)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def train_step(model, x, y):
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    acc = (logits.argmax(dim=-1) == y).float().mean()
    print(f"loss={loss.item():.4f} acc={acc.item():.3f}")
    return loss, acc


def example_inputs():
    model = Classifier()
    x = torch.randn(8, 16)
    y = torch.randint(0, 4, (8,))
    return model, x, y
