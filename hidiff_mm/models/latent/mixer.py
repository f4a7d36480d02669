"""MLP-Mixer block shared by the latent encoders and the GoPro denoiser."""
import torch
from torch import nn


class MixerBlock(nn.Module):
    """Token mixing then channel mixing on ``(B, N, D)`` tokens, each a pre-norm residual MLP.

    Args:
        num_tokens: N.
        channels: D.
        token_expansion: hidden width of the token MLP is ``int(token_expansion * N)``.
        channel_expansion: hidden width of the channel MLP is ``int(channel_expansion * D)``.
    """

    def __init__(self, num_tokens: int, channels: int, token_expansion: float = 0.5,
                 channel_expansion: float = 4) -> None:
        super().__init__()
        token_hidden = int(token_expansion * num_tokens)
        channel_hidden = int(channel_expansion * channels)
        self.patch_mixer = nn.Sequential(
            nn.Linear(num_tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, num_tokens))
        self.channel_mixer = nn.Sequential(
            nn.Linear(channels, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, channels))
        self.norm1 = nn.LayerNorm(channels)
        self.norm2 = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, D) -> (B, N, D)."""
        x = x + self.patch_mixer(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mixer(self.norm2(x))
