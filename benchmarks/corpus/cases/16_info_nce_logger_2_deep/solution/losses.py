import logging

import torch
import torch.nn.functional as F

logger = logging.getLogger("contrastive")


@torch.compile(fullgraph=True)
def _similarity_stats(a, b, temperature):
    sim = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    diag = sim.diagonal().mean()
    off_diag = (sim.sum() - sim.diagonal().sum()) / (sim.numel() - sim.shape[0])
    return sim, diag, off_diag


@torch.compile(fullgraph=True)
def _symmetric_ce(sim):
    labels = torch.arange(sim.shape[0])
    return (F.cross_entropy(sim, labels) + F.cross_entropy(sim.T, labels)) / 2


def _similarity(a, b, temperature):
    sim, diag, off_diag = _similarity_stats(a, b, temperature)
    logger.info("similarity: positives %.3f negatives %.3f", diag.item(), off_diag.item())
    return sim


def info_nce(a, b, temperature=0.1):
    return _symmetric_ce(_similarity(a, b, temperature))
