# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Evaluation metrics of the HI-Diff protocols, registered in ``mmagic.registry.METRICS``."""
from .dists_metric import DISTS
from .lpips_metric import LPIPS
from .matlab_psnr import MATLABPSNR, matlab_psnr
from .matlab_ssim import MATLABSSIM, matlab_ssim
from .realblur import RealBlurAligned, masked_psnr, masked_ssim, realblur_align, realblur_metrics

__all__ = [
    'DISTS', 'LPIPS', 'MATLABPSNR', 'MATLABSSIM', 'RealBlurAligned', 'matlab_psnr',
    'matlab_ssim', 'masked_psnr', 'masked_ssim', 'realblur_align', 'realblur_metrics'
]
