# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Conversions shared by the metrics: MMagic's CHW BGR [0, 255] tensors to scored images."""
from typing import Callable, Union

import numpy as np
import torch

ImageLike = Union[torch.Tensor, np.ndarray]

WEIGHTS_DOC = 'docs/metrics.md'


def quantize_rgb(img: ImageLike, channel_order: str = 'BGR') -> torch.Tensor:
    """Round a (C, H, W) image in [0, 255] to 8-bit levels and return it in RGB order.

    Every published number is computed on saved 8-bit PNGs, so predictions are
    clamped to [0, 255] and rounded (half to even, as numpy and BasicSR's
    ``tensor2img`` do) before scoring. Integer-valued GT images are unchanged.

    Args:
        img: image of shape (C, H, W), values in [0, 255].
        channel_order: 'BGR' (MMagic's data samples) or 'RGB'.

    Returns:
        torch.Tensor: float32 (C, H, W) RGB image with integer values in [0, 255].
    """
    img = torch.as_tensor(img).detach().to(torch.float32)
    if img.ndim != 3:
        raise ValueError(f'Expected a (C, H, W) image, got shape {tuple(img.shape)}.')
    if channel_order.upper() == 'BGR':
        img = img.flip(0)
    elif channel_order.upper() != 'RGB':
        raise ValueError(f"channel_order must be 'BGR' or 'RGB', got {channel_order!r}.")
    return img.clamp(0, 255).round()


def to_uint8_hwc(img: ImageLike, channel_order: str = 'BGR') -> np.ndarray:
    """:func:`quantize_rgb`, then as a C-contiguous (H, W, C) uint8 RGB numpy array."""
    hwc = quantize_rgb(img, channel_order).permute(1, 2, 0).contiguous()
    return hwc.cpu().numpy().astype(np.uint8)


def ssim_map(x: np.ndarray, y: np.ndarray, blur: Callable[[np.ndarray], np.ndarray],
             data_range: float) -> np.ndarray:
    """The SSIM map of Wang et al. (2004) of two float64 arrays of one shape, with the local
    (Gaussian) means taken by ``blur``; ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``,
    ``L = data_range``. Each protocol brings its own window, padding and pooling."""
    c1, c2 = (0.01 * data_range)**2, (0.03 * data_range)**2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
