# Copyright (c) hidiff_mm contributors. All rights reserved.
"""PSNR as MATLAB's ``psnr(A, ref)`` computes it on the saved (H, W, 3) uint8 RGB image."""
from typing import Optional

import numpy as np
from mmagic.evaluation.metrics.base_sample_wise_metric import BaseSampleWiseMetric
from mmagic.registry import METRICS

from .image_utils import ImageLike, to_uint8_hwc


def matlab_psnr(img: np.ndarray, ref: np.ndarray, peak: float = 255.) -> float:
    """``10 log10(peak^2 / MSE)`` with the MSE over every pixel and channel, in float64.

    Identical images give ``inf``, as MATLAB's ``psnr`` does.

    Args:
        img: image to score, any shape, values in [0, peak].
        ref: reference image of the same shape.
        peak: the peak value (255 for uint8).
    """
    if img.shape != ref.shape:
        raise ValueError(f'Image shapes differ: {img.shape} vs {ref.shape}.')
    mse = np.mean((img.astype(np.float64) - ref.astype(np.float64))**2)
    return float('inf') if mse == 0 else float(10 * np.log10(peak * peak / mse))


@METRICS.register_module()
class MATLABPSNR(BaseSampleWiseMetric):
    """PSNR of the GoPro/HIDE protocol (``evaluate_gopro_hide.m``): MATLAB ``psnr`` on RGB.

    The prediction is clamped and rounded to uint8 first, because the paper scores the saved
    8-bit PNGs (MMagic's ``PSNR`` scores the float output and reads about 0.01 dB higher at
    33 dB, see docs/metrics.md). Used next to :class:`MATLABSSIM`.

    Args:
        gt_key: key of the ground truth in the data sample. Defaults to 'gt_img'.
        pred_key: key of the prediction in ``data_sample['output']``. Defaults to 'pred_img'.
        collect_device: device for collecting results across ranks. Defaults to 'cpu'.
        prefix: prefix of the metric name (e.g. 'GoPro'). Defaults to None.

    Metrics:
        - MATLABPSNR (float): mean over images, higher is better.
    """

    metric = 'MATLABPSNR'

    def __init__(self,
                 gt_key: str = 'gt_img',
                 pred_key: str = 'pred_img',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(
            gt_key=gt_key, pred_key=pred_key, collect_device=collect_device, prefix=prefix)

    def process_image(self, gt: ImageLike, pred: ImageLike, mask: ImageLike) -> float:
        """Score one (C, H, W) prediction against its GT (``mask`` is unused)."""
        return matlab_psnr(
            to_uint8_hwc(pred, self.channel_order), to_uint8_hwc(gt, self.channel_order))
