"""One-stage HI-Diff: move the Transformer from the oracle prior to the diffused one."""
from typing import Optional, Union

from mmagic.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...utils.errors import ConfigError
from .stage_switch_hook import StageSwitchHook

DATA_BATCH = Optional[Union[dict, tuple, list]]


@HOOKS.register_module()
class PriorRampHook(Hook):
    """Before every training iteration set the diffused weight of a ``HIDiffOneStage`` model.

    ``w = clip((iter - begin) / (end - begin), 0, 1)`` (0-based iteration): the Transformer sees
    only the stage-1 (oracle) prior up to ``begin``, only the diffused prior from ``end`` on, and
    a linear blend in between (``begin == end``: a step). ``w`` is a function of the iteration
    alone, so a resumed run continues exactly and every rank agrees; it is logged as
    ``diffused_weight``. A run with a ``StageSwitchHook`` is refused: one-stage training has no
    stage switch.

    Args:
        begin: last iteration with the oracle prior only.
        end: first iteration with the diffused prior only.
    """

    priority = 'NORMAL'

    def __init__(self, begin: int, end: int) -> None:
        if not 0 <= begin <= end:
            raise ConfigError(f'PriorRampHook needs 0 <= begin <= end, got begin={begin}, '
                              f'end={end}')
        self.begin, self.end = begin, end

    def weight(self, iteration: int) -> float:
        """The diffused weight at a 0-based iteration."""
        if iteration >= self.end:
            return 1.0
        if iteration <= self.begin:
            return 0.0
        return (iteration - self.begin) / (self.end - self.begin)

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def before_train(self, runner) -> None:
        if any(isinstance(h, StageSwitchHook) for h in runner.hooks):
            raise ConfigError('PriorRampHook trains HI-Diff in one stage: remove the '
                              'StageSwitchHook from custom_hooks')
        if not hasattr(self._model(runner), 'set_diffused_weight'):
            raise ConfigError('PriorRampHook needs a one-stage model (type=\'HIDiffOneStage\'), '
                              f'got {type(self._model(runner)).__name__}')

    def before_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        w = self.weight(runner.iter)
        self._model(runner).set_diffused_weight(w)
        runner.message_hub.update_scalar('train/diffused_weight', w)
