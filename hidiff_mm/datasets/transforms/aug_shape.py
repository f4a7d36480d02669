# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The 8-way dihedral augmentation of HI-Diff (official ``random_augmentation``)."""
from typing import Sequence

import numpy as np
from mmagic.registry import TRANSFORMS
from mmcv.transforms import BaseTransform


def dihedral(img: np.ndarray, flag: int) -> np.ndarray:
    """Apply the dihedral transform number ``flag`` to an ``(H, W, ...)`` array.

    ``flag = 2 * k + f``: rotate by ``k * 90`` degrees counter-clockwise
    (``np.rot90(img, k)``), then flip up-down (``np.flipud``) if ``f == 1``.
    This is the official order: 0 identity, 1 flipud, 2 rot90,
    3 rot90 + flipud, 4 rot180, 5 rot180 + flipud, 6 rot270, 7 rot270 + flipud.

    Returns:
        A C-contiguous array, ``(W, H, ...)`` for odd ``k``.
    """
    if flag not in range(8):
        raise ValueError(f'Dihedral flag must be an integer in [0, 7], got {flag!r}.')
    out = np.rot90(img, k=flag // 2)
    if flag % 2:
        out = np.flipud(out)
    return np.ascontiguousarray(out)


@TRANSFORMS.register_module()
class RandomDihedral(BaseTransform):
    """Apply one of the 8 dihedral transforms, drawn uniformly, to all ``keys``.

    The flag comes from ``np.random.randint(8)`` (one draw per call), so
    MMEngine's seeding of numpy in the runner and in the dataloader workers
    makes it reproducible. See :func:`dihedral` for the flag meaning.

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
            results[key] = dihedral(results[key], flag)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(keys={self.keys})'
