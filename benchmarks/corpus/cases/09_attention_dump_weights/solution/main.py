"""Cross-attention that dumps its attention map to disk for inspection."""

import os

import torch
import torch.nn as nn


@torch.compile(fullgraph=True)
def _attention(module, x, context):
    q = module.q(x)
    k, v = module.kv(context).chunk(2, dim=-1)
    attn = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
    return attn, v


@torch.compile(fullgraph=True)
def _output(module, attn, v):
    return module.out(attn @ v)


class CrossAttention(nn.Module):
    def __init__(self, dim: int = 16, dump_dir: str = "debug") -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dump_dir = dump_dir

    @torch.compiler.disable
    def forward(self, x, context):
        attn, v = _attention(self, x, context)
        if self.dump_dir is not None:
            os.makedirs(self.dump_dir, exist_ok=True)
            torch.save(attn.detach(), os.path.join(self.dump_dir, "cross_attn.pt"))
        return _output(self, attn, v)


def example_inputs():
    module = CrossAttention()
    return module, torch.randn(2, 4, 16), torch.randn(2, 6, 16)
