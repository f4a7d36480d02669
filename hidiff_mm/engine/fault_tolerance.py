"""What ``tools/train.py`` adds to every config so that no fault loses the run.

* :func:`fault_tolerant_hooks`: checkpoints through :class:`AtomicCheckpointHook` and a
  :class:`SignalCheckpointHook` that turns SIGTERM / SIGINT into a checkpoint and a clean stop.
* :func:`find_resume_checkpoint`: what ``--resume`` without a path continues from: the file
  ``last_checkpoint`` names, or else the newest readable ``iter_<N>.pth`` of the work dir.
"""
import glob
import os.path as osp
import re
from typing import Any, List, Optional, Tuple

from mmengine.config import Config

from ..utils.io import CheckpointError, load_weights_file

CHECKPOINT_NAME = re.compile(r'(?:iter|epoch)_(\d+)\.pth')


def fault_tolerant_hooks(cfg: Config) -> None:
    """Use :class:`AtomicCheckpointHook` for MMEngine's ``CheckpointHook`` (same arguments) and
    append a :class:`SignalCheckpointHook` unless the config has one; ``cfg`` is changed in place.
    """
    checkpoint = cfg.get('default_hooks', {}).get('checkpoint')
    if checkpoint is not None and checkpoint.get('type') in ('CheckpointHook', None):
        checkpoint['type'] = 'AtomicCheckpointHook'
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(h.get('type') == 'SignalCheckpointHook' for h in hooks):
        hooks.append(dict(type='SignalCheckpointHook'))
    cfg.custom_hooks = hooks


def list_checkpoints(work_dir: str) -> List[str]:
    """The ``iter_<N>.pth`` / ``epoch_<N>.pth`` files of ``work_dir``, newest (largest N) first."""
    found = [(int(m.group(1)), path) for path in glob.glob(osp.join(work_dir, '*.pth'))
             for m in [CHECKPOINT_NAME.fullmatch(osp.basename(path))] if m]
    return [path for _, path in sorted(found, reverse=True)]


def find_resume_checkpoint(work_dir: str) -> Tuple[Optional[str], Any, List[str]]:
    """The checkpoint to resume ``work_dir`` from, loaded, with what was skipped on the way.

    Candidates: the file named by ``<work_dir>/last_checkpoint``, then every ``iter_<N>.pth``
    newest first. The first one that loads (weights only) wins.

    Returns:
        ``(path, checkpoint, skipped)``; ``skipped`` says why each earlier candidate was passed
        over. ``(None, None, [])`` when the work dir holds no checkpoint (a fresh start).

    Raises:
        CheckpointError: checkpoints exist but none of them can be read.
    """
    candidates, skipped = [], []
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer, encoding='utf-8', errors='replace') as f:
            named = f.read().strip()
        if named:
            candidates.append(named)
        else:
            skipped.append(f'{pointer} is empty')
    named = {osp.realpath(p) for p in candidates}
    candidates += [p for p in list_checkpoints(work_dir) if osp.realpath(p) not in named]
    for path in candidates:
        try:
            return path, load_weights_file(path), skipped
        except (OSError, CheckpointError) as err:
            skipped.append(str(err))
    if candidates:
        raise CheckpointError(f'no readable checkpoint in {work_dir} to resume from: '
                              + '; '.join(skipped))
    return None, None, skipped
