from .atomic_backend import AtomicLocalBackend
from .fault_tolerance import fault_tolerant_hooks, find_resume_checkpoint
from .hooks import (AtomicCheckpointHook, ExactResumeHook, ProgressivePatchHook,
                    SignalCheckpointHook, StageSwitchHook)

__all__ = [
    'AtomicLocalBackend', 'AtomicCheckpointHook', 'ExactResumeHook', 'ProgressivePatchHook',
    'SignalCheckpointHook', 'StageSwitchHook', 'fault_tolerant_hooks', 'find_resume_checkpoint'
]
