# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Data transforms registered in ``mmagic.registry.TRANSFORMS``."""
from .aug_shape import RandomDihedral
from .loading import LoadImagePair

__all__ = ['LoadImagePair', 'RandomDihedral']
