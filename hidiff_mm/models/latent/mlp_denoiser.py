"""The RealBlur denoiser (official ``simple_denoise``): a plain Linear/LeakyReLU stack."""
import torch
from mmagic.registry import MODELS
from torch import nn


class _LinearLReLU(nn.Module):
    """Linear + LeakyReLU(0.1). No skip connection (the official name ``ResMLP`` suggests one
    that does not exist); the attribute is called ``resmlp`` to keep the official state keys."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.resmlp = nn.Sequential(nn.Linear(channels, channels), nn.LeakyReLU(0.1, inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resmlp(x)


@MODELS.register_module()
class HIDiffMLPDenoiser(nn.Module):
    """Predict from ``(z_t, c, t)`` token-wise; the RealBlur model reads the output as ``x0``.

    ``h = LReLU_0.1(Linear([c, t / time_scale, z_t]))`` then ``num_layers`` x
    ``LReLU_0.1(Linear(h))``. The time input is the 0-based step divided by ``time_scale``
    (official: 50, i.e. ten times the constructor default ``timesteps=5`` that the RealBlur
    configs never override, so t/50 lies in [0, 0.3] for T = 16).

    Args:
        prior_channels: C' of z_t, c and the output.
        num_layers: Linear layers after the first (official ``n_denoise_res``).
        time_scale: divisor of the step index.
    """

    def __init__(self, prior_channels: int = 256, num_layers: int = 4,
                 time_scale: float = 50.) -> None:
        super().__init__()
        self.time_scale = time_scale
        self.resmlp = nn.Sequential(
            nn.Linear(2 * prior_channels + 1, prior_channels), nn.LeakyReLU(0.1, inplace=True),
            *(_LinearLReLU(prior_channels) for _ in range(num_layers)))

    def forward(self, z_t: torch.Tensor, cond: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """z_t, cond: (B, N, C'); t: (B,) 0-based step indices -> (B, N, C')."""
        b, n, _ = z_t.shape
        # float32 division whatever the latents' dtype, as the official ``t.float() / 50``
        time = (t.float() / self.time_scale).to(z_t.dtype).view(b, 1, 1).expand(b, n, 1)
        return self.resmlp(torch.cat([cond, time, z_t], dim=-1))
