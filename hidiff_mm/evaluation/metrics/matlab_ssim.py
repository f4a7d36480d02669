# Copyright (c) hidiff_mm contributors. All rights reserved.
"""SSIM as MATLAB's ``ssim(A, ref)`` computes it on an (H, W, 3) uint8 RGB array."""
import cv2
import numpy as np
from mmagic.registry import METRICS

from .image_utils import Uint8RGBMetric, ssim_map


def _gaussian_1d(sigma: float) -> np.ndarray:
    """MATLAB's ssim window: radius ceil(3 * sigma), normalised exp(-x^2 / (2 sigma^2))."""
    radius = int(np.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def _replicate_mixing(kernel: np.ndarray, size: int) -> np.ndarray:
    """The (size, size) matrix that filters a length-``size`` axis with replicate padding."""
    radius = len(kernel) // 2
    mix = np.zeros((size, size))
    for out in range(size):
        for k, weight in enumerate(kernel):
            mix[out, min(max(out + k - radius, 0), size - 1)] += weight
    return mix


def matlab_ssim(img: np.ndarray, ref: np.ndarray, sigma: float = 1.5,
                data_range: float = 255.) -> float:
    """MATLAB ``ssim(img, ref)`` with default options for a 2-D or (H, W, C) array.

    A 3-D array is one volume (MATLAB's default 'SSS' data format): every local
    statistic is a Gaussian-weighted mean over rows, columns *and* channels,
    with replicate padding on all three axes. A (H, W) or (H, W, 1) array gives
    MATLAB's 2-D SSIM. Computed in float64, as MATLAB does for integer input.

    Args:
        img: image to score, (H, W) or (H, W, C), values in [0, data_range].
        ref: reference image of the same shape.
        sigma: 'Radius' (Gaussian standard deviation). Defaults to 1.5.
        data_range: 'DynamicRange' L; C1 = (0.01 L)^2, C2 = (0.03 L)^2. Defaults to 255.

    Returns:
        float: mean of the SSIM map.
    """
    if img.shape != ref.shape:
        raise ValueError(f'Image shapes differ: {img.shape} vs {ref.shape}.')
    a = np.atleast_3d(img).astype(np.float64)
    b = np.atleast_3d(ref).astype(np.float64)
    g = _gaussian_1d(sigma)
    channel_mix = _replicate_mixing(g, a.shape[2])

    def blur(x: np.ndarray) -> np.ndarray:
        x = cv2.sepFilter2D(x, cv2.CV_64F, g, g, borderType=cv2.BORDER_REPLICATE)
        return np.tensordot(x.reshape(a.shape), channel_mix, axes=([2], [1]))

    return float(ssim_map(a, b, blur, data_range).mean())


@METRICS.register_module()
class MATLABSSIM(Uint8RGBMetric):
    """SSIM of the GoPro/HIDE protocol (``evaluate_gopro_hide.m``): MATLAB ``ssim`` on RGB.

    Predictions are rounded to uint8 first (the paper scores saved PNGs), then
    :func:`matlab_ssim` treats the (H, W, 3) RGB image as a volume. This is
    about 0.01 higher than MMagic's per-channel ``SSIM`` on deblurred images.
    The 3-D filter is symmetric along the channel axis, so the result does not
    depend on RGB vs BGR order; the image is still converted to RGB.

    Args: those of :class:`~.image_utils.Uint8RGBMetric` (``gt_key``, ``pred_key``,
    ``collect_device``, ``prefix``).

    Metrics:
        - MATLABSSIM (float): mean over images, higher is better.
    """

    metric = 'MATLABSSIM'

    def score(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """MATLAB ssim of one (H, W, 3) uint8 RGB pair."""
        return matlab_ssim(pred, gt)
