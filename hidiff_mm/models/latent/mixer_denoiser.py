"""The GoPro denoiser (official ``denoising``): an MLP-Mixer over prior tokens."""
import torch
from mmagic.registry import MODELS
from torch import nn

from .mixer import MixerBlock


@MODELS.register_module()
class HIDiffMixerDenoiser(nn.Module):
    """Predict from ``(z_t, c, t)`` token-wise; the GoPro model reads the output as noise.

    ``h = LReLU_0.2(Linear([z_t, s * (t + 1), c]))``, then ``num_mixer_blocks`` x
    ``GELU(MixerBlock(h))``, then ``GELU(Linear(h))``. The time input is the 1-based step
    ``t + 1`` times a learned scalar ``s`` (``time_mlp``), broadcast over tokens and channels
    (no sinusoidal embedding) — exactly as the official model.

    Args:
        prior_channels: C' of z_t, c and the output.
        inner_channels: mixer width.
        num_mixer_blocks: Mixer blocks. The official ``block_num`` is this plus 2 (GoPro: 4 -> 2).
        num_tokens: N.
        token_expansion / channel_expansion: MixerBlock widths.
        time_scale_init: initial value of ``s``.
    """

    def __init__(self,
                 prior_channels: int = 256,
                 inner_channels: int = 512,
                 num_mixer_blocks: int = 2,
                 num_tokens: int = 16,
                 token_expansion: float = 0.5,
                 channel_expansion: float = 2,
                 time_scale_init: float = 1e-3) -> None:
        super().__init__()
        self.time_mlp = nn.Parameter(torch.full((1, ), time_scale_init))
        self.first_layer = nn.Sequential(
            nn.Linear(3 * prior_channels, inner_channels), nn.LeakyReLU(0.2, inplace=True))
        self.blocks = nn.ModuleList(
            nn.Sequential(
                MixerBlock(num_tokens, inner_channels, token_expansion, channel_expansion),
                nn.GELU()) for _ in range(num_mixer_blocks))
        self.final_layer = nn.Sequential(nn.Linear(inner_channels, prior_channels), nn.GELU())

    def forward(self, z_t: torch.Tensor, cond: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """z_t, cond: (B, N, C'); t: (B,) 0-based step indices -> (B, N, C')."""
        time = (t + 1).to(z_t.dtype).view(-1, 1, 1).expand_as(z_t) * self.time_mlp
        h = self.first_layer(torch.cat([z_t, time, cond], dim=-1))
        for block in self.blocks:
            h = block(h)
        return self.final_layer(h)
