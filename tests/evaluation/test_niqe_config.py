# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The NIQE entry documented in docs/metrics.md works on MMagic's (C, H, W) BGR samples."""
import cv2
import numpy as np
import torch
from mmagic.evaluation.metrics.niqe import niqe
from mmagic.registry import METRICS

import hidiff_mm  # noqa: F401  (applies the compat layer mmagic.evaluation needs)


def test_documented_niqe_config():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.random((192, 192, 3)), (0, 0), 1.5) * 255  # BGR, HWC
    sample = torch.from_numpy(img.transpose(2, 0, 1).copy()).float()
    metric = METRICS.build(dict(type='NIQE', input_order='CHW', convert_to='y', prefix='GoPro'))
    metric.process([], [{'gt_img': sample, 'output': {'pred_img': sample}}])
    metric.size = 1
    value = metric.evaluate()['GoPro/NIQE']
    assert np.isfinite(value) and value > 0
    assert value == float(niqe(img, crop_border=0, input_order='HWC', convert_to='y'))
