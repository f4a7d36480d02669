# Copyright (c) hidiff_mm contributors. All rights reserved.
"""What a HI-Diff checkpoint records about its training, and the check made when one is loaded.

Every checkpoint the project writes or exports carries, in its ``meta``:

* ``hidiff_stage``: the training stage its weights come from (1: Transformer and stage-1 encoder
  trained, the sampler not yet; 2: the whole blind path trained; ``'joint'``: one-stage);
* ``hidiff_diffusion``: the prior scheduler's ``settings()`` (T, beta schedule, parameterisation,
  clamp, start point, sampler).

Training runs write them through ``DiffusionSettingsHook`` (a default hook of
``configs/_base_/hidiff_runtime.py``), ``tools/convert_official_checkpoint.py`` and
``tools/record_demo_model.py`` write them directly. :func:`check_record` is what
``init_model``, ``tools/test.py`` and resumed or ``load_from`` runs do with them.
"""
from typing import List, Optional

import torch
from mmengine.model import is_model_wrapper

STAGE_KEY = 'hidiff_stage'
DIFFUSION_KEY = 'hidiff_diffusion'


def _editor(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if is_model_wrapper(model) else model


def has_prior_head(model: torch.nn.Module) -> bool:
    """Whether ``model`` is a HI-Diff editor (it has a ``prior_head`` with a scheduler)."""
    return getattr(_editor(model), 'prior_head', None) is not None


def _scheduler(model: torch.nn.Module):
    head = _editor(model).prior_head
    return (head.module if is_model_wrapper(head) else head).scheduler


def training_record(model: torch.nn.Module) -> dict:
    """``{hidiff_stage, hidiff_diffusion}`` of a HI-Diff editor, to merge into a checkpoint's
    ``meta`` (an editor without a ``stage``, e.g. ``HIDiffGAN``, records the settings only)."""
    record = {DIFFUSION_KEY: _scheduler(model).settings()}
    stage = getattr(_editor(model), 'stage', None)
    if stage is not None:
        record[STAGE_KEY] = stage
    return record


def check_record(model: torch.nn.Module, meta: Optional[dict], source: str) -> List[str]:
    """Compare a checkpoint's record (its ``meta``) with the model it is loaded into.

    Raises:
        ValueError: the recorded T, beta schedule or parameterisation differ from the
            configured scheduler's (the denoiser's outputs would be misread); the message names
            the keys and the config options to set.

    Returns:
        The lines to log, each saying what is done: sampling settings that differ (allowed:
        the configured ones are used); a stage other than the model's (allowed: the stage only
        selects what a training step trains, prediction is blind either way unless
        ``model.oracle_prior=True``); a stage-1 checkpoint predicted blind (its sampler is
        untrained); a checkpoint without a record (loaded unchecked).
    """
    meta = meta if isinstance(meta, dict) else {}
    editor = _editor(model)
    lines = []
    diffusion = meta.get(DIFFUSION_KEY)
    if diffusion is None:
        lines.append(f'{source} records no diffusion settings (written before they were '
                     'recorded, or by another tool): the configured scheduler is used unchecked')
    else:
        try:
            differ = _scheduler(model).compare_settings(diffusion)
        except ValueError as err:
            raise ValueError(f'{source}: {err}') from None
        lines += [f'{source}: {line}' for line in differ]
    stage, configured = meta.get(STAGE_KEY), getattr(editor, 'stage', None)
    oracle = bool(getattr(editor, 'oracle_prior', False))
    if stage is None and configured is not None:
        lines.append(f'{source} records no training stage: prediction is blind (sampled prior)'
                     + (', or the oracle prior where model.oracle_prior=True' if oracle else ''))
    elif configured is not None and stage != configured:
        lines.append(f'{source} was trained through stage {stage!r}, the config says stage '
                     f'{configured!r}: kept as configured (the stage only selects what a '
                     'training step trains); prediction is ' +
                     ('the ORACLE prior where the sharp image is given (model.oracle_prior=True)'
                      if oracle else 'blind (sampled prior)'))
    if stage == 1 and not oracle:
        lines.append(f'{source} is a stage-1 checkpoint: its sampler (stage-2 encoder and '
                     'denoiser) is untrained, so its blind predictions are poor; set '
                     'model.oracle_prior=True to score it with the stage-1 encoder on the sharp '
                     'image (an oracle)')
    return lines
