import logging

import torch
import torch.nn.functional as F

logger = logging.getLogger("contrastive")


def _similarity(a, b, temperature):
    sim = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    diag = sim.diagonal().mean()
    off_diag = (sim.sum() - sim.diagonal().sum()) / (sim.numel() - sim.shape[0])
    logger.info("similarity: positives %.3f negatives %.3f", diag.item(), off_diag.item())
    return sim


def info_nce(a, b, temperature=0.1):
    sim = _similarity(a, b, temperature)
    labels = torch.arange(a.shape[0])
    return (F.cross_entropy(sim, labels) + F.cross_entropy(sim.T, labels)) / 2
