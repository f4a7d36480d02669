from .atomic_backend import AtomicLocalBackend
from .hooks import ExactResumeHook, ProgressivePatchHook, StageSwitchHook

__all__ = ['AtomicLocalBackend', 'ExactResumeHook', 'ProgressivePatchHook', 'StageSwitchHook']
