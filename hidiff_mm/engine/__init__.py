from .accumulating_loop import AccumulatingIterBasedTrainLoop
from .atomic_backend import AtomicLocalBackend
from .hooks import ExactResumeHook, ProgressivePatchHook, StageSwitchHook

__all__ = [
    'AccumulatingIterBasedTrainLoop', 'AtomicLocalBackend', 'ExactResumeHook',
    'ProgressivePatchHook', 'StageSwitchHook'
]
