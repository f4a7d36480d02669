from .atomic_checkpoint_hook import AtomicCheckpointHook
from .compile_hook import CompileGeneratorHook
from .diffusion_settings_hook import DiffusionSettingsHook
from .exact_resume_hook import ExactResumeHook
from .fast_path_hook import FastPathHook
from .prior_ramp_hook import PriorRampHook
from .progressive_patch_hook import ProgressivePatchHook
from .signal_checkpoint_hook import SignalCheckpointHook
from .stage_switch_hook import StageSwitchHook

__all__ = [
    'AtomicCheckpointHook', 'CompileGeneratorHook', 'DiffusionSettingsHook', 'ExactResumeHook',
    'FastPathHook', 'PriorRampHook', 'ProgressivePatchHook', 'SignalCheckpointHook',
    'StageSwitchHook'
]
