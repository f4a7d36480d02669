# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Crops of real photographs that installed packages ship, as a training scene.

Camera noise, film grain and the fine textures of real scenes are what procedural scenes lack,
and what a model must learn to leave alone. :data:`TRAIN_PHOTOS` lists the sample images of
scikit-image (``skimage/data``) that are *not* among the held-out photographs of
:mod:`hidiff_mm.datasets.photos` (nor near-duplicates of them: ``motorcycle_right`` is the
other view of the test image ``motorcycle_left`` and is left out). Licences, from
scikit-image's documentation of each image: ``moon``, ``text``: no known copyright
restrictions / public domain; ``retina``, ``cell``: CC0; ``hubble_deep_field``: NASA, public
domain; ``ihc``: no known copyright restrictions.

This module imports nothing from hidiff_mm, so ``tools/make_synthetic_blur.py`` can load it
alone (``tools/light_import.py``).
"""
import os.path as osp
from functools import lru_cache
from typing import Tuple

import cv2
import numpy as np

# (name, package, path inside the package): a moon's surface, a printed page photographed
# with its paper grain, a fundus photograph, a stained tissue section, a quantitative phase
# image and the Hubble deep field.
TRAIN_PHOTOS = (
    ('moon', 'skimage', 'data/moon.png'),
    ('text', 'skimage', 'data/text.png'),
    ('retina', 'skimage', 'data/retina.jpg'),
    ('ihc', 'skimage', 'data/ihc.png'),
    ('cell', 'skimage', 'data/cell.png'),
    ('hubble_deep_field', 'skimage', 'data/hubble_deep_field.jpg'),
)


def package_file(package: str, relpath: str) -> str:
    """The file ``relpath`` inside the installed ``package``.

    Raises:
        ImportError: the package is not installed (it is in requirements/runtime.txt).
        FileNotFoundError: the package does not ship the file.
    """
    module = __import__(package)
    path = osp.join(osp.dirname(module.__file__), relpath)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{package} {getattr(module, "__version__", "")} does not ship '
                                f'{relpath} (expected at {path})')
    return path


def read_rgb(path: str) -> np.ndarray:
    """``(H, W, 3)`` RGB uint8 of an image file; grey images get three equal channels."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f'cannot decode the sample photograph {path}')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@lru_cache(maxsize=None)
def _train_photo(index: int) -> np.ndarray:
    _, package, relpath = TRAIN_PHOTOS[index]
    return read_rgb(package_file(package, relpath))


def make_photo_crop(rng: np.random.Generator, size: int,
                    scale_range: Tuple[float, float] = (0.3, 1.0)) -> np.ndarray:
    """A random ``size x size`` crop of a random photograph of :data:`TRAIN_PHOTOS`.

    The photograph is reduced by a factor drawn from ``scale_range`` (area interpolation, as the
    held-out photographs are; never below ``size`` on its short side), then cropped at a random
    place and flipped/transposed at random.

    Returns:
        ``(size, size, 3)`` float32 RGB in [0, 1].
    """
    photo = _train_photo(int(rng.integers(len(TRAIN_PHOTOS))))
    h, w = photo.shape[:2]
    scale = max(rng.uniform(*scale_range), size / min(h, w))
    if scale < 1:
        photo = cv2.resize(photo, (max(size, round(w * scale)), max(size, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
    h, w = photo.shape[:2]
    y0, x0 = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
    crop = photo[y0:y0 + size, x0:x0 + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = crop.transpose(1, 0, 2)
    return np.ascontiguousarray(crop, dtype=np.float32) / 255
