# Copyright (c) hidiff_mm contributors. All rights reserved.
"""ESRGAN's VGG-style discriminator for any patch size that is a multiple of 2**num_stages."""
import torch
import torch.nn as nn
from mmagic.registry import MODELS
from mmengine.model import BaseModule

from ...utils.errors import ConfigError


@MODELS.register_module()
class VGGStyleDiscriminator(BaseModule):
    """The SRGAN/ESRGAN discriminator (MMagic's ``ModifiedVGG``) for HI-Diff's 384x384 patches.

    Stage 0 is conv3x3 (bias) + LeakyReLU and conv4x4/2 + BN + LeakyReLU; each further stage is
    conv3x3 + BN + LeakyReLU and conv4x4/2 + BN + LeakyReLU, with ``mid_channels`` x 1, 2, 4, 8,
    8, ... channels. The ``(input_size / 2**num_stages)**2`` map is flattened into Linear(100),
    LeakyReLU, Linear(1): one real/fake logit per image (the vanilla GAN's D(x) before the
    sigmoid). ``input_size=128, num_stages=5`` is exactly ``ModifiedVGG`` (4x4 head, the only
    size it accepts); the HI-Diff-PE configs use ``input_size=384, num_stages=6`` (6x6 head), the
    way BasicSR's ``VGGStyleDiscriminator`` adds a stage for 256x256 inputs.

    Args:
        in_channels: input channels. Default 3.
        mid_channels: channels of the first stage. Default 64.
        input_size: side of the (square) input patches. Default 128.
        num_stages: number of stride-2 stages; ``input_size`` must be a multiple of
            ``2**num_stages``. Default 5.
        init_cfg: MMEngine init config. Default None (PyTorch's default init, as ModifiedVGG).
    """

    def __init__(self, in_channels: int = 3, mid_channels: int = 64, input_size: int = 128,
                 num_stages: int = 5, init_cfg=None) -> None:
        super().__init__(init_cfg)
        if num_stages < 1 or input_size % (2 ** num_stages):
            raise ConfigError(f'input_size ({input_size}) must be a positive multiple of '
                              f'2**num_stages ({2 ** num_stages})')
        self.input_size = input_size
        lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        layers = [nn.Conv2d(in_channels, mid_channels, 3, 1, 1, bias=True), lrelu,
                  nn.Conv2d(mid_channels, mid_channels, 4, 2, 1, bias=False),
                  nn.BatchNorm2d(mid_channels), lrelu]
        channels = mid_channels
        for stage in range(1, num_stages):
            out = mid_channels * min(2 ** stage, 8)
            layers += [nn.Conv2d(channels, out, 3, 1, 1, bias=False), nn.BatchNorm2d(out), lrelu,
                       nn.Conv2d(out, out, 4, 2, 1, bias=False), nn.BatchNorm2d(out), lrelu]
            channels = out
        self.features = nn.Sequential(*layers)
        side = input_size // 2 ** num_stages
        self.head = nn.Sequential(nn.Linear(channels * side * side, 100), lrelu,
                                  nn.Linear(100, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, input_size, input_size) -> logits (N, 1)."""
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f'VGGStyleDiscriminator was built for {self.input_size}x'
                             f'{self.input_size} patches (input_size), got {tuple(x.shape)}')
        return self.head(self.features(x).flatten(1))
