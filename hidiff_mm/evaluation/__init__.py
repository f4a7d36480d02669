# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Evaluation metrics (MATLAB SSIM, RealBlur aligned PSNR/SSIM, LPIPS, DISTS)."""
from .metrics import (DISTS, LPIPS, MATLABSSIM, RealBlurAligned, masked_psnr, masked_ssim,
                      matlab_ssim, realblur_align, realblur_metrics)

__all__ = [
    'DISTS', 'LPIPS', 'MATLABSSIM', 'RealBlurAligned', 'matlab_ssim', 'masked_psnr',
    'masked_ssim', 'realblur_align', 'realblur_metrics'
]
