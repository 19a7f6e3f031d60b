import io

import numpy as np
import torch
from PIL import Image


def jpeg_roundtrip(img, quality):
    """Simulate JPEG compression artefacts on an (H, W, 3) uint8 tensor."""
    buffer = io.BytesIO()
    Image.fromarray(img.numpy()).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return torch.from_numpy(np.array(Image.open(buffer).convert("RGB")))
