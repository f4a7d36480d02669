# Copyright (c) hidiff_mm contributors. All rights reserved.
"""RealBlur protocol: intensity matching, ECC homography alignment, masked PSNR and SSIM."""
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmagic.evaluation.metrics.metrics_utils import obtain_data
from mmagic.registry import METRICS

from .image_utils import ImageLike, Uint8RGBMetric, ssim_map, to_uint8_hwc

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scipy.ndimage's gaussian_filter default, used by skimage
SSIM_PAD = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # 5: the window radius, cropped at each border


def realblur_align(deblurred: np.ndarray,
                   gt: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match the intensity of ``deblurred`` to ``gt`` and register it with ECC.

    Args:
        deblurred: float32 (H, W, 3) RGB image in [0, 1].
        gt: float32 (H, W, 3) RGB image in [0, 1].

    Returns:
        tuple: the warped prediction and the GT, both multiplied by the validity
        mask, and the (H, W, 3) float32 mask itself.

    Raises:
        cv2.error: when ECC does not converge (e.g. uncorrelated images).
    """
    scaled = (np.sum(gt * deblurred) / np.sum(deblurred * deblurred)) * deblurred
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 0)
    _, homography = cv2.findTransformECC(
        cv2.cvtColor(gt, cv2.COLOR_RGB2GRAY), cv2.cvtColor(scaled, cv2.COLOR_RGB2GRAY),
        np.eye(3, dtype=np.float32), cv2.MOTION_HOMOGRAPHY, criteria, None, 5)
    size = (gt.shape[1], gt.shape[0])
    warped = cv2.warpPerspective(
        scaled, homography, size, flags=cv2.INTER_CUBIC + cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpPerspective(
        np.ones_like(scaled), homography, size, flags=cv2.INTER_NEAREST + cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return warped * mask, gt * mask, mask


def masked_psnr(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float:
    """10 log10(1 / MSE) with the squared error summed over all values and divided by sum(mask).

    ``gt`` and ``pred`` are already multiplied by ``mask``; values in [0, 1].
    Identical images give ``inf``.
    """
    err = np.sum((gt - pred)**2, dtype=np.float64) / np.sum(mask)
    return float('inf') if err == 0 else float(10 * np.log10(1 / err))


def _ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """skimage ``structural_similarity(gaussian_weights=True, use_sample_covariance=False,
    data_range=1, channel_axis=2, full=True)`` map, in float64."""
    g = cv2.getGaussianKernel(2 * SSIM_PAD + 1, SSIM_SIGMA, cv2.CV_64F)

    def blur(img: np.ndarray) -> np.ndarray:
        # BORDER_REFLECT (abc|cba) is scipy.ndimage's mode='reflect'
        return cv2.sepFilter2D(img, cv2.CV_64F, g, g, borderType=cv2.BORDER_REFLECT)

    return ssim_map(x, y, blur, data_range=1.0)


def masked_ssim(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> float:
    """RealBlur SSIM: Gaussian SSIM map times mask, 5-px border cropped, per-channel
    sum(map) / sum(mask), averaged over channels. Inputs are (H, W, 3) in [0, 1]."""
    ssim_map = _ssim_map(gt.astype(np.float64), pred.astype(np.float64)) * mask
    crop = (slice(SSIM_PAD, -SSIM_PAD), slice(SSIM_PAD, -SSIM_PAD))
    per_channel = ssim_map[crop].sum(axis=(0, 1)) / mask[crop].sum(axis=(0, 1))
    return float(per_channel.mean())


def realblur_metrics(pred: np.ndarray, gt: np.ndarray) -> Tuple[float, float]:
    """Aligned (PSNR, SSIM) of one uint8 (H, W, 3) RGB prediction against its GT.

    The float32 images are made C-contiguous like the official script's: the
    float32 sums of the intensity matching depend on memory order, and ECC can
    amplify that last-bit difference to ~0.01 dB.
    """
    aligned, target, mask = realblur_align(
        np.ascontiguousarray(pred, dtype=np.float32) / 255.,
        np.ascontiguousarray(gt, dtype=np.float32) / 255.)
    return masked_psnr(target, aligned, mask), masked_ssim(target, aligned, mask)


@METRICS.register_module()
class RealBlurAligned(Uint8RGBMetric):
    """RealBlur-J/R protocol (``evaluate_realblur.py``): PSNR and SSIM after alignment.

    Per image: round the prediction to uint8, scale it to [0, 1], match its
    global intensity to the GT, register it to the GT with an ECC homography,
    and score only the pixels the warp keeps (see :func:`realblur_align`,
    :func:`masked_psnr`, :func:`masked_ssim`). Alignment runs once for both
    outputs. An image whose ECC does not converge raises ``RuntimeError``
    naming it; the official script stops there too.

    Args:
        gt_key: key of the ground truth in the data sample. Defaults to 'gt_img'.
        pred_key: key of the prediction in ``data_sample['output']``. Defaults to 'pred_img'.
        collect_device: device for collecting results across ranks. Defaults to 'cpu'.
        prefix: prefix of the metric names (e.g. 'RealBlurJ'). Defaults to None.

    Metrics:
        - AlignedPSNR (float): mean over images (dB), higher is better.
        - AlignedSSIM (float): mean over images, higher is better.
    """

    metric = 'AlignedPSNR'
    ssim_metric = 'AlignedSSIM'

    def process(self, data_batch: Sequence[dict], data_samples: Sequence[dict]) -> None:
        """Align and score every (C, H, W) or (N, C, H, W) prediction of the batch."""
        for data in data_samples:
            gt = obtain_data(data, self.gt_key)
            pred = obtain_data(data['output'], self.pred_key)
            gts, preds = (gt, pred) if gt.ndim == 4 else ([gt], [pred])
            scores = [self._score(g, p, data.get('gt_path')) for g, p in zip(gts, preds)]
            self.results.append({
                self.metric: float(np.mean([s[0] for s in scores])),
                self.ssim_metric: float(np.mean([s[1] for s in scores])),
            })

    def _score(self, gt: ImageLike, pred: ImageLike,
               path: Optional[str]) -> Tuple[float, float]:
        try:
            return realblur_metrics(
                to_uint8_hwc(pred, self.channel_order), to_uint8_hwc(gt, self.channel_order))
        except cv2.error as err:
            raise RuntimeError(
                f'RealBlur ECC alignment failed for GT {path!r}: {err}') from err

    def compute_metrics(self, results: List[Dict[str, float]]) -> Dict[str, float]:
        """Average both scores over images."""
        return {key: float(np.mean([r[key] for r in results]))
                for key in (self.metric, self.ssim_metric)}
