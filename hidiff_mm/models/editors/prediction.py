# Copyright (c) hidiff_mm contributors. All rights reserved.
"""How the HI-Diff editor predicts: the options of its ``test_cfg`` and the padding."""
from dataclasses import dataclass, fields, replace
from typing import Optional

import torch
import torch.nn.functional as F

from ..latent.scheduler import check_num_inference_steps
from .tiling import check_tile


@dataclass(frozen=True)
class PredictionOptions:
    """The prediction options of ``HIDiff`` (its ``test_cfg``; the API and ``tools/demo.py``
    override them per call).

    Args:
        steps: sampler steps, an evenly spaced subset of the T trained ones; None: all T.
        tile: run the Transformer on ``tile x tile`` windows (a multiple of the model's
            ``pad_multiple``) with one prior sampled from the whole image; None: whole image.
        tile_overlap: overlap of neighbouring tiles in pixels (blended with linear ramps).
        self_ensemble: average the predictions of the 8 dihedral transforms of the input (each
            samples its own prior: 8 draws of ``z_T``).
    """

    steps: Optional[int] = None
    tile: Optional[int] = None
    tile_overlap: int = 32
    self_ensemble: bool = False

    @classmethod
    def from_cfg(cls, test_cfg: Optional[dict], **overrides) -> 'PredictionOptions':
        """Options from ``test_cfg`` (unknown keys are an error), then the ``overrides`` that
        are not None."""
        names = [f.name for f in fields(cls)]
        given = dict(test_cfg or {})
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise KeyError(f'model.test_cfg: unknown key(s) {unknown}; valid keys: {names}')
        bad = sorted(set(overrides) - set(names))
        if bad:
            raise TypeError(f'unknown prediction option(s) {bad}; valid options: {names}')
        return replace(cls(**given), **{k: v for k, v in overrides.items() if v is not None})

    def check(self, num_train_timesteps: int, pad_multiple: int) -> 'PredictionOptions':
        """Raise ``ValueError`` naming the option that a model with T steps and this
        ``pad_multiple`` cannot use; return ``self``."""
        if self.steps is not None:
            check_num_inference_steps(self.steps, num_train_timesteps)
        if self.tile is not None:
            check_tile(self.tile, self.tile_overlap, pad_multiple)
        if not isinstance(self.self_ensemble, bool):
            raise ValueError(f'self_ensemble must be True or False, got {self.self_ensemble!r}')
        return self


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad the bottom/right of ``(B, C, H, W)`` up to multiples of ``multiple`` (the
    official ``test()``)."""
    pad_h, pad_w = (-x.shape[-2]) % multiple, (-x.shape[-1]) % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), 'reflect') if pad_h or pad_w else x
