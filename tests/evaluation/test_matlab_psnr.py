"""MATLABPSNR: MATLAB's psnr on the 8-bit RGB images the paper scores."""
import numpy as np
import pytest
import torch
from mmagic.registry import METRICS

from hidiff_mm.evaluation.metrics import MATLABPSNR, matlab_psnr


def test_matlab_psnr_by_hand():
    ref = np.full((4, 5, 3), 100, np.uint8)
    img = ref.copy()
    img[0, 0, 0] = 110  # one channel-pixel off by 10: MSE = 100 / 60
    assert matlab_psnr(img, ref) == pytest.approx(10 * np.log10(255**2 * 60 / 100), abs=1e-12)
    assert matlab_psnr(ref, ref) == float('inf')
    with pytest.raises(ValueError, match='shapes differ'):
        matlab_psnr(img[:3], ref)


def test_metric_scores_the_rounded_8bit_rgb_output():
    metric = METRICS.build(dict(type='MATLABPSNR', prefix='GoPro'))
    assert isinstance(metric, MATLABPSNR)
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (3, 6, 7)).astype(np.float32)        # BGR (C, H, W), as MMagic
    pred = np.clip(gt + rng.normal(0, 4, gt.shape), -3, 260).astype(np.float32)
    pred[0, 0, 0], pred[1, 0, 0] = 300., -7.                         # out of range: clamped
    metric.process([], [{'gt_img': torch.from_numpy(gt),
                         'output': {'pred_img': torch.from_numpy(pred)}}])
    metric.size = 1
    value = metric.evaluate()['GoPro/MATLABPSNR']
    saved = np.clip(np.round(pred), 0, 255)
    mse = np.mean((saved.astype(np.float64) - gt)**2)
    assert value == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-9)
    float_mse = np.mean((np.clip(pred, 0, 255).astype(np.float64) - gt)**2)
    assert abs(value - 10 * np.log10(255**2 / float_mse)) > 1e-3  # rounding matters
