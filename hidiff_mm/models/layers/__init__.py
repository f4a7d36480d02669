from .fast_path import set_fast_path
from .him import HIM
from .layer_norm import HIDiffLayerNorm
from .padding import pad_to_multiple
from .prior_pyramid import PriorTokenPool

__all__ = ['HIM', 'HIDiffLayerNorm', 'PriorTokenPool', 'pad_to_multiple', 'set_fast_path']
