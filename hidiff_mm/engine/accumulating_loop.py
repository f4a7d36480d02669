"""An iteration-based train loop in which one iteration is one optimizer step of k micro-batches."""
from typing import Dict, List, Optional, Sequence, Union

from mmagic.registry import LOOPS
from mmengine.dist import get_world_size
from mmengine.optim import OptimWrapper
from mmengine.runner import IterBasedTrainLoop
from torch.utils.data import DataLoader

from ..utils.errors import ConfigError


def split_batch(data_batch: dict, counts: int) -> List[dict]:
    """Split a collated batch (a dict of equally long lists/tensors) into ``counts`` equal parts.

    Raises:
        ValueError: the batch size is not a multiple of ``counts``, or the entries differ in
            length.
    """
    if counts == 1:
        return [data_batch]
    if not isinstance(data_batch, dict):
        raise TypeError('gradient accumulation splits a dict batch (pseudo_collate), got '
                        f'{type(data_batch).__name__}')
    sizes = {key: len(value) for key, value in data_batch.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f'the batch entries differ in length: {sizes}')
    size = next(iter(sizes.values()))
    if size % counts:
        raise ConfigError(f'a batch of {size} samples cannot be split into {counts} equal '
                          'micro-batches (accumulative_counts); equal micro-batches keep the '
                          'accumulated gradient equal to the whole batch\'s')
    step = size // counts
    return [{key: value[i * step:(i + 1) * step] for key, value in data_batch.items()}
            for i in range(counts)]


def mean_outputs(outputs: Sequence[Dict]) -> Dict:
    """The mean of the micro-batches' log variables (their losses are means over equal
    micro-batches, so this is the loss of the whole batch)."""
    return {key: sum(out[key] for out in outputs) / len(outputs) for key in outputs[0]}


@LOOPS.register_module()
class AccumulatingIterBasedTrainLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` in which one iteration is one optimizer step.

    MMEngine's own loop runs one micro-batch per iteration, so with ``accumulative_counts = k``
    the parameter schedulers, EMA, logging, validation and checkpoint intervals would count
    micro-batches. Here each iteration fetches one loader batch (the whole per-process batch of
    the step), lets the ``before_train_iter`` hooks edit it (``ProgressivePatchHook`` sub-samples,
    crops and sets ``k`` for the phase), splits it into the optimizer wrapper's
    ``accumulative_counts`` equal micro-batches and runs ``model.train_step`` on each. The
    ``OptimWrapper`` is reset to count these ``k`` (``initialize_count_status(model, 0, k)``), so
    it divides each loss by ``k``, skips the DDP gradient all-reduce but for the last
    micro-batch (``no_sync``), then clips the accumulated gradient and steps once. Everything
    that counts iterations (``max_iters``, schedulers, EMA, checkpoints, resume) counts optimizer
    steps, as in a run that holds the whole batch at once. The hooks see the whole batch and the
    mean of the micro-batches' log variables.

    With ``k = 1`` (or an ``OptimWrapperDict``, which has no count) an iteration is MMEngine's.

    Args:
        total_batch_size: samples loaded per step over all processes; each process's loader
            then yields ``total_batch_size / world size``. None keeps the loader's
            ``batch_size``.
        Others: as ``IterBasedTrainLoop``.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 max_iters: int,
                 val_begin: int = 1,
                 val_interval: int = 1000,
                 dynamic_intervals: Optional[list] = None,
                 total_batch_size: Optional[int] = None) -> None:
        if total_batch_size is not None:
            world = get_world_size()
            if not isinstance(dataloader, dict):
                raise ConfigError('total_batch_size needs the train_dataloader as a config dict')
            if total_batch_size % world:
                raise ConfigError(f'train_cfg.total_batch_size={total_batch_size} is not a '
                                  f'multiple of the number of processes ({world})')
            dataloader = dict(dataloader, batch_size=total_batch_size // world)
        self.total_batch_size = total_batch_size
        super().__init__(runner, dataloader, max_iters, val_begin, val_interval,
                         dynamic_intervals)

    def run_iter(self, data_batch: dict) -> None:
        """One optimizer step over ``data_batch``, in ``accumulative_counts`` micro-batches."""
        runner = self.runner
        runner.call_hook('before_train_iter', batch_idx=self._iter, data_batch=data_batch)
        wrapper = runner.optim_wrapper
        counts = getattr(wrapper, '_accumulative_counts', 1)
        if isinstance(wrapper, OptimWrapper):
            wrapper.initialize_count_status(runner.model, 0, counts)
        outputs = [runner.model.train_step(micro, optim_wrapper=wrapper)
                   for micro in split_batch(data_batch, counts)]
        runner.call_hook('after_train_iter', batch_idx=self._iter, data_batch=data_batch,
                         outputs=mean_outputs(outputs))
        self._iter += 1
