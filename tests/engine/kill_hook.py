"""Test-only hook: SIGKILL the training process right after a given iteration's checkpoint."""
import os
import signal

from mmagic.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class KillAfterIterHook(Hook):
    """Simulates a crash: the process dies without any cleanup after iteration ``kill_iter``."""

    priority = 'LOWEST'  # after the CheckpointHook has written iter_<kill_iter>.pth

    def __init__(self, kill_iter: int) -> None:
        self.kill_iter = kill_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.kill_iter:
            os.kill(os.getpid(), signal.SIGKILL)
