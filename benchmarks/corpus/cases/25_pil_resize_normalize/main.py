"""Image preprocessing for a classifier: PIL resize, scale, ImageNet normalisation, CHW."""

import torch

from image_ops import resize_bilinear

MEAN = torch.tensor([0.485, 0.456, 0.406])
STD = torch.tensor([0.229, 0.224, 0.225])


def preprocess(image, size=(12, 12)):
    resized = resize_bilinear(image, size)
    x = resized.float() / 255.0
    x = (x - MEAN) / STD
    return x.permute(2, 0, 1).contiguous()


def example_inputs():
    return (torch.randint(0, 256, (20, 16, 3), dtype=torch.uint8),)
