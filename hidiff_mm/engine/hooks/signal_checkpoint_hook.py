"""Stop training on SIGTERM / SIGINT with a checkpoint of the last finished iteration."""
import os
import os.path as osp
import signal
import threading
from typing import Dict, Optional, Sequence

import torch
from mmagic.registry import HOOKS
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.hooks import CheckpointHook, Hook

from ...utils.errors import ConfigError
from ...utils.io import atomic_write_bytes
from .exact_resume_hook import ExactResumeHook


@HOOKS.register_module()
class SignalCheckpointHook(Hook):
    """Stop cleanly on SIGTERM (a scheduler preempting the job) or SIGINT (Ctrl-C).

    The signal only sets a flag. When the iteration in progress has finished (optimizer step
    included), the ranks agree on the flag (one all-reduce of an integer per iteration in
    multi-process runs, so every rank stops after the same iteration), the checkpoint of that
    iteration is written through the run's ``CheckpointHook`` (unless it has just written it),
    a validation due at that iteration is skipped, and the train loop ends normally.
    ``--resume`` then continues exactly where the run stopped (with ``ExactResumeHook``).

    A second signal gets the behaviour it would have without this hook (SIGINT raises
    ``KeyboardInterrupt``, SIGTERM terminates), for a user who does not want to wait.
    The handlers are installed in ``before_run``, before DataLoader workers are forked: workers
    inherit them and ignore the signal (the main process shuts them down).

    After the run, ``stopped_by`` is the signal number (0: not stopped), ``stop_iter`` the
    number of finished iterations and ``checkpoint`` the checkpoint written for them.

    Args:
        signals: names of the signals to handle.
    """

    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW) has saved the iteration

    def __init__(self, signals: Sequence[str] = ('SIGTERM', 'SIGINT')) -> None:
        unknown = [name for name in signals
                   if not isinstance(getattr(signal, str(name), None), signal.Signals)]
        if unknown:
            raise ConfigError(f'SignalCheckpointHook: unknown signal names {unknown}')
        self.signals = [getattr(signal, name) for name in signals]
        self.received = 0
        self.stopped_by = 0
        self.stop_iter: Optional[int] = None
        self.checkpoint: Optional[str] = None
        self._previous: Dict[int, object] = {}
        self._pid = os.getpid()

    def before_run(self, runner) -> None:
        if threading.current_thread() is not threading.main_thread():
            runner.logger.warning('SignalCheckpointHook: not in the main thread; signals are '
                                  'not handled')
            return
        self._pid = os.getpid()
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def after_run(self, runner) -> None:
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _on_signal(self, signum: int, frame) -> None:
        if os.getpid() != self._pid:  # a forked DataLoader worker: the main process decides
            return
        self.received = signum
        self._restore()
        os.write(2, f'\n{signal.Signals(signum).name} received: stopping after this iteration '
                 'with a checkpoint (send it again to stop at once)\n'.encode())

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        signum = self.received
        if get_world_size() > 1:
            flag = torch.tensor([signum], dtype=torch.int64)
            all_reduce(flag, op='max')
            signum = int(flag.item())
        if not signum:
            return
        step = runner.iter + 1
        self.checkpoint = self._save(runner, step)
        self.stopped_by, self.stop_iter = signum, step
        loop = runner.train_loop
        loop.stop_training = True
        loop.val_begin = float('inf')  # no validation on the way out
        runner.logger.warning(f'{signal.Signals(signum).name}: training stopped after '
                              f'iteration {step}; checkpoint {self.checkpoint}')

    @staticmethod
    def _save(runner, step: int) -> str:
        """Write the checkpoint of ``step`` finished iterations (unless already written).

        Every rank calls it (the ranks have agreed to stop), so the RNG states of all ranks are
        gathered for it first: ``ExactResumeHook`` gathers them only where a checkpoint is due.
        """
        hook = next((h for h in runner.hooks
                     if isinstance(h, CheckpointHook) and not h.by_epoch), None)
        path = osp.join(runner.work_dir, f'iter_{step}.pth')
        if hook is not None:
            path = hook.file_backend.join_path(hook.out_dir, hook.filename_tmpl.format(step))
        if hook is not None and runner.message_hub.get_info('last_ckpt') == path:
            return path
        for resume_hook in runner.hooks:
            if isinstance(resume_hook, ExactResumeHook):
                resume_hook.collect(runner)
        if hook is not None:
            hook._save_checkpoint_with_step(runner, step, dict(epoch=runner.epoch, iter=step))
            return path
        runner.save_checkpoint(runner.work_dir, osp.basename(path), by_epoch=False,
                               backend_args=dict(backend='atomic_local'))
        if is_main_process():
            atomic_write_bytes(path.encode(), osp.join(runner.work_dir, 'last_checkpoint'))
        return path
