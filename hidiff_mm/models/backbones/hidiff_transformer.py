"""HI-Diff's prior-guided Transformer (``net_g`` of the official release)."""
from contextlib import nullcontext
from typing import ContextManager, Sequence, Union

import torch
from mmagic.registry import MODELS
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...utils.cli import large_blocks_returned
from ...utils.errors import ConfigError
from ..layers.fast_path import DEFAULT_STRIP_PIXELS, FastPathPolicy, channels_last, fast_form_of
from ..layers.prior_pyramid import PriorTokenPool
from .hidiff_blocks import Downsample, HIDiffLevel, PatchEmbed, Upsample


@MODELS.register_module()
class HIDiffTransformer(FastPathPolicy):
    """Restormer-like 4-level encoder-decoder guided by a prior ``z`` of N tokens x C' channels.

    The prior pyramid gives ``z1 = z`` (N tokens), ``z2`` (N/4 tokens) and ``z3`` (one vector);
    levels 1 / decoder-1 / refinement take z1 through a HIM, levels 2-3 (encoder and decoder) take
    z2 through a HIM, and every bottleneck block is modulated by z3; output = conv(features) +
    input. Defaults are the paper's GoPro model (25,298,923 parameters); RealBlur uses
    ``ffn_expansion=2.0``. Submodule names equal the official ones, so official state dicts load
    as they are.

    Args:
        in_channels / out_channels: image channels.
        dim: width C of level 1 (levels have C, 2C, 4C, 8C).
        num_blocks: Transformer blocks per level (encoder 1-3 and bottleneck; decoders mirror).
        num_refinement_blocks: blocks of the full-resolution refinement level.
        heads: attention heads per level.
        ffn_expansion: GDFN width factor.
        bias: conv biases in the blocks.
        norm_type: ``'WithBias'`` or ``'BiasFree'`` layer norms.
        prior_channels: C' (the official ``4 * embed_dim``).
        prior_tokens: N (the official ``group ** 2``); must be divisible by 4.
        with_cp: activation checkpointing: while autograd records, each level (its HIM and
            blocks) keeps only its input and recomputes its activations in the backward pass
            (less memory, about one more forward of time; the same gradients).
        zero_init_output: start the output conv at zero, so the untrained network is the
            identity (global residual); the official model uses PyTorch's default init (False).
        fast_path: the form :func:`~hidiff_mm.models.layers.convert_for_device` gives the
            modules (:mod:`~hidiff_mm.models.layers.fast_path`): ``'cpu'`` (default) the fast
            form (channels-last, fused layer norm and projections, row strips without
            autograd) for the CPU and the exact, official-style form for any other device
            (CUDA); True the fast form everywhere; False the exact form everywhere. The network
            is built in its exact form; both forms have the same parameters, and
            ``convert_to_fast`` / ``convert_to_exact`` pin one.
        strip_pixels: row-strip size, in pixels, of MDTA / GDFN in the fast form without
            autograd; it bounds the forward's working memory.
    """

    def __init__(self,
                 in_channels: int = 3,
                 out_channels: int = 3,
                 dim: int = 48,
                 num_blocks: Sequence[int] = (3, 5, 6, 6),
                 num_refinement_blocks: int = 4,
                 heads: Sequence[int] = (1, 2, 4, 8),
                 ffn_expansion: float = 2.66,
                 bias: bool = False,
                 norm_type: str = 'WithBias',
                 prior_channels: int = 256,
                 prior_tokens: int = 16,
                 with_cp: bool = False,
                 zero_init_output: bool = False,
                 fast_path: Union[bool, str] = 'cpu',
                 strip_pixels: int = DEFAULT_STRIP_PIXELS) -> None:
        super().__init__()
        if prior_tokens % 4:
            raise ConfigError(f'prior_tokens must be divisible by 4, got {prior_tokens}')
        if len(num_blocks) != 4 or len(heads) != 4:
            raise ConfigError('num_blocks and heads need one entry per level (4)')
        self.prior_channels = prior_channels
        self.prior_tokens = prior_tokens
        self.with_cp = with_cp

        def level(mult: int, idx: int, blocks: int, integration: str = 'him') -> HIDiffLevel:
            return HIDiffLevel(dim * mult, heads[idx], blocks, ffn_expansion, bias, norm_type,
                               prior_channels, integration)

        self.down_1 = PriorTokenPool(prior_tokens, prior_tokens // 4, prior_channels)
        self.down_2 = PriorTokenPool(prior_tokens // 4, 1, prior_channels)
        self.patch_embed = PatchEmbed(in_channels, dim)

        self.encoder_level1 = level(1, 0, num_blocks[0])
        self.down1_2 = Downsample(dim)
        self.encoder_level2 = level(2, 1, num_blocks[1])
        self.down2_3 = Downsample(dim * 2)
        self.encoder_level3 = level(4, 2, num_blocks[2])
        self.down3_4 = Downsample(dim * 4)
        self.latent = level(8, 3, num_blocks[3], 'modulation')

        self.up4_3 = Upsample(dim * 8)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, kernel_size=1, bias=bias)
        self.decoder_level3 = level(4, 2, num_blocks[2])
        self.up3_2 = Upsample(dim * 4)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, kernel_size=1, bias=bias)
        self.decoder_level2 = level(2, 1, num_blocks[1])
        self.up2_1 = Upsample(dim * 2)
        self.decoder_level1 = level(2, 0, num_blocks[0])
        self.refinement = level(2, 0, num_refinement_blocks)
        self.output = nn.Conv2d(dim * 2, out_channels, 3, padding=1, bias=bias)
        if zero_init_output:
            nn.init.zeros_(self.output.weight)
            if self.output.bias is not None:
                nn.init.zeros_(self.output.bias)
        self.configure_fast_path(fast_path, strip_pixels)

    def forward(self, img: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """img: (B, 3, H, W) with H, W divisible by 8; prior: (B, N, C') -> (B, 3, H, W)."""
        if prior is None or prior.shape[1:] != (self.prior_tokens, self.prior_channels):
            got = None if prior is None else tuple(prior.shape)
            raise ValueError(f'HIDiffTransformer needs a prior of shape '
                             f'(B, {self.prior_tokens}, {self.prior_channels}), got {got}')
        if img.shape[-2] % 8 or img.shape[-1] % 8:
            raise ValueError(f'image height and width must be multiples of 8, got '
                             f'{tuple(img.shape[-2:])}; pad the input (HIDiff.predict does)')
        # The levels run in the parameters' dtype (bf16 for bf16 prediction); the global
        # residual adds their output to the image as given, so it keeps the input's precision.
        dtype = self.output.weight.dtype
        z1 = prior.to(dtype)
        z2 = self.down_1(z1)
        z3 = self.down_2(z2).flatten(1)

        with self._allocator():
            out = self._features(self._layout(img.to(dtype)), z1, z2, z3)
        return (out + img).contiguous()

    def _allocator(self) -> ContextManager:
        """The allocator setting of a forward: without autograd, the exact form runs with
        glibc's default for its new blocks (:func:`~hidiff_mm.utils.cli.large_blocks_returned`)
        even where the process keeps freed memory, so that its peak memory stays below the
        official code's."""
        return nullcontext() if torch.is_grad_enabled() else large_blocks_returned()

    def _layout(self, img: torch.Tensor) -> torch.Tensor:
        """The image in the memory layout the levels run on: as it is (exact form)."""
        return img

    def _features(self, img: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor,
                  z3: torch.Tensor) -> torch.Tensor:
        # Each skip tensor is dropped right after its last use, so that the full-resolution
        # maps of the encoder do not stay alive through the decoder (inference memory).
        level = self._level
        enc1 = level(self.encoder_level1, self.patch_embed(img), z1)
        enc2 = level(self.encoder_level2, self.down1_2(enc1), z2)
        enc3 = level(self.encoder_level3, self.down2_3(enc2), z2)
        dec = level(self.latent, self.down3_4(enc3), z3)
        dec = self.reduce_chan_level3(torch.cat([self.up4_3(dec), enc3], 1))
        del enc3
        dec = level(self.decoder_level3, dec, z2)
        dec = self.reduce_chan_level2(torch.cat([self.up3_2(dec), enc2], 1))
        del enc2
        dec = level(self.decoder_level2, dec, z2)
        dec = torch.cat([self.up2_1(dec), enc1], 1)
        del enc1
        return self.output(level(self.refinement, level(self.decoder_level1, dec, z1), z1))

    def _level(self, level: nn.Module, x: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """``level(x, prior)``, checkpointed (recomputed in the backward pass) if ``with_cp``."""
        if self.with_cp and torch.is_grad_enabled():
            return checkpoint(level, x, prior, use_reentrant=False)
        return level(x, prior)


@fast_form_of(HIDiffTransformer)
class FastHIDiffTransformer(HIDiffTransformer):
    """The fast form of the Transformer: the input is made channels-last once, so that every
    convolution and fast block after it runs on NHWC data without reorders."""

    def _layout(self, img: torch.Tensor) -> torch.Tensor:
        return channels_last(img)

    def _allocator(self) -> ContextManager:
        """Freed memory stays kept: the row strips' temporaries are few sizes, all reused."""
        return nullcontext()
