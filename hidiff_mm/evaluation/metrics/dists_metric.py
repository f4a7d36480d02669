# Copyright (c) hidiff_mm contributors. All rights reserved.
"""DISTS (Ding et al., TPAMI 2020) with a local VGG16 checkpoint."""
import importlib.util
import os.path as osp
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmagic.evaluation.metrics.base_sample_wise_metric import BaseSampleWiseMetric
from mmagic.registry import METRICS

from hidiff_mm.utils.torchvision_weights import IMAGENET_MEAN, IMAGENET_STD
from ...utils.errors import InputError
from .backbones import load_state_dict, load_torchvision_features
from .image_utils import ImageLike, quantize_rgb

DISTS_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of VGG16
DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)  # the input image, then the five taps
_C1 = _C2 = 1e-6


def packaged_dists_weights() -> Optional[str]:
    """Path of ``weights.pt`` inside the installed ``DISTS_pytorch`` package, if any."""
    spec = importlib.util.find_spec('DISTS_pytorch')
    if spec is None or not spec.submodule_search_locations:
        return None
    return osp.join(spec.submodule_search_locations[0], 'weights.pt')


def l2_pool(x: torch.Tensor) -> torch.Tensor:
    """DISTS' L2 pooling: sqrt of a 3x3 Hann-weighted (outer([.5, 1, .5]), normalised)
    mean of x^2, stride 2, zero padding 1, plus 1e-12 under the root."""
    taps = torch.tensor([0.5, 1., 0.5], dtype=x.dtype, device=x.device)
    kernel = torch.outer(taps, taps) / 4
    channels = x.shape[1]
    out = F.conv2d(x * x, kernel.expand(channels, 1, 3, 3), stride=2, padding=1, groups=channels)
    return (out + 1e-12).sqrt()


@METRICS.register_module()
class DISTS(BaseSampleWiseMetric):
    """Deep Image Structure and Texture Similarity, lower is better.

    VGG16 with every max-pool replaced by :func:`l2_pool`, fed the uint8-rounded
    RGB image in [0, 1] normalised with the ImageNet mean/std. For the input
    image and the relu1_2 ... relu5_3 features, per channel: texture term
    (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1) and structure term
    (2 cov_xy + c2) / (var_x + var_y + c2) over the whole image (c1 = c2 = 1e-6,
    population statistics), weighted by alpha and beta normalised by
    sum(alpha) + sum(beta); DISTS = 1 - weighted sum. The image is not resized.

    Args:
        backbone_path: torchvision-format VGG16 state dict (torchvision's ImageNet
            checkpoint ``vgg16-397923af.pth``). Required; nothing is downloaded.
        calibration_path: DISTS ``weights.pt`` with tensors ``alpha`` and ``beta`` of
            shape (1, 1475, 1, 1). Defaults to the file shipped in the ``DISTS_pytorch``
            pip package when it is installed.
        gt_key: key of the ground truth in the data sample. Defaults to 'gt_img'.
        pred_key: key of the prediction in ``data_sample['output']``. Defaults to 'pred_img'.
        device: device the network runs on. Defaults to 'cpu'.
        collect_device: device for collecting results across ranks. Defaults to 'cpu'.
        prefix: prefix of the metric name. Defaults to None.

    Metrics:
        - DISTS (float): mean over images.
    """

    metric = 'DISTS'

    def __init__(self,
                 backbone_path: str,
                 calibration_path: Optional[str] = None,
                 gt_key: str = 'gt_img',
                 pred_key: str = 'pred_img',
                 device: str = 'cpu',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(gt_key=gt_key, pred_key=pred_key, device=device,
                         collect_device=collect_device, prefix=prefix)
        features = load_torchvision_features('vgg16', backbone_path, 'DISTS')
        self.features = features[:DISTS_TAPS[-1] + 1].to(device)
        if calibration_path is None:
            calibration_path = packaged_dists_weights()
        calibration = load_state_dict(
            calibration_path, 'calibration_path', 'DISTS',
            'It is weights.pt of the `DISTS_pytorch` pip package (version 0.1).')
        total = sum(DISTS_CHANNELS)
        if any(calibration.get(k) is None or calibration[k].numel() != total
               for k in ('alpha', 'beta')):
            raise InputError(f'DISTS: `calibration_path` {calibration_path!r} must hold '
                             f'`alpha` and `beta` with {total} values each.')
        alpha, beta = (calibration[k].reshape(total).double() for k in ('alpha', 'beta'))
        norm = alpha.sum() + beta.sum()
        self.alpha = (alpha / norm).float().to(device).split(DISTS_CHANNELS)
        self.beta = (beta / norm).float().to(device).split(DISTS_CHANNELS)
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def _stages(self, images: torch.Tensor) -> List[torch.Tensor]:
        """The input and the five compared VGG16 activations."""
        outs = [images]
        x = (images - self.mean) / self.std
        for i, layer in enumerate(self.features):
            x = l2_pool(x) if isinstance(layer, nn.MaxPool2d) else layer(x)
            if i in DISTS_TAPS:
                outs.append(x)
        return outs

    @torch.no_grad()
    def process_image(self, gt: ImageLike, pred: ImageLike, mask: ImageLike) -> float:
        """DISTS of one (C, H, W) prediction against its GT (``mask`` is unused)."""
        images = torch.stack([quantize_rgb(pred, self.channel_order),
                              quantize_rgb(gt, self.channel_order)]).to(self.device) / 255.
        similarity = 0.
        for feat, alpha, beta in zip(self._stages(images), self.alpha, self.beta):
            mu = feat.mean((2, 3))
            var = feat.var((2, 3), unbiased=False)
            cov = (feat[0] * feat[1]).mean((1, 2)) - mu[0] * mu[1]
            texture = (2 * mu[0] * mu[1] + _C1) / (mu[0]**2 + mu[1]**2 + _C1)
            structure = (2 * cov + _C2) / (var[0] + var[1] + _C2)
            similarity += (alpha * texture).sum() + (beta * structure).sum()
        return float(1 - similarity)
