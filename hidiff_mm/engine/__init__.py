from .atomic_backend import AtomicLocalBackend
from .hooks import ExactResumeHook, ProgressivePatchHook, StageSwitchHook
from .runner import CheckpointGlobalsMixin, WeightsOnlyRunner, build_runner

__all__ = [
    'AtomicLocalBackend', 'CheckpointGlobalsMixin', 'ExactResumeHook', 'ProgressivePatchHook',
    'StageSwitchHook', 'WeightsOnlyRunner', 'build_runner'
]
