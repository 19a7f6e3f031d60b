"""Retrieval evaluation: precision@k with heapq over cosine scores."""

import heapq

import torch
import torch.nn.functional as F


def precision_at_k(scores, relevant, k=3):
    hits = []
    for row_scores, row_relevant in zip(scores.tolist(), relevant.tolist()):
        top = heapq.nlargest(k, range(len(row_scores)), key=row_scores.__getitem__)
        hits.append(sum(row_relevant[i] for i in top) / k)
    return torch.tensor(hits).mean()


def retrieval_eval(query_emb, doc_emb, relevant):
    scores = F.normalize(query_emb, dim=-1) @ F.normalize(doc_emb, dim=-1).T
    return scores.max(dim=-1).values.mean(), precision_at_k(scores, relevant)


def example_inputs():
    return torch.randn(4, 8), torch.randn(10, 8), (torch.rand(4, 10) < 0.3).long()
