"""MMEngine's checkpoint hook, made safe against a save that fails or is cut short."""
import os.path as osp
from contextlib import contextmanager
from typing import Iterator

from mmagic.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from ...utils.io import atomic_write_bytes


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) that never leaves the run without a good checkpoint.

    * Saved to a local folder with no backend configured, checkpoints go through the
      ``atomic_local`` backend (:class:`~hidiff_mm.engine.AtomicLocalBackend`): a checkpoint
      file is complete or absent, and a failed write (disk full) raises ``OSError`` naming it.
    * Checkpoints beyond ``max_keep_ckpts`` and the previous best checkpoint are deleted only
      after the new one is written. MMEngine deletes them first, so a failing save could leave
      nothing to resume from (with ``max_keep_ckpts=1``) or lose the best checkpoint.
    * ``last_checkpoint`` is rewritten atomically after each save (MMEngine rewrites it in place;
      ``tools/train.py --resume`` also copes with a damaged one).

    ``tools/train.py`` uses it in place of ``CheckpointHook``.
    """

    def __init__(self, *args, **kwargs) -> None:
        out_dir = kwargs.get('out_dir')
        local = out_dir is None or '://' not in str(out_dir)
        if local and kwargs.get('backend_args') is None and \
                kwargs.get('file_client_args') is None:
            kwargs['backend_args'] = dict(backend='atomic_local')
        super().__init__(*args, **kwargs)

    @contextmanager
    def _removals_after_success(self) -> Iterator[None]:
        """Collect the ``file_backend.remove`` calls made inside; run them only on success."""
        backend, pending = self.file_backend, []
        shadowed, remove = 'remove' in vars(backend), backend.remove  # nested: the outer list
        backend.remove = pending.append
        try:
            yield
        finally:
            if shadowed:
                backend.remove = remove
            else:
                del backend.remove
        for path in pending:
            remove(path)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        with self._removals_after_success():
            super()._save_checkpoint_with_step(runner, step, meta)
        if is_main_process():
            atomic_write_bytes(str(self.last_ckpt).encode(),
                               osp.join(runner.work_dir, 'last_checkpoint'))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        with self._removals_after_success():
            super()._save_best_checkpoint(runner, metrics)
