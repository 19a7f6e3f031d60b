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


@torch.library.custom_op("corpus::save_loss", mutates_args=())
def save_loss(loss: torch.Tensor, path: str) -> None:
    torch.save({"loss": loss}, path)


@save_loss.register_fake
def _(loss, path):
    return None


def train_step(model, x, step, ckpt_every=50):
    recon = model(x)
    loss = F.mse_loss(recon, x)
    if step % ckpt_every == 0:
        save_loss(loss.detach(), f"checkpoint_{step:06d}.pt")
    return loss


def example_inputs():
    return Autoencoder(), torch.randn(8, 10), 100
