from .compile_hook import CompileGeneratorHook
from .exact_resume_hook import ExactResumeHook
from .progressive_patch_hook import ProgressivePatchHook
from .stage_switch_hook import StageSwitchHook

__all__ = ['CompileGeneratorHook', 'ExactResumeHook', 'ProgressivePatchHook', 'StageSwitchHook']
