"""The fast-path switch and the helpers shared by the fast forwards of the Transformer blocks.

Every module with a ``fast_path`` attribute (layer norm, MDTA, GDFN, HIM and the Transformer)
has two forwards with the same parameters: the exact one, written like the official code, and
a fast one that keeps feature maps channels-last, fuses the layer norm, the residual adds and
the output projections, and folds HIM's projections into its prior tokens. The fast path is a
CPU path: on other devices (CUDA) these modules run their exact forwards, which were faster
there (``docs/performance.md`` has the measurements and lists what each lever gives on CPU).
Without autograd, MDTA and GDFN also run their wide intermediate tensors in row strips of at
most ``strip_pixels`` pixels, which bounds the memory of a forward pass without changing its
result (a 3x3 depthwise conv needs one halo row each side).
"""
from typing import Callable, List, Optional, Tuple

import torch
from torch import nn

DEFAULT_STRIP_PIXELS = 1 << 16


def set_fast_path(module: nn.Module, enabled: bool = True,
                  strip_pixels: Optional[int] = None) -> nn.Module:
    """Switch every sub-module of ``module`` that has a fast path to it (or back to exact).

    Args:
        module: any module; those without a ``fast_path`` attribute are left alone.
        enabled: True for the fast path, False for the exact (reference) path.
        strip_pixels: if given, the row-strip size (in pixels) of MDTA / GDFN without autograd.

    Returns:
        ``module``, for chaining.
    """
    if strip_pixels is not None and strip_pixels < 1:
        raise ValueError(f'strip_pixels must be positive, got {strip_pixels}')
    for sub in module.modules():
        if hasattr(sub, 'fast_path'):
            sub.fast_path = enabled
        if strip_pixels is not None and hasattr(sub, 'strip_pixels'):
            sub.strip_pixels = strip_pixels
    return module


def use_fast(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``module`` runs its fast forward on ``x``: switched on, and ``x`` on the CPU."""
    return module.fast_path and x.device.type == 'cpu'


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` with channels-last memory (a no-op when it already is)."""
    return x.contiguous(memory_format=torch.channels_last)


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (B, H, W, C)``, a view (contiguous when ``x`` is channels-last)."""
    return x.permute(0, 2, 3, 1)


def from_nhwc(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(B, H*W, C)`` or ``(B, H, W, C)`` contiguous -> channels-last ``(B, C, H, W)`` view."""
    return x.view(x.shape[0], height, width, x.shape[-1]).permute(0, 3, 1, 2)


def row_strips(height: int, width: int, strip_pixels: int,
               grad: bool) -> List[Tuple[int, int]]:
    """Row ranges ``[(r0, r1), ...]`` covering ``height`` rows, each at most ``strip_pixels``
    pixels (at least one row); one range for the whole map when autograd records."""
    if grad or height * width <= strip_pixels:
        return [(0, height)]
    rows = max(1, strip_pixels // width)
    return [(r0, min(r0 + rows, height)) for r0 in range(0, height, rows)]


def conv_rows(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor],
              r0: int, r1: int) -> torch.Tensor:
    """Rows ``r0:r1`` of ``fn(x)`` for a map-to-map ``fn`` whose receptive field is 3 rows
    (pointwise ops and one zero-padded 3x3 conv), computed from rows ``r0-1 : r1+1`` only."""
    height = x.shape[2]
    if r0 == 0 and r1 == height:
        return fn(x)
    a, b = max(r0 - 1, 0), min(r1 + 1, height)
    return fn(x[:, :, a:b])[:, :, r0 - a:r1 - a]


def add_product(residual: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``residual + a @ b`` as one GEMM (``addmm`` / ``baddbmm``). Under autocast the product is
    added outside the GEMM instead, so that the residual stream keeps its own precision (fp32)
    as it does on the exact path."""
    if torch.is_autocast_enabled(residual.device.type):
        return residual + a @ b
    return torch.baddbmm(residual, a, b) if residual.dim() == 3 else torch.addmm(residual, a, b)
