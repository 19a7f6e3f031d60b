"""Greedy decoding of a tiny causal LM, streaming each new token to stdout."""

import torch
import torch.nn as nn


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 20, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mix = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, tokens):
        h = self.embed(tokens)
        h = torch.cumsum(h, dim=1) / torch.arange(1, tokens.shape[1] + 1).view(1, -1, 1)
        return self.head(torch.tanh(self.mix(h)))


@torch.compile(fullgraph=True)
def _decode_step(model, tokens):
    logits = model(tokens)[:, -1, :]
    next_token = logits.argmax(dim=-1, keepdim=True)
    return torch.cat([tokens, next_token], dim=1), next_token


@torch.compiler.disable
@torch.no_grad()
def greedy_decode(model, prompt, max_new_tokens=4):
    tokens = prompt
    for step in range(max_new_tokens):
        tokens, next_token = _decode_step(model, tokens)
        print(f"step {step}: {next_token.squeeze(-1).tolist()}")
    return tokens


def example_inputs():
    return TinyLM(), torch.randint(0, 20, (2, 3))
