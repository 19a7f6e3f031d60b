"""Pack normalised embeddings as truncated bfloat16 bit patterns for a vector store."""

import struct

import torch
import torch.nn.functional as F


def float_to_bf16_bits(values):
    return values.contiguous().view(torch.int32) >> 16


def pack_embeddings(emb):
    emb = F.normalize(emb, dim=-1)
    return float_to_bf16_bits(emb)


def example_inputs():
    return (torch.randn(3, 8),)
