# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Conversions shared by the metrics: MMagic's CHW BGR [0, 255] tensors to scored images."""
from typing import Callable, Optional, Union

import numpy as np
import torch
from mmagic.evaluation.metrics.base_sample_wise_metric import BaseSampleWiseMetric

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


class Uint8RGBMetric(BaseSampleWiseMetric):
    """A per-image metric of the published protocols, scored on the saved 8-bit RGB images.

    Subclasses set ``metric`` (the result name) and :meth:`score`; the prediction is clamped and
    rounded, both images converted to ``(H, W, 3)`` uint8 RGB (:func:`to_uint8_hwc`).

    Args:
        gt_key: key of the ground truth in the data sample. Defaults to 'gt_img'.
        pred_key: key of the prediction in ``data_sample['output']``. Defaults to 'pred_img'.
        collect_device: device for collecting results across ranks. Defaults to 'cpu'.
        prefix: prefix of the metric name (e.g. 'GoPro'). Defaults to None.
    """

    def __init__(self,
                 gt_key: str = 'gt_img',
                 pred_key: str = 'pred_img',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(
            gt_key=gt_key, pred_key=pred_key, collect_device=collect_device, prefix=prefix)

    def score(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """The metric of one (H, W, 3) uint8 RGB prediction against its GT."""
        raise NotImplementedError

    def process_image(self, gt: ImageLike, pred: ImageLike, mask: ImageLike) -> float:
        """Score one (C, H, W) prediction against its GT (``mask`` is unused)."""
        return self.score(
            to_uint8_hwc(pred, self.channel_order), to_uint8_hwc(gt, self.channel_order))
