from .fast_path import set_fast_path
from .him import HIM
from .layer_norm import HIDiffLayerNorm
from .prior_pyramid import PriorTokenPool

__all__ = ['HIM', 'HIDiffLayerNorm', 'PriorTokenPool', 'set_fast_path']
