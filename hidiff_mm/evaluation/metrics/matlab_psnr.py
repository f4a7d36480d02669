# Copyright (c) hidiff_mm contributors. All rights reserved.
"""PSNR as MATLAB's ``psnr(A, ref)`` computes it on the saved (H, W, 3) uint8 RGB image."""
import numpy as np
from mmagic.registry import METRICS

from .image_utils import Uint8RGBMetric


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
class MATLABPSNR(Uint8RGBMetric):
    """PSNR of the GoPro/HIDE protocol (``evaluate_gopro_hide.m``): MATLAB ``psnr`` on RGB.

    The prediction is clamped and rounded to uint8 first, because the paper scores the saved
    8-bit PNGs (MMagic's ``PSNR`` scores the float output and reads about 0.01 dB higher at
    33 dB, see docs/metrics.md). Used next to :class:`MATLABSSIM`.

    Args: those of :class:`~.image_utils.Uint8RGBMetric` (``gt_key``, ``pred_key``,
    ``collect_device``, ``prefix``).

    Metrics:
        - MATLABPSNR (float): mean over images, higher is better.
    """

    metric = 'MATLABPSNR'

    def score(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """MATLAB psnr of one (H, W, 3) uint8 RGB pair."""
        return matlab_psnr(pred, gt)
