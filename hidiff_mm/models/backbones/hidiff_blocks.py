"""Building blocks of the HI-Diff Transformer: MDTA, GDFN, the Transformer block and one level."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmagic.registry import MODELS
from torch import nn

from ...utils.errors import ConfigError
from ..layers.fast_path import (DEFAULT_STRIP_PIXELS, add_product, channels_last, conv_rows,
                                fast_form_of, from_nhwc, nhwc, row_strips)
from ..layers.him import HIM
from ..layers.layer_norm import HIDiffLayerNorm


class _PriorModulated(nn.Module):
    """A residual branch (MDTA or GDFN) whose input is optionally modulated by a prior vector p
    (B, C'): ``x * (W1 p + b1) + (W2 p + b2)``.

    The Linear layers are named ``ln1``/``ln2`` as in the official state dict.
    """

    def forward_residual(self, x: torch.Tensor, norm: nn.Module,
                         prior: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x + self(norm(x), prior)``."""
        return x + self(norm(x), prior)

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
    (the bottleneck level of HI-Diff); its Linear layers are ``ln1``/``ln2``. This is the exact
    form, as the official code computes it; :class:`FastMDTA` is the fast one.
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


class _FusedResidualBranch:
    """The forwards of a fast residual branch, both through ``_fused(x, prior, norm)``:
    ``forward(x, prior)`` and ``forward_residual(x, norm, prior) = x + self(norm(x), prior)``
    with the norm applied inside the row strips and the residual added inside the output GEMM.
    Without autograd, the wide intermediates are made ``strip_pixels`` pixels at a time."""

    strip_pixels = DEFAULT_STRIP_PIXELS

    def forward(self, x: torch.Tensor, prior: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x: (B, C, H, W); prior: (B, C') or None -> (B, C, H, W), channels-last."""
        return self._fused(x, prior, None)

    def forward_residual(self, x: torch.Tensor, norm: nn.Module,
                         prior: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x + self(norm(x), prior)``, channels-last."""
        return self._fused(x, prior, norm)


@fast_form_of(MDTA)
class FastMDTA(_FusedResidualBranch, MDTA):
    """MDTA's fast form: channels-last maps; the Gram matrix ``q^T k`` of all heads by one batched
    GEMM on strided views (each head's block is its ``q k^T``) and the L2 norms of F.normalize
    by one reduction, so the normalised q and k are never made; ``project_out`` is folded into
    the attention matrix, so the output is one GEMM ``v (Wp blockdiag(attn))^T`` that also adds
    the residual. The whole batch goes through each GEMM: no loop over samples.
    """

    def _head_grams(self, q: torch.Tensor,
                    k: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k: (B, L, C) -> q k^T (B, h, d, d), |q|^2 and |k|^2 (B, h, d) per head, fp32 for
        low-precision q and k."""
        autocast = torch.is_autocast_enabled(q.device.type)
        if q.dtype == torch.bfloat16 and not autocast:
            # bf16 prediction: bf16 GEMMs accumulate in fp32 and round only their (small)
            # outputs, which are used in fp32; bf16 has fp32's range, so nothing overflows.
            ones = q.new_ones(q.shape[0], 1, q.shape[1])
            grams = self._head_grams_of(q, k, torch.bmm(ones, q * q), torch.bmm(ones, k * k))
            return tuple(g.float() for g in grams)
        if q.dtype in (torch.float16, torch.bfloat16) or autocast:
            with torch.autocast(q.device.type, enabled=False):  # unnormalised: may pass 65504
                wide = torch.promote_types(q.dtype, torch.float32)
                return self._head_grams(q.to(wide), k.to(wide))
        return self._head_grams_of(q, k, torch.linalg.vector_norm(q, dim=1).square(),
                                   torch.linalg.vector_norm(k, dim=1).square())

    def _head_grams_of(self, q: torch.Tensor, k: torch.Tensor, qq: torch.Tensor,
                       kk: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The per-head blocks of ``q^T k`` and the squared norms ``qq``, ``kk`` (B, [1,] C)
        split into heads (B, h, d)."""
        b, _, c = q.shape
        heads, d = self.num_heads, c // self.num_heads
        if b == 1:  # mm reads the strided q, k views in place; bmm would copy them first
            qk = torch.mm(q[0].t(), k[0])[None]                                # (1, C, C)
        else:
            qk = torch.bmm(q.transpose(1, 2), k)                               # (B, C, C)
        if heads > 1:
            qk = qk.view(b, heads, d, heads, d).diagonal(dim1=1, dim2=3).permute(0, 3, 1, 2)
        else:
            qk = qk.view(b, 1, d, d)
        return qk, qq.reshape(b, heads, d), kk.reshape(b, heads, d)

    def _fused(self, x: torch.Tensor, prior: Optional[torch.Tensor],
               norm: Optional[nn.Module]) -> torch.Tensor:
        b, c, h, w = x.shape
        heads, d = self.num_heads, c // self.num_heads
        x = channels_last(x)
        residual = None if norm is None else x

        def qkv(rows: torch.Tensor) -> torch.Tensor:
            if norm is not None:
                rows = norm(rows)
            return self.qkv_dwconv(self.qkv(channels_last(self._modulate(rows, prior))))

        strips = row_strips(h, w, self.strip_pixels, torch.is_grad_enabled())
        if len(strips) == 1:
            q, k, values = nhwc(qkv(x)).reshape(b, h * w, 3 * c).split(c, dim=-1)
            qk, qq, kk = self._head_grams(q, k)
        else:
            values = x.new_empty(b, h * w, c)
            for r0, r1 in strips:
                q, k, v = nhwc(conv_rows(x, qkv, r0, r1)).reshape(b, -1, 3 * c).split(c, dim=-1)
                values[:, r0 * w:r1 * w] = v
                part = self._head_grams(q, k)
                qk, qq, kk = part if r0 == 0 else (qk + part[0], qq + part[1], kk + part[2])

        norm_q = qq.clamp_min(0).sqrt().clamp_min(1e-12)
        norm_k = kk.clamp_min(0).sqrt().clamp_min(1e-12)
        attn = (qk / (norm_q[..., None] * norm_k[..., None, :]) * self.temperature).softmax(-1)
        # mix[:, o, h d + j] = sum_i Wp[o, h d + i] attn[:, h, i, j]: Wp blockdiag(attn), batched
        # The attention is fp32 (from fp32 Gram matrices); the mix is made in fp32 and used in
        # the dtype of the values (bf16 weights: rounded once, as a weight is).
        weight = self.project_out.weight.view(c, heads, d).transpose(0, 1)      # (h, C, d)
        mix = (weight.to(attn.dtype) @ attn).permute(0, 2, 1, 3).reshape(b, c, c)
        mix = mix.to(values.dtype)
        if residual is None:
            out = torch.bmm(values, mix.transpose(1, 2))
        else:
            out = add_product(nhwc(residual).reshape(b, h * w, c), values, mix.transpose(1, 2))
        if self.project_out.bias is not None:
            out = out + self.project_out.bias
        return from_nhwc(out, h, w)


class GDFN(_PriorModulated):
    """Gated-Dconv Feed-forward Network, ``(B, C, H, W) -> (B, C, H, W)``.

    Hidden width ``int(C * expansion)``; optional prior modulation as in :class:`MDTA`. This is
    the exact form; :class:`FastGDFN` is the fast one.
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


@fast_form_of(GDFN)
class FastGDFN(_FusedResidualBranch, GDFN):
    """GDFN's fast form: channels-last maps, the two halves of the gate computed one after the
    other (in place without autograd), and ``project_out`` as one GEMM that also adds the
    residual."""

    def _fused(self, x: torch.Tensor, prior: Optional[torch.Tensor],
               norm: Optional[nn.Module]) -> torch.Tensor:
        b, c, h, w = x.shape
        x = channels_last(x)
        residual = None if norm is None else x
        hidden = self.project_out.in_channels
        weight = self.project_out.weight.view(c, hidden).t()
        grad = torch.is_grad_enabled()

        def half(rows: torch.Tensor, i: int) -> torch.Tensor:
            """Half ``i`` of ``dwconv(project_in(rows))``: the two halves are computed one after
            the other, so that the gate never needs all 2 x hidden channels at once."""
            part = slice(i * hidden, (i + 1) * hidden)
            pin, dw = self.project_in, self.dwconv
            rows = F.conv2d(rows, pin.weight[part], None if pin.bias is None else pin.bias[part])
            return F.conv2d(rows, dw.weight[part], None if dw.bias is None else dw.bias[part],
                            padding=1, groups=hidden)

        def gate_rows(rows: torch.Tensor) -> torch.Tensor:
            if norm is not None:
                rows = norm(rows)
            rows = channels_last(self._modulate(rows, prior))
            first = half(rows, 0)
            bs, _, hs, ws = first.shape
            # GELU on the (B, h*w, hidden) view of the channels-last map: the same numbers, and
            # ATen's bf16 kernel runs about 2x faster on it than on the 4-d channels-last map
            gate = from_nhwc(F.gelu(nhwc(first).reshape(bs, hs * ws, hidden)), hs, ws)
            return gate * half(rows, 1) if grad else gate.mul_(half(rows, 1))

        strips = row_strips(h, w, self.strip_pixels, grad)
        out = None if len(strips) == 1 else x.new_empty(b, h, w, c)
        for r0, r1 in strips:
            gate = nhwc(channels_last(conv_rows(x, gate_rows, r0, r1))).reshape(-1, hidden)
            if residual is None:
                rows = gate @ weight
            else:
                rows = add_product(nhwc(residual[:, :, r0:r1]).reshape(-1, c), gate, weight)
            if self.project_out.bias is not None:
                rows = rows + self.project_out.bias
            if out is None:
                return from_nhwc(rows.view(b, h * w, c), h, w)
            out[:, r0:r1] = rows.view(b, r1 - r0, w, c)
        return out.permute(0, 3, 1, 2)


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
        x = self.attn.forward_residual(x, self.norm1, prior)
        return self.ffn.forward_residual(x, self.norm2, prior)


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
            raise ConfigError(f"integration must be 'him' or 'modulation', got {integration!r}")
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
