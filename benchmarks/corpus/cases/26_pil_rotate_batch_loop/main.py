"""Rotation augmentation applied image by image with PIL."""

import numpy as np
import torch
from PIL import Image


def rotate(img, angle):
    pil = Image.fromarray(img.numpy())
    return torch.from_numpy(np.array(pil.rotate(angle, resample=Image.BILINEAR)))


def augment_batch(images, angles):
    out = []
    for img, angle in zip(images, angles):
        out.append(rotate(img, angle))
    batch = torch.stack(out).float() / 255.0
    return batch - batch.mean(dim=(1, 2), keepdim=True)


def example_inputs():
    images = torch.randint(0, 256, (3, 10, 10), dtype=torch.uint8)
    return images, [15.0, -30.0, 90.0]
