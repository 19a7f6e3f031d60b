import torch


def attention_probs(q, k, scale):
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale
    # Split the graph here so the scores buffer can be freed before the softmax (peak memory).
    torch._dynamo.graph_break()
    return scores.softmax(dim=-1)
