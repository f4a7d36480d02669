# Copyright (c) hidiff_mm contributors. All rights reserved.
"""Procedural blurred/sharp pairs: random sharp scenes blurred by camera-shake kernels.

Everything draws from an explicit ``numpy.random.Generator``, so a seed fixes
every pixel. Images are RGB; float images are ``(H, W, 3)`` float32 in [0, 1].
"""
from typing import Callable, Optional, Tuple

import cv2
import numpy as np

_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
          cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN)
_GLYPHS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
# Image i of a split is drawn from default_rng([seed, SPLIT_IDS[split], i]).
SPLIT_IDS = {'train': 0, 'test': 1}
# A scene maker: (rng, size) -> (size, size, 3) float32 RGB in [0, 1].
SceneMaker = Callable[[np.random.Generator, int], np.ndarray]


def _coords(size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(y, x)`` scaled to [0, 1), each ``(size, size)``."""
    axis = np.arange(size, dtype=np.float32) / size
    return np.meshgrid(axis, axis, indexing='ij')


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """Linear gradient between two random colours along a random direction."""
    y, x = _coords(size)
    theta = rng.uniform(0, 2 * np.pi)
    t = np.cos(theta) * x + np.sin(theta) * y
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = rng.uniform(0, 1, (2, 3)).astype(np.float32)
    return c0 + t[..., None] * (c1 - c0)


def _sinusoids(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random colour plus 2-4 coloured, oriented sinusoids of 2-24 cycles per image."""
    y, x = _coords(size)
    img = np.broadcast_to(rng.uniform(0.3, 0.7, 3).astype(np.float32), (size, size, 3)).copy()
    for _ in range(rng.integers(2, 5)):
        theta = rng.uniform(0, np.pi)
        freq = rng.uniform(2, 24)
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * freq * (np.cos(theta) * x + np.sin(theta) * y) + phase)
        img += wave[..., None] * rng.uniform(-0.25, 0.25, 3).astype(np.float32)
    return img


def _noise_octaves(rng: np.random.Generator, size: int) -> np.ndarray:
    """Value noise: random grids of 4, 8, 16, 32 cells, bicubically upsampled, amplitude 1/2^o."""
    img = np.zeros((size, size, 3), np.float32)
    for octave in range(4):
        cells = 4 * 2**octave
        grid = rng.uniform(-1, 1, (cells, cells, 3)).astype(np.float32)
        img += cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC) * 0.5**octave
    return 0.5 + 0.25 * img


def _draw_shape(rng: np.random.Generator, img: np.ndarray) -> None:
    """Draw a filled, hard-edged star-shaped polygon or ellipse of a random colour."""
    size = img.shape[0]
    colour = tuple(float(c) for c in rng.uniform(0, 1, 3))
    centre = rng.integers(0, size, 2)
    radius = rng.uniform(0.05, 0.35) * size
    if rng.random() < 0.6:
        angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 9)))
        radii = radius * rng.uniform(0.4, 1.0, angles.size)
        points = centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        cv2.fillPoly(img, [np.round(points).astype(np.int32)], colour, lineType=cv2.LINE_8)
    else:
        axes = (max(1, int(radius)), max(1, int(radius * rng.uniform(0.3, 1.0))))
        cv2.ellipse(img, (int(centre[0]), int(centre[1])), axes, float(rng.uniform(0, 180)), 0,
                    360, colour, thickness=-1, lineType=cv2.LINE_8)


def _draw_text(rng: np.random.Generator, img: np.ndarray) -> None:
    """Write a line of 3-10 random glyphs in a random Hershey font, size and colour."""
    size = img.shape[0]
    text = ''.join(rng.choice(list(_GLYPHS), rng.integers(3, 11)))
    scale = float(rng.uniform(0.2, 0.9) * size / 128)
    thickness = int(rng.integers(1, 3))
    origin = (int(rng.integers(-size // 4, size // 2)), int(rng.integers(size // 8, size)))
    colour = tuple(float(c) for c in rng.uniform(0, 1, 3))
    cv2.putText(img, text, origin, int(rng.choice(_FONTS)), scale, colour, thickness,
                lineType=cv2.LINE_AA)


def make_sharp_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """Make a random sharp scene.

    A background (linear gradient, oriented sinusoids or multi-octave value
    noise), 2-6 hard-edged polygons or ellipses, and 0-2 lines of text.

    Returns:
        ``(size, size, 3)`` float32 RGB image in [0, 1].
    """
    background = (_gradient, _sinusoids, _noise_octaves)[rng.integers(3)]
    img = np.ascontiguousarray(background(rng, size), dtype=np.float32)
    for _ in range(rng.integers(2, 7)):
        _draw_shape(rng, img)
    for _ in range(rng.integers(0, 3)):
        _draw_text(rng, img)
    return np.clip(img, 0, 1)


def random_shake_kernel(rng: np.random.Generator,
                        size: int,
                        steps: int = 64,
                        jerk_prob: float = 0.05) -> np.ndarray:
    """Make a camera-shake blur kernel.

    A 2-D random walk with inertia (``v <- a * v + (1 - a) * n``, ``n`` a
    standard normal step, ``a ~ U[0.5, 0.9]``, plus a rare large jerk) is
    centred on its mean and scaled to span a random fraction in [0.4, 1] of the
    kernel radius. Each step is an equal share of the exposure: it is resampled
    densely (4 points per pixel of length) and the points are splatted
    bilinearly, so the kernel has sub-pixel accuracy.

    Args:
        rng: random generator.
        size: kernel side, odd and >= 3.
        steps: random-walk steps.
        jerk_prob: probability of a jerk at each step.

    Returns:
        ``(size, size)`` float32 kernel, non-negative, summing to 1, with its
        centre of mass near the centre pixel.
    """
    if size < 3 or size % 2 == 0:
        raise ValueError(f'Kernel size must be odd and >= 3, got {size}.')
    inertia = rng.uniform(0.5, 0.9)
    velocity = rng.standard_normal(2)
    path = [np.zeros(2)]
    for _ in range(steps):
        velocity = inertia * velocity + (1 - inertia) * rng.standard_normal(2)
        if rng.random() < jerk_prob:
            velocity = velocity + 2 * rng.standard_normal(2)
        path.append(path[-1] + velocity)
    points = np.array(path)
    points -= points.mean(axis=0)
    half = (size - 1) / 2
    points *= rng.uniform(0.4, 1.0) * (half - 1) / max(np.abs(points).max(), 1e-6)

    starts, deltas = points[:-1], np.diff(points, axis=0)
    counts = np.maximum(1, np.ceil(4 * np.linalg.norm(deltas, axis=1))).astype(int)
    seg = np.repeat(np.arange(steps), counts)
    frac = (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)) / counts[seg]
    samples = starts[seg] + frac[:, None] * deltas[seg] + half
    weights = 1.0 / counts[seg]

    kernel = np.zeros((size, size))
    x0, y0 = np.floor(samples).astype(int).T
    fx, fy = (samples - np.floor(samples)).T
    for dy, dx, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)),
                      (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + dy, x0 + dx), weights * w)
    return (kernel / kernel.sum()).astype(np.float32)


def blur_image(img: np.ndarray,
               kernel: np.ndarray,
               noise_sigma: float = 0.0,
               rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Convolve ``img`` with ``kernel`` and add Gaussian noise.

    Args:
        img: ``(H, W, C)`` float image in [0, 1].
        kernel: ``(k, k)`` blur kernel (true convolution, reflected borders).
        noise_sigma: standard deviation of the added noise, in [0, 1] units.
        rng: random generator; needed when ``noise_sigma > 0``.

    Returns:
        ``(H, W, C)`` float32 image clipped to [0, 1].
    """
    flipped = np.ascontiguousarray(kernel[::-1, ::-1], dtype=np.float32)
    blurred = cv2.filter2D(img.astype(np.float32), -1, flipped, borderType=cv2.BORDER_REFLECT_101)
    if noise_sigma > 0:
        if rng is None:
            raise ValueError('blur_image needs an rng when noise_sigma > 0.')
        blurred = blurred + rng.normal(0, noise_sigma, blurred.shape).astype(np.float32)
    return np.clip(blurred, 0, 1).astype(np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Round a [0, 1] float image to uint8."""
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_blur_pair(rng: np.random.Generator,
                   size: int,
                   kernel_sizes: Tuple[int, int] = (9, 31),
                   max_noise_sigma: float = 0.01,
                   scene: SceneMaker = make_sharp_image,
                   identity_prob: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """Make one synthetic training pair.

    Args:
        rng: random generator.
        size: image side.
        kernel_sizes: smallest and largest (odd) kernel side; the side is drawn
            uniformly among the odd values in between.
        max_noise_sigma: noise sigma is drawn from ``U[0, max_noise_sigma]``.
        scene: makes the sharp image (e.g.
            :func:`hidiff_mm.datasets.dead_leaves.make_dead_leaves_image`).
        identity_prob: probability of an identity pair (no blur, no noise: the input is the
            sharp image), which teaches a model to give sharp images back unchanged. With 0
            (the default) no extra number is drawn, so the pairs are those of earlier versions.

    Returns:
        ``(blurred, sharp)``, each ``(size, size, 3)`` uint8 RGB.
    """
    sharp = scene(rng, size)
    if identity_prob > 0 and rng.random() < identity_prob:
        return to_uint8(sharp), to_uint8(sharp)
    kernel = random_shake_kernel(rng, int(rng.choice(np.arange(kernel_sizes[0],
                                                               kernel_sizes[1] + 1, 2))))
    blurred = blur_image(sharp, kernel, rng.uniform(0, max_noise_sigma), rng)
    return to_uint8(blurred), to_uint8(sharp)


def make_split_pair(seed: int,
                    split: str,
                    index: int,
                    size: int,
                    kernel_sizes: Tuple[int, int] = (9, 31),
                    scene: SceneMaker = make_sharp_image,
                    identity_prob: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """Pair ``index`` of ``split`` ('train' or 'test') of the set with ``seed``, its sharp image
    made by ``scene`` (identity pairs with ``identity_prob``): what
    ``tools/make_synthetic_blur.py`` writes as ``<split>/{input,target}/<index>.png``.

    Returns:
        ``(blurred, sharp)``, each ``(size, size, 3)`` uint8 RGB.
    """
    if split not in SPLIT_IDS:
        raise ValueError(f'split must be one of {sorted(SPLIT_IDS)}, got {split!r}')
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    return make_blur_pair(rng, size, kernel_sizes=kernel_sizes, scene=scene,
                          identity_prob=identity_prob)
