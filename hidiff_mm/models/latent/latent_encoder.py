"""Latent encoders: compress images into the compact HI-Diff prior ``(B, N, C')``."""
from typing import Optional

import torch
from mmagic.registry import MODELS
from torch import nn

from ...utils.errors import ConfigError
from .mixer import MixerBlock


@MODELS.register_module()
class HIDiffLatentEncoder(nn.Module):
    """Encode ``[sharp, blur]`` (stage 1, ``in_channels=6``) or ``blur`` (stage 2, 3) to a prior.

    ``x -> PixelUnshuffle(4) -> conv+act -> L residual conv blocks -> conv2 -> AdaptiveAvgPool
    to (g, g) -> N = g*g tokens -> MixerBlock -> Linear+act -> (B, N, C')``.

    Two official variants, selected by ``act``:

    * ``'gelu'`` (GoPro, ``latent_encoder_gelu``): conv2 is one 3x3 conv at ``embed_dim``; the
      tokens have ``embed_dim`` channels and the last Linear lifts them to ``4 * embed_dim``.
    * ``'lrelu'`` (RealBlur, ``latent_encoder_lrelu``): LeakyReLU(0.1) everywhere; conv2 is a
      3-conv stack to ``4 * embed_dim`` before pooling; the last Linear keeps ``4 * embed_dim``.

    Args:
        in_channels: 6 for the stage-1 encoder (sharp first), 3 for the stage-2 encoder.
        embed_dim: base width E; the prior has C' = 4E channels.
        num_blocks: residual conv blocks L (GoPro 6, RealBlur 5).
        group: the pooled grid side g; N = g * g tokens.
        act: ``'gelu'`` or ``'lrelu'``.
        token_expansion / channel_expansion: MixerBlock widths.
    """

    def __init__(self,
                 in_channels: int = 6,
                 embed_dim: int = 64,
                 num_blocks: int = 6,
                 group: int = 4,
                 act: str = 'gelu',
                 token_expansion: float = 0.5,
                 channel_expansion: float = 4) -> None:
        super().__init__()
        if in_channels not in (3, 6):
            raise ConfigError(
                f'in_channels must be 6 (sharp + blur) or 3 (blur), got {in_channels}')
        if act not in ('gelu', 'lrelu'):
            raise ConfigError(f"act must be 'gelu' or 'lrelu', got {act!r}")
        self.in_channels = in_channels
        self.prior_channels = 4 * embed_dim

        def activation() -> nn.Module:
            return nn.GELU() if act == 'gelu' else nn.LeakyReLU(0.1, inplace=True)

        self.pixel_unshuffle = nn.PixelUnshuffle(4)
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels * 16, embed_dim, 3, 1, 1), activation())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(embed_dim, embed_dim, 3, 1, 1), activation(),
                          nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)) for _ in range(num_blocks))
        if act == 'gelu':
            token_channels = embed_dim
            self.conv2 = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        else:
            token_channels = 4 * embed_dim
            self.conv2 = nn.Sequential(
                nn.Conv2d(embed_dim, 2 * embed_dim, 3, 1, 1), activation(),
                nn.Conv2d(2 * embed_dim, 2 * embed_dim, 3, 1, 1), activation(),
                nn.Conv2d(2 * embed_dim, 4 * embed_dim, 3, 1, 1), activation())
        self.pool = nn.AdaptiveAvgPool2d((group, group))
        self.mlp = MixerBlock(group * group, token_channels, token_expansion, channel_expansion)
        self.end = nn.Sequential(nn.Linear(token_channels, 4 * embed_dim), activation())

    def forward(self, blur: torch.Tensor, sharp: Optional[torch.Tensor] = None) -> torch.Tensor:
        """blur, sharp: (B, 3, H, W), H and W divisible by 4 -> prior (B, N, C')."""
        if (sharp is not None) != (self.in_channels == 6):
            need = 'needs the sharp image' if self.in_channels == 6 else 'takes no sharp image'
            raise ValueError(f'this latent encoder (in_channels={self.in_channels}) {need}')
        x = blur if sharp is None else torch.cat([sharp, blur], dim=1)
        x = self.conv1(self.pixel_unshuffle(x))
        for block in self.blocks:
            x = block(x) + x
        x = self.pool(self.conv2(x)).flatten(2).transpose(1, 2)
        return self.end(self.mlp(x))
