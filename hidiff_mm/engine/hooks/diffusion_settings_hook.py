"""Record the training stage and the latent diffusion's settings in checkpoints; check them
when one is loaded."""
from mmagic.registry import HOOKS
from mmengine.hooks import Hook

from hidiff_mm.utils.training_record import (DIFFUSION_KEY, check_record, has_prior_head,
                                             training_record)

META_KEY = DIFFUSION_KEY


@HOOKS.register_module()
class DiffusionSettingsHook(Hook):
    """Checkpoints say how their weights were trained; loading one checks the config against it.

    A default hook of every recipe (``default_hooks.diffusion_settings`` in
    ``configs/_base_/hidiff_runtime.py``). Before a checkpoint is saved, its ``meta`` gets the
    model's :func:`~hidiff_mm.utils.training_record.training_record`: ``hidiff_stage`` and
    ``hidiff_diffusion`` (the prior scheduler's ``settings()``). When a checkpoint is loaded
    (``--resume``, ``load_from``, ``tools/test.py``) it is checked with
    :func:`~hidiff_mm.utils.training_record.check_record`: a different T, beta schedule or
    parameterisation raises ``ValueError`` naming the keys (the denoiser's outputs would be
    misread); a different sampler, stage, or a missing record is allowed and logged, one line
    saying what is done. A model without a prior head (a plain MMagic restorer sharing the
    runtime) has nothing to record and is left alone.
    """

    priority = 'NORMAL'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if has_prior_head(runner.model):
            checkpoint.setdefault('meta', {}).update(training_record(runner.model))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not has_prior_head(runner.model):
            return
        for line in check_record(runner.model, checkpoint.get('meta'), 'the checkpoint'):
            runner.logger.info(f'DiffusionSettingsHook: {line}')
