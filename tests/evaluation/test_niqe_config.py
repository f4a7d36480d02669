# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The NIQE entry documented in docs/metrics.md works on MMagic's (C, H, W) BGR samples and
ranks a blurred image as less natural than the sharp one."""
import cv2
import numpy as np
import torch
from mmagic.registry import METRICS

import hidiff_mm  # noqa: F401  (applies the compat layer mmagic.evaluation needs)


def niqe_of(img: np.ndarray) -> float:
    """The documented config on one (H, W, 3) BGR image in [0, 255]."""
    sample = torch.from_numpy(img.transpose(2, 0, 1).copy()).float()
    metric = METRICS.build(dict(type='NIQE', input_order='CHW', convert_to='y', prefix='GoPro'))
    metric.process([], [{'gt_img': sample, 'output': {'pred_img': sample}}])
    metric.size = 1
    return metric.evaluate()['GoPro/NIQE']


def test_documented_niqe_config_ranks_blur_as_less_natural():
    rng = np.random.default_rng(0)
    # a textured, piecewise-smooth image: value noise at several scales plus hard edges
    img = sum(cv2.resize(rng.random((s, s, 3)), (192, 192), interpolation=cv2.INTER_CUBIC) / k
              for k, s in ((1, 6), (2, 24), (4, 96)))
    img = np.clip((img - img.min()) / np.ptp(img) * 255, 0, 255)
    img[60:130, 40:90] = 0.3 * img[60:130, 40:90] + 170
    sharp = niqe_of(img)
    blurred = niqe_of(cv2.GaussianBlur(img, (0, 0), 2.5))
    assert np.isfinite(sharp) and sharp > 0
    assert blurred > sharp + 1, (sharp, blurred)
