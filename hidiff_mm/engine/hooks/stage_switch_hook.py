"""Switch a HI-Diff run from stage 1 to stage 2 at a given iteration (one command, both stages)."""
import copy
from typing import Optional, Sequence, Union

from mmagic.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper

from ...utils.errors import ConfigError

DATA_BATCH = Optional[Union[dict, tuple, list]]


@HOOKS.register_module()
class StageSwitchHook(Hook):
    """At iteration ``switch_iter`` put the model in stage 2 and start a fresh optimisation.

    The stage-1 weights are kept; the stage-1 encoder is frozen and the stage-2 encoder and
    denoiser become trainable (``model.set_stage(2)``); the model wrapper (DDP) is rebuilt for
    the new set of trainable parameters; a new optimizer and new parameter schedulers are built
    from ``optim_wrapper`` / ``param_scheduler`` (default: the run's own configs, i.e. stage 2
    repeats the stage-1 recipe, as the official S2 configs do). Scheduler ``begin``/``end`` count
    from the switch. Checkpoints record the stage, so resuming lands in the right one.

    Args:
        switch_iter: number of stage-1 iterations.
        optim_wrapper: stage-2 optimizer wrapper config, or None for the run's ``optim_wrapper``.
        param_scheduler: stage-2 scheduler configs, or None for the run's ``param_scheduler``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, switch_iter: int, optim_wrapper: Optional[dict] = None,
                 param_scheduler: Optional[Sequence[dict]] = None) -> None:
        if switch_iter < 0:
            raise ConfigError(f'switch_iter must be >= 0, got {switch_iter}')
        self.switch_iter = switch_iter
        self.optim_wrapper = optim_wrapper
        self.param_scheduler = param_scheduler

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def _switch(self, runner) -> None:
        model = self._model(runner)
        model.set_stage(2)
        if is_model_wrapper(runner.model):
            runner.model = runner.wrap_model(runner.cfg.get('model_wrapper_cfg'), model)
        optim_cfg = self.optim_wrapper or runner.cfg.get('optim_wrapper')
        runner.optim_wrapper = runner.build_optim_wrapper(copy.deepcopy(optim_cfg))
        sched_cfg = self.param_scheduler or runner.cfg.get('param_scheduler')
        if sched_cfg:
            runner.param_schedulers = runner.build_param_scheduler(copy.deepcopy(sched_cfg))
        runner.logger.info(f'StageSwitchHook: stage 2 from iteration {runner.iter}; stage-1 '
                           'weights kept, fresh optimizer and parameter schedulers')

    def before_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        if runner.iter >= self.switch_iter and self._model(runner).stage == 1:
            self._switch(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['hidiff_stage'] = self._model(runner).stage

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Resuming (``--resume``) a checkpoint of stage 2 continues in stage 2. Weights loaded
        with ``load_from`` or for testing keep the configured stage (a fine-tune from the
        converted official stage-2 weights starts in its stage 1; DiffusionSettingsHook logs
        the difference)."""
        if (checkpoint.get('meta', {}).get('hidiff_stage', 1) != 2
                or not getattr(runner, '_resume', False)):
            return
        if isinstance(runner.optim_wrapper, OptimWrapper):  # resuming a run: switch fully
            if self._model(runner).stage == 1:
                self._switch(runner)
        else:  # optimizers not built yet: they will be built in stage 2
            self._model(runner).set_stage(2)
