# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The blind prediction of a HI-Diff editor as one traceable module, for ONNX export.

:class:`PredictionGraph` computes exactly what ``HIDiff.forward_tensor`` computes without
tiling or self-ensemble, with ``z_T`` as an input instead of a draw: pad to the multiple of 8,
the stage-2 encoder, the T-step sampler unrolled (T is fixed, every step's coefficients become
constants), the Transformer (its exact form), the crop. Two operations are written here in a
form whose shapes stay symbolic when exported; both give the same numbers as the editor's:

* padding: :func:`pad_index` gathers rows/columns by index, which is reflect padding followed
  by edge repetition, :func:`~hidiff_mm.models.editors.prediction.pad_to_multiple`'s rule;
* the encoder's ``AdaptiveAvgPool2d``: :func:`adaptive_avg_pool` averages PyTorch's windows
  (``floor(i H / g)`` to ``ceil((i + 1) H / g)``) with two small matrix products.

For a runner that tiles, the same prediction splits into two graphs (``export_onnx(...,
split=True)``): :class:`PriorGraph` (padding, encoder, sampler: the image-level part) and
:class:`TransformerGraph` (one padded tile and the prior -> the tile's prediction).
"""
import copy
from typing import Optional, Tuple

import torch
from torch import nn

from ..models.latent.latent_encoder import HIDiffLatentEncoder
from ..models.layers.fast_path import convert_to_exact


def pad_index(length: int, multiple: int, device: torch.device) -> torch.Tensor:
    """Source index of every row (or column) of a side of ``length`` pixels padded at its end
    to a multiple of ``multiple``: ``i`` inside, ``2 (length - 1) - i`` (reflection) after it,
    clamped at 0 where the reflection runs out (edge repetition), as ``pad_to_multiple``.

    ``length`` (symbolic when exported) -> ``(padded length,)`` long on ``device``.
    """
    padded = (length + multiple - 1) // multiple * multiple
    i = torch.arange(padded, device=device)
    return torch.where(i < length, i, (2 * (length - 1) - i).clamp(min=0))


def pad_to_multiple_graph(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H', W') padded at the bottom/right to multiples of ``multiple``,
    by index (:func:`pad_index`); equal to ``pad_to_multiple``."""
    rows = pad_index(x.shape[-2], multiple, x.device)
    cols = pad_index(x.shape[-1], multiple, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def pool_matrix(length: int, out: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(out, length) averaging matrix of PyTorch's adaptive average pooling along one axis:
    row ``i`` is ``1 / n_i`` on ``[floor(i L / out), ceil((i + 1) L / out))``, 0 elsewhere."""
    i = torch.arange(out, device=device)[:, None]
    start = (i * length) // out
    end = ((i + 1) * length + out - 1) // out
    j = torch.arange(length, device=device)[None, :]
    inside = (j >= start) & (j < end)
    return inside.to(dtype) / (end - start).to(dtype)


def adaptive_avg_pool(x: torch.Tensor, size: int) -> torch.Tensor:
    """``AdaptiveAvgPool2d((size, size))`` of (B, C, H, W) -> (B, C, size, size), as
    ``P_h x P_w^T`` with :func:`pool_matrix`."""
    ph = pool_matrix(x.shape[-2], size, x.dtype, x.device)
    pw = pool_matrix(x.shape[-1], size, x.dtype, x.device)
    return ph @ x @ pw.transpose(0, 1)


class _ExportableEncoder(nn.Module):
    """The stage-2 latent encoder with its pooling as :func:`adaptive_avg_pool`."""

    def __init__(self, encoder: HIDiffLatentEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.group = encoder.pool.output_size[0]

    def forward(self, blur: torch.Tensor) -> torch.Tensor:
        """blur: (B, 3, H, W), H and W divisible by 4 -> prior condition (B, N, C')."""
        enc = self.encoder
        x = enc.conv1(enc.pixel_unshuffle(blur))
        for block in enc.blocks:
            x = block(x) + x
        x = adaptive_avg_pool(enc.conv2(x), self.group).flatten(2).transpose(1, 2)
        return enc.end(enc.mlp(x))


class PredictionGraph(nn.Module):
    """``forward(image, z_T)``: the blind prediction of ``model`` with a given ``z_T``.

    Args:
        model: a HI-Diff editor (``HIDiff``, ``HIDiffGAN``) with a ``LatentPriorHead``; it is
            copied, its Transformer converted to the exact form, the copy put in eval mode.
        steps: sampler steps (None: all T, the trained chain), as ``PredictionOptions.steps``.
    """

    def __init__(self, model: nn.Module, steps: Optional[int] = None) -> None:
        super().__init__()
        model.prediction_options(steps=steps)  # a bad value fails here, named
        self.generator = convert_to_exact(copy.deepcopy(model.generator)).eval()
        head = copy.deepcopy(model.prior_head).eval()
        if getattr(head.scheduler.sampler, 'eta', 0) > 0:
            raise ValueError('the sampler draws noise at every step (ddim with eta > 0); a graph '
                             'would freeze those draws. Export with a deterministic sampler '
                             "(the default 'posterior_mean', or ddim with eta=0)")
        head.encoder_s1 = None  # the stage-1 encoder (training only) stays out of the graph
        self.encoder = _ExportableEncoder(head.encoder_s2)
        self.head = head
        self.steps = steps
        self.timesteps = head.scheduler.inference_timesteps(steps)
        self.pad_multiple = model.pad_multiple
        self.prior_shape = (self.generator.prior_tokens, self.generator.prior_channels)

    def prior(self, padded: torch.Tensor, z_T: torch.Tensor) -> torch.Tensor:
        """padded: (B, 3, H', W'); z_T: (B, N, C') -> the sampled prior z_0 (B, N, C'), by the
        head's own sampling loop (``reverse_chain``: the steps are constants of the trace)."""
        return self.head.reverse_chain(z_T, self.encoder(padded), num_inference_steps=self.steps)

    def forward(self, image: torch.Tensor, z_T: torch.Tensor) -> torch.Tensor:
        """image: (B, 3, H, W) in the model's range; z_T: (B, N, C') -> (B, 3, H, W)."""
        h, w = image.shape[-2:]
        padded = pad_to_multiple_graph(image, self.pad_multiple)
        out = self.generator(padded, self.prior(padded, z_T))
        return out[..., :h, :w]


class PriorGraph(nn.Module):
    """``forward(image, z_T) -> (prior, padded)``: the image-level half of ``graph``.

    image: (B, 3, H, W); z_T: (B, N, C') -> the sampled prior (B, N, C') and the image padded
    to multiples of ``pad_multiple`` (B, 3, H', W'), the input of :class:`TransformerGraph`
    (whole or tile by tile), so that a runner need not reproduce the padding.
    """

    def __init__(self, graph: PredictionGraph) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, image: torch.Tensor,
                z_T: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        padded = pad_to_multiple_graph(image, self.graph.pad_multiple)
        return self.graph.prior(padded, z_T), padded


class TransformerGraph(nn.Module):
    """``forward(padded, prior)``: ``graph``'s Transformer on a padded image or a tile of one,
    (B, 3, h, w) with h, w multiples of ``pad_multiple``, and the prior (B, N, C') ->
    (B, 3, h, w)."""

    def __init__(self, graph: PredictionGraph) -> None:
        super().__init__()
        self.generator = graph.generator

    def forward(self, padded: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        return self.generator(padded, prior)
