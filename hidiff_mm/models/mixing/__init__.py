"""Mix HI-Diff into other models: guide an existing MMagic backbone by the HI-Diff prior."""
from .prior_guided_backbone import PriorGuidedBackbone, level_for_scale

__all__ = ['PriorGuidedBackbone', 'level_for_scale']
