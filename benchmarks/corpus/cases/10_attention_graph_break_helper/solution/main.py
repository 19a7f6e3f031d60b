"""Attention block whose score helper (in a sibling module) forces a graph break."""

import torch
import torch.nn as nn

from attn_utils import attention_probs


class Attention(nn.Module):
    def __init__(self, dim: int = 24, heads: int = 3) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        probs = torch._dynamo.nonstrict_trace(attention_probs)(q, k, self.head_dim ** -0.5)
        out = (probs @ v).transpose(1, 2).reshape(b, t, d)
        return self.proj(out)


def example_inputs():
    return Attention(), torch.randn(2, 7, 24)
