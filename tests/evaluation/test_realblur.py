# Copyright (c) hidiff_mm contributors. All rights reserved.
"""RealBlurAligned: masked PSNR/SSIM by hand and against skimage, alignment of known shifts."""
import cv2
import numpy as np
import pytest
import torch
from mmagic.registry import METRICS

import hidiff_mm  # noqa: F401  (registers the metrics)
from hidiff_mm.evaluation import (RealBlurAligned, masked_psnr, masked_ssim, realblur_align,
                                  realblur_metrics)


def smooth_image(rng: np.random.Generator, h: int = 72, w: int = 80) -> np.ndarray:
    """uint8 (H, W, 3) RGB image with structure at several scales (ECC needs gradients)."""
    img = sum(cv2.GaussianBlur(rng.random((h, w, 3)), (0, 0), s) * s for s in (1.0, 2.0, 4.0))
    img = (img - img.min()) / np.ptp(img)
    return np.clip(img * 255, 0, 255).round().astype(np.uint8)


def translate(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Shift by (dx, dy) px with bicubic interpolation, as a homography."""
    h, w = img.shape[:2]
    homography = np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], np.float64)
    out = cv2.warpPerspective(img.astype(np.float32), homography, (w, h),
                              flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return np.clip(out, 0, 255).round().astype(np.uint8)


def test_masked_psnr_by_hand():
    gt = np.zeros((6, 8, 3), np.float32)
    pred = np.full_like(gt, 0.1)
    mask = np.ones_like(gt)
    mask[:, :3] = 0  # 5 of 8 columns kept
    # sum of squared errors over kept values / number of kept values = 0.01 -> 20 dB
    assert masked_psnr(gt * mask, pred * mask, mask) == pytest.approx(20.0, abs=1e-5)
    pred[0, 4, 1] = 0.5  # one kept value with error 0.5 instead of 0.1
    mse = (0.01 * (6 * 5 * 3 - 1) + 0.25) / (6 * 5 * 3)
    assert masked_psnr(gt * mask, pred * mask, mask) == pytest.approx(
        10 * np.log10(1 / mse), abs=1e-5)
    assert masked_psnr(gt, gt, mask) == float('inf')


def test_masked_ssim_matches_skimage():
    skimage_metrics = pytest.importorskip('skimage.metrics')
    rng = np.random.default_rng(0)
    gt = smooth_image(rng).astype(np.float64) / 255
    pred = np.clip(gt + rng.normal(0, 0.03, gt.shape), 0, 1)
    mask = np.ones_like(gt)
    mask[:, -7:] = 0
    mask[:4] = 0
    _, ssim_map = skimage_metrics.structural_similarity(
        gt * mask, pred * mask, channel_axis=2, gaussian_weights=True,
        use_sample_covariance=False, data_range=1.0, full=True)
    inner = (slice(5, -5), slice(5, -5))
    expected = np.mean([(ssim_map * mask)[inner][..., c].sum() / mask[inner][..., c].sum()
                        for c in range(3)])
    assert masked_ssim(gt * mask, pred * mask, mask) == pytest.approx(expected, abs=1e-10)


def test_identical_images():
    gt = smooth_image(np.random.default_rng(1))
    psnr, ssim = realblur_metrics(gt, gt)
    assert psnr == float('inf') or psnr > 100
    assert ssim == pytest.approx(1.0, abs=1e-9)


def test_known_shift_is_undone():
    rng = np.random.default_rng(2)
    gt = smooth_image(rng)
    pred = translate(gt, 1.5, -0.75)
    unaligned = 10 * np.log10(255.**2 / np.mean((pred.astype(np.float64) - gt)**2))
    psnr, ssim = realblur_metrics(pred, gt)
    assert psnr > unaligned + 10, (psnr, unaligned)
    aligned, target, mask = realblur_align(pred.astype(np.float32) / 255,
                                           gt.astype(np.float32) / 255)
    assert mask.shape == gt.shape and 0.9 < mask.mean() < 1  # the shifted-in border is masked
    # the unaligned per-channel SSIM is far lower
    assert ssim > masked_ssim(gt / 255., pred / 255., np.ones(gt.shape)) + 0.05


def test_pipeline_matches_protocol_written_with_skimage():
    """The whole protocol re-written step by step with skimage for the SSIM map (float32
    inputs, as the official script runs with skimage >= 0.19)."""
    skimage_metrics = pytest.importorskip('skimage.metrics')
    rng = np.random.default_rng(3)
    gt = smooth_image(rng)
    pred = np.clip(translate(gt, 0.6, 1.2) * 0.93 + rng.normal(0, 2, gt.shape), 0, 255)
    pred = pred.round().astype(np.uint8)
    x, z = gt.astype(np.float32) / 255, pred.astype(np.float32) / 255
    z = z * (np.sum(x * z) / np.sum(z * z))
    gray_x, gray_z = (cv2.cvtColor(v, cv2.COLOR_RGB2GRAY) for v in (x, z))
    _, warp = cv2.findTransformECC(
        gray_x, gray_z, np.eye(3, dtype=np.float32), cv2.MOTION_HOMOGRAPHY,
        (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 0), None, 5)
    h, w = gt.shape[:2]
    flags = cv2.WARP_INVERSE_MAP
    zr = cv2.warpPerspective(z, warp, (w, h), flags=cv2.INTER_CUBIC | flags,
                             borderMode=cv2.BORDER_REFLECT)
    cr = cv2.warpPerspective(np.ones_like(z), warp, (w, h), flags=cv2.INTER_NEAREST | flags,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    zr, xr = zr * cr, x * cr
    expected_psnr = 10 * np.log10(cr.sum() / ((xr - zr)**2).astype(np.float64).sum())
    # skimage computes in its input's precision: float64, as ours, so only summation order
    # differs (order-1 SSIM terms, ~1e-15); float32 would differ by up to ~1e-6
    _, ssim_map = skimage_metrics.structural_similarity(
        xr.astype(np.float64), zr.astype(np.float64), channel_axis=2, gaussian_weights=True,
        use_sample_covariance=False, data_range=1.0, full=True)
    ssim_map, crop_cr = (ssim_map * cr)[5:-5, 5:-5], cr[5:-5, 5:-5]
    expected_ssim = np.mean(ssim_map.sum((0, 1)) / crop_cr.sum((0, 1)))
    psnr, ssim = realblur_metrics(pred, gt)
    assert psnr == pytest.approx(expected_psnr, abs=1e-6)
    assert ssim == pytest.approx(expected_ssim, rel=0, abs=1e-12)


def test_metric_wiring_bgr_batches_and_errors():
    rng = np.random.default_rng(4)
    gt = smooth_image(rng, 48, 56)
    pred = translate(gt, 1.0, 0.5)
    psnr, ssim = realblur_metrics(pred, gt)

    def bgr(img: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(img[..., ::-1].transpose(2, 0, 1).copy()).float()

    metric = METRICS.build(dict(type='RealBlurAligned', prefix='RealBlurJ'))
    assert isinstance(metric, RealBlurAligned)
    metric.process([], [{'gt_img': bgr(gt), 'output': {'pred_img': bgr(pred)}}])
    metric.process([], [{'gt_img': bgr(gt)[None], 'output': {'pred_img': bgr(pred)[None]}}])
    metric.size = 2
    result = metric.evaluate()
    assert result['RealBlurJ/AlignedPSNR'] == pytest.approx(psnr, abs=1e-9)
    assert result['RealBlurJ/AlignedSSIM'] == pytest.approx(ssim, abs=1e-12)

    flat = torch.full_like(bgr(gt), 128.)
    with pytest.raises(RuntimeError, match='x/0001.png'):
        metric.process([], [{'gt_img': bgr(gt), 'gt_path': 'x/0001.png',
                             'output': {'pred_img': flat}}])
