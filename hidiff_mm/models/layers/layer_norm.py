"""Restormer-style layer norm used throughout HI-Diff's Transformer."""
import torch
import torch.nn.functional as F
from torch import nn

from .fast_path import nhwc, use_fast


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

    def forward_fast(self, x: torch.Tensor) -> torch.Tensor:
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

    The fast path (``fast_path=True``, see :func:`~.fast_path.set_fast_path`) normalises a map
    in one fused kernel and returns it channels-last; the exact path follows the official code.

    Args:
        channels: C.
        norm_type: ``'WithBias'`` (every HI-Diff config) or ``'BiasFree'``.
    """

    def __init__(self, channels: int, norm_type: str = 'WithBias') -> None:
        super().__init__()
        if norm_type not in ('WithBias', 'BiasFree'):
            raise ValueError(f"norm_type must be 'WithBias' or 'BiasFree', got {norm_type!r}")
        self.body = _LayerNormBody(channels, with_bias=norm_type == 'WithBias')
        self.fast_path = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = self.body.forward_fast if use_fast(self, x) else self.body
        if x.dim() == 4:
            return norm(nhwc(x)).permute(0, 3, 1, 2)
        return norm(x)
