"""Hierarchical Integration Module (HIM): cross-attention from image features to prior tokens."""
import torch
from mmagic.registry import MODELS
from torch import nn

from ...utils.errors import ConfigError
from .fast_path import add_product, channels_last, fast_form_of, from_nhwc, nhwc
from .layer_norm import HIDiffLayerNorm


@MODELS.register_module()
class HIM(nn.Module):
    """Fuse a prior ``(B, N, C')`` into a feature map ``(B, C, H, W)`` by cross-attention.

    Every pixel is a query; the N prior tokens give keys and values. Contract:
    ``forward(x: (B, C, H, W), prior: (B, N, C')) -> (B, C, H, W)``, a residual update
    ``x + proj(softmax(q k^T / sqrt(d)) v)`` where ``q = Wq LN(x)`` and ``k, v = Wkv LN(prior)``.

    This is the exact form, as the official code computes it; :class:`FastHIM` is the fast one.

    Args:
        channels: C, the feature width.
        num_heads: attention heads (contiguous channel chunks of C).
        prior_channels: C' (the official ``4 * embed_dim``; 256 for GoPro).
        bias: bias of the query projection (the key/value projection never has one,
            the output projection always has one — as in the official model).
        norm_type: ``'WithBias'`` or ``'BiasFree'`` layer norms.
        qk_scale: attention scale, default ``(C / num_heads) ** -0.5``.
    """

    def __init__(self,
                 channels: int,
                 num_heads: int,
                 prior_channels: int = 256,
                 bias: bool = False,
                 norm_type: str = 'WithBias',
                 qk_scale: float = None) -> None:
        super().__init__()
        if channels % num_heads:
            raise ConfigError(f'channels ({channels}) must be divisible by num_heads ({num_heads})')
        self.num_heads = num_heads
        self.prior_channels = prior_channels
        self.scale = qk_scale or (channels // num_heads)**-0.5
        self.norm1 = HIDiffLayerNorm(channels, norm_type)
        self.norm2 = HIDiffLayerNorm(prior_channels, norm_type)
        self.q = nn.Linear(channels, channels, bias=bias)
        self.kv = nn.Linear(prior_channels, 2 * channels, bias=False)
        self.proj = nn.Linear(channels, channels, bias=True)

    def check_prior(self, prior: torch.Tensor) -> None:
        """Raise ValueError unless ``prior`` is ``(B, N, C')``."""
        if prior.dim() != 3 or prior.shape[-1] != self.prior_channels:
            raise ValueError(f'HIM expects a prior of shape (B, N, {self.prior_channels}), '
                             f'got {tuple(prior.shape)}')

    def forward(self, x: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); prior: (B, N, C') -> (B, C, H, W)."""
        self.check_prior(prior)
        b, c, h, w = x.shape
        heads = self.num_heads
        tokens = x.flatten(2).transpose(1, 2)                      # (B, HW, C)
        q = self.q(self.norm1(tokens))
        k, v = self.kv(self.norm2(prior)).chunk(2, dim=-1)
        q = q.view(b, h * w, heads, c // heads).transpose(1, 2)    # (B, h, HW, d)
        k = k.reshape(b, -1, heads, c // heads).transpose(1, 2)    # (B, h, N, d)
        v = v.reshape(b, -1, heads, c // heads).transpose(1, 2)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, h * w, c)
        tokens = tokens + self.proj(out)
        return tokens.transpose(1, 2).reshape(b, c, h, w).contiguous()


@fast_form_of(HIM)
class FastHIM(HIM):
    """HIM's fast form. With only N prior tokens, the query projection is folded into the keys
    (``q_h k_h^T = LN(x) (k_h Wq_h)^T``) and the output projection into the values
    (``P_h v_h Wp_h^T``), so the whole module is two GEMMs over the pixels with inner sizes C and
    heads x N, instead of a C x C projection before and after the attention. The output keeps
    the input's memory layout (channels-last in HI-Diff, whatever a wrapped backbone uses)."""

    def forward(self, x: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); prior: (B, N, C') -> (B, C, H, W)."""
        self.check_prior(prior)
        b, c, h, w = x.shape
        heads, d = self.num_heads, c // self.num_heads
        n = prior.shape[1]
        keep_layout = x.is_contiguous(memory_format=torch.channels_last)
        x = channels_last(x)
        tokens = nhwc(x).reshape(b, h * w, c)
        k, v = self.kv(self.norm2(prior)).chunk(2, dim=-1)
        k = k.reshape(b, n, heads, d).transpose(1, 2)                              # (B, h, N, d)
        v = v.reshape(b, n, heads, d).transpose(1, 2)
        keys = (k @ self.q.weight.view(heads, d, c)).mul_(self.scale)             # (B, h, N, C)
        logits_bias = x.new_zeros(b, 1, heads * n)
        if self.q.bias is not None:
            logits_bias = (k @ self.q.bias.view(heads, d, 1)).view(b, 1, heads * n) * self.scale
        logits = torch.baddbmm(logits_bias, nhwc(self.norm1(x)).reshape(b, h * w, c),
                               keys.reshape(b, heads * n, c).transpose(1, 2))
        probs = logits.view(b, h * w, heads, n).softmax(dim=-1).view(b, h * w, heads * n)
        proj_w = self.proj.weight.view(c, heads, d).permute(1, 2, 0)               # (h, d, C)
        # Each head's probabilities sum to 1, so adding bias / heads to every value row adds
        # the projection bias exactly once per pixel.
        values = (v @ proj_w).add_(self.proj.bias / heads).reshape(b, heads * n, c)
        out = from_nhwc(add_product(tokens, probs, values), h, w)
        return out if keep_layout else out.contiguous()
