# Copyright (c) hidiff_mm contributors. All rights reserved.
"""MATLABSSIM against a direct 3-D correlation written from MATLAB's ssim.m definition."""
import cv2
import numpy as np
import pytest
import torch
from mmagic.registry import METRICS
from scipy import ndimage

import hidiff_mm  # noqa: F401  (registers the metrics)
from hidiff_mm.evaluation import MATLABSSIM, matlab_ssim

C1, C2 = (0.01 * 255)**2, (0.03 * 255)**2


def reference_ssim(img: np.ndarray, ref: np.ndarray, sigma: float = 1.5) -> float:
    """ssim.m (2013-2014): isotropic Gaussian on an ndgrid, radius ceil(3 sigma),
    imfilter(..., 'replicate') in as many dimensions as the array has."""
    r = int(np.ceil(3 * sigma))
    axes = np.meshgrid(*([np.arange(-r, r + 1)] * img.ndim), indexing='ij')
    window = np.exp(-sum(a.astype(np.float64)**2 for a in axes) / (2 * sigma**2))
    window /= window.sum()

    def filt(v: np.ndarray) -> np.ndarray:
        return ndimage.correlate(v, window, mode='nearest')  # 'nearest' == replicate

    a, b = img.astype(np.float64), ref.astype(np.float64)
    mu_a, mu_b = filt(a), filt(b)
    num = (2 * mu_a * mu_b + C1) * (2 * (filt(a * b) - mu_a * mu_b) + C2)
    den = (mu_a**2 + mu_b**2 + C1) * (filt(a * a) - mu_a**2 + filt(b * b) - mu_b**2 + C2)
    return float((num / den).mean())


def natural_pair(rng: np.random.Generator, h: int = 40, w: int = 48):
    """A smooth, channel-correlated 'photo' and a blurred, noisy restoration of it."""
    base = cv2.GaussianBlur(rng.random((h, w)), (0, 0), 3)
    base = (base - base.min()) / np.ptp(base)
    img = base[..., None] * np.array([0.9, 1.0, 0.8]) + 0.05 * rng.random((h, w, 3))
    gt = np.clip(img * 255, 0, 255).round().astype(np.uint8)
    pred = cv2.GaussianBlur(gt.astype(np.float64), (0, 0), 1.0) + rng.normal(0, 3, gt.shape)
    return np.clip(pred, 0, 255).round().astype(np.uint8), gt


def test_matches_direct_3d_correlation():
    rng = np.random.default_rng(0)
    diffs = []
    for shape in [(17, 23, 3), (32, 20, 3), (12, 12, 3)]:
        gt = rng.integers(0, 256, shape).astype(np.uint8)
        pred = np.clip(gt + rng.normal(0, 20, shape), 0, 255).astype(np.uint8)
        diffs.append(abs(matlab_ssim(pred, gt) - reference_ssim(pred, gt)))
    pred, gt = natural_pair(rng)
    diffs.append(abs(matlab_ssim(pred, gt) - reference_ssim(pred, gt)))
    # both in float64 with order-1 terms: only summation order differs (measured 2e-15)
    assert max(diffs) < 1e-12, diffs


def test_2d_input_is_matlab_2d_ssim():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 256, (20, 25)).astype(np.uint8)
    pred = np.clip(gt + rng.normal(0, 15, gt.shape), 0, 255).astype(np.uint8)
    assert matlab_ssim(pred, gt) == pytest.approx(reference_ssim(pred, gt), rel=0, abs=1e-12)
    assert matlab_ssim(pred[..., None], gt[..., None]) == pytest.approx(
        matlab_ssim(pred, gt), abs=1e-12)


def test_identical_is_one_and_3d_beats_per_channel():
    rng = np.random.default_rng(2)
    pred, gt = natural_pair(rng)
    assert matlab_ssim(gt, gt) == pytest.approx(1.0, abs=1e-12)
    volume = matlab_ssim(pred, gt)
    per_channel = np.mean([matlab_ssim(pred[..., c], gt[..., c]) for c in range(3)])
    # MATLAB's default 'SSS' volume SSIM is ~0.01 above the per-channel ('SSC') mean
    assert 0.003 < volume - per_channel < 0.05


def test_metric_rounds_and_is_channel_order_free():
    rng = np.random.default_rng(3)
    pred, gt = natural_pair(rng)
    expected = reference_ssim(pred, gt)
    # BGR (C, H, W) float tensors as in MMagic data samples; off-grid values round back
    pred_bgr = torch.from_numpy(pred[..., ::-1].transpose(2, 0, 1).copy()).float() + 0.3
    gt_bgr = torch.from_numpy(gt[..., ::-1].transpose(2, 0, 1).copy()).float()
    metric = METRICS.build(dict(type='MATLABSSIM', prefix='GoPro'))
    assert isinstance(metric, MATLABSSIM)
    metric.process([], [{'gt_img': gt_bgr, 'output': {'pred_img': pred_bgr}}])
    metric.process([], [{'gt_img': gt_bgr[None], 'output': {'pred_img': pred_bgr[None]}}])
    metric.size = 2
    result = metric.evaluate()
    assert result['GoPro/MATLABSSIM'] == pytest.approx(expected, rel=0, abs=1e-12)
    # the 3-D window is symmetric along channels: reversing them changes nothing
    assert matlab_ssim(pred[..., ::-1], gt[..., ::-1]) == pytest.approx(expected, abs=1e-12)
