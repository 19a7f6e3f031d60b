import os

import torch


def dump_tensor(name, t, directory="activations"):
    os.makedirs(directory, exist_ok=True)
    torch.save(t.detach().cpu(), os.path.join(directory, f"{name}.pt"))
