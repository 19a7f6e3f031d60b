"""Mean-teacher consistency loss with sharpened teacher targets."""

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_net():
    return nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 4))


def sharpen(probs, temperature):
    targets = probs.clone()  # keep the teacher's distribution untouched
    targets = targets ** (1.0 / temperature)
    return targets / targets.sum(dim=-1, keepdim=True)


def consistency_loss(student, teacher, x_weak, x_strong, temperature=0.5):
    with torch.no_grad():
        teacher_probs = teacher(x_weak).softmax(dim=-1)
    targets = sharpen(teacher_probs, temperature)
    log_probs = F.log_softmax(student(x_strong), dim=-1)
    return F.kl_div(log_probs, targets, reduction="batchmean")


def example_inputs():
    student, teacher = make_net(), make_net()
    x = torch.randn(6, 10)
    return student, teacher, x, x + 0.1 * torch.randn(6, 10)
