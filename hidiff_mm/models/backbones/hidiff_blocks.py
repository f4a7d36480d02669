"""Building blocks of the HI-Diff Transformer: MDTA, GDFN, the Transformer block and one level."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmagic.registry import MODELS
from torch import nn

from ..layers.him import HIM
from ..layers.layer_norm import HIDiffLayerNorm


class _PriorModulated(nn.Module):
    """Optional ``x * (W1 p + b1) + (W2 p + b2)`` of a branch input by a prior vector p (B, C').

    The Linear layers are named ``ln1``/``ln2`` as in the official state dict.
    """

    def _init_modulation(self, channels: int, prior_channels: Optional[int]) -> None:
        self.modulation = prior_channels is not None
        if self.modulation:
            self.ln1 = nn.Linear(prior_channels, channels)
            self.ln2 = nn.Linear(prior_channels, channels)

    def _modulate(self, x: torch.Tensor, prior: Optional[torch.Tensor]) -> torch.Tensor:
        if prior is None or not self.modulation:
            return x
        return x * self.ln1(prior)[..., None, None] + self.ln2(prior)[..., None, None]


class MDTA(_PriorModulated):
    """Multi-Dconv-head Transposed Attention: channel attention per head, ``(B, C, H, W)``.

    With ``prior_channels`` set, the input is first modulated by the prior vector
    (the bottleneck level of HI-Diff); its Linear layers are ``ln1``/``ln2``.
    """

    def __init__(self, channels: int, num_heads: int, bias: bool = False,
                 prior_channels: Optional[int] = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(channels, channels * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(channels * 3, channels * 3, kernel_size=3, padding=1,
                                    groups=channels * 3, bias=bias)
        self.project_out = nn.Conv2d(channels, channels, kernel_size=1, bias=bias)
        self._init_modulation(channels, prior_channels)

    def forward(self, x: torch.Tensor, prior: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, C, H, W); prior: (B, C') or None -> (B, C, H, W)."""
        b, c, h, w = x.shape
        x = self._modulate(x, prior)
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q = q.reshape(b, self.num_heads, c // self.num_heads, h * w)
        k = k.reshape(b, self.num_heads, c // self.num_heads, h * w)
        v = v.reshape(b, self.num_heads, c // self.num_heads, h * w)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class GDFN(_PriorModulated):
    """Gated-Dconv Feed-forward Network, ``(B, C, H, W) -> (B, C, H, W)``.

    Hidden width ``int(C * expansion)``; optional prior modulation as in :class:`MDTA`.
    """

    def __init__(self, channels: int, expansion: float = 2.66, bias: bool = False,
                 prior_channels: Optional[int] = None) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1,
                                groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, channels, kernel_size=1, bias=bias)
        self._init_modulation(channels, prior_channels)

    def forward(self, x: torch.Tensor, prior: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, C, H, W); prior: (B, C') or None -> (B, C, H, W)."""
        x = self._modulate(x, prior)
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


@MODELS.register_module()
class HIDiffTransformerBlock(nn.Module):
    """Restormer block with optional prior modulation: ``x + MDTA(LN x)``, then ``x + GDFN(LN x)``.

    Contract: ``forward(x: (B, C, H, W), prior: (B, C') or None) -> (B, C, H, W)``. The prior
    vector is used only when the block was built with ``prior_channels`` (HI-Diff's bottleneck).

    Args:
        channels: C.
        num_heads: MDTA heads.
        ffn_expansion: GDFN hidden width factor (GoPro 2.66, RealBlur 2.0).
        bias: conv biases.
        norm_type: ``'WithBias'`` or ``'BiasFree'``.
        prior_channels: C' of the modulating prior vector, or None for no modulation.
    """

    def __init__(self, channels: int, num_heads: int, ffn_expansion: float = 2.66,
                 bias: bool = False, norm_type: str = 'WithBias',
                 prior_channels: Optional[int] = None) -> None:
        super().__init__()
        self.norm1 = HIDiffLayerNorm(channels, norm_type)
        self.attn = MDTA(channels, num_heads, bias, prior_channels)
        self.norm2 = HIDiffLayerNorm(channels, norm_type)
        self.ffn = GDFN(channels, ffn_expansion, bias, prior_channels)

    def forward(self, x: torch.Tensor, prior: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), prior)
        return x + self.ffn(self.norm2(x), prior)


class HIDiffLevel(nn.Module):
    """One encoder/decoder level: a HIM (``integration='him'``) then ``num_blocks`` blocks.

    ``integration='modulation'`` (the bottleneck) has no HIM; every block is modulated by the
    prior vector instead. ``forward(x: (B, C, H, W), prior) -> (B, C, H, W)`` where the prior is
    ``(B, N, C')`` tokens for ``'him'`` and a ``(B, C')`` vector for ``'modulation'``.
    """

    def __init__(self, channels: int, num_heads: int, num_blocks: int, ffn_expansion: float,
                 bias: bool, norm_type: str, prior_channels: int,
                 integration: str = 'him') -> None:
        super().__init__()
        if integration not in ('him', 'modulation'):
            raise ValueError(f"integration must be 'him' or 'modulation', got {integration!r}")
        self.integration = integration
        block_prior = prior_channels if integration == 'modulation' else None
        self.blocks = nn.ModuleList(
            HIDiffTransformerBlock(channels, num_heads, ffn_expansion, bias, norm_type, block_prior)
            for _ in range(num_blocks))
        if integration == 'him':
            self.him = HIM(channels, num_heads, prior_channels, bias, norm_type)

    def forward(self, x: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        if self.integration == 'him':
            x = self.him(x, prior)
            prior = None
        for block in self.blocks:
            x = block(x, prior)
        return x


class PatchEmbed(nn.Module):
    """``(B, in, H, W) -> (B, dim, H, W)`` by a 3x3 conv without bias (state key ``proj``)."""

    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Sequential):
    """``(B, C, H, W) -> (B, 2C, H/2, W/2)``: 3x3 conv to C/2, then pixel-unshuffle by 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels // 2, kernel_size=3, padding=1, bias=False),
            nn.PixelUnshuffle(2))


class Upsample(nn.Sequential):
    """``(B, C, H, W) -> (B, C/2, 2H, 2W)``: 3x3 conv to 2C, then pixel-shuffle by 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels * 2, kernel_size=3, padding=1, bias=False),
            nn.PixelShuffle(2))
