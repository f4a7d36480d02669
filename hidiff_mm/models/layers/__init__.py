from .fast_path import FAST_FORMS, convert_for_device, convert_to_exact, convert_to_fast
from .him import HIM
from .layer_norm import HIDiffLayerNorm
from .prior_pyramid import PriorTokenPool

__all__ = ['FAST_FORMS', 'HIM', 'HIDiffLayerNorm', 'PriorTokenPool', 'convert_for_device',
           'convert_to_exact', 'convert_to_fast']
