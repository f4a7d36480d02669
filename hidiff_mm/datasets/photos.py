# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Real photographs blurred by camera shake: a held-out check that needs no download.

The photographs are the sample images that installed packages ship (scikit-image's
``skimage/data`` and matplotlib's ``sample_data``; public-domain or CC0 pictures). Each is
reduced (area interpolation) so that its short side is ``size`` and centre-cropped to
``size x size``, then blurred exactly like the procedural set
(:func:`hidiff_mm.datasets.synthetic.blur_image` with a
:func:`~hidiff_mm.datasets.synthetic.random_shake_kernel`). None of them is used in training.
"""
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from .photo_crops import package_file, read_rgb
from .synthetic import blur_image, random_shake_kernel, to_uint8

# (name, package, path inside the package). Colour and grey photographs of people, animals,
# objects, buildings and textures; renders, microscopy and astronomy images are left out.
PHOTOS = (
    ('astronaut', 'skimage', 'data/astronaut.png'),
    ('camera', 'skimage', 'data/camera.png'),
    ('chelsea', 'skimage', 'data/chelsea.png'),
    ('coffee', 'skimage', 'data/coffee.png'),
    ('coins', 'skimage', 'data/coins.png'),
    ('rocket', 'skimage', 'data/rocket.jpg'),
    ('motorcycle', 'skimage', 'data/motorcycle_left.png'),
    ('brick', 'skimage', 'data/brick.png'),
    ('grass', 'skimage', 'data/grass.png'),
    ('gravel', 'skimage', 'data/gravel.png'),
    ('grace_hopper', 'matplotlib', 'mpl-data/sample_data/grace_hopper.jpg'),
)
# The sharp photographs a model must give back unchanged ("sharp in, sharp out"): the
# held-out photographs of people, animals and objects, and a scanned page of text.
SHARP_PHOTOS = PHOTOS[:6] + (('page', 'skimage', 'data/page.png'),)
PHOTO_SPLIT_ID = 2  # the procedural set uses 0 (train) and 1 (test)


def centre_square(img: np.ndarray, size: int) -> np.ndarray:
    """Resize ``img`` (area interpolation) so its short side is ``size``; crop the centre
    ``size x size``."""
    h, w = img.shape[:2]
    scale = size / min(h, w)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    img = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_AREA)
    y0, x0 = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(img[y0:y0 + size, x0:x0 + size])


def load_photos(size: int = 256, photos: Sequence[Tuple[str, str, str]] = PHOTOS
                ) -> List[Tuple[str, np.ndarray]]:
    """``[(name, RGB uint8 (size, size, 3))]`` for every photograph of ``photos``
    (:data:`PHOTOS` or :data:`SHARP_PHOTOS`)."""
    return [(name, centre_square(read_rgb(package_file(package, relpath)), size))
            for name, package, relpath in photos]


def make_photo_pairs(seed: int = 0,
                     size: int = 256,
                     kernel_sizes: Tuple[int, int] = (9, 31),
                     max_noise_sigma: float = 0.01) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """``[(name, blurred, sharp)]``, RGB uint8 ``(size, size, 3)``: each photograph blurred by a
    camera-shake kernel (odd side drawn from ``kernel_sizes``) plus noise of sigma
    ``U[0, max_noise_sigma]``, photograph ``i`` drawn from ``default_rng([seed, 2, i])``."""
    pairs = []
    for i, (name, sharp) in enumerate(load_photos(size)):
        rng = np.random.default_rng([seed, PHOTO_SPLIT_ID, i])
        side = int(rng.choice(np.arange(kernel_sizes[0], kernel_sizes[1] + 1, 2)))
        sharp_f = sharp.astype(np.float32) / 255
        blurred = blur_image(sharp_f, random_shake_kernel(rng, side),
                             rng.uniform(0, max_noise_sigma), rng)
        pairs.append((name, to_uint8(blurred), sharp))
    return pairs
