# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Conversions shared by the metrics: MMagic's CHW BGR [0, 255] tensors to scored images."""
import os.path as osp
from typing import Optional, Union

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


def require_file(path: Optional[str], key: str, metric: str, how_to_get: str) -> str:
    """Return ``path`` if it is a file, else raise FileNotFoundError naming the config key.

    Args:
        path: the configured path.
        key: the config key that holds it (e.g. ``'backbone_path'``).
        metric: metric name for the message.
        how_to_get: one sentence on where the file comes from.
    """
    if path is None or not osp.isfile(path):
        raise FileNotFoundError(
            f'{metric}: `{key}` is {path!r}, which is not an existing file. {how_to_get} '
            f'See {WEIGHTS_DOC} for how to obtain it.')
    return path
