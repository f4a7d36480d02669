"""Restormer-style layer norm used throughout HI-Diff's Transformer."""
import torch
import torch.nn.functional as F
from torch import nn

from ...utils.errors import ConfigError
from .fast_path import fast_form_of, nhwc


class _LayerNormBody(nn.Module):
    """Normalise the last axis: ``(x - mu) / sqrt(var + eps) * weight [+ bias]``.

    ``with_bias=False`` is Restormer's "BiasFree" variant: no mean subtraction and no bias.
    """

    def __init__(self, channels: int, with_bias: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.with_bias = with_bias
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        if with_bias:
            self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.var(-1, keepdim=True, unbiased=False)
        if not self.with_bias:
            return x / torch.sqrt(var + self.eps) * self.weight
        mu = x.mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias

    def fused(self, x: torch.Tensor) -> torch.Tensor:
        """The same function in one fused kernel (``F.layer_norm``) where it exists."""
        if self.with_bias:
            return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        x = x.contiguous()
        var = x.var(-1, keepdim=True, unbiased=False)
        return x * torch.rsqrt(var + self.eps) * self.weight


class HIDiffLayerNorm(nn.Module):
    """Layer norm over channels for feature maps ``(B, C, H, W)`` or tokens ``(B, L, C)``.

    The parameters live in ``.body`` (state keys ``<name>.body.weight`` / ``.body.bias``), as in the
    official release. Feature maps are normalised per pixel over ``C``; tokens over the last axis.
    This is the exact form, as the official code computes it; :class:`FastHIDiffLayerNorm` is the
    fast one.

    Args:
        channels: C.
        norm_type: ``'WithBias'`` (every HI-Diff config) or ``'BiasFree'``.
    """

    def __init__(self, channels: int, norm_type: str = 'WithBias') -> None:
        super().__init__()
        if norm_type not in ('WithBias', 'BiasFree'):
            raise ConfigError(f"norm_type must be 'WithBias' or 'BiasFree', got {norm_type!r}")
        self.body = _LayerNormBody(channels, with_bias=norm_type == 'WithBias')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._over_channels(x, self.body)

    @staticmethod
    def _over_channels(x: torch.Tensor, norm) -> torch.Tensor:
        """``norm`` (over the last axis) applied over the channels of a map or to tokens."""
        if x.dim() == 4:
            return norm(nhwc(x)).permute(0, 3, 1, 2)
        return norm(x)


@fast_form_of(HIDiffLayerNorm)
class FastHIDiffLayerNorm(HIDiffLayerNorm):
    """The fast form: the same normalisation in one fused kernel where there is one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._over_channels(x, self.body.fused)
