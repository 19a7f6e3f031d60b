"""Scaled dot-product attention with a version-compat upcast softmax."""

import inspect

import torch
import torch.nn.functional as F


def softmax_fp32(scores):
    # Older torch releases did not take dtype= in F.softmax: only pass it when supported.
    kwargs = {"dtype": torch.float32} if "dtype" in inspect.signature(F.softmax).parameters else {}
    return F.softmax(scores, dim=-1, **kwargs).to(scores.dtype)


def attention(q, k, v, causal=True):
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if causal:
        t = q.shape[-2]
        future = torch.ones(t, t, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    return softmax_fp32(scores) @ v


def example_inputs():
    q, k, v = (torch.randn(2, 2, 6, 8) for _ in range(3))
    return q, k, v
