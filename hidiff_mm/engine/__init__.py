from .accumulating_loop import AccumulatingIterBasedTrainLoop
from .atomic_backend import AtomicLocalBackend
from .fault_tolerance import fault_tolerant_hooks, find_resume_checkpoint
from .hooks import (AtomicCheckpointHook, ExactResumeHook, ProgressivePatchHook,
                    SignalCheckpointHook, StageSwitchHook)
from .runner import CheckpointGlobalsMixin, WeightsOnlyRunner, build_runner

__all__ = [
    'AccumulatingIterBasedTrainLoop', 'AtomicLocalBackend', 'AtomicCheckpointHook',
    'CheckpointGlobalsMixin', 'ExactResumeHook', 'ProgressivePatchHook', 'SignalCheckpointHook',
    'StageSwitchHook', 'WeightsOnlyRunner', 'build_runner', 'fault_tolerant_hooks',
    'find_resume_checkpoint'
]
