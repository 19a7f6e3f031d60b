"""Batch augmentation driven by Python's random module (random flip + shift)."""

import random

import torch


@torch.compile(fullgraph=True)
def _flip(images):
    return images.flip(-1)


@torch.compile(fullgraph=True)
def _shift_and_scale(images, shift):
    return torch.roll(images, shifts=shift, dims=-2) * 2.0 - 1.0


@torch.compiler.disable
def augment(images, p_flip=0.5, max_shift=2):
    if random.random() < p_flip:
        images = _flip(images)
    shift = random.randint(-max_shift, max_shift)
    return _shift_and_scale(images, shift)


def example_inputs():
    return (torch.rand(2, 1, 6, 6),)
