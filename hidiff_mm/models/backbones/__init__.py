from .hidiff_blocks import GDFN, MDTA, HIDiffLevel, HIDiffTransformerBlock
from .hidiff_transformer import HIDiffTransformer

__all__ = ['GDFN', 'MDTA', 'HIDiffLevel', 'HIDiffTransformerBlock', 'HIDiffTransformer']
