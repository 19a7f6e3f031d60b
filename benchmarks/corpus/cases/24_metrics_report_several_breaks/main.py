"""End-of-epoch validation report: prints, and a JSON metrics file per epoch."""

import json

import torch.nn.functional as F
import torch


def validation_report(logits, labels, epoch):
    probs = logits.softmax(dim=-1)
    preds = probs.argmax(dim=-1)
    acc = (preds == labels).float().mean()
    print(f"epoch {epoch}: accuracy {acc.item():.4f}")
    nll = F.nll_loss(probs.clamp_min(1e-8).log(), labels)
    with open(f"metrics_epoch{epoch}.json", "w") as f:
        json.dump({"epoch": epoch, "accuracy": round(acc.item(), 6), "nll": round(nll.item(), 6)}, f)
    confidence = probs.max(dim=-1).values.mean()
    print(f"epoch {epoch}: nll {nll.item():.4f} mean confidence {confidence.item():.4f}")
    return acc, nll, confidence


def example_inputs():
    return torch.randn(16, 3), torch.randint(0, 3, (16,)), 7
