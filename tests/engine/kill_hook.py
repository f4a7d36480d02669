"""Test-only hooks that inject faults into a training run at a given iteration."""
import errno
import os
import signal
import time

from mmagic.registry import HOOKS
from mmengine.dist import get_rank
from mmengine.hooks import Hook


@HOOKS.register_module()
class KillAfterIterHook(Hook):
    """Simulates a crash: the process dies without any cleanup after iteration ``kill_iter``
    (on every rank, or only on ``rank``)."""

    priority = 'LOWEST'  # after the CheckpointHook has written iter_<kill_iter>.pth

    def __init__(self, kill_iter: int, rank: int = None) -> None:
        self.kill_iter = kill_iter
        self.rank = rank

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.kill_iter and self.rank in (None, get_rank()):
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class SignalInIterHook(Hook):
    """Sends ``signal_name`` during iteration ``at_iter`` (before its forward pass), to this
    process or, with ``group=True``, to its whole process group (as Ctrl-C in a terminal does,
    reaching the DataLoader workers too)."""

    def __init__(self, signal_name: str, at_iter: int, group: bool = False) -> None:
        self.signum = getattr(signal, signal_name)
        self.at_iter = at_iter
        self.group = group

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter + 1 == self.at_iter:
            if self.group:
                os.killpg(os.getpgid(0), self.signum)
            else:
                os.kill(os.getpid(), self.signum)


@HOOKS.register_module()
class DiskFullAtSaveHook(Hook):
    """From the checkpoint of iteration ``at_iter`` on, ``os.fsync`` fails with ENOSPC, as on a
    full disk (the checkpoint is written to a temporary file, flushed, fsync-ed, renamed)."""

    def __init__(self, at_iter: int) -> None:
        self.at_iter = at_iter

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        if runner.iter + 1 == self.at_iter:

            def full(fd):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            os.fsync = full


@HOOKS.register_module()
class KillDataWorkerHook(Hook):
    """After iteration ``at_iter``, SIGKILL one DataLoader worker of the train loop (as the
    kernel's out-of-memory killer would), then stay busy for up to 5 s: PyTorch's SIGCHLD
    handler raises here then, not inside whatever the loop does next (inside a logging call,
    logging would swallow it)."""

    priority = 'LOWEST'

    def __init__(self, at_iter: int) -> None:
        self.at_iter = at_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 == self.at_iter:
            workers = runner.train_loop.dataloader_iterator._iterator._workers
            os.kill(workers[0].pid, signal.SIGKILL)
            time.sleep(5)


def buggy_forward_train(*args, **kwargs):
    """A forward_train with a bug: adds a number to None (a ``TypeError``)."""
    offset = None
    return offset + 1


@HOOKS.register_module()
class BugInForwardTrainHook(Hook):
    """Before the first iteration, replace the model's ``forward_train`` by one with a bug."""

    def before_train(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)
        model.forward_train = buggy_forward_train
