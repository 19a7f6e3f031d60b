"""Robustness check: JPEG-augment an image, embed it, log and save the embedding."""

import torch
import torch.nn as nn

from vision_utils import jpeg_roundtrip


class Embedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, stride=2)
        self.fc = nn.Linear(4, 6)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(-2, -1)))


def augment_and_embed(model, image, quality=60):
    x = jpeg_roundtrip(image, quality)
    x = x.permute(2, 0, 1).float() / 255.0
    print(f"augmented range [{x.min().item():.3f}, {x.max().item():.3f}]")
    emb = model(x.unsqueeze(0))
    torch.save(emb.detach(), "embedding.pt")
    return emb


def example_inputs():
    return Embedder(), torch.randint(0, 256, (16, 16, 3), dtype=torch.uint8)
