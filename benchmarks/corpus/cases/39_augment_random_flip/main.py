"""Batch augmentation driven by Python's random module (random flip + shift)."""

import random

import torch


def augment(images, p_flip=0.5, max_shift=2):
    if random.random() < p_flip:
        images = images.flip(-1)
    shift = random.randint(-max_shift, max_shift)
    images = torch.roll(images, shifts=shift, dims=-2)
    return images * 2.0 - 1.0


def example_inputs():
    return (torch.rand(2, 1, 6, 6),)
