"""Seed chapter, strategy 2 (custom op): cropping with PIL inside compiled code.

The chapter uses torchvision's to_pil_image/pil_to_tensor; they are written with numpy here.
"""

import numpy as np
import PIL.Image
import torch


def crop(pic, box):
    arr = (pic.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
    img = PIL.Image.fromarray(arr)
    cropped_img = img.crop(box)
    return torch.from_numpy(np.asarray(cropped_img).copy()).permute(2, 0, 1) / 255.0


def f(img):
    return crop(img, (10, 10, 50, 50))


def example_inputs():
    return (torch.rand(3, 64, 64),)
