import torch
import torch.nn as nn

from debug import log_stats


@torch.compile(fullgraph=True)
def _attend(block, x):
    q, k, v = block.qkv(block.norm1(x)).chunk(3, dim=-1)
    weights = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
    return weights @ v


@torch.compile(fullgraph=True)
def _finish(block, x, attn_out):
    x = x + attn_out
    return x + block.mlp(block.norm2(x))


class Block(nn.Module):
    def __init__(self, dim: int, name: str) -> None:
        super().__init__()
        self.name = name
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        out = _attend(self, x)
        log_stats(f"{self.name}.attn", out)
        return _finish(self, x, out)
