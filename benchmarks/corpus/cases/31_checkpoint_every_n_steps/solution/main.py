"""Training-step loss that also writes a checkpoint every `ckpt_every` steps."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Autoencoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(10, 3)
        self.dec = nn.Linear(3, 10)

    def forward(self, x):
        return self.dec(torch.relu(self.enc(x)))


@torch.compile(fullgraph=True)
def _loss(model, x):
    return F.mse_loss(model(x), x)


@torch.compiler.disable
def train_step(model, x, step, ckpt_every=50):
    loss = _loss(model, x)
    if step % ckpt_every == 0:
        torch.save({"step": step, "model": model.state_dict(), "loss": loss.detach()}, f"checkpoint_{step:06d}.pt")
    return loss


def example_inputs():
    return Autoencoder(), torch.randn(8, 10), 100
