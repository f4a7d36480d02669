"""Record the latent diffusion's settings in checkpoints; check them when one is loaded."""
from mmagic.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...utils.errors import ConfigError

META_KEY = 'hidiff_diffusion'


@HOOKS.register_module()
class DiffusionSettingsHook(Hook):
    """Checkpoints say how their prior was trained; loading one checks the config against it.

    Before a checkpoint is saved, ``meta['hidiff_diffusion']`` gets the model's
    ``prior_head.scheduler.settings()`` (T, beta schedule and range, parameterisation, clamp,
    start point, sampler and its options). When a checkpoint is loaded (``--resume``,
    ``load_from``, ``tools/test.py``), the configured scheduler is compared with it: a different
    T, beta schedule or parameterisation raises ``ValueError`` naming the keys (the denoiser's
    outputs would be misread); a different sampler, its options, clamp or start point is allowed
    and logged. A checkpoint without the record (official weights, runs without this hook) is
    loaded unchecked, with a log line saying so.
    """

    priority = 'NORMAL'

    @staticmethod
    def _scheduler(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        head = getattr(model, 'prior_head', None)
        if head is None:
            raise ConfigError(f'DiffusionSettingsHook needs a model with a prior_head (HI-Diff), '
                              f'got {type(model).__name__}')
        return head.scheduler

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[META_KEY] = self._scheduler(runner).settings()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        trained = checkpoint.get('meta', {}).get(META_KEY)
        if trained is None:
            runner.logger.info('DiffusionSettingsHook: the checkpoint records no diffusion '
                               'settings; the configured scheduler is not checked against it')
            return
        for line in self._scheduler(runner).compare_settings(trained):
            runner.logger.info(f'DiffusionSettingsHook: {line}')
