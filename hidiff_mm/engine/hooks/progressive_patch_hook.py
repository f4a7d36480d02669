"""Progressive patch/batch training: smaller crops and larger batches early in training."""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from mmagic.registry import HOOKS
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper

from ...utils.errors import ConfigError
from ..accumulating_loop import AccumulatingIterBasedTrainLoop
from .stage_switch_hook import StageSwitchHook

DATA_BATCH = Optional[Union[dict, tuple, list]]


@HOOKS.register_module()
class ProgressivePatchHook(Hook):
    """Sub-sample each loaded batch to the phase's batch size and crop one shared patch.

    The loader yields a batch of the largest patch; during phase ``i`` (iterations up to
    ``milestones[i]``, 1-based, counted from ``start_iter``) a random subset of the phase's
    samples is kept (without replacement) and one random ``patch_sizes[i]`` window, shared by
    the process's batch, is cut from inputs and ``gt_img`` alike. The official schedule is
    milestones [20k, 40k, 60k, 80k, 100k, 300k], patches [128, 160, 192, 256, 320, 384] and
    total batches [64, 40, 32, 16, 8, 8] (4 GPUs x [16, 10, 8, 4, 2, 2]). Randomness comes
    from numpy's global generator, which differs between ranks (``diff_rank_seed``).

    ``batch_sizes[i]`` is the most samples one process runs through the network at once in
    phase ``i`` (the micro-batch, which sets the memory). Without ``recipe_total_batch_sizes``
    each process keeps that many samples per step. With it, the hook reaches the recipe's total
    batch on any number of processes by gradient accumulation: at the start of training it
    plans, per phase, ``world size x micro-batch x k = total``, with ``k`` the smallest count
    that splits the process's share (total / world size) into equal micro-batches of at most
    ``batch_sizes[i]``; each iteration keeps ``micro-batch x k`` samples and sets the optimizer
    wrapper's ``accumulative_counts`` to ``k``, which ``AccumulatingIterBasedTrainLoop`` runs as
    ``k`` micro-batches of one optimizer step. The recipe configs (8, 5, 4, 2, 1, 1 per
    micro-batch) get ``k = 8 / world size`` on 1, 2, 4 or 8 processes. The plan is logged; where
    the total cannot be reached (the world size does not divide it, or the run cannot
    accumulate: another train loop or several optimizers), the hook warns in capitals and each
    process keeps ``batch_sizes[i]`` samples.

    Args:
        milestones: last iteration (1-based, cumulative) of each phase.
        patch_sizes: square patch side per phase.
        batch_sizes: samples per process and micro-batch, per phase.
        start_iter: iteration(s) at which the schedule (re)starts. The ``switch_iter`` of a
            ``StageSwitchHook`` in the same run is added at the start of training, so stage 2
            repeats the schedule without the two hooks having to agree by hand.
        recipe_total_batch_sizes: the total batch (all processes) per phase that the recipe
            assumes, or None for ``batch_sizes`` per process without accumulation.
    """

    priority = 'HIGH'

    def __init__(self, milestones: Sequence[int], patch_sizes: Sequence[int],
                 batch_sizes: Sequence[int], start_iter: Union[int, Sequence[int]] = 0,
                 recipe_total_batch_sizes: Optional[Sequence[int]] = None) -> None:
        if not len(milestones) == len(patch_sizes) == len(batch_sizes):
            raise ConfigError('milestones, patch_sizes and batch_sizes need the same length, got '
                              f'{len(milestones)}, {len(patch_sizes)}, {len(batch_sizes)}')
        if recipe_total_batch_sizes is not None and len(recipe_total_batch_sizes) != len(
                batch_sizes):
            raise ConfigError('recipe_total_batch_sizes needs one entry per phase '
                              f'({len(batch_sizes)}), got {list(recipe_total_batch_sizes)}')
        if list(milestones) != sorted(milestones):
            raise ConfigError(f'milestones must increase, got {list(milestones)}')
        if min(batch_sizes) < 1:
            raise ConfigError(f'batch_sizes must be positive, got {list(batch_sizes)}')
        self.milestones = list(milestones)
        self.patch_sizes = list(patch_sizes)
        self.batch_sizes = list(batch_sizes)
        self.start_iters = sorted([start_iter] if isinstance(start_iter, int) else start_iter)
        self.recipe_total_batch_sizes = (None if recipe_total_batch_sizes is None else
                                         list(recipe_total_batch_sizes))
        # (micro-batch, accumulation count) per phase, and whether the hook sets the count
        self.plan: List[Tuple[int, int]] = [(b, 1) for b in self.batch_sizes]
        self.accumulate = False

    def total_batch_sizes(self) -> list:
        """The batch of each phase summed over all processes and micro-batches."""
        return [get_world_size() * micro * counts for micro, counts in self.plan]

    def plan_for(self, world: int) -> Optional[List[Tuple[int, int]]]:
        """(micro-batch, accumulation count) per phase that makes the recipe's totals on
        ``world`` processes, or None where ``world`` does not divide a total."""
        plan = []
        for total, cap in zip(self.recipe_total_batch_sizes, self.batch_sizes):
            if total % world:
                return None
            share = total // world
            counts = next(c for c in range(-(-share // cap), share + 1) if share % c == 0)
            plan.append((share // counts, counts))
        return plan

    @staticmethod
    def can_accumulate(runner) -> bool:
        """Whether the run splits a step into micro-batches of one optimizer's step."""
        return (isinstance(runner.train_loop, AccumulatingIterBasedTrainLoop)
                and isinstance(runner.optim_wrapper, OptimWrapper))

    def before_train(self, runner) -> None:
        switches = [h.switch_iter for h in runner.hooks if isinstance(h, StageSwitchHook)]
        self.start_iters = sorted(set(self.start_iters) | set(switches))
        world, recipe, problem = get_world_size(), self.recipe_total_batch_sizes, None
        if recipe is not None:
            plan = self.plan_for(world)
            if plan is None:
                problem = f'{world} processes do not divide it'
            elif max(c for _, c in plan) > 1 and not self.can_accumulate(runner):
                problem = (f'{world} process(es) would need gradient accumulation, which needs '
                           "train_cfg.type='AccumulatingIterBasedTrainLoop' and one OptimWrapper")
            else:
                self.plan, self.accumulate = plan, True
        totals = self.total_batch_sizes()
        runner.logger.info(
            f'ProgressivePatchHook: total batch per phase {totals} = {world} process(es) x '
            f'{[m for m, _ in self.plan]} per micro-batch x {[c for _, c in self.plan]} '
            f'micro-batches accumulated per optimizer step, patches {self.patch_sizes}, '
            f'schedule starting at iterations {self.start_iters}')
        if problem is not None:
            runner.logger.warning(
                f'ProgressivePatchHook: THE TOTAL BATCH {totals} DIFFERS FROM THE RECIPE\'S '
                f'{recipe}: {problem}. The learning rate and schedule were tuned for the recipe.')
        if self.accumulate:
            self._check_loader(runner, world)

    def _check_loader(self, runner, world: int) -> None:
        loaded = getattr(runner.train_loop.dataloader, 'batch_size', None)
        needed = [micro * counts for micro, counts in self.plan]
        if loaded is not None and loaded < max(needed):
            raise ConfigError(
                f'ProgressivePatchHook: phase {needed.index(max(needed))} keeps {max(needed)} '
                f'samples per process and step ({world} process(es)), the loader yields '
                f'{loaded}; set train_cfg.total_batch_size={world * max(needed)} '
                '(AccumulatingIterBasedTrainLoop) or train_dataloader.batch_size')

    def phase(self, iteration: int) -> int:
        """Phase index for a 0-based global iteration."""
        starts = [s for s in self.start_iters if s <= iteration]
        local = iteration - (starts[-1] if starts else 0) + 1
        for i, milestone in enumerate(self.milestones):
            if local <= milestone:
                return i
        return len(self.milestones) - 1

    def before_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        i = self.phase(runner.iter)
        inputs, samples = data_batch['inputs'], data_batch['data_samples']
        micro, counts = self.plan[i]
        size, keep = self.patch_sizes[i], micro * counts
        if keep > len(inputs):
            raise ConfigError(f'ProgressivePatchHook: phase {i} keeps {keep} samples but the '
                              f'loader yields {len(inputs)}; raise the dataloader batch_size')
        h, w = inputs[0].shape[-2:]
        if size > min(h, w):
            raise ConfigError(f'ProgressivePatchHook: patch {size} is larger than the loaded '
                              f'{h}x{w} crops')
        chosen = (np.random.choice(len(inputs), keep, replace=False)
                  if keep < len(inputs) else np.arange(len(inputs)))
        top = int(np.floor((h - size) * np.random.rand()))
        left = int(np.floor((w - size) * np.random.rand()))
        window = (Ellipsis, slice(top, top + size), slice(left, left + size))
        data_batch['inputs'] = [inputs[j][window] for j in chosen]
        cropped = []
        for j in chosen:
            sample = samples[j]
            sample.gt_img = sample.gt_img[window]
            cropped.append(sample)
        data_batch['data_samples'] = cropped
        if self.accumulate:  # MMEngine has no setter; the loop reads the count back
            runner.optim_wrapper._accumulative_counts = counts
