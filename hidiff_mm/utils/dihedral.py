# Copyright (c) hidiff_mm contributors. All rights reserved.
"""The 8 dihedral transforms (rotations by 90 degrees, with or without a flip), one definition
for numpy images (the training augmentation) and torch tensors (the test-time self-ensemble)."""
from typing import Tuple, TypeVar

import numpy as np
import torch

Array = TypeVar('Array', np.ndarray, torch.Tensor)


def _check(flag: int) -> None:
    if flag not in range(8):
        raise ValueError(f'Dihedral flag must be an integer in [0, 7], got {flag!r}.')


def dihedral(x: Array, flag: int, axes: Tuple[int, int] = (-2, -1)) -> Array:
    """Transform number ``flag`` of the plane spanned by ``axes``.

    ``flag = 2 * k + f``: rotate by ``k * 90`` degrees counter-clockwise (``rot90(x, k)``), then
    flip along ``axes[0]`` (up-down) if ``f == 1``. This is the official order: 0 identity,
    1 flipud, 2 rot90, 3 rot90 + flipud, 4 rot180, 5 rot180 + flipud, 6 rot270, 7 rot270 +
    flipud. Use ``axes=(0, 1)`` for ``(H, W, C)`` arrays, the default for ``(..., H, W)``.
    """
    _check(flag)
    if isinstance(x, torch.Tensor):
        out = torch.rot90(x, flag // 2, dims=axes)
        return out.flip(axes[0]) if flag % 2 else out
    out = np.rot90(x, flag // 2, axes=axes)
    return np.flip(out, axes[0]) if flag % 2 else out


def dihedral_inverse(x: Array, flag: int, axes: Tuple[int, int] = (-2, -1)) -> Array:
    """The inverse of :func:`dihedral` with the same ``flag`` and ``axes``."""
    _check(flag)
    if isinstance(x, torch.Tensor):
        x = x.flip(axes[0]) if flag % 2 else x
        return torch.rot90(x, -(flag // 2), dims=axes)
    x = np.flip(x, axes[0]) if flag % 2 else x
    return np.rot90(x, -(flag // 2), axes=axes)
