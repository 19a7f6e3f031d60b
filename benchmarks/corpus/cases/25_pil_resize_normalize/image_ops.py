import numpy as np
import torch
from PIL import Image


def resize_bilinear(img, size):
    """Resize an (H, W, 3) uint8 image tensor with PIL, returning uint8 (h, w, 3)."""
    pil = Image.fromarray(img.numpy())
    return torch.from_numpy(np.asarray(pil.resize(size, Image.BILINEAR)).copy())
