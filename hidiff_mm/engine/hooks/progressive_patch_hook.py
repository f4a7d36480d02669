"""Progressive patch/batch training: smaller crops and larger batches early in training."""
from typing import Optional, Sequence, Union

import numpy as np
from mmagic.registry import HOOKS
from mmengine.dist import get_world_size
from mmengine.hooks import Hook

from .stage_switch_hook import StageSwitchHook

DATA_BATCH = Optional[Union[dict, tuple, list]]


@HOOKS.register_module()
class ProgressivePatchHook(Hook):
    """Sub-sample each loaded batch to the phase's batch size and crop one shared patch.

    The loader yields ``batch_size`` pairs of the largest patch; during phase ``i`` (iterations
    up to ``milestones[i]``, 1-based, counted from ``start_iter``) a random subset of
    ``batch_sizes[i]`` samples is kept (without replacement) and one random ``patch_sizes[i]``
    window, shared by the batch, is cut from inputs and ``gt_img`` alike. The official schedule
    is milestones [20k, 40k, 60k, 80k, 100k, 300k], patches [128, 160, 192, 256, 320, 384] and
    total batches [64, 40, 32, 16, 8, 8] (4 GPUs x [16, 10, 8, 4, 2, 2]). Randomness comes
    from numpy's global generator, which differs between ranks (``diff_rank_seed``).

    At the start of training the hook logs the total batch of every phase (world size x
    ``batch_sizes``) and, when ``recipe_total_batch_sizes`` is given and differs, warns that the
    run does not follow the recipe it was written for.

    Args:
        milestones: last iteration (1-based, cumulative) of each phase.
        patch_sizes: square patch side per phase.
        batch_sizes: samples kept per phase (per process).
        start_iter: iteration(s) at which the schedule (re)starts. The ``switch_iter`` of a
            ``StageSwitchHook`` in the same run is added at the start of training, so stage 2
            repeats the schedule without the two hooks having to agree by hand.
        recipe_total_batch_sizes: the total batch (all processes) per phase that the recipe
            assumes, or None to only log it.
    """

    priority = 'HIGH'

    def __init__(self, milestones: Sequence[int], patch_sizes: Sequence[int],
                 batch_sizes: Sequence[int], start_iter: Union[int, Sequence[int]] = 0,
                 recipe_total_batch_sizes: Optional[Sequence[int]] = None) -> None:
        if not len(milestones) == len(patch_sizes) == len(batch_sizes):
            raise ValueError('milestones, patch_sizes and batch_sizes need the same length, got '
                             f'{len(milestones)}, {len(patch_sizes)}, {len(batch_sizes)}')
        if recipe_total_batch_sizes is not None and len(recipe_total_batch_sizes) != len(
                batch_sizes):
            raise ValueError('recipe_total_batch_sizes needs one entry per phase '
                             f'({len(batch_sizes)}), got {list(recipe_total_batch_sizes)}')
        if list(milestones) != sorted(milestones):
            raise ValueError(f'milestones must increase, got {list(milestones)}')
        self.milestones = list(milestones)
        self.patch_sizes = list(patch_sizes)
        self.batch_sizes = list(batch_sizes)
        self.start_iters = sorted([start_iter] if isinstance(start_iter, int) else start_iter)
        self.recipe_total_batch_sizes = (None if recipe_total_batch_sizes is None else
                                         list(recipe_total_batch_sizes))

    def total_batch_sizes(self) -> list:
        """The batch of each phase summed over all processes."""
        return [get_world_size() * b for b in self.batch_sizes]

    def before_train(self, runner) -> None:
        switches = [h.switch_iter for h in runner.hooks if isinstance(h, StageSwitchHook)]
        self.start_iters = sorted(set(self.start_iters) | set(switches))
        totals = self.total_batch_sizes()
        runner.logger.info(
            f'ProgressivePatchHook: total batch per phase {totals} = {get_world_size()} '
            f'process(es) x {self.batch_sizes}, patches {self.patch_sizes}, schedule starting '
            f'at iterations {self.start_iters}')
        recipe = self.recipe_total_batch_sizes
        if recipe is not None and totals != recipe:
            per_process = [round(r / get_world_size(), 2) for r in recipe]
            runner.logger.warning(
                f'ProgressivePatchHook: THE TOTAL BATCH {totals} DIFFERS FROM THE RECIPE\'S '
                f'{recipe}. This config assumes {recipe[0] // self.batch_sizes[0]} processes; '
                f'with {get_world_size()} the per-process batch_sizes would have to be '
                f'{per_process}. The learning rate and schedule were tuned for the recipe.')

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
        size, keep = self.patch_sizes[i], self.batch_sizes[i]
        if keep > len(inputs):
            raise ValueError(f'ProgressivePatchHook: phase {i} keeps {keep} samples but the '
                             f'loader yields {len(inputs)}; raise the dataloader batch_size')
        h, w = inputs[0].shape[-2:]
        if size > min(h, w):
            raise ValueError(f'ProgressivePatchHook: patch {size} is larger than the loaded '
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
