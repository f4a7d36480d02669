"""What ``tools/train.py`` does so that no fault loses a run (see docs/reliability.md).

* :func:`fault_tolerant_hooks`: checkpoints through :class:`AtomicCheckpointHook` and a
  :class:`SignalCheckpointHook` that turns SIGTERM / SIGINT into a checkpoint and a clean stop.
* :func:`checkpoint_to_load` / :func:`find_resume_checkpoint`: the checkpoint is read before
  the runner is built; ``--resume`` without a path continues from the file ``last_checkpoint``
  names, or else the newest readable ``iter_<N>.pth`` of the work dir.
* :func:`training_fault`: the one line that names what stopped training and what to resume from.
"""
import glob
import logging
import os.path as osp
import re
import signal
from typing import Any, List, Optional, Tuple

from mmengine.config import Config
from mmengine.logging import print_log

from ..utils import cli
from ..utils.io import CheckpointError, load_weights_file

# RuntimeErrors that are faults of the run, not bugs: a DataLoader worker that died, another
# process of a multi-process run that died or stopped answering.
RUNTIME_FAULTS = ('DataLoader worker', 'NCCL', 'Timed out')
PEER_LOST = re.compile(r'Connection (closed|reset) by peer|Broken pipe')

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


def read_last_checkpoint(work_dir: str) -> Optional[str]:
    """The path ``<work_dir>/last_checkpoint`` names ('' if it is empty; None if it is absent)."""
    try:
        with open(osp.join(work_dir, 'last_checkpoint'), encoding='utf-8', errors='replace') as f:
            return f.read().strip()
    except OSError:
        return None


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
    named = read_last_checkpoint(work_dir)
    if named:
        candidates.append(named)
    elif named == '':
        skipped.append(f'{osp.join(work_dir, "last_checkpoint")} is empty')
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


def checkpoint_to_load(cfg: Config) -> Tuple[Optional[str], Any]:
    """``(path, checkpoint)`` the run of ``cfg`` starts from, read now (weights only), or
    ``(None, None)``; ``cfg.resume`` / ``cfg.load_from`` are set to what was chosen.

    Reading it before the runner is built reports a missing or damaged file by name. ``--resume``
    without a path takes the file ``last_checkpoint`` names, or else the newest readable
    ``iter_<N>.pth`` of the work dir, and says which files it passed over.
    """
    if cfg.get('resume') and cfg.get('load_from') is None:
        path, checkpoint, skipped = find_resume_checkpoint(cfg.work_dir)
        for note in skipped:
            print_log(f'--resume: passed over {note}', logger='current', level=logging.WARNING)
        if path is None:
            print_log(f'--resume: no checkpoint in {cfg.work_dir}; starting at iteration 0',
                      logger='current', level=logging.WARNING)
            cfg.resume = False
        else:
            print_log(f'--resume: continuing from {path}', logger='current',
                      level=logging.WARNING if skipped else logging.INFO)
            cfg.load_from = path
        return path, checkpoint
    if cfg.get('load_from'):
        return cfg.load_from, load_weights_file(cfg.load_from)
    return None, None


def dead_data_worker() -> Optional[str]:
    """PyTorch's report of a DataLoader worker that died (e.g. ``DataLoader worker (pid 123) is
    killed by signal: Killed.``), or None. The main process may first see the death as a
    broken connection to that worker, so it is asked explicitly."""
    from torch.utils.data._utils import signal_handling
    try:
        signal_handling._error_if_any_worker_fails()
    except RuntimeError as err:
        return str(err).strip()
    return None


def training_fault(err: Exception, runner) -> Optional[cli.ToolError]:
    """A ``ToolError`` naming what stopped training and what to resume from, or None for an
    exception that is a bug (it keeps its traceback): a ``TypeError`` in ``forward_train`` is
    one, a ``UserError`` (an unreadable image the dataset names) or an ``OSError`` is not."""
    # PyTorch's SIGCHLD handler raises whenever a worker exits from now on: not any more.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    dead_worker = dead_data_worker()
    text = dead_worker or cli.error_message(err)
    peer_lost = isinstance(err, RuntimeError) and PEER_LOST.search(text)
    if peer_lost:  # gloo's message is a paragraph naming a socket
        text = f'another process of the run has stopped ({peer_lost.group(0)})'
    # A user error (a file the config names, a config value, a full disk) and a non-finite loss
    # (the editor's own check) are faults of the run; any other exception is a bug.
    fault = dead_worker or peer_lost or cli.is_user_error(err) \
        or isinstance(err, FloatingPointError) \
        or (isinstance(err, RuntimeError) and any(s in text for s in RUNTIME_FAULTS))
    if not fault:
        return None
    ckpt = read_last_checkpoint(runner.work_dir)
    then = (f'nothing is lost: fix the cause and run the same command with --resume to '
            f'continue from {ckpt}' if ckpt else 'no checkpoint had been written yet')
    return cli.ToolError(f'training stopped in iteration {runner.iter + 1}: {text} ({then})')
