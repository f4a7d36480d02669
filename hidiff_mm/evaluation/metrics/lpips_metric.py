# Copyright (c) hidiff_mm contributors. All rights reserved.
"""LPIPS v0.1 (Zhang et al., CVPR 2018) with local AlexNet / VGG16 weights."""
import importlib.util
import os.path as osp
from typing import List, Optional

import torch
from mmagic.evaluation.metrics.base_sample_wise_metric import BaseSampleWiseMetric
from mmagic.registry import METRICS

from ...utils.errors import ConfigError, InputError
from .backbones import load_state_dict, load_torchvision_features
from .image_utils import ImageLike, quantize_rgb

# net -> (torchvision arch, indices of the ReLU outputs compared, their channel counts)
LPIPS_NETS = {
    'alex': ('alexnet', (1, 4, 7, 9, 11), (64, 192, 384, 256, 256)),
    'vgg': ('vgg16', (3, 8, 15, 22, 29), (64, 128, 256, 512, 512)),
}
# lpips' ScalingLayer: inputs in [-1, 1] become (x - shift) / scale
_SHIFT = (-.030, -.088, -.188)
_SCALE = (.458, .448, .450)


def packaged_calibration(net: str) -> Optional[str]:
    """Path of ``lpips/weights/v0.1/<net>.pth`` inside the installed ``lpips`` package."""
    spec = importlib.util.find_spec('lpips')
    if spec is None or not spec.submodule_search_locations:
        return None
    return osp.join(spec.submodule_search_locations[0], 'weights', 'v0.1', f'{net}.pth')


@METRICS.register_module()
class LPIPS(BaseSampleWiseMetric):
    """Learned Perceptual Image Patch Similarity, v0.1, lower is better.

    For each compared layer: unit-normalise the features over channels, take
    the squared difference, weight the channels by the calibrated linear layer
    and average over space; the metric is the sum over layers. Inputs are the
    uint8-rounded RGB images scaled to [-1, 1].

    Args:
        backbone_path: torchvision-format state dict of the trunk (AlexNet for
            ``net='alex'``: ``alexnet-owt-7be5be79.pth``; VGG16 for ``net='vgg'``:
            ``vgg16-397923af.pth``). Required; nothing is downloaded.
        net: 'alex' (the usual LPIPS) or 'vgg'. Defaults to 'alex'.
        calibration_path: LPIPS linear layers (keys ``lin0.model.1.weight`` ...).
            Defaults to the v0.1 file shipped in the ``lpips`` package.
        gt_key: key of the ground truth in the data sample. Defaults to 'gt_img'.
        pred_key: key of the prediction in ``data_sample['output']``. Defaults to 'pred_img'.
        device: device the network runs on. Defaults to 'cpu'.
        collect_device: device for collecting results across ranks. Defaults to 'cpu'.
        prefix: prefix of the metric name. Defaults to None.

    Metrics:
        - LPIPS (``net='alex'``) or LPIPS_VGG (``net='vgg'``) (float): mean over images.
    """

    metric = 'LPIPS'

    def __init__(self,
                 backbone_path: str,
                 net: str = 'alex',
                 calibration_path: Optional[str] = None,
                 gt_key: str = 'gt_img',
                 pred_key: str = 'pred_img',
                 device: str = 'cpu',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(gt_key=gt_key, pred_key=pred_key, device=device,
                         collect_device=collect_device, prefix=prefix)
        if net not in LPIPS_NETS:
            raise ConfigError(f"LPIPS: net must be one of {sorted(LPIPS_NETS)}, got {net!r}.")
        arch, self.taps, channels = LPIPS_NETS[net]
        self.metric = 'LPIPS' if net == 'alex' else 'LPIPS_VGG'
        features = load_torchvision_features(arch, backbone_path, 'LPIPS')
        self.features = features[:self.taps[-1] + 1].to(device)
        if calibration_path is None:
            calibration_path = packaged_calibration(net)
        calibration = load_state_dict(
            calibration_path, 'calibration_path', 'LPIPS',
            f'It is lpips/weights/v0.1/{net}.pth of the `lpips` pip package.')
        self.weights: List[torch.Tensor] = []
        for i, c in enumerate(channels):
            weight = calibration.get(f'lin{i}.model.1.weight')
            if weight is None or weight.numel() != c:
                raise InputError(f'LPIPS: `calibration_path` {calibration_path!r} has no '
                                 f'lin{i}.model.1.weight with {c} channels for net={net!r}.')
            self.weights.append(weight.reshape(1, c, 1, 1).float().to(device))
        self.shift = torch.tensor(_SHIFT, device=device).view(1, 3, 1, 1)
        self.scale = torch.tensor(_SCALE, device=device).view(1, 3, 1, 1)

    def _taps(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Outputs of the compared ReLU layers."""
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                outs.append(x)
        return outs

    @torch.no_grad()
    def process_image(self, gt: ImageLike, pred: ImageLike, mask: ImageLike) -> float:
        """LPIPS of one (C, H, W) prediction against its GT (``mask`` is unused)."""
        images = torch.stack([quantize_rgb(pred, self.channel_order),
                              quantize_rgb(gt, self.channel_order)]).to(self.device)
        x = (images / 127.5 - 1 - self.shift) / self.scale
        dist = 0.
        for feat, weight in zip(self._taps(x), self.weights):
            feat = feat / (feat.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            dist += ((feat[0:1] - feat[1:2]).pow(2) * weight).sum(1).mean()
        return float(dist)
