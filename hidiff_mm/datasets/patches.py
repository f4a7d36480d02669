# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Patch geometry and writing for the official GoPro crops (``generate_patches_gopro.py``).

Training frames are cut into ``patch_size`` squares every ``stride`` pixels,
plus one flush with the far border; validation frames give one centred crop.
"""
import os
import os.path as osp
from typing import Callable, List, NamedTuple, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image


class Crop(NamedTuple):
    """One square crop: output file name, top-left corner and side."""

    name: str
    top: int
    left: int
    size: int


#: ``(stem, height, width) -> crops`` of one frame.
CropPlan = Callable[[str, int, int], List[Crop]]


def patch_offsets(length: int, patch_size: int = 512, stride: int = 256) -> List[int]:
    """Start offsets of the patches along one axis.

    ``0, stride, 2 * stride, ... < length - patch_size``, then
    ``length - patch_size``, as in the official script (720 -> [0, 208],
    1280 -> [0, 256, 512, 768]).
    """
    if patch_size <= 0 or stride <= 0:
        raise ValueError(f'patch_size and stride must be positive, got {patch_size}, {stride}.')
    if length < patch_size:
        raise ValueError(f'Axis length {length} is smaller than the patch size {patch_size}.')
    return list(range(0, length - patch_size, stride)) + [length - patch_size]


def train_crops(stem: str, height: int, width: int, patch_size: int = 512,
                stride: int = 256) -> List[Crop]:
    """Training patches ``<stem>-<k>.png``, k from 1, rows outer and columns inner."""
    offsets = [(top, left) for top in patch_offsets(height, patch_size, stride)
               for left in patch_offsets(width, patch_size, stride)]
    return [Crop(f'{stem}-{k}.png', top, left, patch_size)
            for k, (top, left) in enumerate(offsets, start=1)]


def val_crops(stem: str, height: int, width: int, size: int = 256) -> List[Crop]:
    """The centred validation crop ``<stem>.png`` (offsets rounded down)."""
    if height < size or width < size:
        raise ValueError(f'Frame {height}x{width} is smaller than the crop size {size}.')
    return [Crop(f'{stem}.png', (height - size) // 2, (width - size) // 2, size)]


def write_png_atomic(path: str, img: np.ndarray) -> None:
    """Write ``img`` (``(H, W, 3)`` BGR uint8) as PNG through a hidden temporary file that is
    flushed to disk and renamed over ``path``, so an interrupted run never leaves a partial
    ``path``, nor a temporary file. (``hidiff_mm.utils.io.atomic_write_bytes`` does the same for
    the package; this module also runs alone, without the package: tools/light_import.py.)"""
    ok, buf = cv2.imencode('.png', img)
    if not ok:
        raise ValueError(f"Cannot encode a PNG for '{path}'.")
    folder, name = osp.split(path)
    tmp = osp.join(folder, f'.{name}.{os.getpid()}.tmp')
    try:
        with open(tmp, 'wb') as f:
            f.write(buf.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def crop_pair(paths: Sequence[str], out_dirs: Sequence[str], plan: CropPlan) -> Tuple[int, int]:
    """Crop the frames of one pair and write the crops that are not there yet.

    The sizes come from the file headers, so a pair whose crops all exist is
    skipped without decoding it.

    Args:
        paths: blurred and sharp frame.
        out_dirs: output folder for each frame.
        plan: the crops of a frame, e.g. ``functools.partial(train_crops, ...)``.

    Returns:
        ``(written, skipped)`` numbers of crop pairs.
    """
    sizes = []
    for path in paths:
        with Image.open(path) as img:
            sizes.append((img.height, img.width))
    if len(set(sizes)) > 1:
        raise ValueError('Frames of a pair differ in size: ' + ', '.join(
            f"'{p}' is {h}x{w}" for p, (h, w) in zip(paths, sizes)) + ' (HxW).')
    stem = osp.splitext(osp.basename(paths[0]))[0]
    try:
        crops = plan(stem, *sizes[0])
    except ValueError as err:
        raise ValueError(f"Cannot crop '{paths[0]}': {err}") from err
    todo = [c for c in crops if not all(osp.exists(osp.join(d, c.name)) for d in out_dirs)]
    if todo:
        for path, out_dir in zip(paths, out_dirs):
            frame = cv2.imread(path, cv2.IMREAD_COLOR)
            if frame is None:
                raise ValueError(f"Cannot decode image '{path}'.")
            for crop in todo:
                patch = frame[crop.top:crop.top + crop.size, crop.left:crop.left + crop.size]
                write_png_atomic(osp.join(out_dir, crop.name), patch)
    return len(todo), len(crops) - len(todo)
