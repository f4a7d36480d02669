"""Make ``--resume`` continue a run exactly: RNG states saved per rank, validation RNG-neutral."""
import random
from typing import Dict, List, Optional

import numpy as np
import torch
from mmagic.registry import HOOKS
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook


def get_rng_state() -> Dict[str, torch.Tensor]:
    """Python, numpy and torch (CPU and CUDA) generator states, as tensors only."""
    version, py_state, gauss = random.getstate()
    name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = dict(
        python=torch.tensor(py_state, dtype=torch.int64),
        python_gauss=torch.tensor([np.nan if gauss is None else gauss], dtype=torch.float64),
        numpy=torch.from_numpy(np_keys.astype(np.int64)),
        numpy_pos=torch.tensor([np_pos, np_has_gauss], dtype=torch.int64),
        numpy_gauss=torch.tensor([np_gauss], dtype=torch.float64),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: Dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`get_rng_state`."""
    gauss = state['python_gauss'].item()
    random.setstate((3, tuple(int(v) for v in state['python']),
                     None if np.isnan(gauss) else gauss))
    pos, has_gauss = (int(v) for v in state['numpy_pos'])
    np.random.set_state(('MT19937', state['numpy'].numpy().astype(np.uint32), pos, has_gauss,
                         state['numpy_gauss'].item()))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state['cuda']))


class _RestoreBeforeNextFetch:
    """Wraps the train loop's data iterator: after the loop has skipped ``skip`` batches on
    resume, restore the saved RNG state right before the next batch is fetched."""

    def __init__(self, loop, skip: int, state: Dict[str, torch.Tensor]) -> None:
        self.loop, self.skip, self.state = loop, skip, state
        self.inner = loop.dataloader_iterator

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip == 0:
            set_rng_state(self.state)
            self.loop.dataloader_iterator = self.inner
        else:
            self.skip -= 1
        return next(self.inner)


@HOOKS.register_module()
class ExactResumeHook(Hook):
    """Resume so that the continued run equals an uninterrupted one.

    MMEngine restores weights, optimizer, schedulers and the data position (by replaying the
    loader), but not the random generators. This hook stores every rank's python / numpy / torch
    generator states in each checkpoint and restores them on resume just before the first new
    batch is loaded (after MMEngine's replay, so replayed augmentations are not counted twice).
    Validation runs inside a forked RNG state, so validating never changes the training run.
    MMEngine writes checkpoints on rank 0 only, so the states of all ranks are gathered (a
    collective) after each iteration at which the ``CheckpointHook`` will save, i.e. at its
    interval, at the last iteration and, with ``save_best``, at validation iterations; a
    checkpoint written at any other moment holds rank 0's state only.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self) -> None:
        self._train_state: Optional[Dict[str, torch.Tensor]] = None
        self._states: Optional[List[Dict[str, torch.Tensor]]] = None
        self._states_done = -1  # iterations completed when the states were gathered
        self._loaded: Optional[List[Dict[str, torch.Tensor]]] = None

    @staticmethod
    def checkpoint_due(runner) -> bool:
        """Whether a ``CheckpointHook`` of ``runner`` may save after the current iteration."""
        val_interval = getattr(runner.train_loop, 'val_interval', 0) or 0
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook):
                continue
            if (hook.by_epoch or hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                    or (hook.save_last and hook.is_last_train_iter(runner))):
                return True
            validates = val_interval and (runner.iter + 1) % val_interval == 0
            if hook.save_best is not None and validates:
                return True
        return False

    def collect(self, runner) -> None:
        """Gather every rank's RNG state now (a collective: all ranks must call it)."""
        state = get_rng_state()
        self._states = all_gather_object(state) if get_world_size() > 1 else [state]
        self._states_done = runner.iter + 1

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.checkpoint_due(runner):
            self.collect(runner)

    def before_val(self, runner) -> None:
        self._train_state = get_rng_state()

    def after_val(self, runner) -> None:
        if self._train_state is not None:
            set_rng_state(self._train_state)
            self._train_state = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._states is not None and checkpoint.get('meta', {}).get('iter') == self._states_done:
            states = self._states
        else:
            states = [self._train_state or get_rng_state()]
        checkpoint.setdefault('meta', {})['rng_states'] = states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = checkpoint.get('meta', {}).get('rng_states')

    def before_train_epoch(self, runner) -> None:
        if self._loaded is None or runner.iter == 0:
            return
        states, self._loaded = self._loaded, None
        if len(states) <= get_rank():
            runner.logger.warning('ExactResumeHook: the checkpoint has RNG states for '
                                  f'{len(states)} processes; this rank starts from its seed')
            return
        loop = runner.train_loop
        loop.dataloader_iterator = _RestoreBeforeNextFetch(loop, runner.iter, states[get_rank()])
