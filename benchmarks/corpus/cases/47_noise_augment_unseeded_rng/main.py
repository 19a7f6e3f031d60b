"""Sensor-noise augmentation with a fresh numpy Generator."""

import numpy as np
import torch


def add_sensor_noise(images, sigma=0.05):
    rng = np.random.default_rng()
    noise = torch.from_numpy(rng.normal(0.0, sigma, size=tuple(images.shape))).to(images.dtype)
    return (images + noise).clamp(0.0, 1.0)


def example_inputs():
    return (torch.rand(2, 3, 4, 4),)
