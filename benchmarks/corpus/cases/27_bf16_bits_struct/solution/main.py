"""Pack normalised embeddings as truncated bfloat16 bit patterns for a vector store."""

import struct

import torch
import torch.nn.functional as F


@torch.library.custom_op("corpus::float_to_bf16_bits", mutates_args=())
def float_to_bf16_bits(values: torch.Tensor) -> torch.Tensor:
    bits = [struct.unpack("<I", struct.pack("<f", v))[0] >> 16 for v in values.flatten().tolist()]
    return torch.tensor(bits, dtype=torch.int32).view(values.shape)


@float_to_bf16_bits.register_fake
def _(values):
    return torch.empty_like(values, dtype=torch.int32)


def pack_embeddings(emb):
    emb = F.normalize(emb, dim=-1)
    return float_to_bf16_bits(emb)


def example_inputs():
    return (torch.randn(3, 8),)
