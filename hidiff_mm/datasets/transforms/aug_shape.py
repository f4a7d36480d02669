# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The 8-way dihedral augmentation of HI-Diff (official ``random_augmentation``)."""
from typing import Sequence

import numpy as np
from mmagic.registry import TRANSFORMS
from mmcv.transforms import BaseTransform

from hidiff_mm.utils.dihedral import dihedral


@TRANSFORMS.register_module()
class RandomDihedral(BaseTransform):
    """Apply one of the 8 dihedral transforms, drawn uniformly, to all ``keys``.

    The flag comes from ``np.random.randint(8)`` (one draw per call), so
    MMEngine's seeding of numpy in the runner and in the dataloader workers
    makes it reproducible. See :func:`hidiff_mm.utils.dihedral.dihedral` for the flag
    meaning.

    Required and modified keys: ``keys``, each an ``(H, W, C)`` array.

    Args:
        keys: the images that receive the same transform.
    """

    def __init__(self, keys: Sequence[str] = ('img', 'gt')) -> None:
        self.keys = list(keys)

    def transform(self, results: dict) -> dict:
        """Draw a flag and transform every key with it."""
        flag = np.random.randint(8)
        for key in self.keys:
            results[key] = np.ascontiguousarray(dihedral(results[key], flag, axes=(0, 1)))
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(keys={self.keys})'
