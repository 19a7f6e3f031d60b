import io

import numpy as np
import torch
from PIL import Image


@torch.library.custom_op("corpus::jpeg_roundtrip", mutates_args=())
def jpeg_roundtrip(img: torch.Tensor, quality: int) -> torch.Tensor:
    """Simulate JPEG compression artefacts on an (H, W, 3) uint8 tensor."""
    buffer = io.BytesIO()
    Image.fromarray(img.numpy()).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return torch.from_numpy(np.array(Image.open(buffer).convert("RGB")))


@jpeg_roundtrip.register_fake
def _(img, quality):
    return torch.empty_like(img)
