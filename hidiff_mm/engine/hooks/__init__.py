from .atomic_checkpoint_hook import AtomicCheckpointHook
from .compile_hook import CompileGeneratorHook
from .exact_resume_hook import ExactResumeHook
from .progressive_patch_hook import ProgressivePatchHook
from .signal_checkpoint_hook import SignalCheckpointHook
from .stage_switch_hook import StageSwitchHook

__all__ = [
    'AtomicCheckpointHook', 'CompileGeneratorHook', 'ExactResumeHook', 'ProgressivePatchHook',
    'SignalCheckpointHook', 'StageSwitchHook'
]
